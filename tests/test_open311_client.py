"""An independent Open311 client against a live Zhizhi server: the PyPI library `georeport`
(0.3.1, read-only calls) in both of its formats, and `requests` posting form-encoded service
requests and updates the way city apps do (`georeport` has no POST)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from georeport import GeoReport

from tests.test_cases_support import A1, CaseMaker, loop_fixture  # noqa: F401
from zhizhi.cases import services as case_services
from zhizhi.cases.models import Case
from zhizhi.open311 import services

ATTRS = {
    "0102": [
        {
            "code": "size",
            "datatype": "singlevaluelist",
            "required": True,
            "description": "垃圾量 How much?",
            "values": [{"key": "small", "name": "少量"}, {"key": "large", "name": "大量"}],
        },
        {
            "code": "kinds",
            "datatype": "multivaluelist",
            "required": False,
            "description": "种类 Kinds",
            "values": [{"key": "kitchen", "name": "厨余"}, {"key": "bulky", "name": "大件"}],
        },
    ]
}


@pytest.fixture(name="server")
def server_fixture(
    transactional_db: Any, live_server: Any, loop: CaseMaker, monkeypatch: Any
) -> Iterator[dict[str, Any]]:
    # Every client request says "Connection: close": a kept-alive socket would hold a live-server
    # thread on the shared in-memory SQLite connection past the end of the test.
    plain = requests.sessions.default_headers
    monkeypatch.setattr(requests.sessions, "default_headers", lambda: {**plain(), "Connection": "close"})
    services.load_attributes(ATTRS)
    raw, _ = services.issue_key(None, name="georeport 测试")
    yield {"root": f"{live_server.url}/open311/v2", "key": raw, "loop": loop}


def _post_request(server: dict[str, Any], **extra: str) -> requests.Response:
    form = [
        ("api_key", server["key"]),
        ("jurisdiction_id", "zhizhi"),
        ("service_code", "0102"),
        ("lat", str(A1[1])),
        ("long", str(A1[0])),
        ("description", "路口垃圾成堆"),
        ("attribute[size]", "large"),
        ("attribute[kinds][]", "kitchen"),
        ("attribute[kinds][]", "bulky"),
        *extra.items(),
    ]
    return requests.post(f"{server['root']}/requests.xml", data=form, timeout=10)


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_georeport_client_reads_services_and_requests(server: dict[str, Any], fmt: str) -> None:
    posted = _post_request(server)
    assert posted.status_code == 200, posted.text
    assert posted.headers["Content-Type"] == "text/xml; charset=utf-8"
    number = Case.objects.get(channel="open311").number
    assert f"<service_request_id>{number}</service_request_id>" in posted.text

    client = GeoReport(server["root"], jurisdiction="zhizhi", output_format=fmt)
    service_list = client.get_service_list()
    assert [s["service_code"] for s in service_list] == ["0102", "0103", "0104", "0901"]
    assert service_list[0]["group"] == "市容环境"

    definition = client.get_service_definition("0102")
    attributes = definition["attributes"] if fmt == "json" else definition["attributes"]["attribute"]
    assert [a["code"] for a in attributes] == ["size", "kinds"]
    values = attributes[0]["values"] if fmt == "json" else attributes[0]["values"]["value"]
    assert [v["key"] for v in values] == ["small", "large"]

    one = client.get_service_request(number)
    assert one["service_request_id"] == number
    assert one["status"] == "open"
    assert one["service_code"] == "0102"
    assert one["agency_responsible"] == Case.objects.get(number=number).unit.name  # type: ignore[union-attr]

    loop = server["loop"]
    other = loop.new(category="0103", title="占道经营")
    listed = client.get_service_requests(status="open")
    rows = listed if isinstance(listed, list) else [listed]
    assert {r["service_request_id"] for r in rows} == {number, other.number}
    only = client.get_service_requests(service_request_id=other.number)
    only_rows = only if isinstance(only, list) else [only]
    assert [r["service_request_id"] for r in only_rows] == [other.number]


def test_client_follows_a_request_to_closed_and_posts_an_update(server: dict[str, Any]) -> None:
    posted = _post_request(server)
    case = Case.objects.get(channel="open311")
    assert case.number in posted.text
    update = {
        "api_key": server["key"],
        "service_request_id": case.number,
        "update_id": "ext-1",
        "status": "OPEN",
        "description": "后台补充：已通知物业",
    }
    for _ in range(2):  # the same update twice: one note
        answer = requests.post(f"{server['root']}/servicerequestupdates.json", data=update, timeout=10)
        assert answer.status_code == 200, answer.text
    assert case.events.filter(action="open311_update").count() == 1

    loop = server["loop"]
    grid = loop.user("grid_a1")
    case_services.sign_for(grid, case.pk)
    loop.finish(Case.objects.get(pk=case.pk), grid)
    client = GeoReport(server["root"], output_format="xml")
    row = client.get_service_request(case.number)
    assert row["status"] == "closed" and row["status_notes"] == "已清理"
    updates = requests.get(f"{server['root']}/servicerequestupdates.json", timeout=10).json()
    assert [u["status"] for u in updates][-1] == "CLOSED"
    assert "后台补充：已通知物业" in [u["description"] for u in updates]


def test_client_sees_the_spec_errors(server: dict[str, Any]) -> None:
    bad = requests.post(
        f"{server['root']}/requests.json",
        data={"api_key": "wrong", "service_code": "0102", "lat": "30.305", "long": "120.1025"},
        timeout=10,
    )
    assert bad.status_code == 403
    assert bad.json()[0]["code"] == 403
    client = GeoReport(server["root"], output_format="json")
    with pytest.raises(requests.HTTPError) as caught:
        client.get_service_definition("9999")
    assert caught.value.response.status_code == 404
    assert caught.value.response.json()[0]["code"] == 404
