"""A staff broadcast to N people (inbox + SMS): the set-based `broadcast.send_broadcast` against the
per-recipient path (`notify.services.notify_user` once per person, the way case flows notify a few
people), both writing the same outbox rows in one transaction on the same database in the same run
(each `notify_user` row also schedules its own delivery kick after commit, as it does in production;
the broadcast schedules one);
then the time to deliver the inbox rows (`deliver_due`), to read the receipts and to mark one read.

The child process migrates a throwaway database (PostgreSQL `bench_broadcast` when reachable, else a
temporary SQLite file) and bulk-creates N active staff in one unit, half of them with a phone on file.

Prints figures; never asserts timings.
Run: .venv/bin/python bench/bench_broadcast.py [--people 5000] [--engine postgres|sqlite]
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

PG_NAME = "bench_broadcast"


def child(people: int) -> None:
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
        [
            User(username=f"p{i:06d}", role="volunteer", org_unit=unit, phone_enc="enc" if i % 2 else "")
            for i in range(people)
        ],
        batch_size=2000,
    )
    users = list(User.objects.filter(org_unit=unit))
    rows_expected = people + people // 2

    def baseline(round_no: int) -> float:
        started = time.perf_counter()
        with transaction.atomic():
            for user in users:
                services.notify_user(
                    user, "集结", "到社区报到", key=f"base{round_no}:u{user.pk}", channels=("inbox", "sms")
                )
        return time.perf_counter() - started

    def set_based(round_no: int) -> float:
        started = time.perf_counter()
        bc.send_broadcast(
            leader,
            subject="集结",
            body="到社区报到",
            units=[unit],
            channels=["inbox", "sms"],
            request_id=f"r{round_no}",
        )
        return time.perf_counter() - started

    base_s = min(baseline(i) for i in range(2))
    fast_s = min(set_based(i) for i in range(2))
    assert OutboxMessage.objects.filter(cause__startswith="notify.broadcast:").count() == 2 * rows_expected
    OutboxMessage.objects.all().delete()

    b = bc.send_broadcast(
        leader, subject="演练", body="", units=[unit], channels=["inbox"], request_id="deliver"
    )
    started = time.perf_counter()
    delivered = 0
    while True:
        got = services.deliver_due(limit=1000)["sent"]
        if not got:
            break
        delivered += got
    deliver_s = time.perf_counter() - started
    started = time.perf_counter()
    report = bc.receipts(b)
    receipts_s = time.perf_counter() - started
    message = InboxMessage.objects.filter(user=users[0]).first()
    started = time.perf_counter()
    bc.mark_read(users[0], message)  # type: ignore[arg-type]
    mark_s = time.perf_counter() - started
    print(
        json.dumps(
            {
                "engine": connection.vendor,
                "people": people,
                "rows": rows_expected,
                "baseline_s": base_s,
                "set_s": fast_s,
                "delivered": delivered,
                "deliver_s": deliver_s,
                "receipts_s": receipts_s,
                "receipts_total": report["total"],
                "mark_ms": mark_s * 1000,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=5000)
    parser.add_argument("--engine", choices=("postgres", "sqlite"), default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.people)
        return
    engine = args.engine or ("postgres" if pg_reachable() else "sqlite")
    r = run_child(__file__, engine, PG_NAME, [f"--people={args.people}"], prefix="zhizhi-bench-broadcast-")
    load = os.getloadavg()[0]
    print(f"Staff broadcast, {os.cpu_count()} cores, load average {load:.1f} (shared machine)")
    print(f"engine {r['engine']}; {r['people']:,} people, inbox + SMS = {r['rows']:,} outbox rows per send")
    print(
        f"per-recipient notify_user  {r['baseline_s']:7.2f} s\n"
        f"set-based send_broadcast   {r['set_s']:7.2f} s   "
        f"speed-up {r['baseline_s'] / r['set_s']:.1f}×  (best of 2 rounds each, one transaction per send)"
    )
    print(
        f"inbox delivery: {r['delivered']:,} rows in {r['deliver_s']:.2f} s "
        f"({r['delivered'] / max(r['deliver_s'], 1e-9):,.0f} rows/s); "
        f"receipts of {r['receipts_total']:,} people {r['receipts_s'] * 1000:.0f} ms; "
        f"mark one read {r['mark_ms']:.1f} ms"
    )


if __name__ == "__main__":
    main()
