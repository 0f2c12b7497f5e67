"""Write notifications into the outbox (inside the caller's transaction) and deliver them.

Delivery claims due rows with a lease: a worker killed mid-delivery leaves rows in "sending"
whose lease expires, and the next sweep takes them again. Every attempt carries the same
idempotency key, so a receiver that already has the message drops the repeat.

Inbox rows (a broadcast or an emergency instruction queues thousands at once) are delivered
set-based, 2,000 rows per INSERT and UPDATE; the other channels go one row at a time through their
adapters.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.db import connection, transaction
from django.db.models import F, Q, QuerySet

from zhizhi import clock
from zhizhi.notify.adapters import ADAPTERS, DeliveryError
from zhizhi.notify.models import InboxMessage, OutboxMessage

log = logging.getLogger(__name__)

LEASE = dt.timedelta(minutes=2)
MAX_ATTEMPTS = 12  # with the backoff below: about six hours of retrying before giving up
BASE_DELAY_SECONDS = 30
MAX_DELAY_SECONDS = 3600


def backoff(attempts: int) -> dt.timedelta:
    """Delay before the next try after `attempts` failed tries: 30 s, 1 min, 2 min … capped at 1 h."""
    return dt.timedelta(seconds=min(BASE_DELAY_SECONDS * 2 ** max(attempts - 1, 0), MAX_DELAY_SECONDS))


def enqueue(
    channel: str,
    recipient: str,
    body: str,
    *,
    key: str,
    subject: str = "",
    link: str = "",
    user: Any = None,
    cause: str = "",
) -> OutboxMessage:
    """Add one message; the same key twice gives the existing row (safe to retry)."""
    if channel not in ADAPTERS:
        raise ValueError(f"unknown channel {channel}")
    message, _ = OutboxMessage.objects.get_or_create(
        idempotency_key=key,
        defaults={
            "channel": channel,
            "recipient": recipient,
            "body": body,
            "subject": subject,
            "link": link,
            "user": user,
            "cause": cause,
        },
    )
    transaction.on_commit(_kick_worker)
    return message


def notify_user(
    user: Any,
    subject: str,
    body: str,
    *,
    key: str,
    link: str = "",
    cause: str = "",
    channels: Iterable[str] = ("inbox",),
) -> list[OutboxMessage]:
    """A message to a staff user on each channel; SMS goes to the user's phone, read at delivery time."""
    out = []
    for channel in channels:
        if channel == "sms" and not getattr(user, "phone_enc", ""):
            continue
        recipient = f"user:{user.pk}" if channel in ("inbox", "sms") else getattr(user, "email", "")
        out.append(
            enqueue(
                channel,
                recipient,
                body,
                key=f"{key}:{channel}",
                subject=subject,
                link=link,
                user=user,
                cause=cause,
            )
        )
    return out


def enqueue_many(rows: list[OutboxMessage]) -> None:
    """Many messages in one INSERT per thousand; a key already queued is dropped (safe to retry)."""
    if not rows:
        return
    OutboxMessage.objects.bulk_create(rows, batch_size=1000, ignore_conflicts=True)
    transaction.on_commit(_kick_worker)


def _kick_worker() -> None:
    from zhizhi.notify.tasks import deliver_outbox_task

    try:
        deliver_outbox_task()
    except Exception:  # the periodic sweep delivers it anyway
        log.exception("could not schedule outbox delivery")


def _due(now: dt.datetime, only: Q | None = None) -> QuerySet[OutboxMessage]:
    """Rows due now, oldest first, locked as they are read (PostgreSQL skips rows another worker
    holds): pending and their time has come, or "sending" with an expired lease (their worker died)."""
    due = OutboxMessage.objects.filter(
        Q(status=OutboxMessage.PENDING, next_attempt_at__lte=now)
        | Q(status=OutboxMessage.SENDING, lease_until__lt=now)
    )
    if only is not None:
        due = due.filter(only)
    due = due.order_by("next_attempt_at", "id")
    if connection.features.has_select_for_update_skip_locked:
        due = due.select_for_update(skip_locked=True)
    return due


def _claim(limit: int, only: Q | None = None) -> list[int]:
    """Lease up to `limit` due rows (those of `only`, if given) to this worker and return their ids;
    once leased they are not due until the lease runs out."""
    now = clock.now()
    with transaction.atomic():
        ids = list(_due(now, only).values_list("pk", flat=True)[:limit])
        OutboxMessage.objects.filter(pk__in=ids).update(
            status=OutboxMessage.SENDING, lease_until=now + LEASE, attempts=F("attempts") + 1
        )
    return ids


# The set-based inbox path: rows per batch, and how long one call keeps taking batches.
INBOX_BATCH = 2000
INBOX_TIME_CAP = dt.timedelta(seconds=30)
# Inbox rows without a user (deleted since) take the per-row path, which retries and gives up.
_BULK_INBOX = Q(channel="inbox", user__isnull=False)


