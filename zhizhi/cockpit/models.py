"""Indicators as data (指标) and their daily rollups (日汇总), the material of the cockpit.

An indicator names a registered source (`zhizhi/cockpit/sources.py`), the filters it applies, a
window of time and an aggregation; `services.value/board/trend` compute it per region. Past days are
read from `IndicatorValue` rows written by `rollup.build(day)`; today is computed live.
See docs/indicators.md.
"""

from __future__ import annotations

from typing import Any

from django.db import models

from zhizhi.models import ZhizhiModel


class Indicator(ZhizhiModel):
    """一项指标: what is counted (source + filters), over which window, how it is judged."""

    SCENES = [
        ("overview", "全景"),
        ("safety", "平安"),
        ("livelihood", "民生"),
        ("industry", "产业"),
    ]
    COUNT, SUM, AVG, RATIO, GROWTH = "count", "sum", "avg", "ratio", "growth"
    AGGREGATIONS = [
        (COUNT, "计数"),
        (SUM, "求和"),
        (AVG, "平均"),
        (RATIO, "比率(%)"),
        (GROWTH, "增长率(%)"),
    ]
    WINDOWS = [
        ("now", "截至当日(存量)"),
        ("day", "当日"),
        ("month", "本月累计"),
        ("days30", "近30天"),
        ("year", "本年累计"),
        ("month_last_year", "去年同期(月)"),
        ("year_last_year", "去年同期(年)"),
    ]
    LEVELS = [("street", "街道"), ("community", "社区"), ("grid", "网格")]

    # The fields whose change alters the figures: saving a change to any of them marks the rollups
    # for rebuild (thresholds, names and order do not).
    DEFINITION_FIELDS = (
        "source",
        "params",
        "window",
        "measure",
        "aggregation",
        "denominator_source",
        "denominator_params",
        "denominator_window",
        "breakdown_level",
    )

    code = models.SlugField("指标编码", max_length=60, unique=True)
    name = models.CharField("名称", max_length=100)
    unit = models.CharField("单位", max_length=16, blank=True, default="")
    scene = models.CharField("场景", max_length=16, choices=SCENES, default="overview")
    description = models.CharField("口径说明", max_length=300, blank=True, default="")
    source = models.CharField("数据来源", max_length=60)
    params = models.JSONField("筛选条件", default=dict, blank=True)
    window = models.CharField("时间窗口", max_length=20, choices=WINDOWS, default="day")
    aggregation = models.CharField("汇总方式", max_length=10, choices=AGGREGATIONS, default=COUNT)
    measure = models.CharField("度量", max_length=40, blank=True, default="")
    denominator_source = models.CharField("分母来源", max_length=60, blank=True, default="")
    denominator_params = models.JSONField("分母筛选条件", default=dict, blank=True)
    denominator_window = models.CharField(
        "分母时间窗口", max_length=20, choices=WINDOWS, blank=True, default=""
    )
    breakdown_level = models.CharField("最细分解层级", max_length=16, choices=LEVELS, default="grid")
    threshold_green = models.FloatField("绿灯线", null=True, blank=True)
    threshold_red = models.FloatField("红灯线", null=True, blank=True)
    target = models.FloatField("目标值", null=True, blank=True)
    higher_is_better = models.BooleanField("越高越好", default=True)
    order = models.PositiveIntegerField("排序", default=0)
    enabled = models.BooleanField("启用", default=True)
    # Set when the indicator is new or its definition changed: the rollups on record (if any) were
    # computed with the old one. `rollup.rebuild_stale()` recomputes them over the rolled-up days
    # and clears it; until then reads compute from raw rows.
    stale_since = models.DateTimeField("待重算", null=True, blank=True, editable=False)

    class Meta:
        ordering = ["scene", "order", "code"]
        verbose_name = "指标"
        verbose_name_plural = "指标"

    def __str__(self) -> str:
        return f"{self.code} {self.name}"

    def clean(self) -> None:
        """Forms, the admin and imports refuse a definition the sources cannot compute."""
        from django.core.exceptions import ValidationError

        from zhizhi.cockpit.sources import check_indicator
        from zhizhi.problems import Invalid

        try:
            check_indicator(self)
        except Invalid as exc:
            raise ValidationError(exc.by_field()) from exc

    def definition(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.DEFINITION_FIELDS}

    def save(self, *args: Any, **kwargs: Any) -> None:
        from zhizhi import clock

        loaded = getattr(self, "_loaded", None)
        changed = loaded is not None and any(
            loaded.get(name) != getattr(self, name) for name in self.DEFINITION_FIELDS
        )
        if (self._state.adding or changed) and self.stale_since is None:
            self.stale_since = clock.now()
        super().save(*args, **kwargs)
        from zhizhi import live

        # Open screens re-read their board: a new indicator or a changed one shows without a reload.
        live.publish("cockpit", {"kind": "indicator", "code": self.code, "name": self.name})


class IndicatorValue(models.Model):
    """One indicator's value for one region on one day (the end of that day).

    `numerator`/`denominator` keep the parts of a ratio or average so that a region's value can be
    checked against its children's; for counts and sums the numerator is the value itself."""

    indicator = models.ForeignKey(Indicator, on_delete=models.CASCADE, related_name="values")
    region = models.ForeignKey("geo.Region", on_delete=models.CASCADE, related_name="+")
    day = models.DateField("日期")
    value = models.FloatField("值", null=True, blank=True)
    numerator = models.FloatField(null=True, blank=True)
    denominator = models.FloatField(null=True, blank=True)

    class Meta:
        verbose_name = "指标日值"
        verbose_name_plural = "指标日值"
        constraints = [
            models.UniqueConstraint(fields=["indicator", "region", "day"], name="cockpit_value_once_per_day")
        ]

    def __str__(self) -> str:
        return f"{self.indicator_id}@{self.region_id} {self.day}: {self.value}"


class RollupRun(models.Model):
    """A day that was rolled up: what the catch-up task reads to find missed days."""

    day = models.DateField("日期", unique=True)
    finished_at = models.DateTimeField("完成时间")
    indicators = models.PositiveIntegerField("指标数", default=0)
    rows = models.PositiveIntegerField("写入行数", default=0)
    seconds = models.FloatField("耗时(秒)", default=0)

    class Meta:
        ordering = ["-day"]
        verbose_name = "汇总批次"
        verbose_name_plural = "汇总批次"

    def __str__(self) -> str:
        return f"{self.day} ({self.rows})"
