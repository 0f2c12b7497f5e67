"""Demo layer "care": door contacts and smoke detectors for elderly residents living alone, the
inactivity rule, three days of door events, and the risk-area list with a few matching returns
(`manage.py demo_extras`, see docs/demo-data.md and docs/care-monitoring.md).

- 50 residents aged 70 or more tagged 独居 or 孤寡 (when the street has fewer, residents aged 70+ who
  are the only current resident of their house are tagged 独居, source 民政);
- a door contact for each (`CARE-DOOR-001` …), a smoke detector for every third (`CARE-SMOKE-…`, watched
  by the generic smoke rules of the devices layer);
- the inactivity rule `CARE-IDLE` (24 h, quiet hours 22:00–07:00, case 3202 独居老人异常) and a few
  residents' own windows (`CareWatch`);
- door events over the last three days (bulk insert), with one resident who stopped moving 30 hours
  ago: the loader runs the sweep, so the demo opens with an active alarm and its case;
- the list-match rule `RISK-AREA`, four risk-area entries and ten returns, six of them matching.

Idempotent: nothing is added when the layer's first door contact exists.
"""

from __future__ import annotations

import datetime as dt
import random

from django.db import transaction
from django.db.models import Count, Q

from zhizhi import clock
from zhizhi.alerts import care, risk, rules
from zhizhi.alerts.care_models import CareWatch
from zhizhi.alerts.devices_demo import demo_rule
from zhizhi.alerts.models import Device, Reading
from zhizhi.alerts.risk_models import RiskArea, TravelRecord
from zhizhi.alerts.rule_models import AlertRule
from zhizhi.geo.models import Region
from zhizhi.people.models import CareTag, Person, Residency

WATCHED = 50
STOPPED_HOURS = 30
SOURCE = "演示数据"
IDLE = {"silent_seconds": 86400, "quiet_hours": ["22:00", "07:00"], "severity": "major"}
# (region, code, level, days from today it took effect, days until it ends or None, source)
AREAS = [
    ("石家庄市藁城区", "130109", "high", -6, None, "国务院客户端"),
    ("绥芬河市", "231081", "medium", -10, None, "国务院客户端"),
    ("呼和浩特市新城区", "150102", "low", -4, 10, "内蒙古卫健委"),
    ("西安市雁塔区", "610113", "medium", -40, -20, "国务院客户端"),  # expired
]
# (origin, code, days ago) of returns; the first six match an entry in force.
RETURNS = [
    ("河北省石家庄市藁城区", "130109", 2),
    ("河北省石家庄市藁城区增村镇", "130109102", 4),
    ("河北省石家庄市藁城区", "", 9),
    ("黑龙江省牡丹江市绥芬河市", "231081", 3),
    ("黑龙江省绥芬河市", "", 12),
    ("内蒙古呼和浩特市新城区", "", 1),
    ("陕西省西安市雁塔区", "610113", 30),  # the entry expired
    ("河北省石家庄市长安区", "130102", 3),
    ("浙江省温州市鹿城区", "330302", 5),
    ("上海市浦东新区", "310115", 2),
]


def _elders(street: Region, today: dt.date) -> list[Person]:
    born_by = today.replace(year=today.year - 70)
    people = Person.objects.filter(
        area_path__startswith=street.path, status="active", birth_date__lte=born_by
    )
    tagged = list(people.filter(care_tags__kind__in=care.ALONE_KINDS).distinct().order_by("pk")[:WATCHED])
    if len(tagged) < WATCHED:
        # Only current resident of their house: living alone; tag them (as civil affairs would).
        have = {p.pk for p in tagged}
        alone_houses = (
            Residency.objects.current()
            .values("house")
            .annotate(n=Count("person", distinct=True))
            .filter(n=1)
            .values("house")
        )
        more = list(
            people.exclude(pk__in=have)
            .filter(residencies__house__in=alone_houses, residencies__end_date__isnull=True)
            .distinct()
            .order_by("pk")[: WATCHED - len(tagged)]
        )
        for person in more:
            CareTag.objects.get_or_create(
                person=person, kind="living_alone", defaults={"source": "civil_affairs", "verified_on": today}
            )
        tagged += more
    return tagged


def _devices(elders: list[Person]) -> tuple[list[Device], list[Device]]:
    homes = {
        r.person_id: r.house
        for r in Residency.objects.current()
        .filter(person__in=elders)
        .select_related("house__building__grid")
        .order_by("start_date", "pk")
    }
    doors, smokes = [], []
    for n, person in enumerate(elders, start=1):
        house = homes.get(person.pk)
        building = house.building if house is not None else None
        grid = building.grid if building is not None else person.grid
        common = {
            "grid": grid,
            "building": building,
            "house": house,
            "watched_person": person,
            "lng": building.lng if building else None,
            "lat": building.lat if building else None,
            "area_path": grid.path if grid is not None else person.area_path,
        }
        doors.append(
            Device(code=f"CARE-DOOR-{n:03d}", name=f"{person.name}家门磁", kind="door", unit="", **common)
        )
        if n % 3 == 1:
            smokes.append(
                Device(
                    code=f"CARE-SMOKE-{n:03d}",
                    name=f"{person.name}家烟感",
                    kind="smoke",
                    unit="%/m",
                    **common,
                )
            )
    Device.objects.bulk_create(doors + smokes)
    saved = {d.code: d for d in Device.objects.filter(code__startswith="CARE-")}
    return [saved[d.code] for d in doors], [saved[d.code] for d in smokes]


