"""Deadlines of a case and the minute sweep that colours and escalates them.

A category has up to five limits, each `[amount, unit]` counted from the moment the case was
dispatched (or sent back for rework), in working time (`zhizhi.cases.worktime`):

    sign       签收    done when signed_at is set
    onsite     到场    done when onsite_at is set        (urgent kinds)
    reinforce  增援    done when every assisting unit arrived (reinforced_at; only for 联办)
    followup   跟进    done when a follow-up is recorded (followed_up_at)
    handle     办理    done when finished_at is set; approved extensions extend it

The Yingfeng targets "30 s response, 9 min on site, 15 min reinforcement, 24 h follow-up" are one
category: sign [0.5, calendar_minutes], onsite [9, …], reinforce [15, …], followup [1440, …].

Only the current (first unfinished) stage is kept on the case: `stage`, `stage_warn_at` (80 % of
the stage's allowed time), `stage_due_at`. The sweep is three indexed range queries over those
columns plus `escalate_at`; there is never one timer per case, so a crash loses no deadline.
Deferral (缓办) clears the stage while paused; on resume every deadline moves by the paused time
measured in the limit's own unit: calendar limits by the calendar time, working-time limits by the
working minutes inside the pause (a pause over a weekend moves them by nothing).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.db import transaction

from zhizhi import clock
from zhizhi.cases import worktime
from zhizhi.cases.models import SWEPT, Case
from zhizhi.cases.transitions import OPEN

assert set(SWEPT) == set(OPEN), "the sweep's partial indexes must cover the open statuses"

STAGES = ("sign", "onsite", "reinforce", "followup", "handle")
DONE_COLUMN = {
    "sign": "signed_at",
    "onsite": "onsite_at",
    "reinforce": "reinforced_at",
    "followup": "followed_up_at",
    "handle": "finished_at",
}
WARN_FRACTION = 0.8
MAX_ESCALATION = 3


def grace() -> dt.timedelta:
    """Time between turning red and each automatic escalation (ZHIZHI_ESCALATION_GRACE_MINUTES)."""
    return dt.timedelta(minutes=float(getattr(settings, "ZHIZHI_ESCALATION_GRACE_MINUTES", 30)))


def limits_for(category: Any) -> dict[str, list[Any]]:
    """The category's stage limits, for the case's snapshot taken at dispatch."""
    if category is None:
        return {}
    return {stage: raw for stage in STAGES if (raw := getattr(category, f"{stage}_limit", None))}


def limit_of(case: Case, stage: str) -> tuple[float, str] | None:
    if case.limits:
        raw = case.limits.get(stage)
    elif case.category_id is not None:
        raw = getattr(case.category, f"{stage}_limit", None)
    else:
        return None
    if not raw:
        return None
    amount, unit = raw
    if unit not in worktime.UNITS:
        return None
    return float(amount), str(unit)


def _start(case: Case) -> dt.datetime | None:
    return case.sla_start_at


def _deadline(case: Case, start: dt.datetime, amount: float, unit: str) -> dt.datetime:
    """`amount` `unit`s after `start`, pushed back by the case's pauses measured in that unit."""
    if unit == "calendar_minutes":
        return worktime.add(start, amount, unit) + dt.timedelta(seconds=case.paused_seconds)
    due = worktime.add(start, amount, unit)
    if case.paused_work_minutes:
        due = worktime.add(due, case.paused_work_minutes / 60, "work_hours")
    return due


def handle_due(case: Case) -> dt.datetime | None:
    """The handling deadline including approved extensions (the KPI 按期 deadline)."""
    start, lim = _start(case), limit_of(case, "handle")
    if start is None or lim is None:
        return None
    due = _deadline(case, start, lim[0], lim[1])
    for amount, unit in case.extensions or []:
        due = worktime.add(due, float(amount), str(unit))
    return due


def _stage_applies(case: Case, stage: str) -> bool:
    if stage == "reinforce":
        return case.pk is not None and case.tasks.filter(role="assist").exists()
    return True


