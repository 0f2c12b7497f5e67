"""Display labels for the case pages: SLA stages and time units in Chinese (English via the catalogue)."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.translation import gettext as _

from zhizhi.cases.models import TIME_UNITS

register = template.Library()

STAGES = {"sign": "签收", "onsite": "到场", "reinforce": "增援", "followup": "跟进", "handle": "办理"}


@register.filter
def stage_label(stage: Any) -> str:
    """The current SLA stage (sign, onsite …) as 签收, 到场 …"""
    return _(STAGES.get(str(stage), str(stage or "")))


@register.filter
def time_unit_label(unit: Any) -> str:
    return _(dict(TIME_UNITS).get(str(unit), str(unit or "")))


@register.filter
def amount(value: Any) -> str:
    """1.0 → 1, 1.5 → 1.5 (an extension length)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value or "")
    return f"{number:g}"
