from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from zhizhi.admin import ScopedAdmin
from zhizhi.orgs.models import OrgUnit, User


@admin.register(OrgUnit)
class OrgUnitAdmin(ScopedAdmin):
    list_display = ("code", "name", "kind", "parent", "region", "active")
    list_filter = ("kind", "active")
    search_fields = ("code", "name")
    raw_id_fields = ("parent", "region")


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ("username", "full_name", "role", "org_unit", "phone_masked", "is_active")
    list_filter = ("role", "is_active", "is_staff")
    search_fields = ("username", "full_name")
    fieldsets = (
        *(BaseUserAdmin.fieldsets or ()),
        ("智治", {"fields": ("full_name", "role", "org_unit", "regions", "phone_masked")}),
    )
    readonly_fields = ("phone_masked",)
    filter_horizontal = ("regions", "groups", "user_permissions")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        # Staff accounts are managed by superusers; others see only themselves.
        qs = super().get_queryset(request)
        return qs if request.user.is_superuser else qs.filter(pk=request.user.pk)
