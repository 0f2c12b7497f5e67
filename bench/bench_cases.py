"""Cases per second through the real intake (`services.register_case`: create → route →
auto-dispatch → outbox, one transaction each) on SQLite and PostgreSQL, as a ratio to the raw
single-row INSERT + COMMIT rate of the same database measured in the same run; and the
report-to-assigned latency (p50, p99) of the auto-dispatched cases.

Each engine runs in a child process against a throwaway database: a temporary SQLite file, and the
PostgreSQL database `bench_cases` (created and dropped here). The child migrates, loads the demo
street at scale 0.05 with the demo responsibility list (170 grids, real routing), then measures:

  raw     INSERT of one row into a three-column table, committed on its own (BEGIN/INSERT/COMMIT)
  intake  register_case by the dispatcher: a 垃圾满溢 report with the reporter's phone at a random
          building, routed point → grid → grid worker and dispatched at once; every call checked
          (status 待签收, assignee set). Latency = the call's wall time, i.e. from the report
          arriving to the case being assigned and its messages queued.

Prints figures; never asserts timings.
Run: .venv/bin/python bench/bench_cases.py [--cases 400] [--raw 2000] [--engines sqlite,postgres]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import run_child  # noqa: E402

PG_NAME = "bench_cases"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def child(cases: int, raw: int) -> None:
    import django

    django.setup()
    import io
    import random

    from django.core.management import call_command
    from django.db import connection, transaction

    from zhizhi.cases import services
    from zhizhi.cases.models import Case
    from zhizhi.geo.models import Building
    from zhizhi.notify.models import OutboxMessage
    from zhizhi.orgs.models import User

    call_command("migrate", "--no-input", verbosity=0)
    call_command("demo_street", seed=1, scale=0.05, stdout=io.StringIO())
    call_command("load_responsibility_list", stdout=io.StringIO())

    # Raw single-row INSERT + COMMIT.
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bench_raw (id INTEGER PRIMARY KEY, note VARCHAR(50), at TIMESTAMP)")
    started = time.perf_counter()
    for i in range(raw):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO bench_raw (id, note, at) VALUES (%s, %s, CURRENT_TIMESTAMP)", [i + 1, f"row {i}"]
            )
    raw_rate = raw / (time.perf_counter() - started)

    rng = random.Random(1)
    dispatcher = User.objects.get(username="dispatcher")
    points = list(Building.objects.values_list("lng", "lat"))

    def one(i: int) -> float:
        lng, lat = rng.choice(points)
        t0 = time.perf_counter()
        case = services.register_case(
            dispatcher,
            title="小区垃圾桶满溢",
            description="市民来电反映：小区3幢楼下垃圾桶满溢，已经两天没人清运，气味很大，希望尽快处理。",
            category="0103",
            lng=lng + rng.uniform(-0.0001, 0.0001),
            lat=lat + rng.uniform(-0.0001, 0.0001),
            channel="hotline",
            external_id=f"bench-{i}",
            reporter_name="张先生",
            reporter_phone=f"138{i % 100_000_000:08d}",
        )
        took = time.perf_counter() - t0
        assert case.status == "dispatched" and case.assignee_id is not None, (case.status, case.number)
        return took

    for i in range(20):  # warm-up: caches, spatial index, prepared paths
        one(100000 + i)
    outbox_before = OutboxMessage.objects.count()
    started = time.perf_counter()
    latencies = [one(i) for i in range(cases)]
    elapsed = time.perf_counter() - started
    print(
        json.dumps(
            {
                "engine": connection.vendor,
                "raw_per_s": raw_rate,
                "cases_per_s": cases / elapsed,
                "p50_ms": statistics.median(latencies) * 1000,
                "p99_ms": percentile(latencies, 0.99) * 1000,
                "max_ms": max(latencies) * 1000,
                "cases": cases,
                "outbox_per_case": (OutboxMessage.objects.count() - outbox_before) / cases,
                "dispatched": Case.objects.filter(status="dispatched").count(),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=400)
    parser.add_argument("--raw", type=int, default=2000)
    parser.add_argument("--engines", default="sqlite,postgres")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.cases, args.raw)
        return
    results = []
    for engine in args.engines.split(","):
        args_ = [f"--cases={args.cases}", f"--raw={args.raw}"]
        results.append(run_child(__file__, engine, PG_NAME, args_, prefix="zhizhi-bench-cases-"))
    load = os.getloadavg()[0]
    print(f"Case intake, {os.cpu_count()} cores, load average {load:.1f} (other work shares the machine)")
    print(
        f"{'engine':<11}{'raw INSERT+COMMIT/s':>20}{'cases/s':>10}{'ratio':>8}"
        f"{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'outbox/case':>13}"
    )
    for r in results:
        print(
            f"{r['engine']:<11}{r['raw_per_s']:>20.0f}{r['cases_per_s']:>10.1f}"
            f"{r['cases_per_s'] / r['raw_per_s']:>8.3f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}"
            f"{r['max_ms']:>9.1f}{r['outbox_per_case']:>13.1f}"
        )
    print(
        "ratio = cases/s ÷ raw single-row INSERT+COMMIT/s of the same database in the same run; "
        "latency = report arriving → case assigned (auto-dispatched), each of "
        f"{results[0]['cases'] if results else 0} calls"
    )


if __name__ == "__main__":
    main()
