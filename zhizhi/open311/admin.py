from django.contrib import admin

from zhizhi.open311.models import IntegratorKey, ServiceAttribute, ServiceRequestToken


@admin.register(IntegratorKey)
class IntegratorKeyAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "prefix",
        "jurisdiction_id",
        "enabled",
        "created_by",
        "created_at",
        "last_used_at",
    )
    list_filter = ("enabled",)
    # Keys are issued on the key page (the raw key is shown once there), never typed in here.
    readonly_fields = ("prefix", "key_hash", "created_by", "created_at", "last_used_at", "revoked_at")

    def has_add_permission(self, request: object) -> bool:
        return False


@admin.register(ServiceAttribute)
class ServiceAttributeAdmin(admin.ModelAdmin):
    list_display = ("category", "code", "datatype", "required", "order", "description")
    list_filter = ("datatype", "required")
    search_fields = ("code", "description", "category__code", "category__name")


@admin.register(ServiceRequestToken)
class ServiceRequestTokenAdmin(admin.ModelAdmin):
    list_display = ("token", "key", "case", "service_code", "created_at")
    readonly_fields = [f.name for f in ServiceRequestToken._meta.fields]
    search_fields = ("token", "case__number")
