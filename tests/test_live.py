"""The live event bus behind the SSE screens: area-scoped, resumable, one poll with ?once=1."""

from __future__ import annotations

import pytest
from django.http import HttpResponse
from django.test import RequestFactory

from zhizhi import live
from zhizhi.models import LiveEvent

pytestmark = pytest.mark.django_db


def _body(response: HttpResponse) -> str:
    return b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]


def _get(user, **headers):  # type: ignore[no-untyped-def]
    request = RequestFactory().get("/x/", {"once": "1", "after": "0"}, **headers)
    request.user = user
    return request


def test_a_reader_sees_events_of_their_area_only(street) -> None:  # type: ignore[no-untyped-def]
    live.publish("alarm", {"n": 1}, area_path=street.grids["A1"].path)
    live.publish("alarm", {"n": 2}, area_path=street.grids["B1"].path)
    live.publish("alarm", {"n": 3})  # street-wide, area-less
    live.publish("other", {"n": 4}, area_path=street.grids["A1"].path)
    body = _body(live.stream(_get(street.users["grid_a1"]), ["alarm"]))
    assert '"n": 1' in body and '"n": 3' in body
    assert '"n": 2' not in body and '"n": 4' not in body
    leader = _body(live.stream(_get(street.users["leader"]), ["alarm"]))
    assert all(f'"n": {n}' in leader for n in (1, 2, 3))


def test_a_reconnect_resumes_after_its_last_event_id(street) -> None:  # type: ignore[no-untyped-def]
    first = live.publish("alarm", {"n": 1})
    live.publish("alarm", {"n": 2})
    request = RequestFactory().get("/x/", {"once": "1"}, HTTP_LAST_EVENT_ID=str(first.pk))
    request.user = street.users["leader"]
    body = _body(live.stream(request, ["alarm"]))
    assert '"n": 2' in body and '"n": 1' not in body
    assert body.startswith("retry:")


def test_old_events_are_purged(street) -> None:  # type: ignore[no-untyped-def]
    import datetime as dt

    from zhizhi import clock

    event = live.publish("alarm", {})
    LiveEvent.objects.filter(pk=event.pk).update(at=clock.now() - dt.timedelta(days=3))
    live.publish("alarm", {})
    assert live.purge() == 1
    assert LiveEvent.objects.count() == 1
