"""Incidents in the admin, read only: they are declared, marked and closed through emergency mode's
services (their timeline and counts must stay consistent), never edited by hand."""

from django.contrib import admin

from zhizhi.admin import ReadOnlyAdmin
from zhizhi.cockpit.emergency.models import EvacuationTask, HelpRequest, Incident, IncidentEvent


class ReadOnly(ReadOnlyAdmin, admin.ModelAdmin):
    pass


@admin.register(Incident)
class IncidentAdmin(ReadOnly):
    list_display = (
        "number",
        "title",
        "kind",
        "status",
        "declared_at",
        "households_total",
        "vulnerable_total",
    )
    list_filter = ("kind", "status")
    search_fields = ("number", "title", "location")


@admin.register(EvacuationTask)
class EvacuationTaskAdmin(ReadOnly):
    list_display = ("incident", "seq", "house", "assignee", "status", "marked_at")
    list_filter = ("status",)
    list_select_related = ("incident", "house__building", "assignee")


@admin.register(IncidentEvent)
class IncidentEventAdmin(ReadOnly):
    list_display = ("incident", "at", "kind", "actor", "text")
    list_filter = ("kind",)


@admin.register(HelpRequest)
class HelpRequestAdmin(ReadOnly):
    list_display = ("incident", "task", "raised_by", "raised_at", "resolved_at")
