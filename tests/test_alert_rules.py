"""Alert rules on hand-built readings: threshold with duration and its severity ladder, hysteresis,
one active alarm per (source, rule), acknowledge vs clear, rate of change, missing data, inactivity with
quiet hours, alarm → case in the right unit's queue, and area scoping up the region tree."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction

from tests.factories import Street
from tests.pg import at_once
from tests.test_cases_support import A1, CaseMaker, loop_fixture  # noqa: F401
from zhizhi import clock
from zhizhi.alerts import alarms, rules
from zhizhi.alerts.models import Device, Reading
from zhizhi.alerts.rule_models import Alarm, AlarmEvent, AlertRule, DeviceRuleOverride
from zhizhi.notify.models import OutboxMessage
from zhizhi.problems import Invalid

T0 = dt.datetime(2026, 7, 1, 14, 0, tzinfo=dt.UTC)

WATER = {
    "ladder": [
        {"above": 1.2, "for_seconds": 120, "severity": "major"},
        {"above": 1.5, "for_seconds": 0, "severity": "critical"},
    ],
    "clear": {"below": 1.1, "for_seconds": 60},
}


def device(
    street: Street, code: str = "WL-1", kind: str = "water_level", grid: str = "A1", **kw: Any
) -> Device:
    lng = {"A1": A1[0], "A2": 120.1075, "B1": 120.1125, "B2": 120.1175}[grid]
    return Device.objects.create(code=code, name=f"{code}号", kind=kind, grid=street.grids[grid], lng=lng,
                                 lat=30.305, **kw)  # fmt: skip


def rule(code: str, kind: str, params: dict, device_kind: str = "water_level", **kw: Any) -> AlertRule:
    return AlertRule.objects.create(code=code, name=f"规则{code}", kind=kind, device_kind=device_kind,
                                    params=params, **kw)  # fmt: skip


def feed(dev: Device, seconds: float, value: float) -> None:
    """Store one reading at T0+seconds (as ingestion does) and evaluate the device."""
    at = T0 + dt.timedelta(seconds=seconds)
    reading = Reading.objects.create(device=dev, at=at, value=value)
    Device.objects.filter(pk=dev.pk).update(last_value=value, last_seen_at=at)
    with clock.frozen_at(at):
        rules.evaluate_device(dev, [reading])


def kinds(alarm: Alarm) -> list[str]:
    return list(alarm.events.values_list("kind", flat=True))


def test_threshold_with_duration_ladder_and_clear(street: Street) -> None:
    r = rule("WL", "threshold", WATER)
    dev = device(street)
    feed(dev, 0, 1.0)
    feed(dev, 10, 1.25)
    feed(dev, 70, 1.25)
    assert not Alarm.objects.exists()  # above 1.2 for only 60 s
    feed(dev, 130, 1.25)  # 120 s above 1.2
    alarm = Alarm.objects.get()
    assert (alarm.severity, alarm.status, alarm.source_key) == ("major", "active", "device:WL-1")
    assert alarm.area_path == street.grids["A1"].path
    feed(dev, 140, 1.55)
    alarm.refresh_from_db()
    assert alarm.severity == "critical"
    feed(dev, 150, 1.3)
    alarm.refresh_from_db()
    assert alarm.severity == "major"
    feed(dev, 160, 1.05)
    alarm.refresh_from_db()
    assert alarm.status == "active"  # below 1.1 for 0 s only
    feed(dev, 230, 1.05)
    alarm.refresh_from_db()
    assert alarm.status == "cleared" and alarm.cleared_at == T0 + dt.timedelta(seconds=230)
    assert kinds(alarm) == ["raised", "escalated", "deescalated", "cleared"]
    assert Alarm.objects.count() == 1
    assert r.alarms.count() == 1


def test_hysteresis_no_flapping_and_repeats_counted(street: Street) -> None:
    rule("WL0", "threshold", {"ladder": [{"above": 1.2, "for_seconds": 0, "severity": "major"}],
                              "clear": {"below": 1.1, "for_seconds": 60}})  # fmt: skip
    dev = device(street)
    for i in range(20):
        feed(dev, i * 10, 1.22 if i % 2 == 0 else 1.18)
    alarm = Alarm.objects.get()
    assert alarm.status == "active"
    assert alarm.count == 10  # raised once, back above 1.2 nine more times
    assert kinds(alarm).count("repeated") == 9
    assert "cleared" not in kinds(alarm)
    assert alarm.last_seen_at == T0 + dt.timedelta(seconds=180)
    # A late duplicate evaluation (a restarted worker) changes nothing.
    with clock.frozen_at(T0 + dt.timedelta(seconds=200)):
        rules.evaluate_device(dev)
    assert Alarm.objects.count() == 1


def test_one_active_alarm_per_source_and_rule_is_enforced(street: Street) -> None:
    r = rule("WL0", "threshold", {"ladder": [{"above": 1.2, "severity": "major"}]})
    dev = device(street)
    feed(dev, 0, 1.3)
    with pytest.raises(IntegrityError), transaction.atomic():
        Alarm.objects.create(rule=r, device=dev, source_key="device:WL-1", severity="minor")
    # After clearing, a new occurrence is a new alarm.
    feed(dev, 10, 1.0)
    feed(dev, 20, 1.3)
    assert list(Alarm.objects.order_by("pk").values_list("status", flat=True)) == ["cleared", "active"]
    # The race backstop: report() for an alarm already raised updates it.
    with transaction.atomic():
        again = alarms.report(r, dev, "critical", at=T0 + dt.timedelta(seconds=30), value=1.6)
    assert again.pk == Alarm.objects.get(status="active").pk and again.severity == "critical"


def test_acknowledge_and_clear_are_independent(street: Street) -> None:
    rule("WL", "threshold", WATER)
    dev = device(street)
    feed(dev, 0, 1.3)
    feed(dev, 120, 1.3)
    alarm = Alarm.objects.get()
    with clock.frozen_at(T0 + dt.timedelta(seconds=125)):
        alarms.acknowledge(alarm, street.users["grid_a1"], note="已到场")
    alarm.refresh_from_db()
    assert alarm.status == "active" and alarm.acknowledged_by == street.users["grid_a1"]
    feed(dev, 130, 1.6)  # acknowledged alarms still escalate
    alarm.refresh_from_db()
    assert alarm.severity == "critical" and alarm.acknowledged_at is not None
    feed(dev, 140, 1.0)
    feed(dev, 200, 1.0)
    alarm.refresh_from_db()
    assert alarm.status == "cleared" and alarm.acknowledged_at == T0 + dt.timedelta(seconds=125)
    assert kinds(alarm) == ["raised", "acknowledged", "escalated", "deescalated", "cleared"]
    # Clear without acknowledgement is allowed too.
    feed(dev, 300, 1.6)
    fresh = Alarm.objects.get(status="active")
    feed(dev, 310, 1.0)
    feed(dev, 380, 1.0)
    fresh.refresh_from_db()
    assert fresh.status == "cleared" and fresh.acknowledged_at is None
    ev = AlarmEvent.objects.filter(kind="acknowledged").first()
    assert ev is not None
    with pytest.raises(ValueError):
        ev.save()  # the timeline is append-only


def test_rate_of_change(street: Street) -> None:
    rule("ROC", "rate_of_change", {"delta": 0.3, "within_seconds": 600, "severity": "major"})
    dev = device(street)
    feed(dev, 0, 0.5)
    feed(dev, 300, 0.7)
    assert not Alarm.objects.exists()
    feed(dev, 500, 0.85)  # +0.35 within 600 s
    alarm = Alarm.objects.get()
    assert alarm.severity == "major" and alarm.status == "active"
    feed(dev, 1200, 0.86)  # older readings left the window; change 0.01 < clear delta 0.15
    alarm.refresh_from_db()
    assert alarm.status == "cleared"
    # A slow rise of 0.35 over an hour raises nothing.
    dev2 = device(street, code="WL-2")
    for i in range(8):
        feed(dev2, i * 600, 0.5 + 0.05 * i)
    assert not Alarm.objects.filter(device=dev2).exists()


def test_missing_data_raise_and_clear(street: Street) -> None:
    rule("OFF", "missing_data", {"silent_seconds": 1800, "severity": "minor"}, device_kind="")
    dev = device(street)
    quiet = device(street, code="WL-2")
    feed(dev, 0, 1.0)
    feed(quiet, 0, 1.0)
    feed(quiet, 1500, 1.0)
    assert rules.sweep_silence(T0 + dt.timedelta(seconds=1700)) == 0
    assert rules.sweep_silence(T0 + dt.timedelta(seconds=1900)) == 1
    alarm = Alarm.objects.get()
    assert alarm.device == dev and alarm.severity == "minor"
    rules.sweep_silence(T0 + dt.timedelta(seconds=1960))  # still silent: the same alarm, no repeat
    alarm.refresh_from_db()
    assert alarm.count == 1 and Alarm.objects.count() == 1
    feed(dev, 2000, 1.0)  # it speaks again
    alarm.refresh_from_db()
    assert alarm.status == "cleared"


def test_inactivity_with_quiet_hours_and_per_person_override(street: Street, settings: Any) -> None:
    settings.TIME_ZONE = "Asia/Shanghai"
    elder = street.person("elder", birth="19400101")
    r = rule("IDLE", "inactivity", {"silent_seconds": 86400, "quiet_hours": ["22:00", "07:00"]},
             device_kind="door")  # fmt: skip
    door = device(street, code="DOOR-1", kind="door", watched_person=elder)
    device(street, code="DOOR-X", kind="door")  # nobody watched: never an inactivity alarm
    cst = dt.timezone(dt.timedelta(hours=8))
    last = dt.datetime(2026, 7, 1, 21, 0, tzinfo=cst)
    Device.objects.filter(code__startswith="DOOR").update(last_seen_at=last, last_value=1)
    # 25 h later it is 22:00 local: quiet hours, nothing yet.
    assert rules.sweep_silence(last + dt.timedelta(hours=25)) == 0
    assert rules.sweep_silence(last + dt.timedelta(hours=33, minutes=59)) == 0  # 06:59
    assert rules.sweep_silence(last + dt.timedelta(hours=34)) == 1  # 07:00: raise
    alarm = Alarm.objects.get()
    assert (alarm.device, alarm.severity) == (door, "major")
    feed(door, (last + dt.timedelta(hours=35) - T0).total_seconds(), 1)  # the door opens
    alarm.refresh_from_db()
    assert alarm.status == "cleared"
    # One person's own window: 12 h.
    DeviceRuleOverride.objects.create(device=door, rule=r, params={"silent_seconds": 43200})
    moved = last + dt.timedelta(hours=35)
    assert rules.sweep_silence(moved + dt.timedelta(hours=11)) == 0
    assert rules.sweep_silence(moved + dt.timedelta(hours=12, minutes=1)) == 1  # 20:01 local
    assert Alarm.objects.filter(status="active").count() == 1


def test_alarm_becomes_a_case_in_the_units_queue_with_an_outbox_row(loop: CaseMaker) -> None:
    street = loop.street
    rule("WLC", "threshold", {"ladder": [{"above": 1.2, "for_seconds": 0, "severity": "major"}]},
         category_code="0102", creates_case=True)  # fmt: skip
    dev = device(street)
    feed(dev, 0, 1.4)
    feed(dev, 10, 1.45)
    alarm = Alarm.objects.get()
    assert alarm.case is not None
    case = alarm.case
    assert (case.channel, case.category.code, case.unit, case.status) == (
        "iot",
        "0102",
        street.units["A1"],
        "dispatched",
    )
    assert case.external_id == f"alarm:{alarm.pk}"
    assert kinds(alarm) == ["raised", "case_created"]  # a repeat makes no second case
    assert OutboxMessage.objects.filter(cause=f"cases.case:{case.pk}", user=street.users["grid_a1"]).exists()
    from zhizhi.cases.services import unit_cases

    assert case in unit_cases(street.users["grid_a1"])


def test_bad_category_keeps_the_alarm(loop: CaseMaker) -> None:
    rule("WLX", "threshold", {"ladder": [{"above": 1.2, "severity": "major"}]}, category_code="9999",
         creates_case=True)  # fmt: skip
    feed(device(loop.street), 0, 1.4)
    alarm = Alarm.objects.get()
    assert alarm.case is None and kinds(alarm) == ["raised", "case_failed"]


def test_area_scoping_up_the_region_tree(street: Street) -> None:
    rule("WL0", "threshold", {"ladder": [{"above": 1.2, "severity": "major"}]})
    for code, grid in (("D-A1", "A1"), ("D-A2", "A2"), ("D-B1", "B1")):
        feed(device(street, code=code, grid=grid), 0, 1.5)
    seen = {key: set(Alarm.objects.visible_to(u).values_list("source_key", flat=True))
            for key, u in street.users.items()}  # fmt: skip
    assert seen["grid_a1"] == {"device:D-A1"}
    assert seen["grid_b1"] == {"device:D-B1"}
    assert seen["community_a"] == {"device:D-A1", "device:D-A2"}
    assert seen["leader"] == seen["admin"] == {"device:D-A1", "device:D-A2", "device:D-B1"}
    assert seen["resident"] == set()
    under = set(alarms.active_alarms_under(street.communities["A"]).values_list("source_key", flat=True))
    assert under == {"device:D-A1", "device:D-A2"}


def test_the_silence_sweep_is_a_minutely_huey_task(street: Street) -> None:
    from zhizhi.alerts import tasks

    rule("OFF", "missing_data", {"silent_seconds": 60}, device_kind="")
    dev = device(street)
    Device.objects.filter(pk=dev.pk).update(last_seen_at=T0, last_value=1.0)
    with clock.frozen_at(T0 + dt.timedelta(minutes=5)):
        assert tasks.tasks_rules.sweep_alert_silence.call_local() == 1
    assert Alarm.objects.get().rule.code == "OFF"


def test_rule_params_are_checked_with_both_languages(db: Any) -> None:
    assert rules.check_params("threshold", WATER) == WATER
    assert rules.check_params("missing_data", {}) == {}
    with pytest.raises(Invalid) as bad:
        rules.check_params(
            "threshold",
            {
                "ladder": [
                    {"above": "高", "severity": "major"},
                    {"for_seconds": 5},
                    {"above": 1, "severity": "huge"},
                ]
            },
        )
    fields = [p.field for p in bad.value.problems]
    assert fields == ["params.ladder[0]", "params.ladder[1]", "params.ladder[2]"]
    assert all(p.zh and p.en for p in bad.value.problems)
    with pytest.raises(Invalid) as bad:
        rules.check_params("inactivity", {"silent_seconds": -1, "quiet_hours": ["22:00"]})
    assert [p.field for p in bad.value.problems] == ["params.silent_seconds", "params.quiet_hours"]
    with pytest.raises(Invalid):
        rules.check_params("rate_of_change", {"delta": 0, "within_seconds": 60})
    with pytest.raises(Invalid):
        rules.check_params("nonsense", {})
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as refused:
        AlertRule(code="X", name="X", kind="threshold", params={"ladder": []}).full_clean()
    assert "params" in refused.value.message_dict


def test_worker_stopping_mid_evaluation_loses_and_doubles_nothing(street: Street) -> None:
    """An evaluation that dies before its transaction commits leaves no trace; the rerun over the
    stored readings raises the alarm exactly once."""
    rule("WL0", "threshold", {"ladder": [{"above": 1.2, "severity": "major"}]})
    dev = device(street)
    Reading.objects.create(device=dev, at=T0, value=1.4)

    class Crash(Exception):
        pass

    with pytest.raises(Crash), transaction.atomic():
        rules.evaluate_device(dev)
        assert Alarm.objects.count() == 1
        raise Crash
    assert not Alarm.objects.exists()
    rules.evaluate_device(dev)
    rules.evaluate_device(dev)  # and a second restart
    alarm = Alarm.objects.get()
    assert alarm.count == 1 and kinds(alarm) == ["raised"]


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_evaluations_raise_one_alarm(street: Street) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs real concurrent connections with row locks (PostgreSQL)")
    rule("WL0", "threshold", {"ladder": [{"above": 1.2, "severity": "major"}]})
    dev = device(street)
    Reading.objects.create(device=dev, at=T0, value=1.4)
    assert len(at_once(lambda: rules.evaluate_device(dev), 4)) == 4
    alarm = Alarm.objects.get()
    assert kinds(alarm) == ["raised"]


def test_severity_steps_down_only_after_its_rung_stayed_off(street: Street) -> None:
    """`deescalate_after_seconds`: a level hovering around the critical limit keeps one critical alarm
    instead of swinging critical ↔ major; it steps down once below the limit long enough."""
    rule("WLH", "threshold", {**WATER, "deescalate_after_seconds": 60})
    dev = device(street)
    feed(dev, 0, 1.3)
    feed(dev, 120, 1.3)  # major after 120 s above 1.2
    feed(dev, 130, 1.52)  # critical at once
    for i, value in enumerate([1.49, 1.51, 1.48, 1.53, 1.49]):
        feed(dev, 140 + i * 10, value)
    alarm = Alarm.objects.get()
    assert alarm.severity == "critical"
    assert kinds(alarm) == ["raised", "escalated"]
    feed(dev, 200, 1.45)  # below 1.5 since 180 s: 20 s only
    feed(dev, 230, 1.44)  # 50 s
    alarm.refresh_from_db()
    assert alarm.severity == "critical"
    feed(dev, 240, 1.43)  # 60 s below the critical limit
    alarm.refresh_from_db()
    assert alarm.severity == "major"
    assert kinds(alarm) == ["raised", "escalated", "deescalated"]


def test_step_down_wait_is_checked(db: Any) -> None:
    with pytest.raises(Invalid) as exc:
        rules.check_params("threshold", {**WATER, "deescalate_after_seconds": -5})
    assert exc.value.problems[0].field == "params.deescalate_after_seconds"
