"""The sensor simulator and the demo devices layer.

Streams are pure functions, so their shape is asserted directly; then the same streams go through the
real ingestion and rule evaluation (one message per simulated minute, as the bridge would deliver them)
with the demo rules, and the cases land in the queues of the units the real responsibility list names.
The command is exercised over HTTP against the live server.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from tests.factories import PASSWORD, Street
from zhizhi import clock
from zhizhi.alerts import devices_demo, services, simulator
from zhizhi.alerts.models import Device, Reading
from zhizhi.alerts.rule_models import Alarm
from zhizhi.cases import services as case_services
from zhizhi.cases.services import unit_cases
from zhizhi.notify.models import OutboxMessage
from zhizhi.orgs.models import OrgUnit
from zhizhi.orgs.services import create_staff

TZ = timezone.get_fixed_timezone(8 * 60)
DAY = dt.date(2026, 7, 1)
RLIST = Path(__file__).resolve().parent.parent / "zhizhi/cases/data/responsibility_list.json"
# The leaves the demo rules raise, and the units the real list names for them.
LEAVES = ("4201", "0701", "2001", "4104", "6301", "2303")


def at(hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(DAY.year, DAY.month, DAY.day, hour, minute, tzinfo=TZ)


def load_real_leaves(street: Street, codes: tuple[str, ...] = LEAVES) -> dict[str, object]:
    """Load `codes` from the shipped responsibility list, with every unit it names (one member each).
    Returns unit code → that member."""
    data = json.loads(RLIST.read_text())
    picked = []
    for big in data:
        leaves = [leaf for leaf in big.get("children", []) if leaf["code"] in codes]
        if leaves:
            picked.append({**big, "children": leaves})
    members = {}
    for big in picked:
        for leaf in big["children"]:
            for code in [leaf.get("department"), *leaf.get("assisting", [])]:
                if not code or code in members:
                    continue
                kind = "outside_dept" if code.startswith("WB-") else "street_office"
                unit, _ = OrgUnit.objects.get_or_create(code=code, defaults={"name": code, "kind": kind})
                members[code] = create_staff(
                    username=f"u-{code.lower()}",
                    full_name=f"{code}值班",
                    role="dept_staff",
                    password=PASSWORD,
                    org_unit=unit,
                )
    case_services.ensure_case_permissions()
    case_services.load_responsibility_list(picked, street.users["admin"])
    return members


def deliver(device: Device, token: str, samples: list[simulator.Sample]) -> None:
    """What the bridge does for each message: ingest, one simulated minute at a time, at that time."""
    by_minute: dict[dt.datetime, list[simulator.Sample]] = {}
    for s in samples:
        by_minute.setdefault(s.at.replace(second=0), []).append(s)
    for minute in sorted(by_minute):
        batch = by_minute[minute]
        with clock.frozen_at(batch[-1].at + dt.timedelta(seconds=1)):
            result = services.ingest(device.code, token, [s.as_reading() for s in batch], source="mqtt")
        assert result.accepted == len(batch), result.as_dict()


# --- pure streams ----------------------------------------------------------------------------------
def runs_above(samples: list[simulator.Sample], limit: float) -> list[float]:
    """Seconds of each run of consecutive samples above `limit`."""
    runs, start, prev = [], None, None
    for s in samples:
        if s.value > limit and start is None:
            start = s.at
        elif s.value <= limit and start is not None:
            runs.append((prev - start).total_seconds())
            start = None
        prev = s.at
    if start is not None:
        runs.append((prev - start).total_seconds())
    return runs


def test_typhoon_floods_the_first_culvert_and_recedes() -> None:
    samples = simulator.typhoon(["WL-001", "WL-002", "WL-003"], at(13), seed=3)
    first = [s for s in samples if s.device == "WL-001"]
    assert len(first) == 301 and first[0].at == at(13) and first[-1].at == at(18)
    assert max(runs_above(first, 1.2)) >= 3600  # above the first rung far longer than 2 minutes
    assert max(runs_above(first, 1.5)) >= 600
    peak = max(first, key=lambda s: s.value)
    assert 1.6 < peak.value < 1.9 and at(15, 30) < peak.at < at(16, 15)
    assert all(s.value < 1.1 for s in first if s.at >= at(17, 0))  # receded: the clear condition holds
    others = [s for s in samples if s.device != "WL-001"]
    assert others and max(s.value for s in others) < 1.2
    low, high = services.PLAUSIBLE["water_level"]
    assert all(low <= s.value <= high for s in samples)
    # The rise is fast enough for the rate-of-change rule (0.18 m in 10 minutes), the recession is not.
    level = {s.at: s.value for s in first}
    rises = [
        level[t] - level[t - dt.timedelta(minutes=10)] for t in level if t - dt.timedelta(minutes=10) in level
    ]
    assert max(rises) >= 0.18 and min(rises) > -0.18


def test_streams_are_deterministic_per_seed() -> None:
    one = simulator.fume(["YY-001", "YY-002"], at(10), seed=5)
    assert one == simulator.fume(["YY-001", "YY-002"], at(10), seed=5)
    assert one != simulator.fume(["YY-001", "YY-002"], at(10), seed=6)
    # Adding a device does not change the others' streams.
    more = simulator.fume(["YY-001", "YY-002", "YY-003"], at(10), seed=5, exceeding="YY-001")
    assert [s for s in more if s.device == "YY-002"] == [s for s in one if s.device == "YY-002"]


def test_fume_has_lunch_and_dinner_peaks_and_one_kitchen_exceeds() -> None:
    codes = [f"YY-{i:03d}" for i in range(1, 7)]
    samples = simulator.fume(codes, at(10), seed=2)
    for code in codes:
        own = {s.at: s.value for s in samples if s.device == code}
        assert own[at(12)] > 2 * own[at(10)] and own[at(18, 30)] > 2 * own[at(15, 30)]
        longest = max(runs_above([s for s in samples if s.device == code], simulator.FUME_LIMIT), default=0)
        if code == "YY-001":
            assert longest >= 1800  # over the limit for half an hour at dinner
        else:
            assert longest == 0


def test_doors_open_and_close_and_one_person_stops_moving() -> None:
    samples = simulator.doors(["MC-1", "MC-2", "MC-3"], at(0), hours=24, seed=4, stops_after_hours=9)
    assert {s.value for s in samples} == {0.0, 1.0}
    for code in ("MC-1", "MC-2"):
        own = [s for s in samples if s.device == code]
        assert len(own) >= 6 and [s.value for s in own[:2]] == [1.0, 0.0]  # opened, then closed
        assert any(s.at > at(15) for s in own)
    assert all(s.at < at(9) for s in samples if s.device == "MC-3")


# --- the demo layer --------------------------------------------------------------------------------
def test_demo_devices_rules_tokens_and_history_are_idempotent(street: Street) -> None:
    counts = devices_demo.load(street.street)
    assert counts["devices"] == len(devices_demo.demo_devices()) >= 4 + 4 + 4
    assert counts["rules"] == len(devices_demo.RULES)
    assert counts["readings"] == Reading.objects.count() > 0
    assert devices_demo.load(street.street) == {"devices": 0, "rules": 0, "readings": 0}
    culvert = Device.objects.get(code="WL-001")
    assert culvert.kind == "water_level" and culvert.area_path.startswith(street.street.path)
    # A day of readings every 5 minutes, the newest now.
    assert Reading.objects.filter(device=culvert).count() == 24 * 12 + 1
    assert (
        culvert.last_seen_at is not None and abs((clock.now() - culvert.last_seen_at).total_seconds()) < 300
    )
    # The derived token is accepted; only its hash is stored.
    token = devices_demo.demo_token("WL-001")
    assert culvert.token_hash == hashlib.sha256(token.encode()).hexdigest() != token
    assert not Device.objects.filter(token_prefix=token).exists()
    assert services.ingest("WL-001", token, [{"at": clock.now().isoformat(), "value": 0.4}]).accepted == 1
    assert devices_demo.demo_tokens()["WL-001"] == token
    # Rules: the water ladder leads to 涵洞积水, the fume rule to 餐饮油烟扰民.
    from zhizhi.alerts.rule_models import AlertRule

    level = AlertRule.objects.get(code="WL-LEVEL")
    assert (level.category_code, level.creates_case, level.params["ladder"][0]["above"]) == (
        "4201",
        True,
        1.2,
    )
    assert AlertRule.objects.get(code="FUME-HIGH").category_code == "0701"
    for rule in AlertRule.objects.all():
        rule.full_clean()  # every demo rule passes the params check of its kind


def test_typhoon_through_ingestion_raises_escalates_clears_and_opens_one_case(street: Street) -> None:
    members = load_real_leaves(street)
    devices_demo.ensure_rules()
    devices_demo.ensure_devices(street.street)
    culvert = Device.objects.get(code="WL-001")
    stream = [s for s in simulator.typhoon(["WL-001"], at(13), seed=1)]
    deliver(culvert, devices_demo.demo_token("WL-001"), stream)
    alarm = Alarm.objects.get(rule__code="WL-LEVEL")
    kinds = list(alarm.events.values_list("kind", flat=True))
    assert kinds[:3] == ["raised", "case_created", "escalated"] and kinds[-1] == "cleared"
    assert alarm.status == "cleared" and alarm.severity == "major"
    first_above = next(s.at for s in stream if s.value > 1.2)
    assert alarm.first_seen_at - first_above >= dt.timedelta(minutes=2)  # the 2-minute duration
    case = alarm.case
    assert case is not None and (case.channel, case.category.code, case.unit.code) == ("iot", "4201", "ZHZX")
    assert case in unit_cases(members["ZHZX"])
    assert OutboxMessage.objects.filter(cause=f"cases.case:{case.pk}").exists()
    assert Alarm.objects.filter(rule__code="WL-RISE", device=culvert).exists()  # the fast rise


def test_fume_through_ingestion_makes_a_case_for_the_exceeding_kitchen_only(street: Street) -> None:
    members = load_real_leaves(street)
    devices_demo.ensure_rules()
    devices_demo.ensure_devices(street.street)
    kitchens = list(Device.objects.filter(kind="fume").order_by("code")[:3])
    stream = simulator.fume([d.code for d in kitchens], at(10), seed=1, hours=11, step_seconds=120)
    for device in kitchens:
        deliver(device, devices_demo.demo_token(device.code), [s for s in stream if s.device == device.code])
    alarm = Alarm.objects.get(rule__code="FUME-HIGH")
    assert alarm.device == kitchens[0]
    assert alarm.case is not None and alarm.case.category.code == "0701"
    assert alarm.case.unit.code == "WB-CG" and alarm.case in unit_cases(members["WB-CG"])


@pytest.mark.django_db(transaction=True)
def test_command_posts_one_batch_over_http(live_server, street: Street) -> None:  # type: ignore[no-untyped-def]
    devices_demo.load(street.street)
    call_command("simulate_sensors", "typhoon", "--once", "--window", "10", "--http", live_server.url)
    culverts = Device.objects.filter(kind="water_level")
    fresh = Reading.objects.filter(
        device__in=culverts, received_at__gte=clock.now() - dt.timedelta(minutes=1)
    )
    assert fresh.count() == 4 * 10  # ten minutes of one reading a minute, per culvert
    # The replayed span replaced the seeded history in it: nothing else is that recent.
    recent = Reading.objects.filter(device__in=culverts, at__gt=clock.now() - dt.timedelta(minutes=10))
    assert recent.count() == 4 * 10
    newest = culverts.order_by("-last_seen_at").first()
    assert newest is not None and abs((clock.now() - newest.last_seen_at).total_seconds()) < 60


def test_play_paces_samples_by_speed() -> None:
    """`play` sends what is due, one message per device, at (time offset / speed) of a fake clock."""
    now = [0.0]
    sent: list[tuple[float, str, int]] = []

    class Recorder:
        def send(self, device: str, token: str, samples: list[simulator.Sample]) -> None:
            sent.append((now[0], device, len(samples)))

        def close(self) -> None: ...

    def sleep(seconds: float) -> None:
        now[0] += seconds

    samples = simulator.typhoon(["WL-1", "WL-2"], at(13), seed=1)[:20]  # 10 minutes of two gauges
    n = simulator.play(samples, Recorder(), {"WL-1": "t", "WL-2": "t"}, speed=60, sleep=sleep,
                       monotonic=lambda: now[0])  # fmt: skip
    assert n == 20 and len(sent) == 20
    assert [round(t) for t, device, _ in sent if device == "WL-1"] == list(range(10))
    assert simulator.play(samples, Recorder(), {}, speed=60) == 0  # no token, nothing sent


def test_a_full_batch_is_stored_across_insert_chunks(street: Street, settings) -> None:  # type: ignore[no-untyped-def]
    """1000 readings (the largest batch) go in two multi-row inserts; a repeat is all duplicates."""
    settings.ZHIZHI_DEVICE_RATE_PER_MINUTE = 100_000
    devices_demo.ensure_devices(street.street)
    now = clock.now().replace(microsecond=0)
    stream = simulator.typhoon(["WL-001"], now - dt.timedelta(hours=20), seed=9, step_seconds=15)[:1000]
    body = [s.as_reading() for s in stream]
    token = devices_demo.demo_token("WL-001")
    assert services.ingest("WL-001", token, body).accepted == 1000
    stored = list(Reading.objects.filter(device__code="WL-001").order_by("at").values_list("at", "value"))
    assert stored == [(s.at, s.value) for s in stream]
    again = services.ingest("WL-001", token, body)
    assert (again.accepted, again.duplicates) == (0, 1000)
