"""Emergency mode: an incident (突发事件) with its area, the households to evacuate in it, the help
requests from the field and the incident's timeline. Instructions to staff are the platform's
broadcasts (zhizhi/notify/broadcast.py) tagged with the incident (`incident_ref`).

An incident's `area_path` is its street (the command centre's view); a task's `area_path` is the
grid of its house, so a worker's page and the live board filter them like any other row.
Tasks are created in bulk (hundreds to thousands at once) and so are plain models without the
per-row change log; their history is the `IncidentEvent` timeline.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from zhizhi import clock
from zhizhi.models import ZhizhiModel, ZhizhiQuerySet


class Incident(ZhizhiModel):
    """突发事件: what happened, where (the evacuation area), when it was declared."""

    KINDS = [
        ("collapse", "塌陷"),
        ("fire", "火灾"),
        ("flood", "内涝"),
        ("gas_leak", "燃气泄漏"),
        ("other", "其他"),
    ]
    AREA_MODES = [("polygon", "绘制范围"), ("radius", "圆形范围"), ("buildings", "选择楼幢")]
    ACTIVE, CLOSED = "active", "closed"
    STATUSES = [(ACTIVE, "处置中"), (CLOSED, "已结束")]

    number = models.CharField("事件编号", max_length=24, unique=True)
    kind = models.CharField("类型", max_length=16, choices=KINDS)
    title = models.CharField("标题", max_length=100)
    occurred_at = models.DateTimeField("发生时间")
    declared_at = models.DateTimeField("启动时间", default=clock.now, db_index=True)
    declared_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name="启动人", on_delete=models.PROTECT, related_name="+"
    )
    location = models.CharField("地点", max_length=200, blank=True, default="")
    lng = models.FloatField("经度", null=True, blank=True)
    lat = models.FloatField("纬度", null=True, blank=True)
    note = models.TextField("情况说明", blank=True, default="")
    street = models.ForeignKey(
        "geo.Region", verbose_name="街道", on_delete=models.PROTECT, related_name="incidents"
    )
    area_mode = models.CharField("范围方式", max_length=12, choices=AREA_MODES)
    radius_m = models.PositiveIntegerField("半径(米)", null=True, blank=True)
    # The evacuation area as drawn, or the circle / the hull of the picked buildings (GeoJSON).
    area = models.JSONField("疏散范围(GeoJSON)")
    status = models.CharField("状态", max_length=10, choices=STATUSES, default=ACTIVE, db_index=True)
    closed_at = models.DateTimeField("结束时间", null=True, blank=True)
    request_id = models.CharField(max_length=64, unique=True, null=True, blank=True, editable=False)
    # Figures fixed at declaration (the board's denominators): what the area held at that moment.
    buildings_total = models.PositiveIntegerField("楼幢数", default=0)
    houses_total = models.PositiveIntegerField("房屋数", default=0)
    households_total = models.PositiveIntegerField("住户数", default=0)
    residents_total = models.PositiveIntegerField("居民数", default=0)
    vulnerable_total = models.PositiveIntegerField("重点人群数", default=0)

    class Meta:
        ordering = ["-declared_at", "-id"]
        verbose_name = "突发事件"
        verbose_name_plural = "突发事件"

    def __str__(self) -> str:
        return f"{self.number} {self.title}"

    def compute_area_path(self) -> str:
        return self.street.path

    @property
    def purpose(self) -> str:
        """The stated purpose of every reveal made for this incident (the reveal log shows it)."""
        return f"emergency {self.number}"


class IncidentBuilding(models.Model):
    """A building inside the evacuation area, with what it held at declaration."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="affected")
    building = models.ForeignKey("geo.Building", on_delete=models.PROTECT, related_name="+")
    households = models.PositiveIntegerField(default=0)
    residents = models.PositiveIntegerField(default=0)
    vulnerable = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["incident", "building"], name="emergency_building_once")
        ]

    def __str__(self) -> str:
        return f"{self.incident_id}:{self.building_id}"


