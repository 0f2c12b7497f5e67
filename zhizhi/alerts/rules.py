"""Alert rule evaluation (see docs/alert-rules.md).

`evaluate_device` runs after ingestion stored a device's readings; `sweep_silence` runs every minute for
the rules that fire on the *absence* of readings (missing data, inactivity). One device is evaluated in
one transaction holding its row lock, so a restarted worker re-evaluates from the stored readings without
raising anything twice.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from zhizhi import clock
from zhizhi.alerts import alarms
from zhizhi.alerts.models import Device, Reading
from zhizhi.alerts.rule_models import Alarm, AlertRule, DeviceRuleOverride
from zhizhi.problems import Invalid, Problem

Point = tuple[dt.datetime, float]


def rules_for(device: Device, kinds: Iterable[str] | None = None) -> QuerySet[AlertRule]:
    qs = AlertRule.objects.filter(enabled=True).filter(Q(device_kind="") | Q(device_kind=device.kind))
    if kinds is not None:
        qs = qs.filter(kind__in=list(kinds))
    return qs.order_by("code")


def params_for(rule: AlertRule, device: Device) -> dict[str, Any]:
    """The rule's parameters with the device's own override (one person's window …) laid over them."""
    params = dict(rule.params or {})
    override = DeviceRuleOverride.objects.filter(rule=rule, device=device).first()
    if override is not None:
        params.update(override.params or {})
    return params


def _points(device: Device, since: dt.datetime, until: dt.datetime) -> list[Point]:
    """Valid readings in [since, until], ordered by time, plus the last one before `since` (so a run
    that began before the window is seen as long enough)."""
    ok = Reading.objects.filter(device=device, status=Reading.OK, value__isnull=False, at__lte=until)
    rows = list(ok.filter(at__gte=since).order_by("at").values_list("at", "value"))
    before = ok.filter(at__lt=since).order_by("-at").values_list("at", "value").first()
    if before is not None:
        rows.insert(0, before)
    return [(at, float(v)) for at, v in rows if v is not None]


def held_for(points: list[Point], pred: Callable[[float], bool]) -> float | None:
    """Seconds the trailing run of readings satisfying `pred` has lasted (None: the latest does not)."""
    if not points or not pred(points[-1][1]):
        return None
    start = points[-1][0]
    for at, value in reversed(points):
        if not pred(value):
            break
        start = at
    return (points[-1][0] - start).total_seconds()


# --- threshold with duration ---------------------------------------------------------------------
def _ladder(params: dict[str, Any]) -> list[dict[str, Any]]:
    steps = [s for s in params.get("ladder", []) if "above" in s or "below" in s]
    # Highest (most severe) rung first.
    return sorted(steps, key=lambda s: alarms.RANK.get(s.get("severity", "major"), 0), reverse=True)


def _step_pred(step: dict[str, Any]) -> Callable[[float], bool]:
    if "above" in step:
        limit = float(step["above"])
        return lambda v: v > limit
    low = float(step["below"])
    return lambda v: v < low


def _clear_pred(
    params: dict[str, Any], ladder: list[dict[str, Any]]
) -> tuple[Callable[[float], bool], float]:
    clear = params.get("clear") or {}
    if "below" in clear:
        b = float(clear["below"])
        return (lambda v: v < b), float(clear.get("for_seconds", 0))
    if "above" in clear:
        a = float(clear["above"])
        return (lambda v: v > a), float(clear.get("for_seconds", 0))
    # No clear condition: clear as soon as no rung holds.
    preds = [_step_pred(s) for s in ladder]
    return (lambda v: not any(p(v) for p in preds)), float(clear.get("for_seconds", 0))


def _threshold(
    rule: AlertRule,
    device: Device,
    params: dict[str, Any],
    latest: dt.datetime,
    recent: list[Point],
    alarm: Alarm | None,
) -> None:
    """`recent`: the device's points up to `latest`, covering at least this rule's window; `alarm`:
    the rule's active alarm of the device (locked), if any."""
    ladder = _ladder(params)
    if not ladder:
        return
    clear_pred, clear_for = _clear_pred(params, ladder)
    wait = float(params.get("deescalate_after_seconds", 0) or 0)
    window = max([float(s.get("for_seconds", 0)) for s in ladder] + [clear_for, wait]) + 1
    points = _window(recent, latest - dt.timedelta(seconds=window))
    if not points:
        return
    at, value = points[-1]
    target = None
    for step in ladder:
        held = held_for(points, _step_pred(step))
        if held is not None and held >= float(step.get("for_seconds", 0)):
            target = step.get("severity", "major")
            break
    if target is not None:
        target = _step_down_hysteresis(params, ladder, points, alarm, target)
        alarms.report(rule, device, target, at=at, value=value)
        return
    if alarm is None:
        return
    held = held_for(points, clear_pred)
    if held is not None and held >= clear_for:
        alarms.clear(alarm, at=at, value=value)
    else:
        alarms.lapse(alarm, severity=ladder[-1].get("severity", "major"), at=at, value=value)


def _step_down_hysteresis(
    params: dict[str, Any],
    ladder: list[dict[str, Any]],
    points: list[Point],
    alarm: Alarm | None,
    target: str,
) -> str:
    """With `deescalate_after_seconds`, an active alarm steps down to a lower rung only once its own rung
    has stayed off that long, so a level hovering around a rung's limit does not swing the severity up
    and down (raising and clearing have their own hysteresis: the clear condition)."""
    wait = float(params.get("deescalate_after_seconds", 0) or 0)
    if alarm is None or wait <= 0 or alarms.RANK.get(target, 0) >= alarms.RANK.get(alarm.severity, 0):
        return target
    current = next((s for s in ladder if s.get("severity", "major") == alarm.severity), None)
    if current is None:
        return target
    on = _step_pred(current)
    off_for = held_for(points, lambda v: not on(v))
    return target if off_for is not None and off_for >= wait else alarm.severity


# --- rate of change ------------------------------------------------------------------------------
def _rate(
    rule: AlertRule,
    device: Device,
    params: dict[str, Any],
    latest: dt.datetime,
    recent: list[Point],
    alarm: Alarm | None,
) -> None:
    delta = float(params.get("delta", 0))
    within = float(params.get("within_seconds", 600))
    if delta <= 0:
        return
    clear_delta = float(params.get("clear_delta", delta / 2))
    points = [
        p
        for p in _window(recent, latest - dt.timedelta(seconds=within))
        if (latest - p[0]).total_seconds() <= within
    ]
    if not points:
        return
    at, value = points[-1]
    change = max(abs(value - v) for _, v in points)
    if change >= delta:
        alarms.report(rule, device, params.get("severity", "major"), at=at, value=value, note=f"Δ={change:g}")
        return
    if alarm is None:
        return
    if change < clear_delta:
        alarms.clear(alarm, at=at, value=value)
    else:
        alarms.lapse(alarm, at=at, value=value)


# --- parameter checks (rules are edited as data) -----------------------------------------------
def _number(params: dict[str, Any], key: str, field: str, problems: list[Problem], *, sign: str) -> None:
    """`sign`: "positive", "non_negative" or "any"."""
    value = params.get(key)
    number = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    zh = {"positive": "正数", "non_negative": "非负数"}.get(sign, "数值")
    en = {"positive": "a positive number", "non_negative": "a non-negative number"}.get(sign, "a number")
    bad = number is None or (sign == "positive" and number <= 0) or (sign == "non_negative" and number < 0)
    if bad:
        problems.append(
            Problem(
                "param",
                f"参数 {key} 应为{zh}",
                f"Parameter {key} must be {en}",
                field=field,
                value=value,
            )
        )


def check_params(kind: str, params: Any) -> dict[str, Any]:
    """Validate a rule's params for its kind before saving; raises `Invalid` with every problem."""
    problems: list[Problem] = []
    if kind not in dict(AlertRule.KINDS):
        raise Invalid(
            [
                Problem(
                    "kind",
                    "规则类型无效",
                    "Unknown rule kind",
                    field="kind",
                    value=kind,
                    expected_en=", ".join(dict(AlertRule.KINDS)),
                )
            ]
        )
    if not isinstance(params, dict):
        raise Invalid(
            [Problem("params", "参数应为 JSON 对象", "Params must be a JSON object", field="params")]
        )
    if kind == AlertRule.THRESHOLD:
        if "deescalate_after_seconds" in params:
            _number(
                params,
                "deescalate_after_seconds",
                "params.deescalate_after_seconds",
                problems,
                sign="non_negative",
            )
        ladder = params.get("ladder")
        if not isinstance(ladder, list) or not ladder:
            problems.append(
                Problem(
                    "ladder",
                    "请至少填写一级阈值",
                    "The ladder needs at least one rung",
                    field="params.ladder",
                )
            )
        for i, step in enumerate(ladder if isinstance(ladder, list) else []):
            field = f"params.ladder[{i}]"
            if not isinstance(step, dict) or ("above" in step) == ("below" in step):
                problems.append(
                    Problem(
                        "rung",
                        "每级需且仅需 above 或 below 之一",
                        "Each rung needs exactly one of above or below",
                        field=field,
                    )
                )
                continue
            _number(step, "above" if "above" in step else "below", field, problems, sign="any")
            if "for_seconds" in step:
                _number(step, "for_seconds", field, problems, sign="non_negative")
            if step.get("severity", "major") not in alarms.RANK:
                problems.append(
                    Problem(
                        "severity",
                        "级别无效",
                        "Unknown severity",
                        field=field,
                        value=step.get("severity"),
                        expected_en="info, minor, major, critical",
                    )
                )
    elif kind == AlertRule.RATE:
        _number(params, "delta", "params.delta", problems, sign="positive")
        _number(params, "within_seconds", "params.within_seconds", problems, sign="positive")
    elif kind == AlertRule.REGISTRY:  # the 八必访 enterprise triggers (enterprise_triggers.py)
        from zhizhi.alerts.enterprise_triggers import registry_param_problems

        problems += registry_param_problems(params)
    elif "silent_seconds" in params:  # optional: 1800 s by default
        _number(params, "silent_seconds", "params.silent_seconds", problems, sign="positive")
    if kind in (AlertRule.MISSING, AlertRule.INACTIVITY):
        quiet = params.get("quiet_hours")
        if quiet is not None:
            try:
                if len(quiet) != 2:
                    raise ValueError(quiet)
                for text in quiet:
                    _parse_hhmm(text)
            except (TypeError, ValueError):
                problems.append(
                    Problem(
                        "quiet_hours",
                        "静默时段应为两个 HH:MM",
                        "Quiet hours: two HH:MM times",
                        field="params.quiet_hours",
                        value=quiet,
                    )
                )
    if problems:
        raise Invalid(problems)
    return params


# --- entry points --------------------------------------------------------------------------------
# Readings fetched at once, newest first, to find the latest and the points every rule looks at: enough
# for the usual windows (a reading every 30 s over 10 minutes); a longer window is fetched whole. Not
# more: every row fetched costs a time to decode, for every device of a burst.
LOOKBACK = 32


def _span(rule: AlertRule, params: dict[str, Any]) -> float | None:
    """Seconds of readings before the latest one that `rule` looks at (None: it reads no points)."""
    if rule.kind == AlertRule.THRESHOLD:
        ladder = _ladder(params)
        if not ladder:
            return None
        _, clear_for = _clear_pred(params, ladder)
        wait = float(params.get("deescalate_after_seconds", 0) or 0)
        return max([float(s.get("for_seconds", 0)) for s in ladder] + [clear_for, wait]) + 1
    if rule.kind == AlertRule.RATE:
        return float(params.get("within_seconds", 600))
    return None


def _recent_points(device: Device, span: float | None) -> list[Point]:
    """The device's valid readings, oldest first, from `span` seconds before the latest one up to it,
    plus the last one before that (see `_points`); only the latest one when `span` is None; [] when
    the device has none. Usually one query: the newest LOOKBACK readings cover the span."""
    ok = Reading.objects.filter(device=device, status=Reading.OK, value__isnull=False)
    rows = list(ok.order_by("-at").values_list("at", "value")[: LOOKBACK if span is not None else 1])
    if not rows or span is None:
        return [(at, float(v)) for at, v in rows if v is not None]
    since = rows[0][0] - dt.timedelta(seconds=span)
    if len(rows) == LOOKBACK and rows[-1][0] >= since:
        return _points(device, since, rows[0][0])  # a long window of frequent readings
    kept: list[Point] = []
    for at, value in rows:
        if value is None:
            continue  # excluded by the query; for the type checker
        kept.append((at, float(value)))
        if at < since:
            break  # the last one before the window
    kept.reverse()
    return kept


def _window(points: list[Point], since: dt.datetime) -> list[Point]:
    """`points` from `since` on, plus the last one before `since` (what `_points` would return)."""
    start = bisect.bisect_left(points, since, key=lambda p: p[0])
    return points[max(start - 1, 0) :]


def evaluate_device(device: Device, readings: Iterable[Reading] | None = None) -> None:
    """Evaluate every rule on `device` after new readings were stored, under the device's row lock (the
    readings themselves are read back from the store, ordered by time, so late and out-of-order
    arrivals count correctly; `readings` is not needed). Ingestion, which holds the locks already,
    calls `evaluate_devices`."""
    with transaction.atomic():
        row = Device.objects.select_for_update().filter(pk=device.pk).first()
        if row is not None:
            evaluate_devices([row])


def evaluate_devices(devices: Sequence[Device]) -> None:
    """`evaluate_device` for devices whose row locks the caller's transaction holds (ingestion of a
    burst from the MQTT bridge: many devices, one transaction). A handful of queries whatever the
    number of rules: the enabled rules, the devices' overrides and active alarms (locked: the devices
    first, then the alarms, as everywhere) at once, and per device its recent valid readings (one
    fetch covering the widest window any rule needs)."""
    devices = [d for d in devices if d.enabled]
    if not devices:
        return
    all_rules = list(AlertRule.objects.filter(enabled=True).order_by("code"))
    if not all_rules:
        return
    overrides = {
        (device_id, rule_id): params
        for device_id, rule_id, params in DeviceRuleOverride.objects.filter(
            device__in=[d.pk for d in devices]
        ).values_list("device_id", "rule_id", "params")
    }
    from zhizhi.alerts import care

    keys: list[str] = []
    for device in devices:
        keys.append(alarms.source_key(device))
        if device.watched_person_id is not None:
            keys.append(care.person_key(device.watched_person_id))
    # No active alarm of a rule: nothing to lapse or clear, and no per-rule lookup.
    active = {
        (a.rule_id, a.source_key): a
        for a in Alarm.objects.select_for_update()
        .filter(source_key__in=keys, status=Alarm.ACTIVE, rule__in=[r.pk for r in all_rules])
        .order_by("pk")
    }
    for device in devices:
        plan: list[tuple[AlertRule, dict[str, Any]]] = []
        for rule in all_rules:
            if rule.device_kind not in ("", device.kind):
                continue
            params = dict(rule.params or {})
            extra = overrides.get((device.pk, rule.pk))
            if isinstance(extra, dict):
                params.update(extra)
            plan.append((rule, params))
        if plan:
            _evaluate(device, plan, active)


def _evaluate(
    device: Device,
    plan: list[tuple[AlertRule, dict[str, Any]]],
    active: dict[tuple[int, str], Alarm],
) -> None:
    spans = [s for s in (_span(rule, params) for rule, params in plan) if s is not None]
    points = _recent_points(device, max(spans) if spans else None)
    if not points:
        return
    latest = points[-1][0]
    key = alarms.source_key(device)
    person = None
    if device.watched_person_id is not None:
        from zhizhi.alerts import care

        person = care.person_key(device.watched_person_id)
    for rule, params in plan:
        alarm = active.get((rule.pk, key))
        if rule.kind == AlertRule.THRESHOLD:
            _threshold(rule, device, params, latest, points, alarm)
        elif rule.kind == AlertRule.RATE:
            _rate(rule, device, params, latest, points, alarm)
        elif rule.kind == AlertRule.MISSING:
            # The device spoke: it is online again.
            if alarm is not None:
                alarms.clear(alarm, at=latest, note="设备恢复上报")
        elif rule.kind == AlertRule.INACTIVITY:
            # The watched person moved: their alarm (source: the person, see care.py) clears; an
            # alarm still keyed by this device (raised before per-person inactivity) clears too.
            if person is not None and (rule.pk, person) in active:
                from zhizhi.alerts import care

                care.person_moved(rule, device, latest)
            if alarm is not None:
                alarms.clear(alarm, at=latest, note="设备恢复上报")


def _parse_hhmm(text: str) -> dt.time:
    hours, minutes = str(text).split(":")
    return dt.time(int(hours), int(minutes))


def in_quiet_hours(params: dict[str, Any], moment: dt.datetime) -> bool:
    quiet = params.get("quiet_hours") or []
    if len(quiet) != 2:
        return False
    start, end = _parse_hhmm(quiet[0]), _parse_hhmm(quiet[1])
    local = timezone.localtime(moment).time()
    if start <= end:
        return start <= local < end
    return local >= start or local < end  # the quiet span crosses midnight


def sweep_silence(now: dt.datetime | None = None) -> int:
    """Raise missing-data (device offline) and inactivity alarms; returns how many alarms were raised
    or updated. The query per rule uses the shortest window among the rule and its overrides, so only
    devices silent at least that long are looked at (Device.last_seen_at). Inactivity is per watched
    person, over all their devices (`care.sweep_inactivity`)."""
    now = now or clock.now()
    touched = 0
    kinds = (AlertRule.MISSING, AlertRule.INACTIVITY)
    for rule in AlertRule.objects.filter(enabled=True, kind__in=kinds).order_by("code"):
        if rule.kind == AlertRule.INACTIVITY:
            from zhizhi.alerts import care

            touched += care.sweep_inactivity(rule, now)  # one alarm per watched person
            continue
        windows = [float((rule.params or {}).get("silent_seconds", 1800))]
        windows += [
            float(p["silent_seconds"])
            for p in DeviceRuleOverride.objects.filter(rule=rule).values_list("params", flat=True)
            if isinstance(p, dict) and "silent_seconds" in p
        ]
        cutoff = now - dt.timedelta(seconds=min(windows))
        devices = Device.objects.filter(enabled=True, last_seen_at__lt=cutoff)
        if rule.device_kind:
            devices = devices.filter(kind=rule.device_kind)
        for device in devices.order_by("pk"):
            touched += _silence(rule, device, now)
    return touched


def _silence(rule: AlertRule, device: Device, now: dt.datetime) -> int:
    with transaction.atomic():
        locked = Device.objects.select_for_update().filter(pk=device.pk).first()
        if locked is None or locked.last_seen_at is None:
            return 0
        params = params_for(rule, locked)
        silent = (now - locked.last_seen_at).total_seconds()
        if silent < float(params.get("silent_seconds", 1800)):
            return 0
        if rule.kind == AlertRule.INACTIVITY and in_quiet_hours(params, now):
            existing = alarms.active_alarm(rule, alarms.source_key(locked))
            if existing is None:
                return 0  # nobody is expected to open the door at night: wait for the morning
        severity = params.get("severity", "minor" if rule.kind == AlertRule.MISSING else "major")
        note = f"{int(silent)} 秒无上报" if rule.kind == AlertRule.MISSING else f"{int(silent)} 秒无活动"
        alarms.report(rule, locked, severity, at=now, value=locked.last_value, note=note)
        return 1


__all__ = ["Alarm", "evaluate_device", "evaluate_devices", "in_quiet_hours", "params_for", "sweep_silence"]
