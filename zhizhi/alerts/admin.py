"""Admin for sensing devices: register them, issue a device token (shown once), look at readings."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from zhizhi.alerts import services
from zhizhi.alerts.enterprise_models import SupportPolicy
from zhizhi.alerts.models import Device, IngestCounter, Reading


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "kind", "grid", "enabled", "token_prefix", "last_value", "last_seen_at")
    list_filter = ("kind", "enabled")
    search_fields = ("code", "name")
    raw_id_fields = ("grid", "building", "house", "watched_person")
    readonly_fields = ("token_prefix", "last_value", "last_seen_at")
    actions = ["issue_token"]

    @admin.action(description="签发设备令牌(仅显示一次) / Issue a device token (shown once)")
    def issue_token(self, request: HttpRequest, queryset: QuerySet[Device]) -> None:
        for device in queryset:
            raw = services.issue_token(device)
            # The raw token exists only in this message; the database keeps its hash.
            self.message_user(
                request,
                f"{device.code}: {raw}  (请立即抄录，之后无法再查看 / copy it now, it is not shown again)",
                messages.WARNING,
            )


@admin.register(Reading)
class ReadingAdmin(admin.ModelAdmin):
    list_display = ("device", "at", "value", "status", "reason", "received_at")
    list_filter = ("status",)
    search_fields = ("device__code",)
    raw_id_fields = ("device",)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # readings are written only by ingestion


@admin.register(IngestCounter)
class IngestCounterAdmin(admin.ModelAdmin):
    list_display = ("day", "reason", "count")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# 惠企政策 for the 八必访 policy-match trigger (criteria checked by SupportPolicy.clean, both languages).
@admin.register(SupportPolicy)
class SupportPolicyAdmin(admin.ModelAdmin):
    list_display = ("name", "issued_by", "valid_from", "valid_until", "active")
    list_filter = ("active", "issued_by")
    search_fields = ("name", "issued_by")