def _door_events(doors: list[Device], now: dt.datetime, rng: random.Random) -> int:
    """Door openings on the last three days between 07:00 and 21:30 local, about six a day; the first
    door's person stopped moving STOPPED_HOURS ago."""
    from django.utils import timezone

    rows: list[Reading] = []
    last: dict[int, dt.datetime] = {}
    local_now = timezone.localtime(now)
    for i, door in enumerate(doors):
        until = (
            now - dt.timedelta(hours=STOPPED_HOURS)
            if i == 0
            else now - dt.timedelta(minutes=rng.randint(20, 300))
        )
        times: set[dt.datetime] = set()
        for day in range(3, -1, -1):
            base = (local_now - dt.timedelta(days=day)).replace(hour=7, minute=0, second=0, microsecond=0)
            for _ in range(rng.randint(4, 8)):
                at = base + dt.timedelta(minutes=rng.randint(0, 14 * 60 + 30))
                if at < until:
                    times.add(at)
        times.add(until)
        for at in sorted(times):
            rows.append(Reading(device=door, at=at, value=1, received_at=at))
        last[door.pk] = max(times)
    Reading.objects.bulk_create(rows, batch_size=2000)
    for door in doors:
        Device.objects.filter(pk=door.pk).update(last_seen_at=last[door.pk], last_value=1)
    return len(rows)


def _smoke_series(smokes: list[Device], now: dt.datetime, rng: random.Random) -> int:
    rows = []
    for device in smokes:
        at = now - dt.timedelta(hours=24)
        while at <= now:
            rows.append(
                Reading(device=device, at=at, value=round(rng.uniform(0.01, 0.06), 3), received_at=at)
            )
            at += dt.timedelta(minutes=30)
    Reading.objects.bulk_create(rows, batch_size=2000)
    for device in smokes:
        Device.objects.filter(pk=device.pk).update(last_seen_at=rows[-1].at, last_value=rows[-1].value)
    return len(rows)


def _raise_for_the_stopped(rule: AlertRule, person: Person, now: dt.datetime) -> int:
    """Sweep now — or, when it is night, at the last daytime minute of the past six hours (when the
    minutely sweep would have raised it), so the demo opens with the alarm."""
    moment = now
    for _ in range(6 * 4 + 1):
        if not rules.in_quiet_hours(care.person_params(rule, person.pk), moment):
            return care.sweep_inactivity(rule, moment)
        moment -= dt.timedelta(minutes=15)
    return 0  # 04:00–07:00: the minutely sweep raises it at 07:00


def _risk(street: Region, today: dt.date, rng: random.Random) -> dict[str, int]:
    demo_rule("RISK-AREA", "风险区返回人员", AlertRule.LIST_MATCH, "", {"lookback_days": 14}, "4401", False)
    for name, code, level, start, end, source in AREAS:
        RiskArea.objects.get_or_create(
            region_name=name,
            valid_from=today + dt.timedelta(days=start),
            defaults={
                "region_code": code,
                "level": level,
                "valid_to": today + dt.timedelta(days=end) if end is not None else None,
                "source": f"{source}（{SOURCE}）",
            },
        )
    young = today.replace(year=today.year - 60)
    candidates = list(
        Person.objects.filter(area_path__startswith=street.path, status="active", birth_date__gte=young)
        .filter(Q(population_type="floating") | Q(population_type="resident"))
        .order_by("pk")
        .values_list("pk", flat=True)[:2000]
    )
    chosen = rng.sample(candidates, min(len(RETURNS), len(candidates)))
    TravelRecord.objects.bulk_create(
        [
            TravelRecord(
                person_id=pk,
                origin=origin,
                origin_code=code,
                arrived_on=today - dt.timedelta(days=days),
                source="self_report",
                note=SOURCE,
                area_path=Person.objects.get(pk=pk).area_path,
            )
            for pk, (origin, code, days) in zip(chosen, RETURNS, strict=False)
        ]
    )
    result = risk.run()
    return {"risk_areas": len(AREAS), "returns": len(chosen), "risk_matches": result["raised"]}


def load(street: Region) -> dict[str, int]:
    """The demo_extras loader for the care layer; adds nothing when its first door contact exists."""
    if Device.objects.filter(code="CARE-DOOR-001").exists():
        return {}
    rng = random.Random(20260701)
    now = clock.now()
    today = clock.today()
    with transaction.atomic():
        rule, _ = demo_rule("CARE-IDLE", "独居老人无活动", AlertRule.INACTIVITY, "door", IDLE, "3202", True)
        elders = _elders(street, today)
        if not elders:
            return {}
        doors, smokes = _devices(elders)
        events = _door_events(doors, now, rng)
        series = _smoke_series(smokes, now, rng)
        # Own windows: the three oldest get 12 h; one who keeps late hours has no quiet hours.
        oldest = sorted(elders, key=lambda p: p.birth_date)[:3]
        for person in oldest:
            CareWatch.objects.create(
                person=person,
                silent_seconds=12 * 3600,
                note="高龄，家属要求缩短时长",
                area_path=person.area_path,
            )
        night = elders[len(elders) // 2]
        if night not in oldest:
            CareWatch.objects.create(
                person=night, quiet_hours=[], note="夜间也常起身", area_path=night.area_path
            )
        raised = _raise_for_the_stopped(rule, elders[0], now)
        counts = _risk(street, today, rng)
    return {
        "watched": len(elders),
        "door_sensors": len(doors),
        "smoke_sensors": len(smokes),
        "readings": events + series,
        "inactivity_alarms": raised,
        **counts,
    }
