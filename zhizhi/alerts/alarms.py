"""The alarm lifecycle: raise, repeat, escalate/deescalate, acknowledge, clear — and alarm → case.

Callers hold a transaction (the evaluator locks the device row first); these functions lock the alarm row
and fall back on the partial unique constraint when two evaluations race to raise the same alarm.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet

from zhizhi import clock, live
from zhizhi.alerts.models import Device
from zhizhi.alerts.rule_models import Alarm, AlarmEvent, AlertRule
from zhizhi.geo.models import Region
from zhizhi.problems import Invalid

log = logging.getLogger(__name__)

RANK = {"info": 0, "minor": 1, "major": 2, "critical": 3}


def source_key(device: Device) -> str:
    return f"device:{device.code}"


def active_alarm(rule: AlertRule, key: str) -> Alarm | None:
    return Alarm.objects.select_for_update().filter(source_key=key, rule=rule, status=Alarm.ACTIVE).first()


def _event(alarm: Alarm, kind: str, at: dt.datetime, *, value: float | None = None, note: str = "",
           actor: Any = None) -> AlarmEvent:  # fmt: skip
    return AlarmEvent.objects.create(
        alarm=alarm, at=at, kind=kind, severity=alarm.severity, value=value, note=note[:300], actor=actor
    )


def _announce(alarm: Alarm, kind: str) -> None:
    """Publish the alarm's new state on the live channel "alarm" (the alarm board, the cockpit), in the
    transaction of the change, so a screen hears of it exactly when it committed."""
    rule = alarm.rule
    live.publish(
        "alarm",
        {
            "id": alarm.pk,
            "kind": kind,
            "rule": rule.code,
            "rule_name": rule.name,
            "rule_kind": rule.kind,
            "severity": alarm.severity,
            "status": alarm.status,
            "acknowledged": alarm.acknowledged_at is not None,
            "title": alarm.title or rule.name,
            "source": alarm.source_key,
            "device_kind": alarm.device.kind if alarm.device_id and alarm.device else "",
            "area": alarm.area_path,
            "value": alarm.value,
            "count": alarm.count,
            "at": ((kind == "cleared" and alarm.cleared_at) or alarm.last_seen_at).isoformat(),
        },
        area_path=alarm.area_path,
    )


def report(
    rule: AlertRule,
    device: Device,
    severity: str,
    *,
    at: dt.datetime,
    value: float | None = None,
    note: str = "",
) -> Alarm:
    """The rule's raising condition holds at `severity` on a device (see `raise_or_update`)."""
    return raise_or_update(
        rule,
        source_key(device),
        severity,
        at=at,
        value=value,
        note=note,
        area_path=device.area_path,
        device=device,
        person=device.watched_person if rule.kind == AlertRule.INACTIVITY else None,
    )


def raise_or_update(
    rule: AlertRule,
    key: str,
    severity: str,
    *,
    at: dt.datetime,
    area_path: str,
    value: float | None = None,
    note: str = "",
    title: str = "",
    evidence: dict[str, Any] | None = None,
    device: Device | None = None,
    enterprise: Any = None,
    person: Any = None,
) -> Alarm:
    """The rule's raising condition holds at `severity` for the source `key` ("device:<code>",
    "enterprise:<credit code>", "person:<id>" …): raise a new alarm, or update the active one (a return
    after a lapse counts as a repeat; a different severity escalates or deescalates)."""
    with transaction.atomic():
        alarm = active_alarm(rule, key)
        if alarm is None:
            try:
                with transaction.atomic():
                    alarm = Alarm.objects.create(
                        rule=rule,
                        device=device,
                        enterprise=enterprise,
                        person=person,
                        source_key=key,
                        severity=severity,
                        value=value,
                        title=title[:200],
                        evidence=evidence or {},
                        first_seen_at=at,
                        last_seen_at=at,
                        area_path=area_path,
                    )
            except IntegrityError:
                # Raised a moment ago by a concurrent (or restarted) evaluation: update that one.
                alarm = active_alarm(rule, key)
                if alarm is None:
                    raise
            else:
                _event(alarm, "raised", at, value=value, note=note)
                if rule.creates_case:
                    open_case(alarm)
                _announce(alarm, "raised")
                return alarm
        # What the source says now: new evidence, and a title naming new numbers or areas.
        changed = []
        if evidence is not None and evidence != alarm.evidence:
            alarm.evidence = evidence
            changed.append("evidence")
        if title and title[:200] != alarm.title:
            alarm.title = title[:200]
            changed.append("title")
        if changed:
            alarm.save(update_fields=changed)
        return update(alarm, severity, at=at, value=value, note=note)


def unchanged(alarm: Alarm, severity: str, evidence: dict[str, Any]) -> bool:
    """`alarm` already says this: its condition holds at `severity` with this evidence, so a periodic
    evaluation (enterprise triggers, risk-list matching) need only stamp it as seen, in bulk."""
    return alarm.holding and alarm.severity == severity and alarm.evidence == evidence


