"""The SLA sweep over 1,000,000 open cases, and the KPI aggregation of a district-year of
1,000,000 cases, on PostgreSQL (the throwaway database `bench_cases`, created and dropped here).

Rows are generated server-side (INSERT … SELECT over generate_series, every column given; the
constant ones as the model's defaults), so loading a million rows takes seconds, not minutes.

Sweep: N open cases (待签收/处置中/延期审批中) whose current-stage deadlines are spread over the
coming weeks, except a few thousand: `--due` already past their deadline (→ red), as many past
80 % (→ yellow), and a few hundred past their escalation time. Timed:
  select   the sweep's three indexed range queries alone (what runs every minute when nothing is due)
  sweep    one full `sla.sweep()` (limit 5000): the queries plus marking each due case in its own
           transaction (row lock, save with change log, timeline event, outbox rows)
  again    the next sweep, with nothing left to do

KPI: N more cases spread over the year before, in every status, with realistic columns. Timed
with `zhizhi.cases.kpi` (total, by unit, by community) against one hand-written SQL query with
FILTER counts for the same figures, both over the same rows in the same run.

Prints figures; never asserts timings.
Run: .venv/bin/python bench/bench_sla.py [--rows 1000000] [--due 3000]
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

from _common import best_of, insert_series, run_child_shown  # noqa: E402

PG_NAME = "bench_cases"


def insert_cases(rows: int, offset: int, expressions: dict[str, str]) -> float:
    """INSERT `rows` cases server-side; `expressions` are SQL over g (the series number)."""
    from zhizhi.cases.models import Case

    return insert_series(Case, offset + 1, offset + rows, expressions)


def run(rows: int, due: int, part: str) -> None:
    import django

    django.setup()
    import io

    from django.core.management import call_command
    from django.db import connection

    from zhizhi import clock

    t0 = time.perf_counter()
    call_command("migrate", "--no-input", verbosity=0)
    call_command("demo_street", seed=1, scale=0.05, stdout=io.StringIO())
    call_command("load_responsibility_list", stdout=io.StringIO())
    print(f"setup (migrate, small demo street, responsibility list): {time.perf_counter() - t0:.1f} s")
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(id), count(*) FROM cases_category WHERE parent_id IS NOT NULL")
        first_category, categories = cursor.fetchone()
        cursor.execute("SELECT min(id), count(*) FROM orgs_orgunit")
        first_unit, units = cursor.fetchone()
        cursor.execute("SELECT min(id), count(*) FROM geo_region WHERE level = 'grid'")
        first_grid, grids = cursor.fetchone()
        cursor.execute("SELECT path FROM geo_region WHERE level = 'grid' ORDER BY id")
        paths = [r[0] for r in cursor.fetchall()]
    path_array = "ARRAY[" + ",".join(f"'{p}'" for p in paths) + "]"
    # Grid ids are consecutive in the demo load; the path follows the same index.
    common = {
        "number": "'B' || lpad(g::text, 12, '0')",
        "title": "'垃圾满溢 ' || g",
        "category_id": f"{first_category} + g % {categories}",
        "unit_id": f"{first_unit} + g % {units}",
        "grid_id": f"{first_grid} + g % {grids}",
        "area_path": f"({path_array})[1 + g % {grids}]",
        "rate_token": "md5(g::text)",
    }

    now = clock.now()
    if part in ("sweep", "both"):
        sweep_part(rows, due, common, now)
    if part in ("kpi", "both"):
        kpi_part(rows, common, now, paths)


def sweep_part(rows: int, due: int, common: dict[str, str], now: dt.datetime) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from zhizhi import clock
    from zhizhi.cases import sla
    from zhizhi.cases.models import Case

    # --- the sweep over N open cases ----------------------------------------------------------
    stride = max(rows // max(due, 1), 1)
    open_cases = {
        **common,
        "status": "(ARRAY['dispatched','handling','extension_pending'])[1 + g % 3]",
        "reported_at": "now() - interval '2 days'",
        "dispatched_at": "now() - interval '2 days'",
        "sla_start_at": "now()",  # so a refresh (after an escalation) keeps a future deadline
        "stage": "CASE WHEN g % 3 = 0 THEN 'sign' ELSE 'handle' END",
        # Due cases every `stride` rows; yellow ones just after them; the rest due in the future.
        "stage_due_at": (
            f"CASE WHEN g % {stride} = 0 THEN now() - interval '5 minutes' "
            f"ELSE now() + (1 + g % 20000) * interval '1 minute' END"
        ),
        "stage_warn_at": (
            f"CASE WHEN g % {stride} IN (0, 1) THEN now() - interval '10 minutes' "
            f"ELSE now() + (g % 20000) * interval '1 minute' END"
        ),
        "escalate_at": f"CASE WHEN g % ({stride} * 10) = 5 THEN now() - interval '1 minute' END",
        "sla_level": f"CASE WHEN g % ({stride} * 10) = 5 THEN 'red' ELSE 'green' END",
    }
    took = insert_cases(rows, 0, open_cases)
    print(f"loaded {rows:,} open cases in {took:.1f} s ({rows / took:,.0f} rows/s)")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FILTER (WHERE stage_due_at <= now() AND sla_level IN ('green','yellow')),"
            " count(*) FILTER (WHERE stage_warn_at <= now() AND stage_due_at > now()"
            " AND sla_level = 'green'),"
            " count(*) FILTER (WHERE escalate_at <= now()) FROM cases_case"
        )
        red, yellow, escalate = cursor.fetchone()
    print(f"due now: {red:,} to turn red, {yellow:,} to turn yellow, {escalate:,} to escalate")

    open_statuses = ("dispatched", "handling", "extension_pending")

    def select_only() -> tuple[int, int, int]:
        at = clock.now()
        a = Case.objects.filter(
            status__in=open_statuses, stage_warn_at__lte=at, stage_due_at__gt=at, sla_level="green"
        ).order_by("stage_warn_at")
        b = Case.objects.filter(
            status__in=open_statuses, stage_due_at__lte=at, sla_level__in=("green", "yellow")
        ).order_by("stage_due_at")
        c = Case.objects.filter(status__in=open_statuses, escalate_at__lte=at).order_by("escalate_at")
        return tuple(len(list(q.values_list("pk", flat=True)[:5000])) for q in (a, b, c))  # type: ignore[return-value]

    select_s, found = best_of(select_only)
    plan_q = Case.objects.filter(
        status__in=open_statuses, stage_due_at__lte=now, sla_level__in=("green", "yellow")
    ).order_by("stage_due_at")
    plan = plan_q.values_list("pk", flat=True)[:5000].explain()
    t0 = time.perf_counter()
    with CaptureQueriesContext(connection) as captured:
        counts = sla.sweep()
    sweep_s = time.perf_counter() - t0
    again_s, again = best_of(sla.sweep, repeat=1)
    marked = counts["yellow"] + counts["red"] + counts["escalated"]
    # Where the marking time goes: database time per kind of statement.
    kinds: dict[str, list[float]] = {}
    for q in captured.captured_queries:
        words = q["sql"].split()
        table = next(
            (
                w.strip('"')
                for w in words
                if w.strip('"').startswith(("cases_", "notify_", "zhizhi_", "orgs_"))
            ),
            "?",
        )
        kinds.setdefault(f"{words[0]} {table}", []).append(float(q["time"]))
    top = sorted(kinds.items(), key=lambda kv: -sum(kv[1]))[:6]
    db_s = sum(sum(v) for v in kinds.values())
    print(
        f"SLA sweep over {rows:,} open cases:\n"
        f"  select only (3 indexed range queries, ids found {found}): {select_s * 1000:.0f} ms\n"
        f"  full sweep {counts}: {sweep_s:.2f} s"
        f" ({sweep_s / max(marked, 1) * 1000:.1f} ms per marked case)\n"
        f"  next sweep, nothing left {again}: {again_s * 1000:.0f} ms\n"
        f"  plan of the red query: {plan.splitlines()[0].strip()}\n"
        f"  full sweep: {len(captured.captured_queries):,} statements, {db_s:.1f} s of database time; top:"
    )
    for kind, times in top:
        print(
            f"    {kind:<40} {len(times):>6} × {sum(times) / len(times) * 1000:6.1f} ms = {sum(times):6.1f} s"
        )


def kpi_part(rows: int, common: dict[str, str], now: dt.datetime, paths: list[str]) -> None:
    from django.db import connection

    from zhizhi.cases import kpi
    from zhizhi.cases.models import Case

    # --- KPI over a district-year of N cases ---------------------------------------------------
    year = now.year - 1
    start = f"make_timestamptz({year}, 1, 1, 0, 0, 0, 'Asia/Shanghai')"
    year_cases = {
        **common,
        "number": "'K' || lpad(g::text, 12, '0')",
        "reported_at": f"{start} + (g % 525600) * interval '1 minute'",
        "registered_at": f"{start} + (g % 525600) * interval '1 minute' + interval '5 minutes'",
        "dispatched_at": f"{start} + (g % 525600) * interval '1 minute' + interval '10 minutes'",
        "signed_at": f"{start} + (g % 525600) * interval '1 minute' + interval '40 minutes'",
        "due_at": f"{start} + (g % 525600) * interval '1 minute' + interval '3 days'",
        "finished_at": (
            f"CASE WHEN g % 50 = 1 THEN NULL ELSE {start} + (g % 525600) * interval '1 minute'"
            " + (CASE WHEN g % 12 = 0 THEN interval '4 days' ELSE (g % 60) * interval '1 hour' END) END"
        ),
        "closed_at": (
            f"CASE WHEN g % 50 IN (1, 2) THEN NULL ELSE {start} + (g % 525600) * interval '1 minute'"
            " + interval '4 days 2 hours' END"
        ),
        "visited_at": (
            f"CASE WHEN g % 5 IN (0, 1) OR g % 50 IN (1, 2) THEN NULL ELSE {start}"
            " + (g % 525600) * interval '1 minute' + interval '5 days' END"
        ),
        "status": (
            "CASE WHEN g % 50 = 1 THEN 'handling' WHEN g % 50 = 2 THEN 'finished'"
            " WHEN g % 97 = 3 THEN 'cancelled' WHEN g % 5 IN (0, 1) THEN 'closed' ELSE 'visited' END"
        ),
        "satisfaction": (
            "CASE WHEN g % 5 IN (0, 1) OR g % 50 IN (1, 2) THEN '' WHEN g % 20 = 7 THEN 'unsatisfied'"
            " WHEN g % 10 = 4 THEN 'basic' ELSE 'satisfied' END"
        ),
        "rework_count": "CASE WHEN g % 25 = 9 THEN 1 ELSE 0 END",
        "extension_count": "CASE WHEN g % 33 = 8 THEN 1 ELSE 0 END",
        "overdue": "g % 12 = 0",
    }
    took = insert_cases(rows, rows, year_cases)
    with connection.cursor() as cursor:
        # About 3 % signed late: the sweep's red mark on the sign stage (按期签收率 reads it).
        cursor.execute(
            "INSERT INTO cases_caseevent (case_id, at, action, from_status, to_status, note, photos,"
            " data, request_id) SELECT id, dispatched_at + interval '2 hours', 'sla_red', 'dispatched',"
            " 'dispatched', '', '[]'::jsonb, '{\"stage\": \"sign\"}'::jsonb, '' FROM cases_case"
            " WHERE number LIKE 'K%' AND id % 33 = 0"
        )
        # A live database has statistics (autovacuum); a plan made without them would measure
        # the planner's ignorance, not the query.
        cursor.execute("ANALYZE cases_case")
        cursor.execute("ANALYZE cases_caseevent")
    print(f"loaded {rows:,} cases of {year} in {took:.1f} s")
    tz_period = kpi.Period.month(year, 1)
    period = kpi.Period(tz_period.start, kpi.Period.month(year, 12).end, str(year))
    community_prefix = len(paths[0]) - 4  # the grid's path less its own 3-digit code and slash
    everything = Case.objects.all()
    kpi_total_s, row = best_of(lambda: kpi.total(everything, period), repeat=2)
    kpi_unit_s, by_unit = best_of(lambda: kpi.breakdown(everything, period, "unit"), repeat=2)
    kpi_comm_s, by_comm = best_of(
        lambda: kpi.breakdown(everything, period, f"prefix:{community_prefix}"), repeat=2
    )

    hand = """
        SELECT unit_id,
          count(*) FILTER (WHERE reported_at >= %(s)s AND reported_at < %(e)s),
          count(*) FILTER (WHERE registered_at >= %(s)s AND registered_at < %(e)s),
          count(*) FILTER (WHERE due_at >= %(s)s AND due_at < %(e)s AND status NOT IN ('cancelled','merged')),
          count(*) FILTER (WHERE due_at >= %(s)s AND due_at < %(e)s AND status NOT IN ('cancelled','merged')
                            AND closed_at IS NOT NULL),
          count(*) FILTER (WHERE due_at >= %(s)s AND due_at < %(e)s AND status NOT IN ('cancelled','merged')
                            AND closed_at IS NOT NULL AND finished_at <= due_at),
          count(*) FILTER (WHERE due_at >= %(s)s AND due_at < %(e)s AND status NOT IN ('cancelled','merged')
                            AND closed_at IS NOT NULL AND rework_count > 0),
          count(*) FILTER (WHERE due_at >= %(s)s AND due_at < %(e)s AND status NOT IN ('cancelled','merged')
                            AND extension_count > 0),
          count(*) FILTER (WHERE visited_at >= %(s)s AND visited_at < %(e)s AND satisfaction <> ''),
          count(*) FILTER (WHERE visited_at >= %(s)s AND visited_at < %(e)s
                            AND satisfaction IN ('satisfied','basic')),
          avg(finished_at - dispatched_at) FILTER (WHERE finished_at >= %(s)s AND finished_at < %(e)s),
          percentile_cont(0.9) WITHIN GROUP (ORDER BY finished_at - dispatched_at)
            FILTER (WHERE finished_at >= %(s)s AND finished_at < %(e)s)
        FROM cases_case
        WHERE reported_at >= %(s)s AND reported_at < %(e)s OR due_at >= %(s)s AND due_at < %(e)s
           OR visited_at >= %(s)s AND visited_at < %(e)s OR finished_at >= %(s)s AND finished_at < %(e)s
        GROUP BY ROLLUP (unit_id)
    """

    def hand_sql() -> list[tuple]:
        with connection.cursor() as cursor:
            cursor.execute(hand, {"s": period.start, "e": period.end})
            return cursor.fetchall()

    hand_s, hand_rows = best_of(hand_sql, repeat=2)
    total_hand = next(r for r in hand_rows if r[0] is None)
    print(
        f"KPI over a district-year ({rows:,} cases of {year}; "
        f"{len(by_unit)} units, {len(by_comm)} communities):\n"
        f"  kpi.total (one row)                 {kpi_total_s:.2f} s   accepted {row.accepted:,}, "
        f"结案率 {row.close_rate or 0:.1%}, 按期结案率 {row.on_time_rate or 0:.1%}, "
        f"满意率 {row.satisfaction_rate or 0:.1%}\n"
        f"  kpi.breakdown by unit               {kpi_unit_s:.2f} s\n"
        f"  kpi.breakdown by community          {kpi_comm_s:.2f} s\n"
        f"  hand-written SQL (per unit + total) {hand_s:.2f} s   accepted {total_hand[1]:,}\n"
        f"  ratio kpi.breakdown(unit) / hand SQL: {kpi_unit_s / hand_s:.1f}×"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=2000)
    parser.add_argument("--part", choices=("sweep", "kpi", "both"), default="both")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run(args.rows, args.due, args.part)
        return
    print(
        f"SLA sweep and KPI on PostgreSQL, {args.rows:,} rows each, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f} (other work shares the machine)",
        flush=True,
    )
    child_args = [f"--rows={args.rows}", f"--due={args.due}", f"--part={args.part}"]
    sys.exit(run_child_shown(__file__, "postgres", PG_NAME, child_args, prefix="zhizhi-bench-sla-"))


if __name__ == "__main__":
    main()
