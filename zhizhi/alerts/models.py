"""Sensing devices and their readings: the raw material the alert rules work on."""

from __future__ import annotations

from django.db import models

from zhizhi import clock
from zhizhi.models import ZhizhiModel


class Device(ZhizhiModel):
    """一个感知设备 (water level, smoke, door …), placed in a grid and optionally watching a resident."""

    KINDS = [
        ("water_level", "水位"),
        ("smoke", "烟感"),
        ("door", "门磁"),
        ("fume", "油烟/PM"),
        ("noise", "噪声"),
        ("gas", "燃气"),
        ("power", "用电"),
    ]

    code = models.CharField("设备编码", max_length=40, unique=True)
    name = models.CharField("名称", max_length=100)
    kind = models.CharField("类型", max_length=16, choices=KINDS)
    lng = models.FloatField("经度", null=True, blank=True)
    lat = models.FloatField("纬度", null=True, blank=True)
    grid = models.ForeignKey(
        "geo.Region", null=True, blank=True, on_delete=models.PROTECT, related_name="devices"
    )
    building = models.ForeignKey(
        "geo.Building", null=True, blank=True, on_delete=models.PROTECT, related_name="devices"
    )
    house = models.ForeignKey(
        "people.House", null=True, blank=True, on_delete=models.SET_NULL, related_name="devices"
    )
    watched_person = models.ForeignKey(
        "people.Person", null=True, blank=True, on_delete=models.SET_NULL, related_name="watching_devices"
    )
    # Null rather than "" while no token is issued: many token-less devices must not collide on unique.
    token_hash = models.CharField(max_length=64, unique=True, null=True, blank=True, editable=False)
    token_prefix = models.CharField(max_length=12, blank=True, default="", editable=False)
    unit = models.CharField("单位", max_length=16, blank=True, default="")
    enabled = models.BooleanField("启用", default=True)
    last_value = models.FloatField("最新读数", null=True, blank=True, editable=False)
    last_seen_at = models.DateTimeField("最近上报", null=True, blank=True, editable=False, db_index=True)

    # The token hash changes when a token is issued; it is a secret and stays out of the change log.
    CHANGELOG_SKIP_SUFFIXES = ("_enc", "_hash")

    class Meta:
        verbose_name = "感知设备"
        verbose_name_plural = "感知设备"
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"

    def compute_area_path(self) -> str:
        if self.grid is not None:
            return self.grid.path
        if self.building is not None:
            return self.building.grid.path
        return self.area_path


class Reading(models.Model):
    """One measurement. Compact on purpose (many rows, no change log); (device, at) identifies it."""

    OK, REJECTED = "ok", "rejected"
    STATUSES = [(OK, "有效"), (REJECTED, "已拒收")]

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="readings")
    at = models.DateTimeField("测量时间")
    value = models.FloatField("读数", null=True, blank=True)
    status = models.CharField("状态", max_length=10, choices=STATUSES, default=OK)
    reason = models.CharField("拒收原因", max_length=100, blank=True, default="")
    received_at = models.DateTimeField("接收时间", default=clock.now)

    class Meta:
        verbose_name = "读数"
        verbose_name_plural = "读数"
        constraints = [models.UniqueConstraint(fields=["device", "at"], name="alerts_reading_device_at")]
        indexes = [
            models.Index(fields=["device", "-at"], name="alerts_reading_device_at_desc"),
            # The per-device rate limit counts the last minute's rows by arrival time.
            models.Index(fields=["device", "received_at"], name="alerts_reading_device_recv"),
        ]

    def __str__(self) -> str:
        return f"{self.device_id}@{self.at:%Y-%m-%d %H:%M:%S} = {self.value}"


class IngestCounter(models.Model):
    """Readings refused before a device is known (unknown device, bad token): counted, never stored."""

    day = models.DateField()
    reason = models.CharField(max_length=40)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = "拒收计数"
        verbose_name_plural = "拒收计数"
        constraints = [
            models.UniqueConstraint(fields=["day", "reason"], name="alerts_ingestcounter_day_reason")
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.reason}: {self.count}"


from zhizhi.alerts.care_models import *  # noqa: E402, F403
from zhizhi.alerts.enterprise_models import *  # noqa: E402, F403
from zhizhi.alerts.risk_models import *  # noqa: E402, F403
from zhizhi.alerts.rule_models import *  # noqa: E402, F403
