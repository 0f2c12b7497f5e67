"""Benchmark: declaring an emergency (启动应急) over 13 adjacent buildings and over a whole street of
about 10,000 households, against a raw insert of the same number of task rows in the same run.

    .venv/bin/python bench/bench_emergency.py [--scale 2.2] [--buildings 13] [--db sqlite|postgres]

On a throwaway database (a SQLite file in a temporary directory, or PostgreSQL `bench_emergency`,
created and dropped here) it loads the demo street at `--scale` (2.2 ≈ 11,000 houses, ~10,000 of
them lived in), then times, best of three:

  declare   `services.declare_incident`: validate the area, find the buildings in it, list every
            household and its people of special care, create one task per household assigned to the
            grid's workers (least-loaded), queue the workers' notifications in the outbox, write the
            timeline, publish the live event — one transaction;
  list      `services.care_list`: the people of special care of the incident, sorted, with building /
            unit / floor / room and their responsible workers;
  raw       the floor: the same number of bare task rows, written the same way, nothing else.

Aims (the issue): 13 buildings / ~790 households under 1 s; 10,000 households under 5 s. Figures
only, never an assert.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import best_of, child_env, fresh_database, pg_admin  # noqa: E402

PG_NAME = "bench_emergency"


def raw_insert(incident: Any, house_rows: list[tuple[int, int, int]]) -> float:
    """The same number of task rows for the same houses, written the way declaring writes them (COPY
    on PostgreSQL, multi-row INSERTs on SQLite), nothing else: the floor. Removed afterwards."""
    from django.db import transaction

    from zhizhi.cockpit.emergency.models import EvacuationTask, Incident
    from zhizhi.cockpit.emergency.services import insert_tasks

    scratch = Incident.objects.get(pk=incident.pk)
    scratch.pk = None
    scratch._state.adding = True
    scratch.number = "BENCH" + uuid.uuid4().hex[:12]
    scratch.request_id = None
    scratch.save()
    rows = [
        (scratch.pk, h, b, g, None, i, 0, 0, 0, "pending", None, "", "")
        for i, (h, b, g) in enumerate(house_rows)
    ]
    t0 = time.perf_counter()
    with transaction.atomic():
        insert_tasks(rows)
    took = time.perf_counter() - t0
    EvacuationTask.objects.filter(incident=scratch).delete()
    scratch.delete()
    return took


def case(label: str, declare: Callable[[str], Any], user: Any) -> None:
    from zhizhi.cockpit.emergency import services
    from zhizhi.cockpit.emergency.models import EvacuationTask
    from zhizhi.notify.models import OutboxMessage

    took, result = best_of(lambda: declare(uuid.uuid4().hex))
    incident = result.incident
    tasks = EvacuationTask.objects.filter(incident=incident)
    assigned = tasks.filter(assignee__isnull=False).count()
    queued = OutboxMessage.objects.filter(cause=f"emergency.incident:{incident.pk}").count()
    listed_took, people = best_of(lambda: services.care_list(user, incident))
    vulnerable_households = tasks.filter(vulnerable__gt=0).count()
    listed_households = len({p.task_id for p in people})
    rows = list(tasks.values_list("house_id", "building_id", "grid_id"))
    raw = min(raw_insert(incident, rows) for _ in range(3))
    print(
        f"{label}: {incident.buildings_total} buildings, {incident.households_total:,} households, "
        f"{incident.residents_total:,} residents, {incident.vulnerable_total:,} people of special care"
    )
    print(
        f"  declare {took:7.3f} s   ({assigned:,}/{len(rows):,} tasks assigned, "
        f"{queued:,} notifications queued)"
    )
    print(
        f"  list    {listed_took:7.3f} s   ({len(people):,} people in {listed_households:,} of "
        f"{vulnerable_households:,} vulnerable households)"
    )
    print(f"  raw     {raw:7.3f} s   ({len(rows):,} bare task rows written the same way (COPY / INSERT))")
    if raw > 0:
        print(f"  ratio   declare / raw insert = {took / raw:5.1f}×")


def run(scale: float, buildings: int, db: str) -> None:
    import django

    django.setup()
    from django.core.management import call_command

    from zhizhi.cockpit.emergency import demo, services
    from zhizhi.orgs.models import User

    t0 = time.perf_counter()
    call_command("migrate", "--no-input", verbosity=0)
    call_command("demo_street", seed=1, scale=scale, stdout=io.StringIO())
    street = demo.street_of()
    print(f"database {db}; setup (migrate, demo street at scale {scale}): {time.perf_counter() - t0:.1f} s")
    user = User.objects.get(username="dispatcher")
    ids, households = demo.drill_buildings(street, buildings)
    print(f"the {buildings} adjacent buildings with the most households hold {households:,} households")

    def by_buildings(request_id: str) -> Any:
        return services.declare_incident(
            user, kind="collapse", area_mode="buildings", building_ids=ids, request_id=request_id
        )

    def whole_street(request_id: str) -> Any:
        return services.declare_incident(
            user, kind="flood", area_mode="polygon", polygon=street.boundary, request_id=request_id
        )

    case(f"{buildings} buildings", by_buildings, user)
    case("whole street", whole_street, user)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scale", type=float, default=2.2, help="demo street scale (2.2 ≈ 10,000 households)"
    )
    parser.add_argument("--buildings", type=int, default=13)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_emergency_") as tmp:
        url = fresh_database(args.db, tmp, PG_NAME)
        os.environ.update(child_env(tmp, url))
        try:
            run(args.scale, args.buildings, args.db)
        finally:
            if args.db == "postgres":
                from django.db import connections

                connections.close_all()
                pg_admin(f"DROP DATABASE IF EXISTS {PG_NAME} WITH (FORCE)")


if __name__ == "__main__":
    main()
