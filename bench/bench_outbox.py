"""Outbox delivery of inbox rows: N inbox rows of one broadcast (the shape of a street-wide notice or
an emergency instruction) delivered by `notify.services.deliver_due`, against two baselines measured
in the same run on the same database:

- raw: one `bulk_create` of the same N InboxMessage rows in one transaction, nothing else (the floor
  any delivery path pays: claiming, leasing and marking sent come on top);
- per-row: the path every row took before (each row claimed, handed to the inbox adapter, marked sent
  on its own), on a sample of the rows (`--per-row`, default 1,000) since it is slow.

The child process migrates a throwaway database (PostgreSQL `bench_outbox` when reachable, else a
temporary SQLite file), bulk-creates N active staff and sends them one inbox broadcast.

Prints figures; never asserts timings.
Run: .venv/bin/python bench/bench_outbox.py [--people 5000] [--per-row 1000] [--engine postgres|sqlite]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import pg_reachable, run_child  # noqa: E402

PG_NAME = "bench_outbox"


def child(people: int, per_row: int) -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction

    from zhizhi.notify import broadcast as bc
    from zhizhi.notify import services
    from zhizhi.notify.models import InboxMessage, OutboxMessage
    from zhizhi.orgs.models import OrgUnit, User

    call_command("migrate", "--no-input", verbosity=0)
    unit = OrgUnit.objects.create(code="BENCH", name="测试队伍", kind="volunteer_team")
    leader = User.objects.create(username="bench-leader", role="street_leader")
    User.objects.bulk_create(
        [User(username=f"p{i:06d}", role="volunteer", org_unit=unit) for i in range(people)],
        batch_size=2000,
    )
    b = bc.send_broadcast(
        leader, subject="紧急撤离", body="请立即组织低洼地带居民撤离", units=[unit], channels=["inbox"]
    )
    rows = OutboxMessage.objects.filter(cause=bc.cause_of(b))

    def requeue() -> None:
        InboxMessage.objects.all().delete()
        rows.update(status=OutboxMessage.PENDING, attempts=0, sent_at=None, lease_until=None)

    # Raw floor: the same InboxMessage rows, one bulk insert in one transaction.
    data = list(rows.order_by("id").values_list("user_id", "subject", "body", "link", "idempotency_key"))
    raw = []
    for _ in range(2):
        requeue()
        started = time.perf_counter()
        with transaction.atomic():
            InboxMessage.objects.bulk_create(
                [
                    InboxMessage(user_id=u, subject=s, body=t, link=k, outbox_key=key)
                    for u, s, t, k, key in data
                ],
                batch_size=services.INBOX_BATCH,
            )
        raw.append(time.perf_counter() - started)

    def deliver(**kwargs: int) -> tuple[int, float]:
        started = time.perf_counter()
        delivered = 0
        while got := services.deliver_due(**kwargs)["sent"]:
            delivered += got
        return delivered, time.perf_counter() - started

    bulk = []
    for _ in range(2):
        requeue()
        bulk.append(deliver())
    assert InboxMessage.objects.count() == people and rows.filter(status=OutboxMessage.SENT).count() == people
    # Per-row baseline on a sample: the other rows are parked as sent so only the sample is due.
    requeue()
    sample = list(rows.order_by("id").values_list("pk", flat=True)[:per_row])
    rows.exclude(pk__in=sample).update(status=OutboxMessage.SENT)
    one_by_one = deliver(inbox_batch=0)
    assert InboxMessage.objects.count() == len(sample)
    print(
        json.dumps(
            {
                "engine": connection.vendor,
                "people": people,
                "raw_s": min(raw),
                "bulk": min(bulk, key=lambda r: r[1]),
                "per_row": one_by_one,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=5000)
    parser.add_argument("--per-row", type=int, default=1000)
    parser.add_argument("--engine", choices=("postgres", "sqlite"), default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.people, min(args.per_row, args.people))
        return
    engine = args.engine or ("postgres" if pg_reachable() else "sqlite")
    r = run_child(
        __file__,
        engine,
        PG_NAME,
        [f"--people={args.people}", f"--per-row={args.per_row}"],
        prefix="zhizhi-bench-outbox-",
    )
    load = os.getloadavg()[0]
    raw_rate = r["people"] / r["raw_s"]
    n, bulk_s = r["bulk"]
    m, per_row_s = r["per_row"]
    bulk_rate = n / bulk_s
    per_row_rate = m / per_row_s
    print(f"Outbox inbox delivery, {os.cpu_count()} cores, load average {load:.1f} (shared machine)")
    print(f"engine {r['engine']}; one broadcast to {r['people']:,} people = {r['people']:,} inbox rows")
    print(f"raw bulk insert of the InboxMessages   {r['raw_s']:7.2f} s  {raw_rate:9,.0f} rows/s  (floor)")
    print(
        f"deliver_due, set-based                 {bulk_s:7.2f} s  {bulk_rate:9,.0f} rows/s  "
        f"{bulk_s / r['raw_s']:.2f}× the raw insert's time"
    )
    print(
        f"deliver_due, per row ({m:,} sampled)    {per_row_s:7.2f} s  {per_row_rate:9,.0f} rows/s  "
        f"set-based is {bulk_rate / per_row_rate:.0f}× faster  (best of 2 for raw and set-based)"
    )


if __name__ == "__main__":
    main()
