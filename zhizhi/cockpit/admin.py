"""Admin for indicators (the same checked form as /cockpit/indicators/) and their rollups."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from zhizhi.cockpit.forms import IndicatorForm
from zhizhi.cockpit.models import Indicator, IndicatorValue, RollupRun


@admin.register(Indicator)
class IndicatorAdmin(admin.ModelAdmin):
    form = IndicatorForm
    list_display = ("code", "name", "scene", "source", "window", "aggregation", "breakdown_level", "enabled")
    list_filter = ("scene", "source", "window", "aggregation", "enabled")
    search_fields = ("code", "name")
    readonly_fields = ("stale_since",)


@admin.register(IndicatorValue)
class IndicatorValueAdmin(admin.ModelAdmin):
    list_display = ("indicator", "region", "day", "value", "numerator", "denominator")
    list_filter = ("day",)
    search_fields = ("indicator__code",)
    raw_id_fields = ("indicator", "region")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # written only by the rollup


@admin.register(RollupRun)
class RollupRunAdmin(admin.ModelAdmin):
    list_display = ("day", "finished_at", "indicators", "rows", "seconds")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
