"""Live updates for the alarm board, the cockpit and the emergency board (server-sent events).

A change that a screen should show at once is *published* as a `LiveEvent` row in the same transaction
as the change itself, so an event exists exactly when its change committed, whichever process made it
(a web worker, the huey worker, the MQTT bridge). `stream()` is the SSE view body: it polls the table
for rows newer than the client's last event id (every `POLL_SECONDS`), filters them by channel and by
the reader's area, and sends them; a reconnecting browser sends `Last-Event-ID` and misses nothing.

Old rows are purged nightly (`purge_live_events`); a screen reloaded after that simply starts fresh.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.db.models import Q
from django.http import HttpRequest, StreamingHttpResponse

from zhizhi import clock
from zhizhi.models import LiveEvent

POLL_SECONDS = 0.5
HEARTBEAT_SECONDS = 15.0
# A stream ends after this long and the browser's EventSource reconnects with Last-Event-ID, so a
# server restart or a changed permission takes effect within minutes.
MAX_STREAM_SECONDS = 300.0
KEEP = dt.timedelta(days=2)


def publish(channel: str, payload: dict[str, Any], *, area_path: str = "") -> LiveEvent:
    """Record a live event (call inside the transaction of the change it announces)."""
    return LiveEvent.objects.create(channel=channel, payload=payload, area_path=area_path)


def _area_q(user: Any) -> Q | None:
    """None: the reader sees every area; otherwise events under one of their regions or area-less."""
    from zhizhi.permissions import scope_paths

    if user.is_superuser:
        return None
    q = Q(area_path="")
    for path in scope_paths(user):
        if path:
            q |= Q(area_path__startswith=path)
    return q


def events_after(
    user: Any, channels: Iterable[str], last_id: int, *, area: str = "", limit: int = 200
) -> list[LiveEvent]:
    """Events newer than `last_id` on `channels` that `user` may see (optionally under `area`)."""
    qs = LiveEvent.objects.filter(pk__gt=last_id, channel__in=list(channels))
    area_q = _area_q(user)
    if area_q is not None:
        qs = qs.filter(area_q)
    if area:
        qs = qs.filter(Q(area_path__startswith=area) | Q(area_path=""))
    return list(qs.order_by("pk")[:limit])


def latest_id() -> int:
    row = LiveEvent.objects.order_by("-pk").values_list("pk", flat=True).first()
    return int(row or 0)


def _frame(event: LiveEvent) -> str:
    data = json.dumps(
        {"channel": event.channel, "at": event.at.isoformat(), **event.payload}, ensure_ascii=False
    )
    return f"id: {event.pk}\nevent: {event.channel}\ndata: {data}\n\n"


async def _frames(
    user: Any, channels: list[str], last_id: int, area: str, max_seconds: float
) -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    started = last_beat = loop.time()
    fetch = sync_to_async(events_after, thread_sensitive=False)
    yield "retry: 2000\n\n"
    while loop.time() - started < max_seconds:
        events = await fetch(user, channels, last_id, area=area)
        for event in events:
            last_id = event.pk
            yield _frame(event)
        now = loop.time()
        if now - last_beat >= HEARTBEAT_SECONDS:
            last_beat = now
            yield ": keep-alive\n\n"
        if not events:
            await asyncio.sleep(POLL_SECONDS)


def _frames_sync(
    user: Any, channels: list[str], last_id: int, area: str, max_seconds: float
) -> Iterator[str]:
    """The same stream for a WSGI server (the test live server, gunicorn sync workers): a WSGI server
    would otherwise read an async iterator to its end before sending anything."""
    started = last_beat = time.monotonic()
    yield "retry: 2000\n\n"
    while time.monotonic() - started < max_seconds:
        events = events_after(user, channels, last_id, area=area)
        for event in events:
            last_id = event.pk
            yield _frame(event)
        if time.monotonic() - last_beat >= HEARTBEAT_SECONDS:
            last_beat = time.monotonic()
            yield ": keep-alive\n\n"
        if not events:
            time.sleep(POLL_SECONDS)


def stream(
    request: HttpRequest, channels: Iterable[str], *, area: str = "", max_seconds: float | None = None
) -> StreamingHttpResponse:
    """The SSE response for `channels`. Starts after `Last-Event-ID` (a reconnect) or `?after=`, else
    at the newest event (a fresh page has just rendered the current state)."""
    raw = request.headers.get("Last-Event-ID") or request.GET.get("after") or ""
    last_id = int(raw) if raw.isdigit() else latest_id()
    seconds = MAX_STREAM_SECONDS if max_seconds is None else max_seconds
    if request.GET.get("once") == "1":  # tests and curl: one poll, then close
        seconds = 0.01
    frames = _frames if isinstance(request, ASGIRequest) else _frames_sync
    response = StreamingHttpResponse(
        frames(request.user, list(channels), last_id, area, seconds), content_type="text/event-stream"
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
    return response


def purge(before: dt.datetime | None = None) -> int:
    cutoff = before or clock.now() - KEEP
    deleted, _ = LiveEvent.objects.filter(at__lt=cutoff).delete()
    return deleted