def _deliver_inbox_batch(limit: int) -> int:
    """Deliver up to `limit` due inbox rows set-based; returns how many were delivered.

    One transaction: read the due rows locking them (SKIP LOCKED: a second worker takes the next
    rows, never these), one INSERT … SELECT copying them into the inbox inside the database that
    skips keys already there (`outbox_key` is unique), one UPDATE marking them sent. The row locks
    are the lease: no network call happens under them, so a batch holds them for milliseconds, and
    a worker killed mid-batch rolls back, leaving its rows due again at once. Rows that a per-row
    worker has leased are left to it until its lease runs out; an InboxMessage an earlier attempt
    or the per-row adapter already wrote is skipped: never a duplicate. The copy is what
    `InboxAdapter` writes: the subject, or the body's first 60 characters when there is none."""
    now = clock.now()
    inbox = connection.ops.quote_name(InboxMessage._meta.db_table)
    outbox = connection.ops.quote_name(OutboxMessage._meta.db_table)
    with transaction.atomic():
        ids = list(_due(now, _BULK_INBOX).values_list("pk", flat=True)[:limit])
        if not ids:
            return 0
        # ON CONFLICT … DO NOTHING: PostgreSQL ≥ 9.5 and SQLite ≥ 3.24 (SQLite needs the WHERE to
        # tell the upsert from a join constraint).
        sql = f"""
            INSERT INTO {inbox} (user_id, subject, body, link, outbox_key, created_at)
            SELECT user_id, COALESCE(NULLIF(subject, ''), SUBSTR(body, 1, 60)), body, link,
                   idempotency_key, %s
            FROM {outbox} WHERE id IN ({", ".join(["%s"] * len(ids))}) ORDER BY id
            ON CONFLICT (outbox_key) DO NOTHING
        """  # noqa: S608 - only table names and placeholders are interpolated
        with connection.cursor() as cursor:
            cursor.execute(sql, [now, *ids])
        OutboxMessage.objects.filter(pk__in=ids).update(
            status=OutboxMessage.SENT,
            sent_at=now,
            lease_until=None,
            last_error="",
            attempts=F("attempts") + 1,
        )
    return len(ids)


# Other apps' recipient references, resolved at delivery like "user:<id>" (e.g. the cases app
# registers "case" for "case:<id>:reporter"): prefix → function returning the address, or raising
# DeliveryError. Keeps personal addresses out of the outbox table.
RESOLVERS: dict[str, Callable[[OutboxMessage], str]] = {}


def _resolve_recipient(message: OutboxMessage) -> None:
    """SMS to a user: the phone is decrypted for the gateway only, never stored in the outbox."""
    if message.channel == "sms" and message.recipient.startswith("user:") and message.user is not None:
        message.recipient = message.user.decrypt_sensitive("phone")
        return
    resolver = RESOLVERS.get(message.recipient.split(":", 1)[0])
    if resolver is not None:
        message.recipient = resolver(message)


def deliver_due(limit: int = 200, *, inbox_batch: int = INBOX_BATCH) -> dict[str, int]:
    """Deliver what is due now; returns counts of sent, retried and dead messages.

    First the inbox rows, set-based, batch after batch while full batches keep coming (at most
    INBOX_TIME_CAP): a street-wide notice reaches thousands of inboxes in seconds. Then up to
    `limit` rows one by one through their adapters (SMS, robots, e-mail, webhooks: each its own
    request with its own idempotency key, retried with backoff). `inbox_batch=0` turns the set-based
    path off: the inbox rows then go one by one too (the benchmark's baseline)."""
    counts = {"sent": 0, "retry": 0, "dead": 0}
    stop_at = time.monotonic() + INBOX_TIME_CAP.total_seconds()
    while inbox_batch > 0:
        delivered = _deliver_inbox_batch(inbox_batch)
        counts["sent"] += delivered
        if delivered < inbox_batch or time.monotonic() >= stop_at:
            break
    ids = _claim(limit)
    for message in OutboxMessage.objects.filter(pk__in=ids).select_related("user").order_by("id"):
        stored_recipient = message.recipient
        try:
            _resolve_recipient(message)
            ADAPTERS[message.channel].deliver(message)
        except DeliveryError as exc:
            dead = message.attempts >= MAX_ATTEMPTS
            OutboxMessage.objects.filter(pk=message.pk).update(
                status=OutboxMessage.DEAD if dead else OutboxMessage.PENDING,
                next_attempt_at=clock.now() + backoff(message.attempts),
                lease_until=None,
                last_error=str(exc)[:500],
            )
            counts["dead" if dead else "retry"] += 1
            continue
        OutboxMessage.objects.filter(pk=message.pk).update(
            status=OutboxMessage.SENT,
            sent_at=clock.now(),
            lease_until=None,
            last_error="",
            recipient=stored_recipient,
        )
        counts["sent"] += 1
    return counts


DRAIN_TIME_CAP = dt.timedelta(seconds=50)


def drain(limit: int = 200, *, time_cap: dt.timedelta = DRAIN_TIME_CAP) -> dict[str, int]:
    """`deliver_due` again and again until a pass finds nothing due, or `time_cap` has passed.

    What the huey tasks run: a burst of thousands of rows (an emergency instruction, a street-wide
    notice) is delivered in one run instead of 200 rows a minute. The cap (under the one-minute
    sweep) bounds a run; whatever is left is taken by the next kick or sweep."""
    total = {"sent": 0, "retry": 0, "dead": 0}
    stop_at = time.monotonic() + time_cap.total_seconds()
    while True:
        counts = deliver_due(limit)
        for name, n in counts.items():
            total[name] += n
        if not any(counts.values()) or time.monotonic() >= stop_at:
            return total


def unread_count(user: Any) -> int:
    return InboxMessage.objects.filter(user=user, read_at__isnull=True).count()


def mark_read(user: Any, message_id: int) -> bool:
    return bool(
        InboxMessage.objects.filter(user=user, pk=message_id, read_at__isnull=True).update(
            read_at=clock.now()
        )
    )
