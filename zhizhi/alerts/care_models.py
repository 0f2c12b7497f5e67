"""Care watches: one elderly resident's own inactivity window, quiet hours and responsible worker.

The inactivity alarm's source is the *person* (`person:<id>`), however many door sensors watch them, so
the per-person settings live on the person rather than on one of their devices (see
docs/care-monitoring.md).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from zhizhi.models import ZhizhiModel

__all__ = ["CareWatch"]


class CareWatch(ZhizhiModel):
    """关爱监测设置: overrides the inactivity rule for one person (empty fields inherit the rule)."""

    person = models.OneToOneField(
        "people.Person", verbose_name="居民", on_delete=models.CASCADE, related_name="care_watch"
    )
    silent_seconds = models.PositiveIntegerField(
        "无活动时长（秒）", null=True, blank=True, help_text="空 = 沿用规则（默认 24 小时）"
    )
    # ["22:00", "07:00"]; null inherits the rule's quiet hours, [] means none for this person.
    quiet_hours = models.JSONField("静默时段", null=True, blank=True)
    responsible = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name="责任人",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="care_watches",
    )
    note = models.CharField("备注", max_length=200, blank=True, default="")

    class Meta:
        verbose_name = "关爱监测设置"
        verbose_name_plural = "关爱监测设置"
        ordering = ["person"]

    def __str__(self) -> str:
        return f"{self.person_id} 关爱监测"

    def compute_area_path(self) -> str:
        return self.person.area_path

    def params(self) -> dict:
        """The inactivity params this watch lays over the rule's."""
        out: dict = {}
        if self.silent_seconds:
            out["silent_seconds"] = self.silent_seconds
        if self.quiet_hours is not None:
            out["quiet_hours"] = list(self.quiet_hours)
        return out
