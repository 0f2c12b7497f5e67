"""The cockpit board of every demo indicator (130, four scenes) for the whole street, read from the
daily rollups versus the same figures computed straight from the raw rows, over a district-year of
cases on PostgreSQL (the throwaway database `bench_rollups`, created and dropped here).

The child migrates, loads the demo street (`--scale`, 1.0 ≈ 15,000 residents, 300 enterprises) and
the demo responsibility list, then inserts `--cases` cases spread over the past 365 days server-side
(INSERT … SELECT over generate_series, every column given), across every grid, channel and category,
with dispatch, deadline, finish (some late), close and return visit. Timed:

  backfill     rollup.backfill of the 365 days for all indicators (what the demo loader and a rebuild do)
  nightly      rollup.build(yesterday): what the 00:10 task does each night
  board·rollup services.board(street, day=yesterday): the street, its communities, yesterday and the
               day before, read from the rollups
  board·raw    the same two days of every indicator computed from the raw rows (services.compute_many)
  board·today  services.board(street) for today: yesterday's rollup plus today's changes where that
               holds, the rest from raw rows (the live cache cleared first)
  year trend   services.trend(cases_month, street, 365) from the rollups vs computed from raw rows

The rollup and the raw computation are checked to agree on every figure of the street and its
communities. Ratio = raw ÷ rollup in the same run. Prints figures; never asserts timings.
Run: .venv/bin/python bench/bench_rollups.py [--cases 100000] [--scale 0.2]
     (the note in docs/indicators.md: --cases 1000000 --scale 1)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import best_of, insert_series, run_child  # noqa: E402

PG_NAME = "bench_rollups"
SATISFACTION = "(ARRAY['satisfied','basic','unsatisfied'])"


def insert_cases(rows: int, start: dt.datetime) -> float:
    """INSERT `rows` cases over the 365 days from `start`, server-side."""

    from zhizhi.cases.models import Case, Category
    from zhizhi.geo.models import Region

    grids = list(Region.objects.filter(level="grid").order_by("code").values_list("id", "path"))
    leaves = list(Category.objects.filter(parent__isnull=False).order_by("code").values_list("id", flat=True))
    channels = [c for c, _ in Case.CHANNELS]
    step = 365 * 86400 / rows
    at = f"(TIMESTAMPTZ '{start.isoformat()}' + g * INTERVAL '{step:.6f} seconds')"
    done = f"({at} + (g % 120) * INTERVAL '1 hour')"
    finished = f"(g % 10 <> 0 AND {done} < now())"
    visited = f"({finished} AND g % 3 = 0 AND {done} + INTERVAL '1 day' < now())"
    grid_ids = "ARRAY[" + ",".join(str(i) for i, _ in grids) + "]"
    grid_paths = "ARRAY[" + ",".join(f"'{p}'" for _, p in grids) + "]"
    expressions = {
        "number": "'B' || g",
        "title": "'bench case ' || g",
        "status": f"CASE WHEN {visited} THEN 'visited' WHEN {finished} THEN 'closed' ELSE 'handling' END",
        "channel": "(ARRAY[" + ",".join(f"'{c}'" for c in channels) + f"])[1 + (g * 7) % {len(channels)}]",
        "category_id": "(ARRAY[" + ",".join(str(i) for i in leaves) + f"])[1 + (g * 31) % {len(leaves)}]",
        "grid_id": f"({grid_ids})[1 + g % {len(grids)}]",
        "area_path": f"({grid_paths})[1 + g % {len(grids)}]",
        "urgent": "g % 50 = 0",
        "reported_at": at,
        "registered_at": at,
        "created_at": at,
        "updated_at": at,
        "dispatched_at": f"{at} + INTERVAL '30 minutes'",
        "signed_at": f"{at} + INTERVAL '1 hour'",
        "due_at": f"{at} + INTERVAL '3 days'",
        "finished_at": f"CASE WHEN {finished} THEN {done} END",
        "closed_at": f"CASE WHEN {finished} THEN {done} + INTERVAL '1 hour' END",
        "visited_at": f"CASE WHEN {visited} THEN {done} + INTERVAL '1 day' END",
        "satisfaction": f"CASE WHEN {visited} THEN {SATISFACTION}[1 + (g / 3) % 3] ELSE '' END",
    }
    return insert_series(Case, 1, rows, expressions)


def child(cases: int, scale: float) -> None:
    import django

    django.setup()
    import io

    from django.core.cache import cache
    from django.core.management import call_command

    from zhizhi import clock
    from zhizhi.cockpit import rollup, services
    from zhizhi.cockpit.models import Indicator, IndicatorValue
    from zhizhi.geo.models import Region

    t0 = time.perf_counter()
    call_command("migrate", "--no-input", verbosity=0)
    call_command("demo_street", seed=1, scale=scale, stdout=io.StringIO())
    call_command("load_responsibility_list", stdout=io.StringIO())
    today = clock.today()
    yesterday = today - dt.timedelta(days=1)
    first = today - dt.timedelta(days=365)
    insert_seconds = insert_cases(cases, services.sources.local_midnight(first))
    call_command("load_indicators", stdout=io.StringIO())
    setup = time.perf_counter() - t0

    indicators = list(Indicator.objects.filter(enabled=True))
    t0 = time.perf_counter()
    written = rollup.backfill(first, yesterday)
    backfill_seconds = time.perf_counter() - t0
    indicators = list(Indicator.objects.filter(enabled=True))
    assert not any(i.stale_since for i in indicators)
    t0 = time.perf_counter()
    rollup.build(yesterday)
    nightly_seconds = time.perf_counter() - t0

    street = Region.objects.get(level="street")
    board_rollup, board = best_of(lambda: services.board(street, day=yesterday))
    tree = services.Tree.load()
    day_before = yesterday - dt.timedelta(days=1)
    board_raw, raw = best_of(
        lambda: services.compute_many(indicators, day_before, yesterday, tree=tree), repeat=2
    )

    # The two must agree on every figure of the street and its communities.
    by_code = {i.code: i for i in indicators}
    paths = {r["id"]: p for p, r in tree.by_path.items()}
    mismatches = 0
    for row in board["indicators"]:
        expected = raw[by_code[row["code"]].pk][street.path][1][0]
        if (expected is None) != (row["value"] is None) or (
            expected is not None and abs(expected - row["value"]) > 1e-6 * max(1.0, abs(expected))
        ):
            mismatches += 1
    for child_row in board["children"]:
        for code, v in child_row["values"].items():
            expected = raw[by_code[code].pk][paths[child_row["id"]]][1][0]
            if (expected is None) != (v is None) or (expected is not None and abs(expected - v) > 1e-6):
                mismatches += 1

    def today_board() -> object:
        cache.clear()
        return services.board(street)

    board_today, _ = best_of(today_board, repeat=2)
    trend_rollup, _ = best_of(lambda: services.trend("cases_month", street, 365))
    ind = by_code["cases_month"]
    trend_raw, _ = best_of(lambda: services.compute(ind, first, yesterday, tree=tree), repeat=2)
    print(
        json.dumps(
            {
                "cases": cases,
                "residents": services.value("population", street),
                "indicators": len(indicators),
                "regions": len(tree.by_path),
                "setup_s": setup,
                "insert_s": insert_seconds,
                "backfill_s": backfill_seconds,
                "nightly_s": nightly_seconds,
                "rollup_rows": sum(written.values()),
                "table_rows": IndicatorValue.objects.count(),
                "board_rollup_s": board_rollup,
                "board_raw_s": board_raw,
                "board_today_s": board_today,
                "trend_rollup_s": trend_rollup,
                "trend_raw_s": trend_raw,
                "mismatches": mismatches,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--scale", type=float, default=0.2, help="demo street scale (1.0 ≈ 15,000 residents)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.cases, args.scale)
        return
    child_args = [f"--cases={args.cases}", f"--scale={args.scale}"]
    r = run_child(__file__, "postgres", PG_NAME, child_args, prefix="zhizhi-bench-rollups-")
    load = os.getloadavg()[0]
    print(
        f"Cockpit rollups on PostgreSQL, {os.cpu_count()} cores, load average {load:.1f} "
        "(other work shares the machine)"
    )
    print(
        f"{r['cases']:,} cases over 365 days, {r['residents']:,.0f} residents, {r['indicators']} indicators, "
        f"{r['regions']} regions; setup {r['setup_s']:.1f} s (case insert {r['insert_s']:.1f} s)"
    )
    print(
        f"backfill 365 days: {r['backfill_s']:.1f} s, {r['rollup_rows']:,} rollup rows "
        f"({r['rollup_rows'] / max(r['backfill_s'], 1e-9):,.0f} rows/s)"
    )
    print(f"nightly rollup of one day (all indicators, every region): {r['nightly_s']:.1f} s")
    print(f"{'':<34}{'rollup s':>10}{'raw s':>10}{'ratio':>9}")
    print(
        f"{'board, street + communities, 2 days':<34}{r['board_rollup_s']:>10.3f}{r['board_raw_s']:>10.3f}"
        f"{r['board_raw_s'] / r['board_rollup_s']:>9.1f}"
    )
    print(
        f"{'year trend of one indicator':<34}{r['trend_rollup_s']:>10.3f}{r['trend_raw_s']:>10.3f}"
        f"{r['trend_raw_s'] / r['trend_rollup_s']:>9.1f}"
    )
    print(
        f"board today (live: yesterday's rollup + today's changes, registers raw): {r['board_today_s']:.3f} s"
    )
    print(f"figures where the rollup and the raw computation disagree: {r['mismatches']}")
    print("ratio = time from raw rows ÷ time from rollups, same figures, same run")


if __name__ == "__main__":
    main()