class EvacuationTask(models.Model):
    """One household (a house with current residents) to evacuate, assigned to one worker."""

    PENDING = "pending"
    OUTCOMES = [
        ("evacuated", "已撤离"),
        ("not_home", "无人在家"),
        ("refused", "拒绝撤离"),
        ("needs_help", "需要协助"),
    ]
    STATUSES = [(PENDING, "待撤离"), *OUTCOMES]
    # Outcomes that close a household on the board; 需要协助 stays open until someone helps.
    DONE = ("evacuated", "not_home", "refused")

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="tasks")
    house = models.ForeignKey("people.House", on_delete=models.PROTECT, related_name="+")
    building = models.ForeignKey("geo.Building", on_delete=models.PROTECT, related_name="+")
    grid = models.ForeignKey("geo.Region", on_delete=models.PROTECT, related_name="+")
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="evacuation_tasks",
    )
    # Position in the evacuation order: households with people of special care come first.
    seq = models.PositiveIntegerField(default=0)
    priority = models.PositiveSmallIntegerField("优先级", default=0)
    residents = models.PositiveSmallIntegerField("居民数", default=0)
    vulnerable = models.PositiveSmallIntegerField("重点人群数", default=0)
    status = models.CharField("状态", max_length=12, choices=STATUSES, default=PENDING)
    assigned_at = models.DateTimeField("分派时间", null=True, blank=True)
    marked_at = models.DateTimeField("标记时间", null=True, blank=True)
    marked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = models.CharField("备注", max_length=200, blank=True, default="")
    area_path = models.CharField(max_length=160, blank=True, default="", db_index=True)

    objects = ZhizhiQuerySet.as_manager()

    class Meta:
        ordering = ["incident", "seq"]
        verbose_name = "撤离任务"
        verbose_name_plural = "撤离任务"
        constraints = [models.UniqueConstraint(fields=["incident", "house"], name="emergency_task_once")]
        indexes = [
            models.Index(fields=["incident", "status"], name="emergency_task_status"),
            models.Index(fields=["assignee", "status"], name="emergency_task_assignee"),
        ]

    def __str__(self) -> str:
        return f"{self.incident_id}:{self.house_id} {self.status}"

    @property
    def done(self) -> bool:
        return self.status in self.DONE


class IncidentEvent(models.Model):
    """The incident's append-only timeline (the after-action report reads it)."""

    KINDS = [
        ("declared", "启动应急"),
        ("assigned", "分派撤离任务"),
        ("broadcast", "发布指令"),
        ("marked", "标记住户"),
        ("help", "请求协助"),
        ("help_resolved", "协助完成"),
        ("reveal", "查看联系电话"),
        ("closed", "结束应急"),
    ]

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(default=clock.now, db_index=True)
    kind = models.CharField(max_length=16, choices=KINDS)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    task = models.ForeignKey(
        EvacuationTask, null=True, blank=True, on_delete=models.CASCADE, related_name="events"
    )
    text = models.CharField(max_length=300, blank=True, default="")
    data = models.JSONField(default=dict, blank=True)
    request_id = models.CharField(max_length=64, unique=True, null=True, blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.at:%H:%M:%S} {self.kind} {self.text}"


class HelpRequest(models.Model):
    """需要协助: a worker on site asks the command centre for help with one household."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="help_requests")
    task = models.ForeignKey(EvacuationTask, on_delete=models.CASCADE, related_name="help_requests")
    raised_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    raised_at = models.DateTimeField(default=clock.now)
    note = models.CharField("说明", max_length=200, blank=True, default="")
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    area_path = models.CharField(max_length=160, blank=True, default="")

    class Meta:
        ordering = ["raised_at", "id"]

    def __str__(self) -> str:
        return f"{self.incident_id}:{self.task_id} {self.raised_at:%H:%M}"