def update(
    alarm: Alarm, severity: str, *, at: dt.datetime, value: float | None = None, note: str = ""
) -> Alarm:
    """Move an active alarm to `severity` (the condition still or again holds)."""
    fields = ["last_seen_at", "value", "holding"]
    announce = ""
    if not alarm.holding:
        alarm.count += 1
        fields.append("count")
        _event(alarm, "repeated", at, value=value, note=note)
        announce = "repeated"
    if severity != alarm.severity:
        kind = "escalated" if RANK.get(severity, 0) > RANK.get(alarm.severity, 0) else "deescalated"
        alarm.severity = severity
        fields.append("severity")
        _event(alarm, kind, at, value=value, note=note)
        announce = kind
    alarm.last_seen_at = max(alarm.last_seen_at, at)
    alarm.value = value
    alarm.holding = True
    alarm.save(update_fields=fields)
    if announce:
        _announce(alarm, announce)
    return alarm


def lapse(alarm: Alarm, *, severity: str | None = None, at: dt.datetime, value: float | None = None) -> Alarm:
    """The raising condition no longer holds, but the clear condition does not hold yet (hysteresis):
    the alarm stays active; its severity may step down to the ladder's lowest rung."""
    fields = ["holding", "value"]
    alarm.holding = False
    alarm.value = value
    if severity and RANK.get(severity, 0) < RANK.get(alarm.severity, 0):
        alarm.severity = severity
        fields.append("severity")
        _event(alarm, "deescalated", at, value=value)
    alarm.save(update_fields=fields)
    if "severity" in fields:
        _announce(alarm, "deescalated")
    return alarm


def clear(alarm: Alarm, *, at: dt.datetime, value: float | None = None, note: str = "") -> Alarm:
    """The clear condition holds: the alarm is over (whether or not anyone acknowledged it)."""
    alarm.status = Alarm.CLEARED
    alarm.cleared_at = at
    alarm.holding = False
    alarm.value = value if value is not None else alarm.value
    alarm.save(update_fields=["status", "cleared_at", "holding", "value"])
    _event(alarm, "cleared", at, value=value, note=note)
    _announce(alarm, "cleared")
    return alarm


def clear_for(
    rule: AlertRule, device: Device, *, at: dt.datetime, value: float | None = None, note: str = ""
) -> Alarm | None:
    alarm = active_alarm(rule, source_key(device))
    return clear(alarm, at=at, value=value, note=note) if alarm is not None else None


def acknowledge(alarm: Alarm, user: Any, note: str = "") -> Alarm:
    """A person has seen it. Independent of clearing: the alarm stays active and can still escalate."""
    with transaction.atomic():
        locked = Alarm.objects.select_for_update().get(pk=alarm.pk)
        if locked.acknowledged_at is None:
            locked.acknowledged_at = clock.now()
            locked.acknowledged_by = user
            locked.save(update_fields=["acknowledged_at", "acknowledged_by"])
            _event(locked, "acknowledged", locked.acknowledged_at, note=note, actor=user)
            _announce(locked, "acknowledged")
    return locked


def open_case(alarm: Alarm) -> None:
    """Turn the alarm into a case through the case core (same transaction), routed to the unit the
    rule's responsibility-list item names, so SLA, escalation, KPIs and dispatch notifications apply."""
    from zhizhi.cases.services import register_case

    rule, device = alarm.rule, alarm.device
    name, where, lng, lat = alarm.source_key, "", None, None
    building = None
    if device is not None:
        name, lng, lat = device.name, device.lng, device.lat
        building = device.building if device.building_id else None
    elif alarm.enterprise_id is not None and alarm.enterprise is not None:
        name = alarm.enterprise.name
        building = alarm.enterprise.building if alarm.enterprise.building_id else None
        where = alarm.enterprise.registered_address
    if alarm.person_id is not None and alarm.person is not None:
        # A person's alarm (inactivity over all their sensors, a list match) names the person, and
        # without a placed device it is found at their home.
        from zhizhi.alerts.care import home_building

        name = alarm.person.name
        if building is None and lng is None:
            building = home_building(alarm.person)
    if building is not None:
        where = building.address
        if lng is None:
            lng, lat = building.lng, building.lat
    facts = "；".join(f"{k}：{v}" for k, v in (alarm.evidence or {}).items())
    description = (
        alarm.title or f"{alarm.source_key} 告警（{alarm.get_severity_display()}），读数 {alarm.value}"
    )
    if facts:
        description = f"{description}。依据：{facts}"
    try:
        with transaction.atomic():
            case = register_case(
                None,
                title=f"{rule.name}：{name}"[:200],
                description=description,
                category=rule.category_code or None,
                lng=lng,
                lat=lat,
                address=where,
                channel="iot" if device is not None else "alert",
                external_id=f"alarm:{alarm.pk}",
                urgent=True if alarm.severity == "critical" else None,
            )
    except Invalid as exc:
        # The alarm itself must not be lost because its rule names a bad category or place.
        log.warning("alarm %s: no case: %s", alarm.pk, exc)
        _event(alarm, "case_failed", alarm.last_seen_at, note=str(exc))
        return
    alarm.case = case
    alarm.save(update_fields=["case"])
    _event(alarm, "case_created", alarm.last_seen_at, note=case.number)


def active_alarms_under(region: Region) -> QuerySet[Alarm]:
    """Active alarms anywhere under `region` (the region itself and all its descendants)."""
    return Alarm.objects.filter(Q(area_path__startswith=region.path), status=Alarm.ACTIVE)
