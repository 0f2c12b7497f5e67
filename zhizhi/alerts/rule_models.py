"""Alert rules as data, and the alarms they raise (see docs/alert-rules.md).

At most one *active* alarm per (source, rule): a partial unique constraint is the backstop behind the
row locks of the evaluator, so a worker restarted mid-evaluation updates the alarm instead of doubling it.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q

from zhizhi import clock
from zhizhi.models import ZhizhiModel, ZhizhiQuerySet

__all__ = ["Alarm", "AlarmEvent", "AlarmQuerySet", "AlertRule", "DeviceRuleOverride"]


class AlertRule(ZhizhiModel):
    """一条告警规则: what to watch on which kind of device, its severity ladder and clear condition."""

    THRESHOLD, RATE, MISSING, INACTIVITY = "threshold", "rate_of_change", "missing_data", "inactivity"
    # Rules over registry data rather than device readings: enterprise triggers (八必访) compare
    # registry rows over time; a list match looks residents' recent origin up on the risk-area list.
    REGISTRY, LIST_MATCH = "registry", "list_match"
    KINDS = [
        (THRESHOLD, "阈值持续"),
        (RATE, "变化速率"),
        (MISSING, "数据缺失"),
        (INACTIVITY, "无活动"),
        (REGISTRY, "登记数据比对"),
        (LIST_MATCH, "名单比对"),
    ]
    DEVICE_KINDS = (THRESHOLD, RATE, MISSING, INACTIVITY)

    code = models.CharField("规则编码", max_length=40, unique=True)
    name = models.CharField("名称", max_length=100)
    kind = models.CharField("类型", max_length=16, choices=KINDS)
    device_kind = models.CharField("设备类型", max_length=16, blank=True, default="")
    params = models.JSONField("参数", default=dict, blank=True)
    category_code = models.CharField("权责清单小类", max_length=20, blank=True, default="")
    creates_case = models.BooleanField("生成案件", default=False)
    enabled = models.BooleanField("启用", default=True)

    class Meta:
        verbose_name = "告警规则"
        verbose_name_plural = "告警规则"
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"

    def clean(self) -> None:
        """Forms and the admin refuse params that do not fit the kind (bilingual problems)."""
        from django.core.exceptions import ValidationError

        from zhizhi.alerts.rules import check_params
        from zhizhi.problems import Invalid

        try:
            check_params(self.kind, self.params)
        except Invalid as exc:
            raise ValidationError({"params": [p.message for p in exc.problems]}) from exc


class DeviceRuleOverride(models.Model):
    """Per-device parameters (e.g. one elderly resident's own inactivity window), merged over the rule's."""

    device = models.ForeignKey("alerts.Device", on_delete=models.CASCADE, related_name="rule_overrides")
    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="overrides")
    params = models.JSONField("参数", default=dict, blank=True)

    class Meta:
        verbose_name = "设备规则参数"
        verbose_name_plural = "设备规则参数"
        constraints = [
            models.UniqueConstraint(fields=["device", "rule"], name="alerts_override_device_rule"),
        ]

    def __str__(self) -> str:
        return f"{self.device_id}/{self.rule_id}"


class AlarmQuerySet(ZhizhiQuerySet):
    def visible_to(self, user: Any, action: str = "view") -> AlarmQuerySet:
        """Alarms propagate up the region tree: a user sees every alarm under the regions they serve
        (a grid worker their grid, a community its grids, the street everything)."""
        from zhizhi.permissions import scope_paths

        if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
            return self.none()
        if user.is_superuser:
            return self
        q = Q(pk__in=[])
        for path in scope_paths(user):
            if path:
                q |= Q(area_path__startswith=path)
        return self.filter(q)


class Alarm(models.Model):
    """一条告警: one per (source, rule) while active; repeats update it instead of making noise."""

    ACTIVE, CLEARED = "active", "cleared"
    STATUSES = [(ACTIVE, "活动"), (CLEARED, "已恢复")]
    SEVERITIES = [("info", "提示"), ("minor", "一般"), ("major", "重要"), ("critical", "紧急")]

    rule = models.ForeignKey(AlertRule, on_delete=models.PROTECT, related_name="alarms")
    device = models.ForeignKey(
        "alerts.Device", null=True, blank=True, on_delete=models.SET_NULL, related_name="alarms"
    )
    # The subject when the source is not (only) a device: the enterprise of a 八必访 trigger, the
    # watched or listed resident.
    enterprise = models.ForeignKey(
        "enterprises.Enterprise", null=True, blank=True, on_delete=models.SET_NULL, related_name="alarms"
    )
    person = models.ForeignKey(
        "people.Person", null=True, blank=True, on_delete=models.SET_NULL, related_name="alarms"
    )
    # The numbers behind the alarm (revenue this month and a year ago, the matched list entry …).
    evidence = models.JSONField("依据", default=dict, blank=True)
    title = models.CharField("摘要", max_length=200, blank=True, default="")
    source_key = models.CharField("告警源", max_length=80)
    severity = models.CharField("级别", max_length=10, choices=SEVERITIES)
    status = models.CharField("状态", max_length=10, choices=STATUSES, default=ACTIVE)
    # Whether the raising condition held at the last evaluation: a return after a lapse is a repeat.
    holding = models.BooleanField(default=True, editable=False)
    value = models.FloatField("触发值", null=True, blank=True)
    acknowledged_at = models.DateTimeField("确认时间", null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    cleared_at = models.DateTimeField("恢复时间", null=True, blank=True)
    first_seen_at = models.DateTimeField("首次发生", default=clock.now)
    last_seen_at = models.DateTimeField("最近发生", default=clock.now)
    count = models.PositiveIntegerField("次数", default=1)
    case = models.ForeignKey(
        "cases.Case", null=True, blank=True, on_delete=models.SET_NULL, related_name="alarms"
    )
    area_path = models.CharField(max_length=160, blank=True, default="", db_index=True, editable=False)

    objects = AlarmQuerySet.as_manager()

    class Meta:
        verbose_name = "告警"
        verbose_name_plural = "告警"
        ordering = ["-last_seen_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["source_key", "rule"],
                condition=Q(status="active"),
                name="alerts_alarm_one_active_per_source_rule",
            ),
        ]
        indexes = [models.Index(fields=["status", "area_path"], name="alerts_alarm_status_area")]

    def __str__(self) -> str:
        return f"{self.source_key} {self.rule_id} {self.severity} {self.status}"


class AlarmEvent(models.Model):
    """The alarm's timeline: append-only, one row per change."""

    KINDS = [
        ("raised", "产生"),
        ("escalated", "升级"),
        ("deescalated", "降级"),
        ("repeated", "重复"),
        ("acknowledged", "确认"),
        ("cleared", "恢复"),
        ("case_created", "生成案件"),
        ("case_failed", "生成案件失败"),
    ]

    alarm = models.ForeignKey(Alarm, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(default=clock.now)
    kind = models.CharField(max_length=16, choices=KINDS)
    severity = models.CharField(max_length=10, blank=True, default="")
    value = models.FloatField(null=True, blank=True)
    note = models.CharField(max_length=300, blank=True, default="")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = "告警时间线"
        verbose_name_plural = "告警时间线"
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.alarm_id} {self.kind} {self.at:%Y-%m-%d %H:%M:%S}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise ValueError("alarm events are append-only")
        super().save(*args, **kwargs)
