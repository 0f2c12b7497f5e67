"""Care monitoring of elderly residents on hand-built data: one inactivity alarm per person over all
their door sensors, quiet hours, the person's own window, clearing on any report, no duplicates across
sweeps and restarts, the alarm's case in the grid's queue, and the area-scoped care pages."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import transaction
from django.test import Client

from tests.factories import PASSWORD, Street, tag
from zhizhi import clock
from zhizhi.alerts import care, rules
from zhizhi.alerts.care_models import CareWatch
from zhizhi.alerts.models import Device, Reading
from zhizhi.alerts.rule_models import Alarm, AlertRule, DeviceRuleOverride
from zhizhi.models import RevealLog
from zhizhi.notify.models import OutboxMessage
from zhizhi.people.models import Person
from zhizhi.problems import Forbidden, Invalid

CST = dt.timezone(dt.timedelta(hours=8))
# Tuesday 1 July 2026, 09:00 in Hangzhou: the last time anyone saw the door move.
LAST = dt.datetime(2026, 7, 1, 9, 0, tzinfo=CST)
DAY = 86400

CARE_LIST = [
    {
        "code": "32",
        "name": "独居老人关怀",
        "kind": "event",
        "children": [
            {
                "code": "3201",
                "name": "独居老人探视",
                "responsibility": "territorial",
                "assign_rule": "grid_worker",
                "sign_limit": [4, "work_hours"],
                "handle_limit": [5, "work_days"],
                "photo_required": False,
            },
            {
                "code": "3202",
                "name": "独居老人异常",
                "responsibility": "joint",
                "assisting": [],
                "assign_rule": "on_duty",
                "sign_limit": [5, "calendar_minutes"],
                "onsite_limit": [30, "calendar_minutes"],
                "handle_limit": [240, "calendar_minutes"],
                "urgent": True,
            },
        ],
    }
]


@pytest.fixture(autouse=True)
def _local_time(settings: Any) -> None:
    settings.TIME_ZONE = "Asia/Shanghai"


def idle_rule(params: dict | None = None, **kw: Any) -> AlertRule:
    return AlertRule.objects.create(
        code="IDLE",
        name="独居老人无活动",
        kind="inactivity",
        device_kind="door",
        params=params if params is not None else {"silent_seconds": DAY, "quiet_hours": ["22:00", "07:00"]},
        **kw,
    )


def door(street: Street, code: str, person: Any, grid: str = "A1", seen: dt.datetime | None = LAST) -> Device:
    b = street.buildings[grid]
    dev = Device.objects.create(
        code=code, name=f"{code}门磁", kind="door", grid=street.grids[grid], building=b, lng=b.lng, lat=b.lat,
        watched_person=person,
    )  # fmt: skip
    if seen is not None:
        Device.objects.filter(pk=dev.pk).update(last_seen_at=seen, last_value=1)
        dev.refresh_from_db()
    return dev


def opens(dev: Device, at: dt.datetime) -> None:
    """The door opens at `at`: a reading stored as ingestion stores it, then the rules evaluate."""
    Reading.objects.create(device=dev, at=at, value=1)
    Device.objects.filter(pk=dev.pk).update(last_value=1, last_seen_at=at)
    with clock.frozen_at(at):
        rules.evaluate_device(dev)


def elder(street: Street, key: str = "zhang", grid: str = "A1") -> Any:
    person = street.person(key, grid=grid, house=f"{grid}-1-101", birth="19440101", name=f"老人{key}")
    tag(person, "living_alone")
    return person


def test_two_sensors_one_alarm_keyed_by_the_person(street: Street) -> None:
    idle_rule()
    p = elder(street)
    front = door(street, "DOOR-F", p)
    bedroom = door(street, "DOOR-B", p, seen=LAST - dt.timedelta(hours=5))
    # The front door moved at 09:00, the bedroom door earlier: the person's last activity is 09:00.
    assert rules.sweep_silence(LAST + dt.timedelta(hours=23, minutes=59)) == 0
    assert rules.sweep_silence(LAST + dt.timedelta(hours=24, minutes=1)) == 1
    alarm = Alarm.objects.get()
    assert alarm.source_key == f"person:{p.pk}"
    assert (alarm.person, alarm.device, alarm.severity) == (p, front, "major")
    assert alarm.area_path == street.grids["A1"].path
    assert dt.datetime.fromisoformat(alarm.evidence["last_activity_at"]) == LAST
    assert sorted(alarm.evidence["devices"]) == ["DOOR-B", "DOOR-F"]
    # Another sweep is the same alarm, not a second one, and no timeline noise.
    assert rules.sweep_silence(LAST + dt.timedelta(hours=25)) == 1
    assert Alarm.objects.count() == 1
    assert list(alarm.events.values_list("kind", flat=True)) == ["raised"]
    assert Alarm.objects.filter(device=bedroom).count() == 0


def test_one_sensor_reporting_keeps_the_person_unalarmed(street: Street) -> None:
    idle_rule()
    p = elder(street)
    door(street, "DOOR-F", p, seen=LAST - dt.timedelta(days=3))  # long silent (maybe a dead battery)
    door(street, "DOOR-B", p, seen=LAST)
    assert rules.sweep_silence(LAST + dt.timedelta(hours=20)) == 0
    assert not Alarm.objects.exists()
    # A door with nobody watched never makes an inactivity alarm; a disabled sensor does not count.
    Device.objects.create(code="DOOR-X", name="X", kind="door", grid=street.grids["A1"])
    Device.objects.filter(code="DOOR-X").update(last_seen_at=LAST - dt.timedelta(days=9))
    Device.objects.filter(code="DOOR-B").update(enabled=False)
    assert rules.sweep_silence(LAST + dt.timedelta(hours=8)) == 1  # only DOOR-F counts now: 3 days
    assert Alarm.objects.get().source_key == f"person:{p.pk}"
    # A resident who moved out is not watched any more, even with a sensor left behind.
    gone = elder(street, "gone")
    door(street, "DOOR-G", gone, seen=LAST - dt.timedelta(days=5))
    Person.objects.filter(pk=gone.pk).update(status="moved_out")
    assert rules.sweep_silence(LAST + dt.timedelta(hours=9)) == 1
    assert not Alarm.objects.filter(person=gone).exists()


def test_clears_on_a_report_from_any_sensor_but_not_on_an_older_late_reading(street: Street) -> None:
    idle_rule()
    p = elder(street)
    door(street, "DOOR-F", p)
    bedroom = door(street, "DOOR-B", p, seen=LAST - dt.timedelta(hours=2))
    rules.sweep_silence(LAST + dt.timedelta(hours=26))
    alarm = Alarm.objects.get(status="active")
    # A reading from 08:00 arrives late (it was queued in the gateway): the person has not moved since.
    late = LAST - dt.timedelta(hours=1)
    Reading.objects.create(device=bedroom, at=late, value=1)
    with clock.frozen_at(LAST + dt.timedelta(hours=26, minutes=5)):
        rules.evaluate_device(bedroom)
    alarm.refresh_from_db()
    assert alarm.status == "active"
    # The bedroom door (not the one that made the alarm) opens: the person moved.
    opens(bedroom, LAST + dt.timedelta(hours=26, minutes=10))
    alarm.refresh_from_db()
    assert alarm.status == "cleared"
    assert alarm.cleared_at == LAST + dt.timedelta(hours=26, minutes=10)
    assert alarm.events.filter(kind="cleared", note__contains="DOOR-B").exists()
    # After clearing, a new silence is a new alarm.
    rules.sweep_silence(LAST + dt.timedelta(hours=51))
    assert list(Alarm.objects.order_by("pk").values_list("status", flat=True)) == ["cleared", "active"]


def test_quiet_hours_wait_for_the_morning(street: Street) -> None:
    idle_rule()
    p = elder(street)
    evening = dt.datetime(2026, 7, 1, 21, 30, tzinfo=CST)
    door(street, "DOOR-F", p, seen=evening)
    # 24 h later it is 21:30 — silent long enough, and not yet quiet: raise at once.
    assert rules.sweep_silence(evening + dt.timedelta(hours=24, minutes=1)) == 1
    Alarm.objects.all().delete()
    late = dt.datetime(2026, 7, 1, 23, 0, tzinfo=CST)
    Device.objects.filter(code="DOOR-F").update(last_seen_at=late)
    # Window ends at 23:00 the next day: quiet until 07:00.
    assert rules.sweep_silence(late + dt.timedelta(hours=24, minutes=1)) == 0
    assert rules.sweep_silence(dt.datetime(2026, 7, 3, 6, 59, tzinfo=CST)) == 0
    assert rules.sweep_silence(dt.datetime(2026, 7, 3, 7, 0, tzinfo=CST)) == 1
    assert Alarm.objects.get().first_seen_at == dt.datetime(2026, 7, 3, 7, 0, tzinfo=CST)
    # An alarm already raised keeps being updated through the night (it is not dropped).
    assert rules.sweep_silence(dt.datetime(2026, 7, 3, 23, 30, tzinfo=CST)) == 1


def test_the_persons_own_window_and_quiet_hours(street: Street) -> None:
    idle_rule()
    short, long_, night_owl = elder(street, "a"), elder(street, "b"), elder(street, "c")
    for i, p in enumerate((short, long_, night_owl)):
        door(street, f"DOOR-{i}", p)
    CareWatch.objects.create(person=short, silent_seconds=12 * 3600)
    CareWatch.objects.create(person=long_, silent_seconds=48 * 3600)
    CareWatch.objects.create(person=night_owl, silent_seconds=12 * 3600, quiet_hours=[])
    # 21:01: the 12 h people are due; quiet hours do not hold yet.
    rules.sweep_silence(LAST + dt.timedelta(hours=12, minutes=1))
    assert set(Alarm.objects.values_list("person__name", flat=True)) == {"老人a", "老人c"}
    Alarm.objects.all().delete()
    # 23:00: due again, but only the person without quiet hours is alarmed at night.
    rules.sweep_silence(LAST + dt.timedelta(hours=14))
    assert set(Alarm.objects.values_list("person__name", flat=True)) == {"老人c"}
    # 30 h: the rule's 24 h passed, the 48 h person is still fine.
    rules.sweep_silence(LAST + dt.timedelta(hours=30))
    assert not Alarm.objects.filter(person=long_).exists()
    rules.sweep_silence(LAST + dt.timedelta(hours=48, minutes=1))
    assert Alarm.objects.filter(person=long_, status="active").count() == 1
    # Params resolve in order: rule < device override (shortest window) < CareWatch.
    plain = elder(street, "d")
    d1, d2 = door(street, "DOOR-D1", plain), door(street, "DOOR-D2", plain)
    rule = AlertRule.objects.get(code="IDLE")
    DeviceRuleOverride.objects.create(device=d1, rule=rule, params={"silent_seconds": 20 * 3600})
    DeviceRuleOverride.objects.create(device=d2, rule=rule, params={"silent_seconds": 30 * 3600})
    assert care.person_params(rule, plain.pk)["silent_seconds"] == 20 * 3600
    CareWatch.objects.create(person=plain, silent_seconds=6 * 3600)
    assert care.person_params(rule, plain.pk) == {
        "silent_seconds": 6 * 3600,
        "quiet_hours": ["22:00", "07:00"],
    }


def test_no_duplicate_alarm_across_sweeps_and_a_restart(street: Street) -> None:
    idle_rule()
    p = elder(street)
    door(street, "DOOR-F", p)
    door(street, "DOOR-B", p)

    class Crash(Exception):
        pass

    # A sweep that dies before committing leaves nothing behind.
    with pytest.raises(Crash), transaction.atomic():
        rules.sweep_silence(LAST + dt.timedelta(hours=25))
        assert Alarm.objects.count() == 1
        raise Crash
    assert not Alarm.objects.exists()
    for minutes in range(0, 5):
        rules.sweep_silence(LAST + dt.timedelta(hours=25, minutes=minutes))
    alarm = Alarm.objects.get()
    assert alarm.count == 1 and alarm.events.filter(kind="raised").count() == 1
    assert alarm.last_seen_at == LAST + dt.timedelta(hours=25, minutes=4)
    # The unique (source, rule) backstop: a concurrent raise for the same person updates this alarm.
    from zhizhi.alerts import alarms

    again = alarms.raise_or_update(
        alarm.rule,
        f"person:{p.pk}",
        "critical",
        at=LAST + dt.timedelta(hours=26),
        area_path=p.area_path,
        person=p,
    )
    assert again.pk == alarm.pk and Alarm.objects.count() == 1


def test_the_alarm_becomes_an_urgent_case_for_the_grid(street: Street) -> None:
    from zhizhi.cases import services as case_services

    case_services.ensure_case_permissions()
    case_services.load_responsibility_list(CARE_LIST, street.users["admin"])
    idle_rule(category_code="3202", creates_case=True)
    p = elder(street)
    door(street, "DOOR-F", p)
    door(street, "DOOR-B", p)
    rules.sweep_silence(LAST + dt.timedelta(hours=25))
    rules.sweep_silence(LAST + dt.timedelta(hours=26))
    alarm = Alarm.objects.get()
    case = alarm.case
    assert case is not None
    assert (case.category.code, case.unit, case.status, case.urgent) == (
        "3202",
        street.units["A1"],
        "dispatched",
        True,
    )
    assert case.grid == street.grids["A1"] and "老人zhang" in case.title
    assert OutboxMessage.objects.filter(cause=f"cases.case:{case.pk}", user=street.users["grid_a1"]).exists()
    assert list(alarm.events.values_list("kind", flat=True)) == ["raised", "case_created"]
    # The care page's visits: the alarm's case, plus a visit requested from the page (once a day).
    with clock.frozen_at(LAST + dt.timedelta(hours=27)):
        visit = care.request_visit(street.users["community_a"], p, note="上门看看")
        again = care.request_visit(street.users["community_a"], p)
    assert visit.pk == again.pk and visit.category.code == "3201" and visit.unit == street.units["A1"]
    with clock.frozen_at(LAST + dt.timedelta(hours=27)):
        seen = care.summary(p)
    assert {c.pk for c in seen["visits"]} == {case.pk, visit.pk}
    with pytest.raises(Forbidden):
        care.request_visit(street.users["grid_b1"], p)


def test_care_watch_settings_are_checked_and_scoped(street: Street) -> None:
    p = elder(street)
    with pytest.raises(Invalid) as bad:
        care.save_watch(street.users["grid_a1"], p, silent_hours="半天", quiet_from="25:00", quiet_to="07:00")
    assert [x.field for x in bad.value.problems] == ["silent_hours", "quiet_from"]
    assert all(x.zh and x.en for x in bad.value.problems)
    assert not CareWatch.objects.exists()
    with pytest.raises(Forbidden):
        care.save_watch(street.users["grid_b1"], p, silent_hours=12)
    a1 = street.users["grid_a1"]
    watch = care.save_watch(
        a1, p, silent_hours="12", quiet_from="21:00", quiet_to="06:30", responsible=a1, note="女儿在外地"
    )
    assert (watch.silent_seconds, watch.quiet_hours, watch.area_path) == (
        43200,
        ["21:00", "06:30"],
        p.area_path,
    )
    watch = care.save_watch(street.users["grid_a1"], p, no_quiet_hours=True)
    assert (watch.silent_seconds, watch.quiet_hours, CareWatch.objects.count()) == (None, [], 1)


def login(street: Street, who: str) -> Client:
    client = Client()
    assert client.login(username=street.users[who].username, password=PASSWORD)
    return client


def test_care_pages_are_area_scoped_and_mask_phone_and_id(street: Street) -> None:
    idle_rule()
    a = elder(street, "a", grid="A1")
    b = elder(street, "b", grid="B1")
    door(street, "DOOR-A", a)
    door(street, "DOOR-B", b, grid="B1")
    rules.sweep_silence(LAST + dt.timedelta(hours=25))
    a1, b1 = login(street, "grid_a1"), login(street, "grid_b1")
    page = a1.get("/alerts/care/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "老人a" in text and "老人b" not in text
    assert "老人b" in b1.get("/alerts/care/").content.decode()
    assert b1.get(f"/alerts/care/{a.pk}/").status_code == 404
    assert login(street, "resident").get(f"/alerts/care/{a.pk}/").status_code == 403  # not a staff role
    detail = a1.get(f"/alerts/care/{a.pk}/")
    assert detail.status_code == 200
    body = detail.content.decode()
    assert a.phone_masked in body and a.id_number_masked in body
    assert a.decrypt_sensitive("phone") not in body and a.decrypt_sensitive("id_number") not in body
    assert "DOOR-A" in body and "活动" in body
    # The community sees its grids; the leader the whole street.
    assert "老人a" in login(street, "community_a").get("/alerts/care/").content.decode()
    lead = login(street, "leader").get("/alerts/care/").content.decode()
    assert "老人a" in lead and "老人b" in lead
    # Revealing the phone needs a purpose and is logged.
    reveal = f"/r/people.person/{a.pk}/reveal/phone/"
    assert reveal in body
    assert a1.post(reveal, {"purpose": ""}).status_code == 400
    shown = a1.post(reveal, {"purpose": "联系老人确认安全"})
    assert a.decrypt_sensitive("phone") in shown.content.decode()
    log = RevealLog.objects.get()
    assert (log.actor, log.field, log.purpose) == (street.users["grid_a1"], "phone", "联系老人确认安全")
    # Settings are saved from the page, with field-located errors.
    bad = a1.post(f"/alerts/care/{a.pk}/", {"silent_hours": "abc"})
    assert bad.status_code == 400 and "silent_hours" in bad.content.decode()
    ok = a1.post(f"/alerts/care/{a.pk}/", {"silent_hours": "36", "quiet_from": "22:00", "quiet_to": "07:00"})
    assert ok.status_code == 302
    assert CareWatch.objects.get(person=a).silent_seconds == 36 * 3600
    assert b1.post(f"/alerts/care/{a.pk}/", {"silent_hours": "1"}).status_code == 404


def test_the_demo_layer_watches_elders_alone_and_opens_with_one_alarm(street: Street) -> None:
    from zhizhi.alerts import care_demo
    from zhizhi.alerts.risk_models import TravelRecord
    from zhizhi.cases import services as case_services

    case_services.ensure_case_permissions()
    case_services.load_responsibility_list(CARE_LIST, street.users["admin"])
    tagged = [elder(street, f"e{i}", grid=g) for i, g in enumerate(["A1", "A2", "B1"])]
    alone = street.person("alone", grid="A2", house="A2-2-201", birth="19450301", name="未标记独居")
    street.person("young", grid="A1", house="A1-2-101", birth="19900101", population_type="floating")
    with clock.frozen_at(dt.datetime(2026, 7, 10, 10, 0, tzinfo=CST)):
        counts = care_demo.load(street.street)
        assert care_demo.load(street.street) == {}  # idempotent
    assert counts["watched"] == 4 and counts["door_sensors"] == 4 and counts["smoke_sensors"] == 2
    assert alone.care_tags.filter(kind="living_alone", source="civil_affairs").exists()
    assert {d.watched_person for d in Device.objects.filter(kind="door")} == {*tagged, alone}
    alarm = Alarm.objects.get(rule__code="CARE-IDLE")
    assert alarm.person == tagged[0] and alarm.status == "active"
    assert alarm.case is not None and alarm.case.category.code == "3202"
    last = dt.datetime.fromisoformat(alarm.evidence["last_activity_at"])
    assert last == dt.datetime(2026, 7, 9, 4, 0, tzinfo=CST)  # 30 h before 10:00
    assert counts["readings"] == Reading.objects.count() and counts["risk_areas"] == 4
    assert TravelRecord.objects.count() == counts["returns"] == 1
