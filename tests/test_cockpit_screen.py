"""The cockpit big screen and the role dashboards: case events on the live bus, the screen's region
scope and drill-down, the board JSON (from cockpit.services), the SSE stream and the pages per role."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from django.test import Client

from tests.factories import Street
from tests.test_cases_support import B1, CaseMaker, loop_fixture  # noqa: F401
from zhizhi import clock, live
from zhizhi.alerts import alarms
from zhizhi.alerts.rule_models import AlertRule
from zhizhi.cases import services as case_services
from zhizhi.cockpit import services
from zhizhi.cockpit.models import Indicator
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


# --- the screen, its scope and its board ---------------------------------------------------------
def indicators() -> None:
    """Two indicators as the catalogue defines them (cockpit.models.Indicator)."""
    for kw in (
        dict(
            code="open_cases", name="在办案件", source="cases.open", window="now", scene="safety", unit="件"
        ),
        dict(
            code="reported_today",
            name="今日受理",
            source="cases.reported",
            window="day",
            scene="overview",
            unit="件",
            threshold_green=0,
            threshold_red=5,
            higher_is_better=False,
        ),
    ):
        ind = Indicator(**kw)
        ind.full_clean()
        ind.save()


def client_for(street: Street, who: str) -> Client:
    client = Client()
    client.force_login(street.users[who])
    return client


@pytest.fixture(name="screen_data")
def screen_data_fixture(loop: CaseMaker) -> CaseMaker:
    indicators()
    loop.new(title="A1的案件")  # auto-dispatched to the A1 grid worker
    loop.new(title="A1待派遣", category_certain=False)
    loop.new(title="B1的案件", at=B1, category_certain=False)
    return loop


def test_the_leader_sees_the_street_board_from_the_services(screen_data: CaseMaker) -> None:
    street = screen_data.street
    leader = client_for(street, "leader")
    # One scene at a time: the first scene with indicators unless a tab is chosen.
    first = leader.get("/cockpit/")
    assert first.context["scene"] == "overview"
    assert 'data-code="reported_today"' in first.content.decode() and "<b>3</b>" in first.content.decode()
    response = leader.get("/cockpit/?scene=safety")
    assert response.status_code == 200
    html = response.content.decode()
    expected = {i["code"]: i for i in services.board(street.street)["indicators"]}
    assert expected["open_cases"]["value"] == 3
    assert (
        f'data-code="open_cases" data-value="{expected["open_cases"]["value"]}"' in html
        and "<b>3</b>" in html
    )
    assert "在办案件" in html and 'data-code="reported_today"' not in html
    assert "A1的案件" in html and "B1的案件" in html  # the feed: newest case events of the street
    board = json.loads(html.split('id="board-data" type="application/json">')[1].split("</script>")[0])
    assert board["region"]["id"] == street.street.pk
    assert [c["name"] for c in board["children"]] == ["A社区", "B社区"]
    assert [b["name"] for b in board["breadcrumb"]] == [street.street.name]


def test_the_board_json_is_the_services_board_for_the_caller(screen_data: CaseMaker) -> None:
    street = screen_data.street
    community = street.communities["A"]
    body = client_for(street, "leader").get(f"/api/v1/cockpit/board?region={community.pk}").json()
    expected = services.board(community)
    assert body["indicators"] == expected["indicators"]
    assert body["children"] == expected["children"]
    assert body["region"] == expected["region"] and body["day"] == expected["day"]
    values = {i["code"]: i["value"] for i in body["indicators"]}
    assert values == {"open_cases": 2, "reported_today": 2}
    assert [b["id"] for b in body["breadcrumb"]] == [street.street.pk, community.pk]
    safety = client_for(street, "leader").get("/api/v1/cockpit/board?scene=safety&fresh=1").json()
    assert [i["code"] for i in safety["indicators"]] == ["open_cases"]


def test_trend_and_ranking_come_from_the_services(screen_data: CaseMaker) -> None:
    street = screen_data.street
    client = client_for(street, "leader")
    trend = client.get("/api/v1/cockpit/trend/open_cases?days=7").json()
    assert trend == [
        {"day": d.isoformat(), "value": v} for d, v in services.trend("open_cases", street.street, days=7)
    ]
    assert trend[-1]["value"] == 3
    ranking = client.get("/api/v1/cockpit/ranking/open_cases").json()
    assert [(r["name"], r["value"]) for r in ranking] == [("A社区", 2), ("B社区", 1)]


def test_bad_board_requests_say_what_is_wrong(screen_data: CaseMaker) -> None:
    client = client_for(screen_data.street, "leader")
    response = client.get("/api/v1/cockpit/board?scene=weather")
    assert response.status_code == 400
    problem = response.json()["errors"][0]
    assert (
        problem["field"] == "scene"
        and problem["value"] == "weather"
        and "场景" in problem["zh"]
        and "scene" in problem["en"]
    )
    response = client.get("/api/v1/cockpit/board?day=2026-13-01")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "day"
    response = client.get("/api/v1/cockpit/trend/no_such_thing")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "code"
    assert Client().get("/api/v1/cockpit/board").status_code == 401


def test_drill_down_stays_inside_the_users_area(screen_data: CaseMaker) -> None:
    street = screen_data.street
    a, b = street.communities["A"], street.communities["B"]
    community = client_for(street, "community_a")
    home = community.get("/cockpit/")
    assert home.status_code == 200 and home.context["region"] == a
    assert community.get(f"/cockpit/r/{street.grids['A1'].pk}/").status_code == 200
    for outside in (b, street.street, street.grids["B1"]):
        assert community.get(f"/cockpit/r/{outside.pk}/").status_code == 404
        assert community.get(f"/cockpit/?region={outside.pk}").status_code == 404
        assert community.get(f"/api/v1/cockpit/board?region={outside.pk}").status_code == 404
        assert community.get(f"/cockpit/r/{outside.pk}/areas.geojson").status_code == 404
        assert community.get(f"/cockpit/stream/?region={outside.pk}&once=1").status_code == 404
    assert community.get("/cockpit/?region=abc").status_code == 404
    grid = client_for(street, "grid_a1")
    assert grid.get(f"/cockpit/r/{a.pk}/").status_code == 404
    assert grid.get("/cockpit/").context["region"] == street.grids["A1"]
    # The leader drills from the street to a grid; the breadcrumb leads back up (not above the street).
    page = client_for(street, "leader").get(f"/cockpit/r/{street.grids['A1'].pk}/")
    assert [r["name"] for r in page.context["board"]["breadcrumb"]] == [street.street.name, "A社区", "A1网格"]
    assert f'href="/cockpit/r/{a.pk}/?scene=overview"' in page.content.decode()
    # A resident serves no area: there is no cockpit for them.
    assert client_for(street, "resident").get("/cockpit/").status_code == 404


def test_the_map_shapes_are_the_regions_children(screen_data: CaseMaker) -> None:
    street = screen_data.street
    client = client_for(street, "leader")
    shapes = client.get(f"/cockpit/r/{street.street.pk}/areas.geojson").json()
    assert [f["properties"]["name"] for f in shapes["features"]] == ["A社区", "B社区"]
    grids = client.get(f"/cockpit/r/{street.communities['A'].pk}/areas.geojson").json()
    assert [f["properties"]["code"] for f in grids["features"]] == [
        street.grids["A1"].code,
        street.grids["A2"].code,
    ]
    leaf = client.get(f"/cockpit/r/{street.grids['A1'].pk}/areas.geojson").json()
    assert [f["properties"]["id"] for f in leaf["features"]] == [street.grids["A1"].pk]


def test_the_feed_holds_cases_and_alarms_of_the_region_only(screen_data: CaseMaker) -> None:
    street = screen_data.street
    rule = AlertRule.objects.create(code="W1", name="水位超限", kind="threshold", device_kind="water_level")
    alarms.raise_or_update(
        rule, "device:WA", "major", at=clock.now(), area_path=street.grids["A1"].path, title="A1水位超限"
    )
    alarms.raise_or_update(
        rule, "device:WB", "minor", at=clock.now(), area_path=street.grids["B1"].path, title="B1水位超限"
    )
    feed = client_for(street, "community_a").get("/api/v1/cockpit/feed").json()
    titles = [item["title"] for item in feed]
    assert "A1水位超限" in titles and "A1的案件" in titles and "A1待派遣" in titles
    assert "B1水位超限" not in titles and "B1的案件" not in titles
    alarm = next(i for i in feed if i["kind"] == "alarm")
    assert alarm["label"] == "重要" and alarm["severity"] == "major"
    case = next(i for i in feed if i["title"] == "A1的案件" and i["action"] == "dispatch")
    assert case["note"] == "派遣" and case["url"] == f"/cases/{case['id']}/"


# --- the live stream ------------------------------------------------------------------------------
def _stream(client: Client, region: Any, after: int) -> str:
    response = client.get(f"/cockpit/stream/?region={region.pk}&once=1&after={after}")
    assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"
    assert response["X-Accel-Buffering"] == "no"
    return b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]


def test_the_stream_sends_a_case_event_after_a_case_is_registered(loop: CaseMaker) -> None:
    street = loop.street
    after = live.latest_id()
    case = loop.new(title="路灯不亮")
    body = _stream(client_for(street, "leader"), street.street, after)
    assert "event: case" in body and case.number in body and "路灯不亮" in body
    frame = next(f for f in body.split("\n\n") if f'"number": "{case.number}"' in f)
    data = json.loads(frame.split("data: ", 1)[1])
    assert data["action"] == "register" and data["status"] == "registered" and data["id"] == case.pk
    # Not under the region the screen shows, or not in the reader's area: not sent.
    assert case.number not in _stream(client_for(street, "leader"), street.communities["B"], after)
    assert case.number not in _stream(client_for(street, "grid_b1"), street.grids["B1"], after)


# --- the role dashboards ---------------------------------------------------------------------------
def test_each_role_gets_its_dashboard_in_its_own_area(screen_data: CaseMaker) -> None:
    street = screen_data.street
    leader = client_for(street, "leader").get("/cockpit/dashboard/")
    assert leader.status_code == 200 and leader.context["role"] == "leader"
    assert leader.templates[0].name == "cockpit/dashboard_leader.html"
    assert leader.context["scene"] == "overview"
    assert {i["code"]: i["value"] for i in leader.context["board"]["indicators"]} == {"reported_today": 3}
    safety = client_for(street, "leader").get("/cockpit/dashboard/?scene=safety")
    assert {i["code"]: i["value"] for i in safety.context["board"]["indicators"]} == {"open_cases": 3}
    assert 'data-trend="/api/v1/cockpit/trend/open_cases' in safety.content.decode()
    assert "驾驶舱" in leader.content.decode()  # the nav link of a leader

    dispatcher = client_for(street, "dispatcher").get("/cockpit/dashboard/")
    assert dispatcher.context["role"] == "dispatcher"
    figures = dispatcher.context["figures"]
    assert figures["counts"]["open"] == 3 and figures["counts"]["waiting"] == 2
    assert figures["channels"] == [{"channel": "dispatcher", "name": "坐席录入", "n": 3}]
    # Next to its figures the dispatcher sees the safety scene.
    assert [i["code"] for i in dispatcher.context["board"]["indicators"]] == ["open_cases"]

    # The A1 grid worker's unit handles the auto-dispatched case; the page is scoped to grid A1.
    grid = client_for(street, "grid_a1").get("/cockpit/dashboard/")
    assert grid.context["role"] == "department" and grid.context["region"] == street.grids["A1"]
    assert [c.title for c in grid.context["figures"]["cases"]] == ["A1的案件"]
    assert grid.context["board"] is None
    assert "看板" in grid.content.decode() and 'href="/cockpit/"' not in grid.content.decode()

    # 区域发展办 sees its (no) cases and the enterprise (industry) indicators.
    Indicator.objects.create(code="enterprises_live", name="在营企业", source="enterprises", window="now",
                             scene="industry", breakdown_level="grid")  # fmt: skip
    dept = client_for(street, "dept").get("/cockpit/dashboard/")
    assert dept.context["role"] == "department" and dept.context["figures"]["cases"] == []
    assert [i["code"] for i in dept.context["board"]["indicators"]] == ["enterprises_live"]
    assert "在营企业" in dept.content.decode()
    assert client_for(street, "resident").get("/cockpit/dashboard/").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_a_fresh_board_sees_a_change_the_shared_cache_does_not_yet() -> None:
    """Outside a transaction today's figures are shared between readers for a few seconds; the screen's
    re-read after a live event asks for `fresh=1` and sees the change at once."""
    from django.core.cache import cache

    from tests.factories import build_street
    from tests.test_cases_support import LIST, add_loop_units

    street = build_street()
    case_services.ensure_case_permissions()
    add_loop_units(street)
    case_services.load_responsibility_list(LIST, street.users["admin"])
    indicators()
    cache.clear()
    loop = CaseMaker(street)
    client = client_for(street, "leader")

    def open_cases(query: str) -> Any:
        body = client.get(f"/api/v1/cockpit/board?scene=safety{query}").json()
        return body["indicators"][0]["value"]

    started = time.monotonic()
    assert open_cases("") == 0
    loop.new(title="新案件")
    assert open_cases("&fresh=1") == 1
    shared = open_cases("")
    if time.monotonic() - started < services.LIVE_CACHE_SECONDS:  # still the figure read before the case
        assert shared == 0
    cache.clear()
    assert open_cases("") == 1


def test_an_indicator_change_is_announced_to_open_screens(street) -> None:  # type: ignore[no-untyped-def]
    after = live.latest_id()
    ind = Indicator.objects.create(
        code="enterprises_now", name="在营企业数", source="enterprises", window="now", scene="industry"
    )
    ind.name = "在营企业"
    ind.save()
    body = _stream(client_for(street, "leader"), street.street, after)
    frames = [f for f in body.split("\n\n") if f.startswith("id:") and "event: cockpit" in f]
    assert [json.loads(f.split("data: ", 1)[1])["name"] for f in frames] == ["在营企业数", "在营企业"]
