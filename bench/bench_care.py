"""Care monitoring and the risk-area list match at street scale, in a throwaway database (SQLite by
default, `--db postgres` for the PostgreSQL database `bench_care`, created and dropped here).

N watched residents (default 5,000), each with two door contacts; 1 % have been silent for 30 hours.
M returns (default 20,000) against 40 risk areas; 2 % match.

Timed (best of 3 unless said):
  person sweep   `rules.sweep_silence` with the inactivity rule: one alarm per silent person over both
                 of their doors (first run raises, later runs update)
  device sweep   the baseline in the same run: a per-device missing-data rule with the same 24 h window
                 over the same doors (the shape the inactivity sweep had before it was per person)
  list match     `risk.run()` (first run raises and pushes; re-run changes nothing)
  matching only  `risk.matches()` — the comparison without alarms: the baseline of the run

Prints figures and ratios; never asserts timings.
Run: .venv/bin/python bench/bench_care.py [--people 5000] [--returns 20000] [--db sqlite|postgres]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import best_of, run_child_shown  # noqa: E402

PG_NAME = "bench_care"


def build(people: int, returns: int, now: dt.datetime) -> None:
    from zhizhi.alerts.models import Device
    from zhizhi.alerts.risk_models import RiskArea, TravelRecord
    from zhizhi.geo.models import Region
    from zhizhi.people.models import Person

    district = Region.objects.create(level="district", code="330105", name="拱墅区")
    street = Region.objects.create(level="street", code="330105001", name="小河街道", parent=district)
    community = Region.objects.create(level="community", code="330105001001", name="社区", parent=street)
    grids = [
        Region.objects.create(
            level="grid", code=f"330105001001{g + 1:03d}", name=f"网格{g}", parent=community
        )
        for g in range(10)
    ]
    rows = [
        Person(
            name=f"居民{i}",
            gender="F",
            birth_date=dt.date(1945, 1, 1),
            grid=grids[i % 10],
            area_path=grids[i % 10].path,
            population_type="resident",
        )
        for i in range(people + returns)
    ]
    Person.objects.bulk_create(rows, batch_size=2000)
    ids = list(Person.objects.order_by("pk").values_list("pk", flat=True))
    elders, travellers = ids[:people], ids[people:]
    devices = []
    for n, pk in enumerate(elders):
        silent = n % 100 == 0
        for door in (0, 1):
            seen = now - dt.timedelta(hours=(30 + 10 * door) if silent else (1 + door))
            devices.append(
                Device(
                    code=f"D{n:06d}-{door}",
                    name="门磁",
                    kind="door",
                    grid=grids[n % 10],
                    area_path=grids[n % 10].path,
                    watched_person_id=pk,
                    last_seen_at=seen,
                    last_value=1,
                )
            )
    Device.objects.bulk_create(devices, batch_size=2000)
    today = now.date()
    RiskArea.objects.bulk_create(
        [
            RiskArea(
                region_name=f"某市第{k}区",
                region_code=f"{130100 + k}",
                level="high",
                valid_from=today - dt.timedelta(days=5),
            )
            for k in range(40)
        ]
    )
    TravelRecord.objects.bulk_create(
        [
            TravelRecord(
                person_id=pk,
                origin=f"某省某市第{k % 40}区" if k % 50 == 0 else f"另一省第{k}县",
                arrived_on=today - dt.timedelta(days=k % 20),
                area_path=grids[k % 10].path,
            )
            for k, pk in enumerate(travellers)
        ],
        batch_size=2000,
    )


def run(people: int, returns: int) -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from zhizhi import clock
    from zhizhi.alerts import risk, rules
    from zhizhi.alerts.rule_models import Alarm, AlertRule

    now = clock.now()
    t0 = time.perf_counter()
    call_command("migrate", "--no-input", verbosity=0)
    print(f"database {connection.vendor}: migrated in {time.perf_counter() - t0:.1f} s", flush=True)
    t0 = time.perf_counter()
    build(people, returns, now)
    print(
        f"built {people:,} watched people, {2 * people:,} doors, {returns:,} returns in "
        f"{time.perf_counter() - t0:.1f} s",
        flush=True,
    )

    idle = AlertRule.objects.create(
        code="IDLE", name="无活动", kind="inactivity", device_kind="door", params={"silent_seconds": 86400}
    )
    t0 = time.perf_counter()
    raised = rules.sweep_silence(now)
    first_s = time.perf_counter() - t0
    person_s, _ = best_of(lambda: rules.sweep_silence(now))
    person_alarms = Alarm.objects.filter(rule=idle).count()
    idle.enabled = False
    idle.save()
    missing = AlertRule.objects.create(
        code="OFF", name="离线", kind="missing_data", device_kind="door", params={"silent_seconds": 86400}
    )
    rules.sweep_silence(now)  # raise once, so both timed sweeps update existing alarms
    device_s, _ = best_of(lambda: rules.sweep_silence(now))
    device_alarms = Alarm.objects.filter(rule=missing).count()
    missing.enabled = False
    missing.save()

    AlertRule.objects.create(
        code="RISK", name="风险区返回人员", kind="list_match", params={"lookback_days": 14}
    )
    t0 = time.perf_counter()
    first = risk.run(now)
    run_first_s = time.perf_counter() - t0
    rerun_s, again = best_of(lambda: risk.run(now))
    match_s, found = best_of(lambda: risk.matches(now.date()))

    print(f"\ninactivity over {2 * people:,} doors of {people:,} people ({person_alarms} silent people)")
    print(f"  first person sweep (raises {raised})   {first_s * 1000:8.1f} ms")
    print(f"  person sweep (updates)               {person_s * 1000:8.1f} ms")
    print(
        f"  device sweep, same doors ({device_alarms} alarms) {device_s * 1000:8.1f} ms   "
        f"person / device = {person_s / device_s:.2f}; alarms {person_alarms} vs {device_alarms}"
    )
    print(f"\nrisk list: {returns:,} returns × 40 areas ({len(found)} matches)")
    print(f"  first run (raised {first['raised']}, pushes)     {run_first_s * 1000:8.1f} ms")
    print(f"  re-run (updated {again['updated']}, raised {again['raised']})     {rerun_s * 1000:8.1f} ms")
    print(
        f"  matching only                        {match_s * 1000:8.1f} ms   run / matching = "
        f"{rerun_s / match_s:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=5_000)
    parser.add_argument("--returns", type=int, default=20_000)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run(args.people, args.returns)
        return
    print(
        f"care monitoring and risk match, {args.people:,} people, {args.returns:,} returns on {args.db}, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (other work shares the machine)",
        flush=True,
    )
    child_args = [f"--people={args.people}", f"--returns={args.returns}"]
    sys.exit(run_child_shown(__file__, args.db, PG_NAME, child_args, prefix="zhizhi-bench-care-"))


if __name__ == "__main__":
    main()
