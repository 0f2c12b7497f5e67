"""What one live event costs the alarm board: every "alarm" event makes each open board fetch the rows of
the alarms it names (`GET /alerts/rows/?ids=…`, the page's own filters): the board's price per change.

The child process migrates a throwaway database (SQLite file, and PostgreSQL `bench_alarm_board` when
reachable), loads the demo street (scale 0.05), one device per grid and a threshold rule, then raises
active alarms in steps (100 → 300 → 1,000 → 3,000, spread over every grid, one in ten acknowledged). At
each step it times, through Django's test client, as the street leader (sees every alarm) and as one
grid worker (sees their grid's):
- `rows`: the whole table body (at most 300 rows, most severe first): a page load or a filter change;
- `event`: what one live event costs an open board: the rows of the alarms it names (here 3, a burst);
- `query`: the bare query behind it (`desk.board_alarms(...)[:300]` evaluated) — the baseline of this
  run, so rows / query is the cost of the page itself;
- `ack`: one acknowledge POST (`/alerts/alarms/<id>/ack/`, htmx).

Prints p50/p95 figures and the ratio against the baseline; never asserts.
Run: .venv/bin/python bench/bench_alarm_board.py [--engine sqlite|postgres|both] [--repeat 15]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

from _common import pct, pg_reachable, run_child  # noqa: E402

PG_NAME = "bench_alarm_board"
STEPS = (100, 300, 1000, 3000)


def timed(fn: Any, repeat: int) -> list[float]:
    fn()  # warm caches (templates, permissions) once
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def time_acks(client: Any, pending: list[int]) -> list[float]:
    """One htmx acknowledge per not-yet-acknowledged alarm (the first one warms up, untimed)."""
    out = []
    for i, pk in enumerate(pending):
        started = time.perf_counter()
        client.post(f"/alerts/alarms/{pk}/ack/", headers={"HX-Request": "true"})
        if i:
            out.append((time.perf_counter() - started) * 1000)
    return out


# --- the child ------------------------------------------------------------------------------------
def child(repeat: int) -> None:
    import io

    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client

    from zhizhi import clock
    from zhizhi.alerts import alarms, desk
    from zhizhi.alerts.models import Device
    from zhizhi.alerts.rule_models import Alarm, AlertRule
    from zhizhi.geo.models import Region
    from zhizhi.orgs.models import User

    call_command("migrate", "--no-input", verbosity=0)
    call_command("demo_street", seed=1, scale=0.05, stdout=io.StringIO())
    rule = AlertRule.objects.create(
        code="BENCH",
        name="压测水位",
        kind="threshold",
        device_kind="water_level",
        params={"ladder": [{"above": 1.2, "for_seconds": 0, "severity": "major"}]},
    )
    grids = list(Region.objects.filter(level=Region.GRID).order_by("code"))
    devices = [
        Device.objects.create(
            code=f"B-{g.code}",
            name=f"{g.name}水位计",
            kind="water_level",
            grid=g,
            lng=g.center_lng,
            lat=g.center_lat,
        )
        for g in grids
    ]
    leader = User.objects.get(username="leader")
    worker = User.objects.filter(role="grid_worker", regions__level=Region.GRID).order_by("username").first()
    clients = {}
    for name, user in (("leader", leader), ("grid", worker)):
        client = Client(SERVER_NAME="localhost")
        client.force_login(user)
        clients[name] = (client, user)
    severities = ["info", "minor", "major", "critical"]
    made = 0
    results: list[dict[str, Any]] = []
    for target in STEPS:
        now = clock.now()
        while made < target:
            device = devices[made % len(devices)]
            key = f"bench:{made}"
            severity = severities[made % 4]
            alarm = alarms.raise_or_update(
                rule, key, severity, at=now, area_path=device.area_path, device=device, value=1.3
            )
            if made % 10 == 0:
                alarms.acknowledge(alarm, leader)
            made += 1
        for name, (client, user) in clients.items():
            visible = desk.alarms_visible_to(user).filter(status=Alarm.ACTIVE).count()
            rows = timed(lambda c=client: c.get("/alerts/rows/"), repeat)
            newest = list(desk.alarms_visible_to(user).order_by("-pk").values_list("pk", flat=True)[:3])
            ids = ",".join(map(str, newest))
            event = timed(lambda c=client, ids=ids: c.get(f"/alerts/rows/?ids={ids}"), repeat)
            query = timed(lambda u=user: list(desk.board_alarms(u, {})[:300]), repeat)
            pending = list(
                desk.alarms_visible_to(user).filter(acknowledged_at__isnull=True).values_list("pk", flat=True)
            )[: repeat + 1]
            ack = time_acks(client, pending)
            results.append(
                {
                    "alarms": target,
                    "reader": name,
                    "visible": visible,
                    "rows": rows,
                    "event": event,
                    "query": query,
                    "ack": ack,
                }
            )
    print(json.dumps(results))


# --- the parent -----------------------------------------------------------------------------------
def run(engine: str, repeat: int) -> list[dict[str, Any]]:
    return run_child(__file__, engine, PG_NAME, ["--repeat", str(repeat)], prefix="bench_alarm_board_")


def report(engine: str, results: list[dict[str, Any]]) -> None:
    print(f"[{engine}] alarm board, ms (p50 unless p95); ratio = rows / the bare query (baseline)")
    head = ("alarms", "reader", "visible", "rows", "rows p95", "event", "event p95", "query", "ratio", "ack")
    print(" ".join(f"{h:>9}" for h in head))
    for r in results:
        rows50, query50 = pct(r["rows"], 0.5), pct(r["query"], 0.5)
        cells = [r["alarms"], r["reader"], r["visible"], f"{rows50:.1f}", f"{pct(r['rows'], 0.95):.1f}"]
        cells += [f"{pct(r['event'], 0.5):.1f}", f"{pct(r['event'], 0.95):.1f}"]
        cells += [f"{query50:.1f}", f"{rows50 / max(query50, 0.01):.1f}"]
        cells += [f"{pct(r['ack'], 0.5):.1f}" if r["ack"] else "—"]
        print(" ".join(f"{c:>9}" for c in cells))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--engine", choices=("sqlite", "postgres", "both"), default="both")
    args = parser.parse_args()
    if args.child:
        child(args.repeat)
        return
    engines = ["sqlite", "postgres"] if args.engine == "both" else [args.engine]
    for engine in engines:
        if engine == "postgres" and not pg_reachable():
            print("[postgres] not reachable on 127.0.0.1:5432: skipped")
            continue
        report(engine, run(engine, args.repeat))


if __name__ == "__main__":
    main()
