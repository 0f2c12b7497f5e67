"""Care monitoring of elderly residents: inactivity per *person*, not per door sensor.

A person watched by two door contacts (front door and bedroom, say) has one inactivity alarm, source
`person:<id>`: it is raised when none of their enabled watching devices has reported for the person's
window (outside their quiet hours) and cleared as soon as any of them reports something newer than the
last activity the alarm was raised on. The window and quiet hours come from the rule, laid over by any
`DeviceRuleOverride` on a watching device (the shortest window wins) and finally by the person's own
`CareWatch` (see docs/care-monitoring.md).

Locks: the sweep locks all of a person's watching devices (in primary-key order) before the alarm row;
an evaluation after ingestion holds one device and then the alarm row. Both take devices before alarms,
so they queue instead of deadlocking, and a restarted sweep finds the alarm it raised.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.db.models import Max, Q, QuerySet

from zhizhi import clock
from zhizhi.alerts import alarms
from zhizhi.alerts.care_models import CareWatch
from zhizhi.alerts.models import Device
from zhizhi.alerts.rule_models import Alarm, AlertRule, DeviceRuleOverride
from zhizhi.people.models import CareTag, Person
from zhizhi.problems import Invalid, Problem

DEFAULT_SILENT_SECONDS = 1800.0  # the rules' default for silence rules (docs/alert-rules.md)
# The tags that make a resident a candidate for door sensors (独居, 孤寡).
ALONE_KINDS = ("living_alone", "widowed_alone")
# Cases that count as visits on a care page: the alarm's own case, and these responsibility-list
# leaves registered for the person (32xx 独居老人关怀, 33xx 孤寡老人帮扶).
VISIT_PREFIX = "care:"


def person_key(person_id: int) -> str:
    return f"person:{person_id}"


def watching_devices(rule: AlertRule | None, person_id: int) -> QuerySet[Device]:
    qs = Device.objects.filter(watched_person_id=person_id, enabled=True)
    if rule is not None and rule.device_kind:
        qs = qs.filter(kind=rule.device_kind)
    return qs


def person_params(rule: AlertRule, person_id: int, devices: list[Device] | None = None) -> dict[str, Any]:
    """The inactivity params for one person: rule < device overrides (shortest window) < CareWatch."""
    params = dict(rule.params or {})
    device_ids = [d.pk for d in devices] if devices is not None else None
    overrides = DeviceRuleOverride.objects.filter(rule=rule)
    if device_ids is None:
        overrides = overrides.filter(device__watched_person_id=person_id, device__enabled=True)
    else:
        overrides = overrides.filter(device_id__in=device_ids)
    windows: list[float] = []
    for extra in overrides.order_by("device_id").values_list("params", flat=True):
        if not isinstance(extra, dict):
            continue
        params.update({k: v for k, v in extra.items() if k != "silent_seconds"})
        if "silent_seconds" in extra:
            windows.append(float(extra["silent_seconds"]))
    if windows:
        params["silent_seconds"] = min(windows)
    watch = CareWatch.objects.filter(person_id=person_id).first()
    if watch is not None:
        params.update(watch.params())
    return params


def params_for_people(rule: AlertRule, person_ids: list[int]) -> dict[int, dict[str, Any]]:
    """`person_params` for many people in three queries (for list pages)."""
    out = {pid: dict(rule.params or {}) for pid in person_ids}
    windows: dict[int, list[float]] = {}
    overrides = (
        DeviceRuleOverride.objects.filter(
            rule=rule, device__watched_person_id__in=person_ids, device__enabled=True
        )
        .order_by("device_id")
        .values_list("device__watched_person_id", "params")
    )
    for pid, extra in overrides:
        if not isinstance(extra, dict):
            continue
        out[pid].update({k: v for k, v in extra.items() if k != "silent_seconds"})
        if "silent_seconds" in extra:
            windows.setdefault(pid, []).append(float(extra["silent_seconds"]))
    for pid, found in windows.items():
        out[pid]["silent_seconds"] = min(found)
    for watch in CareWatch.objects.filter(person_id__in=person_ids):
        out[watch.person_id].update(watch.params())
    return out


def window_seconds(params: dict[str, Any]) -> float:
    return float(params.get("silent_seconds", DEFAULT_SILENT_SECONDS))


def sweep_inactivity(rule: AlertRule, now: dt.datetime) -> int:
    """Raise or update the inactivity alarm of every watched person silent past their window; returns
    how many alarms were raised or updated. Only people whose latest activity is older than the
    shortest window in use are looked at (an indexed aggregate over Device.last_seen_at)."""
    windows = [window_seconds(rule.params or {})]
    windows += [
        float(p["silent_seconds"])
        for p in DeviceRuleOverride.objects.filter(rule=rule).values_list("params", flat=True)
        if isinstance(p, dict) and "silent_seconds" in p
    ]
    windows += [
        float(s)
        for s in CareWatch.objects.filter(silent_seconds__isnull=False).values_list(
            "silent_seconds", flat=True
        )
        if s is not None
    ]
    cutoff = now - dt.timedelta(seconds=min(windows))
    # Moved out or deceased: nobody to look after (their sensors should be collected, too).
    devices = Device.objects.filter(enabled=True, watched_person__status="active")
    if rule.device_kind:
        devices = devices.filter(kind=rule.device_kind)
    silent = (
        devices.values("watched_person")
        .annotate(last=Max("last_seen_at"))
        .filter(last__lt=cutoff)
        .order_by("watched_person")
        .values_list("watched_person", flat=True)
    )
    return sum(_person_silence(rule, person_id, now) for person_id in list(silent))


def _person_silence(rule: AlertRule, person_id: int, now: dt.datetime) -> int:
    from zhizhi.alerts.rules import in_quiet_hours

    with transaction.atomic():
        devices = list(watching_devices(rule, person_id).select_for_update().order_by("pk"))
        seen = [d for d in devices if d.last_seen_at is not None]
        if not seen:
            return 0
        latest = max(seen, key=lambda d: (d.last_seen_at, d.pk))
        last = latest.last_seen_at
        assert last is not None
        params = person_params(rule, person_id, devices)
        window = window_seconds(params)
        silent = (now - last).total_seconds()
        if silent < window:
            return 0
        key = person_key(person_id)
        if in_quiet_hours(params, now) and alarms.active_alarm(rule, key) is None:
            return 0  # nobody is expected to open the door at night: wait for the morning
        person = Person.objects.select_related("grid").filter(pk=person_id).first()
        if person is None:
            return 0
        hours = window / 3600
        alarms.raise_or_update(
            rule,
            key,
            params.get("severity", "major"),
            at=now,
            area_path=person.area_path or latest.area_path,
            value=round(silent / 3600, 2),
            note=f"{int(silent)} 秒无活动",
            title=f"{person.name}：{hours:g} 小时无活动",
            evidence={
                "last_activity_at": last.isoformat(),
                "last_device": latest.code,
                "window_seconds": int(window),
                "devices": [d.code for d in devices],
                "quiet_hours": list(params.get("quiet_hours") or []),
            },
            device=latest,
            person=person,
        )
        return 1


def person_moved(rule: AlertRule, device: Device, latest: dt.datetime) -> Alarm | None:
    """A watching device reported (the caller holds its row lock): clear the person's inactivity alarm
    if the report is newer than the activity it was raised on (a late reading from before the silence
    proves nothing)."""
    if device.watched_person_id is None:
        return None
    alarm = alarms.active_alarm(rule, person_key(device.watched_person_id))
    if alarm is None:
        return None
    last = (alarm.evidence or {}).get("last_activity_at")
    if last and latest <= dt.datetime.fromisoformat(last):
        return None
    return alarms.clear(alarm, at=latest, value=0, note=f"{device.code} 有活动")


# --- the per-person settings ------------------------------------------------------------------------
def save_watch(
    actor: Any,
    person: Person,
    *,
    silent_hours: Any = None,
    quiet_from: str = "",
    quiet_to: str = "",
    no_quiet_hours: bool = False,
    responsible: Any = None,
    note: str = "",
) -> CareWatch:
    """Create or change one person's CareWatch; every problem is reported (zh + en) and nothing is
    written on any. Empty window / quiet hours inherit the rule."""
    from zhizhi.alerts.rules import check_params
    from zhizhi.context import acting_as

    problems: list[Problem] = []
    if not Person.objects.visible_to(actor, "change").filter(pk=person.pk).exists():
        from zhizhi.problems import Forbidden

        raise Forbidden("无权修改该居民的关爱设置", "You may not change this resident's care settings")
    seconds: int | None = None
    if silent_hours not in (None, ""):
        try:
            hours = float(silent_hours)
            if not 1 <= hours <= 24 * 14:
                raise ValueError(hours)
            seconds = int(hours * 3600)
        except (TypeError, ValueError):
            problems.append(
                Problem(
                    "silent_hours",
                    "无活动时长应为 1 到 336 之间的小时数",
                    "The inactivity window is a number of hours between 1 and 336",
                    field="silent_hours",
                    value=silent_hours,
                )
            )
    quiet: list[str] | None = None
    if no_quiet_hours:
        quiet = []
    elif quiet_from or quiet_to:
        quiet = [str(quiet_from).strip(), str(quiet_to).strip()]
        try:
            check_params(AlertRule.INACTIVITY, {"quiet_hours": quiet})
        except Invalid:
            problems.append(
                Problem(
                    "quiet_hours",
                    "静默时段应为两个 HH:MM 时间",
                    "Quiet hours: two HH:MM times",
                    field="quiet_from",
                    value=f"{quiet_from}–{quiet_to}",
                )
            )
    if responsible is not None and not getattr(responsible, "is_active", False):
        problems.append(Problem("responsible", "责任人无效", "No such active user", field="responsible"))
    if len(note or "") > 200:
        problems.append(Problem("too_long", "备注不超过200字", "Note: at most 200 characters", field="note"))
    if problems:
        raise Invalid(problems)
    with acting_as(actor), transaction.atomic():
        watch = CareWatch.objects.select_for_update().filter(person=person).first() or CareWatch(
            person=person
        )
        watch.silent_seconds = seconds
        watch.quiet_hours = quiet
        watch.responsible = responsible
        watch.note = note or ""
        watch.save()
    return watch


# --- reading for the pages --------------------------------------------------------------------------
def watched_people(user: Any) -> QuerySet[Person]:
    """The residents the user may see who are watched (a device watches them or a CareWatch exists)."""
    return (
        Person.objects.visible_to(user)
        .filter(Q(watching_devices__isnull=False) | Q(care_watch__isnull=False))
        .distinct()
        .select_related("grid")
    )


def inactivity_rule() -> AlertRule | None:
    return AlertRule.objects.filter(kind=AlertRule.INACTIVITY, enabled=True).order_by("code").first()


def summary(person: Person, rule: AlertRule | None = None) -> dict[str, Any]:
    """What a care page shows about one person: devices, last activity, window, alarms and visits."""
    from zhizhi.cases.models import Case

    rule = rule if rule is not None else inactivity_rule()
    devices = list(Device.objects.filter(watched_person=person).order_by("kind", "code"))
    door = [
        d
        for d in devices
        if d.enabled and (rule is None or not rule.device_kind or d.kind == rule.device_kind)
    ]
    last = max((d.last_seen_at for d in door if d.last_seen_at), default=None)
    params = person_params(rule, person.pk, door) if rule is not None else {}
    person_alarms = list(
        Alarm.objects.filter(Q(person=person) | Q(device__in=devices))
        .select_related("rule", "case")
        .distinct()
        .order_by("-last_seen_at")[:50]
    )
    case_ids = {a.case_id for a in person_alarms if a.case_id}
    visits = list(
        Case.objects.filter(Q(pk__in=case_ids) | Q(external_id__startswith=f"{VISIT_PREFIX}{person.pk}:"))
        .select_related("category", "unit")
        .order_by("-reported_at")[:50]
    )
    silent = (clock.now() - last).total_seconds() if last else None
    return {
        "devices": devices,
        "last_activity": last,
        "silent_hours": round(silent / 3600, 1) if silent is not None else None,
        "window_hours": window_seconds(params) / 3600 if rule is not None else None,
        "quiet_hours": params.get("quiet_hours") or [],
        "active": [a for a in person_alarms if a.status == Alarm.ACTIVE],
        "past": [a for a in person_alarms if a.status != Alarm.ACTIVE],
        "visits": visits,
        "watch": CareWatch.objects.filter(person=person).select_related("responsible").first(),
        "tags": list(CareTag.objects.filter(person=person)),
    }


def request_visit(actor: Any, person: Person, *, note: str = "") -> Any:
    """安排探视: a 3201 独居老人探视 case at the person's home, once per person per day (idempotent)."""
    from zhizhi.cases.services import register_case

    if not Person.objects.visible_to(actor).filter(pk=person.pk).exists():
        from zhizhi.problems import Forbidden

        raise Forbidden("无权为该居民安排探视", "You may not request a visit for this resident")
    building = home_building(person)
    return register_case(
        actor,
        title=f"独居老人探视：{person.name}"[:200],
        description=note or f"关爱监测安排上门探视 {person.name}",
        category="3201",
        lng=building.lng if building else None,
        lat=building.lat if building else None,
        address=building.address if building else "",
        channel="alert",
        external_id=f"{VISIT_PREFIX}{person.pk}:{clock.today().isoformat()}",
    )


def home_building(person: Person) -> Any:
    from zhizhi.people.models import Residency

    row = (
        Residency.objects.current()
        .filter(person=person)
        .select_related("house__building")
        .order_by("-start_date", "-id")
        .first()
    )
    return row.house.building if row is not None else None
