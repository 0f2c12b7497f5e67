"""The admin, scoped like every page: `ScopedAdmin.get_queryset` reads through `visible_to`, and
protected personal fields appear only as their masks (never the ciphertext or the lookup hash)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from zhizhi.models import APIToken, ChangeLogEntry, ObjectPermission, RevealLog

HIDDEN_SUFFIXES = ("_enc", "_hash")
STAMPS = ("version", "area_path", "created_at", "created_by", "updated_at", "updated_by")


def hidden_fields(model: type) -> list[str]:
    return [f.name for f in model._meta.concrete_fields if f.name.endswith(HIDDEN_SUFFIXES)]


class ScopedAdmin(admin.ModelAdmin):
    """Base for every registry model: scoped reads, masked personal data, stamps read-only."""

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        qs = super().get_queryset(request)
        if hasattr(qs, "visible_to"):
            return qs.visible_to(request.user)
        return qs

    def get_exclude(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [*(super().get_exclude(request, obj) or []), *hidden_fields(self.model)]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        masked = [f.name for f in self.model._meta.concrete_fields if f.name.endswith("_masked")]
        present = {f.name for f in self.model._meta.concrete_fields}
        stamps = [s for s in STAMPS if s in present]
        return [*super().get_readonly_fields(request, obj), *masked, *stamps]


class ReadOnlyAdmin:
    """Mix into a ModelAdmin whose rows are viewable only: never added, changed or deleted here."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class LogAdmin(ReadOnlyAdmin, ScopedAdmin):
    """Logs are append-only: viewable, never edited or deleted from the admin."""


@admin.register(ChangeLogEntry)
class ChangeLogEntryAdmin(LogAdmin):
    list_display = ("at", "actor", "action", "content_type", "object_repr")
    list_filter = ("action", "content_type")
    search_fields = ("object_repr", "actor__username")
    date_hierarchy = "at"


@admin.register(RevealLog)
class RevealLogAdmin(LogAdmin):
    list_display = ("at", "actor", "object_repr", "field", "purpose", "ip")
    list_filter = ("field",)
    search_fields = ("object_repr", "actor__username", "purpose")
    date_hierarchy = "at"


@admin.register(ObjectPermission)
class ObjectPermissionAdmin(admin.ModelAdmin):
    list_display = ("name", "enabled", "description")
    list_filter = ("enabled",)
    filter_horizontal = ("users", "org_units")


@admin.register(APIToken)
class APITokenAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "prefix", "created_at", "last_used_at", "expires_at", "enabled")
    exclude = ("key_hash",)
    readonly_fields = ("prefix", "created_at", "last_used_at")