def current_stage(case: Case) -> tuple[str, dt.datetime, dt.datetime] | None:
    """(stage, warn_at, due_at) of the first unfinished stage, or None when nothing is timed."""
    start = _start(case)
    if start is None or case.status not in OPEN:
        return None
    for stage in STAGES:
        lim = limit_of(case, stage)
        if lim is None or getattr(case, DONE_COLUMN[stage]) is not None or not _stage_applies(case, stage):
            continue
        if stage == "handle":
            due = handle_due(case)
            assert due is not None
            if case.extensions:
                # Extended: warn at 80 % of the whole (extended) span, in calendar terms.
                warn = due - (due - start) * (1 - WARN_FRACTION)
            else:
                warn = _deadline(case, start, lim[0] * WARN_FRACTION, lim[1])
        else:
            due = _deadline(case, start, lim[0], lim[1])
            warn = _deadline(case, start, lim[0] * WARN_FRACTION, lim[1])
        return stage, warn, due
    return None


def level_at(warn: dt.datetime | None, due: dt.datetime | None, now: dt.datetime) -> str:
    if due is not None and now >= due:
        return "red"
    if warn is not None and now >= warn:
        return "yellow"
    return "green"


def refresh(case: Case) -> None:
    """Recompute the current stage columns after an action (in memory; the caller saves).

    The colour is reset to green only when the stage or its deadline moved: raising it to
    yellow/red is the sweep's job, because the sweep is what notifies people."""
    case.due_at = handle_due(case)
    found = current_stage(case)
    if found is None:
        case.stage, case.stage_warn_at, case.stage_due_at = "", None, None
        case.sla_level, case.escalate_at = "green", None
        return
    stage, warn, due = found
    if stage != case.stage or due != case.stage_due_at:
        case.sla_level, case.escalate_at = "green", None
    case.stage, case.stage_warn_at, case.stage_due_at = stage, warn, due


def sweep(limit: int = 5000) -> dict[str, int]:
    """Colour what crossed 80 % (yellow) or its deadline (red) and escalate what stayed red too long."""
    from zhizhi.cases import flows, services

    now = clock.now()
    counts = {"yellow": 0, "red": 0, "escalated": 0}
    yellow_ids = list(
        Case.objects.filter(sla_level="green", status__in=OPEN, stage_warn_at__lte=now, stage_due_at__gt=now)
        .order_by("stage_warn_at")
        .values_list("pk", flat=True)[:limit]
    )
    red_ids = list(
        Case.objects.filter(status__in=OPEN, stage_due_at__lte=now, sla_level__in=("green", "yellow"))
        .order_by("stage_due_at")
        .values_list("pk", flat=True)[:limit]
    )
    for pk in yellow_ids:
        if _mark(pk, "yellow", now, flows.sla_warned):
            counts["yellow"] += 1
    for pk in red_ids:
        if _mark(pk, "red", now, flows.sla_overdue):
            counts["red"] += 1
    escalate_ids = list(
        Case.objects.filter(status__in=OPEN, escalate_at__lte=now)
        .order_by("escalate_at")
        .values_list("pk", flat=True)[:limit]
    )
    for pk in escalate_ids:
        if services.auto_escalate(pk):
            counts["escalated"] += 1
    return counts


def _mark(pk: int, level: str, now: dt.datetime, notify: Any) -> bool:
    with transaction.atomic():
        case = Case.objects.select_for_update().filter(pk=pk).first()
        if case is None or case.status not in OPEN or case.stage_due_at is None:
            return False
        if level_at(case.stage_warn_at, case.stage_due_at, now) != level or case.sla_level == level:
            return False
        from zhizhi.cases.services import append_event

        before = case.sla_level
        case.sla_level = level
        if level == "red":
            if case.stage == "handle":
                case.overdue = True
            if case.escalation_level < MAX_ESCALATION:
                case.escalate_at = case.stage_due_at + grace()
        case.save()
        event = append_event(
            case,
            None,
            f"sla_{level}",
            case.status,
            case.status,
            data={"stage": case.stage, "from_level": before, "due_at": case.stage_due_at.isoformat()},
        )
        notify(case, event)
    return True
