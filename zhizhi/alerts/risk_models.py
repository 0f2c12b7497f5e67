"""The risk-area list (风险区名单) and residents' travel records (返回报备), matched by `alerts.risk`."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from zhizhi import clock
from zhizhi.models import ZhizhiModel

__all__ = ["RiskArea", "TravelRecord"]


class RiskArea(ZhizhiModel):
    """一条风险区: a region at a level for a period, as published by `source`."""

    HIGH, MEDIUM, LOW = "high", "medium", "low"
    LEVELS = [(HIGH, "高"), (MEDIUM, "中"), (LOW, "低")]

    region_name = models.CharField("地区名称", max_length=100)
    region_code = models.CharField("行政区划代码", max_length=12, blank=True, default="")
    level = models.CharField("风险等级", max_length=8, choices=LEVELS)
    valid_from = models.DateField("生效日期")
    valid_to = models.DateField("截止日期", null=True, blank=True, help_text="空 = 至今有效")
    source = models.CharField("来源", max_length=100, blank=True, default="")

    class Meta:
        verbose_name = "风险区"
        verbose_name_plural = "风险区名单"
        ordering = ["-valid_from", "region_name"]
        constraints = [
            models.UniqueConstraint(fields=["region_name", "valid_from"], name="alerts_riskarea_name_from"),
        ]

    def __str__(self) -> str:
        return f"{self.region_name}（{self.get_level_display()}）"

    def in_force(self, day=None) -> bool:  # type: ignore[no-untyped-def]
        day = day or clock.today()
        return self.valid_from <= day and (self.valid_to is None or self.valid_to >= day)

    @staticmethod
    def in_force_q(day) -> Q:  # type: ignore[no-untyped-def]
        return Q(valid_from__lte=day) & (Q(valid_to__isnull=True) | Q(valid_to__gte=day))


class TravelRecord(ZhizhiModel):
    """A resident came back to the street from `origin` on `arrived_on` (an empty origin means the
    person's registered origin, `Person.origin`)."""

    SOURCES = [
        ("self_report", "居民报备"),
        ("grid_visit", "网格员核查"),
        ("import", "导入"),
        ("data_push", "上级推送"),
    ]

    person = models.ForeignKey(
        "people.Person", verbose_name="居民", on_delete=models.CASCADE, related_name="travel_records"
    )
    origin = models.CharField("来源地", max_length=100, blank=True, default="")
    origin_code = models.CharField("来源地区划代码", max_length=12, blank=True, default="")
    arrived_on = models.DateField("返回日期")
    source = models.CharField("信息来源", max_length=16, choices=SOURCES, default="self_report")
    note = models.CharField("备注", max_length=200, blank=True, default="")

    class Meta:
        verbose_name = "返回报备"
        verbose_name_plural = "返回报备"
        ordering = ["-arrived_on", "-id"]
        indexes = [models.Index(fields=["arrived_on"], name="alerts_travel_arrived")]

    def __str__(self) -> str:
        return f"{self.person_id} ← {self.origin or '来源地'} {self.arrived_on}"

    def compute_area_path(self) -> str:
        return self.person.area_path

    @property
    def where_from(self) -> str:
        return self.origin or self.person.origin
