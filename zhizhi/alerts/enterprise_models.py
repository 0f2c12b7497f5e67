"""惠企政策 (support policies): the criteria the 八必访 policy-match trigger matches registry data against.

A policy is street-wide reference data (issued by a district bureau or the street), so it carries no
area path: every member of staff may read it; the matching alarms it causes are area-scoped as usual.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import models
from django.db.models import Q, QuerySet

from zhizhi import clock

__all__ = ["SupportPolicy"]


class SupportPolicyQuerySet(QuerySet):
    def valid_on(self, day: dt.date) -> SupportPolicyQuerySet:
        """Policies in force on `day` (valid_from ≤ day ≤ valid_until, an open end never expires)."""
        return self.filter(active=True, valid_from__lte=day).filter(
            Q(valid_until__isnull=True) | Q(valid_until__gte=day)
        )


class SupportPolicy(models.Model):
    """一项惠企政策 and who qualifies: the `criteria` keys are in CRITERIA (docs/enterprise-triggers.md)."""

    # key → (zh, en, kind): kind "industries" is a list of Enterprise.INDUSTRIES codes, "number" a number.
    CRITERIA: dict[str, tuple[str, str, str]] = {
        "industries": ("行业", "industries", "industries"),
        "min_revenue_growth_pct": ("营收同比增长不低于(%)", "revenue growth at least (%)", "number"),
        "min_registered_capital": ("注册资本不低于(万元)", "registered capital at least (10k CNY)", "number"),
        "max_registered_capital": ("注册资本不高于(万元)", "registered capital at most (10k CNY)", "number"),
        "min_employees": ("从业人数不少于", "employees at least", "number"),
        "max_employees": ("从业人数不多于", "employees at most", "number"),
    }

    name = models.CharField("政策名称", max_length=200, unique=True)
    issued_by = models.CharField("发文单位", max_length=100, blank=True, default="")
    summary = models.TextField("政策要点", blank=True, default="")
    criteria = models.JSONField("适用条件", default=dict, blank=True)
    valid_from = models.DateField("生效日期", default=clock.today)
    valid_until = models.DateField("截止日期", null=True, blank=True)
    active = models.BooleanField("启用", default=True)
    created_at = models.DateTimeField(default=clock.now, editable=False)

    objects = SupportPolicyQuerySet.as_manager()

    class Meta:
        verbose_name = "惠企政策"
        verbose_name_plural = "惠企政策"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """Forms and the admin refuse criteria that do not fit (bilingual problems)."""
        from django.core.exceptions import ValidationError

        from zhizhi.alerts.enterprise_triggers import check_criteria
        from zhizhi.problems import Invalid

        try:
            check_criteria(self.criteria)
        except Invalid as exc:
            raise ValidationError({"criteria": [p.message for p in exc.problems]}) from exc
        if self.valid_until is not None and self.valid_from and self.valid_until < self.valid_from:
            raise ValidationError(
                {"valid_until": "截止日期早于生效日期 / The end date is before the start date"}
            )

    def criteria_text(self) -> list[tuple[str, Any]]:
        return [(self.CRITERIA[k][0], v) for k, v in (self.criteria or {}).items() if k in self.CRITERIA]
