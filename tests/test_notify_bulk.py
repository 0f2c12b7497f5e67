"""The set-based inbox path of the outbox: thousands of inbox rows delivered in one call with a
handful of statements, a worker that died between its insert and its update, two workers taking
rows at once (PostgreSQL row locks), and external channels still sent one request per row with
retries."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.factories import Street
from tests.fakes import FakeGateway
from tests.pg import at_once
from zhizhi import clock
from zhizhi.notify import broadcast as bc
from zhizhi.notify import services
from zhizhi.notify.models import BroadcastRecipient, InboxMessage, OutboxMessage
from zhizhi.orgs.models import OrgUnit, User

pytestmark = pytest.mark.django_db

START = timezone.make_aware(dt.datetime(2026, 11, 23, 9, 0))


def queue_inbox(users: list[User], n: int, prefix: str = "bulk", at: dt.datetime = START) -> list[str]:
    """n inbox rows spread over `users`, written the way broadcasts write them (one bulk insert)."""
    rows = [
        OutboxMessage(
            channel="inbox",
            recipient=f"user:{users[i % len(users)].pk}",
            user=users[i % len(users)],
            subject=f"通知{i}" if i % 10 else "",  # every tenth without a subject: the body stands in
            body=f"第{i}条：今晚十点在社区广场集合",
            link=f"/notify/x/{i}",
            idempotency_key=f"{prefix}:{i}",
            created_at=at,
            next_attempt_at=at,
        )
        for i in range(n)
    ]
    OutboxMessage.objects.bulk_create(rows, batch_size=1000)
    return [r.idempotency_key for r in rows]


def test_a_broadcast_to_5000_people_reaches_every_inbox_in_one_call(street: Street) -> None:
    unit = OrgUnit.objects.create(code="BULK", name="应急队伍", kind="volunteer_team")
    User.objects.bulk_create(
        [User(username=f"bulk{i:05d}", role="volunteer", org_unit=unit) for i in range(5000)],
        batch_size=1000,
    )
    with clock.frozen_at(START):
        b = bc.send_broadcast(
            street.users["dispatcher"],
            subject="紧急撤离",
            body="请立即组织低洼地带居民撤离",
            units=[unit],
            channels=["inbox"],
            request_id="flood-1",
        )
    assert b.total == 5000
    with clock.frozen_at(START + dt.timedelta(seconds=5)):
        with CaptureQueriesContext(connection) as queries:
            assert services.deliver_due() == {"sent": 5000, "retry": 0, "dead": 0}
        assert services.deliver_due() == {"sent": 0, "retry": 0, "dead": 0}
    # Set-based: a few statements per batch of 2,000 (SQLite splits a multi-row INSERT into chunks
    # of its bound-parameter limit), where the per-row path needs several per row (over 15,000).
    assert len(queries) < 150, [q["sql"][:80] for q in queries]
    inbox = InboxMessage.objects.filter(user__org_unit=unit)
    assert inbox.count() == 5000
    assert set(inbox.values_list("subject", "body")) == {("紧急撤离", "请立即组织低洼地带居民撤离")}
    keys = set(inbox.values_list("user_id", "outbox_key"))
    assert keys == {
        (uid, bc.inbox_key(b.pk, uid))
        for uid in User.objects.filter(org_unit=unit).values_list("pk", flat=True)
    }
    rows = OutboxMessage.objects.filter(cause=bc.cause_of(b))
    assert set(rows.values_list("status", "attempts", "lease_until", "sent_at")) == {
        (OutboxMessage.SENT, 1, None, START + dt.timedelta(seconds=5))
    }
    # Receipts: every recipient delivered at the moment their row was sent, none read yet.
    report = bc.receipts(b)
    assert (report["total"], report["delivered"], report["read"]) == (5000, 5000, 0)
    assert report["by_channel"]["inbox"]["sent"] == 5000
    assert set(BroadcastRecipient.objects.filter(broadcast=b).values_list("delivered_at", flat=True)) == {
        START + dt.timedelta(seconds=5)
    }
    # Reading one inbox copy marks that recipient read.
    someone = User.objects.get(username="bulk00042")
    bc.mark_read(someone, InboxMessage.objects.get(user=someone))
    assert bc.receipts(b)["read"] == 1


def test_the_inbox_copy_matches_what_the_per_row_adapter_writes(street: Street) -> None:
    u = street.users
    with clock.frozen_at(START):
        keys = queue_inbox([u["grid_a1"], u["grid_b1"]], 20)
        assert services.deliver_due()["sent"] == 20
    by_key = {m.outbox_key: m for m in InboxMessage.objects.all()}
    assert set(by_key) == set(keys)
    first, second = by_key["bulk:0"], by_key["bulk:1"]
    assert (first.user, first.subject, first.link) == (
        u["grid_a1"],
        "第0条：今晚十点在社区广场集合",
        "/notify/x/0",
    )
    assert (second.user, second.subject, second.read_at) == (u["grid_b1"], "通知1", None)
    assert services.unread_count(u["grid_a1"]) == 10


def test_both_paths_write_the_same_inbox_copy(street: Street) -> None:
    """A long Chinese body without a subject: the subject is its first 60 characters either way."""
    worker = street.users["grid_a1"]
    body = "请各网格员立即到岗，" * 12  # 120 characters
    fields = ("user_id", "subject", "body", "link", "created_at", "read_at")
    copies = []
    for batch, key in ((services.INBOX_BATCH, "bulk-path"), (0, "per-row-path")):
        with clock.frozen_at(START):
            services.enqueue("inbox", f"user:{worker.pk}", body, key=key, user=worker, link="/cases/1/")
            assert services.deliver_due(inbox_batch=batch)["sent"] == 1
        copies.append(InboxMessage.objects.filter(outbox_key=key).values(*fields).get())
    assert copies[0] == copies[1]
    assert copies[0]["subject"] == body[:60] and len(copies[0]["subject"]) == 60


def test_a_worker_killed_between_insert_and_update_leaves_no_duplicate(street: Street) -> None:
    u = street.users
    with clock.frozen_at(START):
        keys = queue_inbox([u["grid_a1"], u["community_a"], u["leader"]], 3000)
        claimed = services._claim(services.INBOX_BATCH, services._BULK_INBOX)  # the worker took 2,000 …
        assert len(claimed) == 2000
        # … inserted the InboxMessages of the first half of its batch, then died before the UPDATE.
        half = OutboxMessage.objects.filter(pk__in=claimed).order_by("id")[:1000]
        InboxMessage.objects.bulk_create(
            [
                InboxMessage(
                    user_id=m.user_id, subject=m.subject or "x", body=m.body, outbox_key=m.idempotency_key
                )
                for m in half
            ]
        )
        # Another worker now: the 1,000 rows nobody leased go out, the dead worker's are still leased.
        assert services.deliver_due()["sent"] == 1000
        assert OutboxMessage.objects.filter(status=OutboxMessage.SENDING).count() == 2000
    with clock.frozen_at(START + services.LEASE + dt.timedelta(seconds=1)):
        assert services.deliver_due() == {"sent": 2000, "retry": 0, "dead": 0}
        assert services.deliver_due()["sent"] == 0
    counts = Counter(InboxMessage.objects.values_list("outbox_key", flat=True))
    assert set(counts) == set(keys) and set(counts.values()) == {1}
    assert OutboxMessage.objects.exclude(status=OutboxMessage.SENT).count() == 0
    assert sorted(Counter(OutboxMessage.objects.values_list("attempts", flat=True)).items()) == [
        (1, 1000),
        (2, 2000),
    ]


def test_inbox_copies_written_before_a_crash_are_kept_and_not_doubled(street: Street) -> None:
    u = street.users
    with clock.frozen_at(START):
        keys = queue_inbox([u["grid_a1"], u["grid_b1"]], 2000)
        # Half the batch already reached the inbox (a worker wrote them, then died before marking
        # the rows sent); one of them has even been read since.
        half = OutboxMessage.objects.order_by("id")[:1000]
        InboxMessage.objects.bulk_create(
            [
                InboxMessage(user_id=m.user_id, subject="先到", body=m.body, outbox_key=m.idempotency_key)
                for m in half
            ]
        )
        InboxMessage.objects.filter(outbox_key="bulk:7").update(read_at=START)
        assert services.deliver_due() == {"sent": 2000, "retry": 0, "dead": 0}
    counts = Counter(InboxMessage.objects.values_list("outbox_key", flat=True))
    assert set(counts) == set(keys) and set(counts.values()) == {1}
    assert InboxMessage.objects.filter(subject="先到").count() == 1000  # the earlier copies stay as they were
    assert InboxMessage.objects.get(outbox_key="bulk:7").read_at == START
    assert set(OutboxMessage.objects.values_list("status", "attempts")) == {(OutboxMessage.SENT, 1)}


def test_an_inbox_row_without_a_user_takes_the_per_row_path_and_gives_up(street: Street) -> None:
    with clock.frozen_at(START):
        services.enqueue("inbox", "user:0", "无人", key="orphan:1")
        queue_inbox([street.users["grid_a1"]], 3)
        assert services.deliver_due() == {"sent": 3, "retry": 1, "dead": 0}
    orphan = OutboxMessage.objects.get(idempotency_key="orphan:1")
    assert orphan.status == OutboxMessage.PENDING and "without a user" in orphan.last_error
    moment = START
    for _ in range(services.MAX_ATTEMPTS):
        moment += dt.timedelta(hours=2)
        with clock.frozen_at(moment):
            services.deliver_due()
    orphan.refresh_from_db()
    assert orphan.status == OutboxMessage.DEAD and InboxMessage.objects.count() == 3


def test_external_channels_still_go_one_request_per_row_with_retries(
    street: Street, gateway: FakeGateway
) -> None:
    worker = street.users["grid_a1"]
    worker.set_sensitive("phone", "13900001111")
    worker.save()
    gateway.down = True
    with clock.frozen_at(START):
        queue_inbox([worker], 2500)
        for i in range(3):
            services.enqueue("sms", f"1390000{i:04d}", f"短信{i}", key=f"sms:{i}")
        services.notify_user(worker, "集合", "十点集合", key="case:9", channels=("sms",))
        services.enqueue("dingtalk", "指挥中心群", "群通知", key="robot:1")
        # The inbox does not wait for the gateway; each external row failed on its own and backs off.
        assert services.deliver_due() == {"sent": 2500, "retry": 5, "dead": 0}
    external = OutboxMessage.objects.exclude(channel="inbox")
    assert set(external.values_list("status", "attempts")) == {(OutboxMessage.PENDING, 1)}
    assert set(external.values_list("next_attempt_at", flat=True)) == {START + services.backoff(1)}
    assert "503" in external.first().last_error  # type: ignore[union-attr]
    gateway.down = False
    with clock.frozen_at(START + dt.timedelta(minutes=1)):
        assert services.deliver_due() == {"sent": 5, "retry": 0, "dead": 0}
    # One HTTP request per row, each with the row's own idempotency key; the phone decrypted for the SMS.
    assert sorted(r["key"] for r in gateway.received) == sorted(
        external.values_list("idempotency_key", flat=True)
    )
    assert next(r for r in gateway.received if r["key"] == "case:9:sms")["body"]["phone"] == "13900001111"
    assert external.get(idempotency_key="case:9:sms").recipient == f"user:{worker.pk}"
    assert set(external.values_list("status", "attempts")) == {(OutboxMessage.SENT, 2)}


def test_drain_empties_a_burst_in_one_run_and_stops_at_its_time_cap(
    street: Street, gateway: FakeGateway
) -> None:
    with clock.frozen_at(START):
        for i in range(5):
            services.enqueue("sms", f"1390000{i:04d}", f"短信{i}", key=f"sms:{i}")
        queue_inbox([street.users["grid_a1"]], 30)
        # No time left after the first pass: one pass only, then the next run takes the rest.
        assert services.drain(limit=2, time_cap=dt.timedelta(0)) == {"sent": 32, "retry": 0, "dead": 0}
        # Pass after pass until nothing is due.
        assert services.drain(limit=2) == {"sent": 3, "retry": 0, "dead": 0}
    assert len(gateway.received) == 5
    assert OutboxMessage.objects.exclude(status=OutboxMessage.SENT).count() == 0


def test_the_huey_task_drains_the_outbox(street: Street, gateway: FakeGateway) -> None:
    from zhizhi.notify.tasks import sweep_outbox

    queue_inbox([street.users["grid_a1"]], 2500, at=clock.now())
    for i in range(250):
        services.enqueue("sms", f"1390000{i:04d}", f"短信{i}", key=f"sms:{i}")
    # Called directly, a huey task runs its function: 2,750 rows, more than one pass of 200.
    assert sweep_outbox.call_local() == {"sent": 2750, "retry": 0, "dead": 0}
    assert len(gateway.received) == 250 and InboxMessage.objects.count() == 2500


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_two_workers_at_once_never_take_the_same_row(street: Street) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs real concurrent connections with row locks (PostgreSQL)")
    keys = queue_inbox([street.users["grid_a1"], street.users["grid_b1"]], 6000, at=clock.now())

    def run() -> int:
        got = 0
        while True:  # small batches, so the two workers interleave claim after claim
            n = services.deliver_due(inbox_batch=250)["sent"]
            if not n:
                return got
            got += n

    sent = at_once(run, 2)
    assert sum(sent) == 6000 and len(sent) == 2
    # Each row leased exactly once (a second claim would have counted a second attempt) …
    assert set(OutboxMessage.objects.values_list("status", "attempts")) == {(OutboxMessage.SENT, 1)}
    # … and each inbox copy written exactly once.
    counts = Counter(InboxMessage.objects.values_list("outbox_key", flat=True))
    assert set(counts) == set(keys) and set(counts.values()) == {1}


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_rows_held_by_a_worker_that_dies_are_skipped_then_delivered_at_once(street: Street) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs real concurrent connections with row locks (PostgreSQL)")
    import threading

    from django.db import transaction

    keys = queue_inbox([street.users["grid_a1"]], 1000, at=clock.now())
    held = threading.Event()
    release = threading.Event()

    def dying_worker() -> None:
        # Takes the first 300 rows the way a batch does, writes their inbox copies, then its
        # connection goes away before the commit.
        try:
            with transaction.atomic():
                ids = list(services._due(clock.now()).values_list("pk", flat=True)[:300])
                InboxMessage.objects.bulk_create(
                    [
                        InboxMessage(
                            user_id=m.user_id, subject=m.subject, body=m.body, outbox_key=m.idempotency_key
                        )
                        for m in OutboxMessage.objects.filter(pk__in=ids)
                    ]
                )
                held.set()
                release.wait(30)
                raise RuntimeError("worker killed")
        except RuntimeError:
            pass
        finally:
            connection.close()

    thread = threading.Thread(target=dying_worker)
    thread.start()
    assert held.wait(30)
    try:
        # The other worker does not wait for the held rows, nor take them.
        assert services.deliver_due()["sent"] == 700
        assert OutboxMessage.objects.filter(status=OutboxMessage.PENDING).count() == 300
    finally:
        release.set()
        thread.join()
    # The dead worker's transaction rolled back: its rows are due again at once, no lease to wait out.
    assert services.deliver_due()["sent"] == 300
    counts = Counter(InboxMessage.objects.values_list("outbox_key", flat=True))
    assert set(counts) == set(keys) and set(counts.values()) == {1}
    assert set(OutboxMessage.objects.values_list("status", "attempts")) == {(OutboxMessage.SENT, 1)}
