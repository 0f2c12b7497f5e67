"""Admin for the responsibility list, rosters and the holiday table (cases are worked in the
workbenches and the API, through the services; here they are read-only)."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from zhizhi.admin import ReadOnlyAdmin
from zhizhi.cases.models import Case, CaseEvent, Category, DutyRoster, HolidayOverride


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "kind", "parent", "responsibility", "department", "urgent", "active")
    list_filter = ("kind", "responsibility", "urgent", "active")
    search_fields = ("code", "name")
    filter_horizontal = ("assisting",)


@admin.register(DutyRoster)
class DutyRosterAdmin(admin.ModelAdmin):
    list_display = ("date", "unit", "user")
    list_filter = ("unit",)
    date_hierarchy = "date"


@admin.register(HolidayOverride)
class HolidayOverrideAdmin(admin.ModelAdmin):
    list_display = ("date", "is_workday", "name")
    date_hierarchy = "date"


class EventInline(admin.TabularInline):
    model = CaseEvent
    extra = 0
    can_delete = False
    fields = ("at", "actor", "action", "from_status", "to_status", "note")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Case)
class CaseAdmin(ReadOnlyAdmin, admin.ModelAdmin):
    list_display = ("number", "title", "status", "category", "unit", "assignee", "sla_level", "reported_at")
    list_filter = ("status", "sla_level", "channel")
    search_fields = ("number", "title")
    inlines = [EventInline]

    def get_queryset(self, request: HttpRequest) -> Any:
        from zhizhi.cases.services import cases_visible_to

        return cases_visible_to(request.user)
