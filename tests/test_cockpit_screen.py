"""The cockpit big screen and the role dashboards: case events on the live bus, the screen's region
scope and drill-down, the board JSON (from cockpit.services), the SSE stream and the pages per role."""

from __future__ import annotations

from typing import Any

import pytest

from tests.test_cases_support import CaseMaker, loop_fixture  # noqa: F401
from zhizhi.cases import services as case_services
from zhizhi.models import LiveEvent

pytestmark = pytest.mark.django_db


def _case_events() -> list[dict[str, Any]]:
    return [e.payload for e in LiveEvent.objects.filter(channel="case").order_by("pk")]


def test_registering_and_acting_on_a_case_publishes_case_events(loop: CaseMaker) -> None:
    case = loop.new(title="井盖缺失")  # A1: registered and auto-dispatched in one go
    events = _case_events()
    assert [(e["action"], e["status"]) for e in events] == [
        ("register", "registered"),
        ("dispatch", "dispatched"),
    ]
    assert events[0] == {
        "id": case.pk,
        "number": case.number,
        "title": "井盖缺失",
        "status": "registered",
        "action": "register",
        "channel": "dispatcher",
    }
    assert set(LiveEvent.objects.filter(channel="case").values_list("area_path", flat=True)) == {
        case.area_path
    }
    case_services.sign_for(loop.user("grid_a1"), case.pk)
    assert _case_events()[-1]["action"] == "sign" and _case_events()[-1]["status"] == "handling"


def test_a_refused_action_publishes_nothing(loop: CaseMaker) -> None:
    case = loop.new(category_certain=False)  # registered, waiting for dispatch: nothing to sign
    before = LiveEvent.objects.count()
    with pytest.raises(case_services.IllegalAction):
        case_services.sign_for(loop.user("grid_a1"), case.pk)
    assert LiveEvent.objects.count() == before
