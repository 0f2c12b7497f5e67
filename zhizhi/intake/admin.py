"""Admin for the intake registries (cameras, event types, upstream systems, column mappings);
channel messages are read-only here (they are written only by the intake services)."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from zhizhi.intake.models import Camera, CameraEventType, ChannelMessage, ColumnMapping, SourceEndpoint


@admin.register(Camera)
class CameraAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "lng", "lat", "grid", "heading", "range_m", "enabled")
    list_filter = ("enabled",)
    search_fields = ("code", "name")


@admin.register(CameraEventType)
class CameraEventTypeAdmin(admin.ModelAdmin):
    list_display = ("name", "category")


@admin.register(SourceEndpoint)
class SourceEndpointAdmin(admin.ModelAdmin):
    list_display = ("source", "name", "callback_url")


@admin.register(ColumnMapping)
class ColumnMappingAdmin(admin.ModelAdmin):
    list_display = ("source", "updated_at")


@admin.register(ChannelMessage)
class ChannelMessageAdmin(admin.ModelAdmin):
    list_display = (
        "channel",
        "source",
        "external_id",
        "case",
        "count",
        "received_at",
        "last_seen",
        "fed_back_at",
    )
    list_filter = ("channel",)
    search_fields = ("external_id",)
    exclude = ("follow_token",)  # the reporter's secret link is not shown to staff

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
