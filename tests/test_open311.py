"""Open311 GeoReport v2 at /open311/v2/: conformance of every endpoint in .json and .xml, written
from the specification (element names, required fields, content types, the error array with
400/403/404), the bad inputs of the intake issue, FixMyStreet's servicerequestupdates, the key
page, and an independent client library (`georeport`) against a live server."""

from __future__ import annotations

import datetime as dt
import json
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from tests.factories import PASSWORD
from tests.pg import at_once
from tests.test_cases_support import A1, B1, CaseMaker, loop_fixture  # noqa: F401
from zhizhi import clock
from zhizhi.cases import services as case_services
from zhizhi.cases.models import Case, CaseEvent
from zhizhi.open311 import services
from zhizhi.open311.models import IntegratorKey, ServiceAttribute, ServiceRequestToken

BASE = "/open311/v2"
ATTRS = {
    "0102": [
        {
            "code": "size",
            "datatype": "singlevaluelist",
            "required": True,
            "description": "垃圾量 How much?",
            "values": [{"key": "small", "name": "少量"}, {"key": "large", "name": "大量"}],
        },
        {"code": "bags", "datatype": "number", "required": False, "description": "袋数 Bags"},
        {"code": "seen", "datatype": "datetime", "required": False, "description": "发现时间 Seen at"},
        {"code": "smell", "datatype": "string", "required": False, "description": "气味 Smell"},
        {"code": "more", "datatype": "text", "required": False, "description": "补充 More"},
        {
            "code": "kinds",
            "datatype": "multivaluelist",
            "required": False,
            "description": "种类 Kinds",
            "values": [
                {"key": "kitchen", "name": "厨余"},
                {"key": "bulky", "name": "大件"},
                {"key": "building", "name": "建筑垃圾"},
            ],
        },
    ]
}
SERVICE_FIELDS = ["service_code", "service_name", "description", "metadata", "type", "keywords", "group"]
ATTRIBUTE_FIELDS = [
    "variable",
    "code",
    "datatype",
    "required",
    "datatype_description",
    "order",
    "description",
    "values",
]
REQUEST_FIELDS = [
    "service_request_id",
    "status",
    "status_notes",
    "service_name",
    "service_code",
    "description",
    "agency_responsible",
    "service_notice",
    "requested_datetime",
    "updated_datetime",
    "expected_datetime",
    "address",
    "address_id",
    "zipcode",
    "lat",
    "long",
    "media_url",
]


@pytest.fixture(name="o311")
def o311_fixture(loop: CaseMaker) -> dict[str, Any]:
    services.load_attributes(ATTRS)
    raw, key = services.issue_key(loop.user("leader"), name="市民App")
    return {"key": raw, "obj": key, "loop": loop}


def xml(response: Any) -> ET.Element:
    assert response["Content-Type"] == "text/xml; charset=utf-8"
    text = response.content.decode()
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    return ET.fromstring(response.content)  # noqa: S314 - our own answer


def js(response: Any) -> Any:
    assert response["Content-Type"] == "application/json; charset=utf-8"
    return json.loads(response.content)


def post(client: Client, fmt: str = "json", **data: Any) -> Any:
    return client.post(f"{BASE}/requests.{fmt}", data)


def good(key: str, **over: Any) -> dict[str, Any]:
    data = {
        "api_key": key,
        "service_code": "0102",
        "lat": str(A1[1]),
        "long": str(A1[0]),
        "description": "小区门口垃圾堆了三天没人清理",
        "attribute[size]": "large",
        "device_id": "phone-1",
    }
    data.update(over)
    return {k: v for k, v in data.items() if v is not None}


def assert_error(response: Any, fmt: str, code: int, word: str = "") -> str:
    assert response.status_code == code
    if fmt == "json":
        body = js(response)
        assert isinstance(body, list) and len(body) == 1 and set(body[0]) == {"code", "description"}
        assert body[0]["code"] == code
        text = body[0]["description"]
    else:
        root = xml(response)
        assert root.tag == "errors"
        error = root.find("error")
        assert error is not None and [c.tag for c in error] == ["code", "description"]
        assert error.findtext("code") == str(code)
        text = error.findtext("description") or ""
    assert word in text
    assert " / " in text  # English / 中文
    return text


# --- discovery and services ---------------------------------------------------------------------
def test_discovery_json_and_xml(client: Client, o311: dict[str, Any]) -> None:
    body = js(client.get(f"{BASE}/discovery.json"))
    assert {"changeset", "contact", "key_service", "endpoints"} <= set(body)
    endpoint = body["endpoints"][0]
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["url"].endswith("/open311/v2")
    assert endpoint["formats"] == ["text/xml", "application/json"]
    root = xml(client.get(f"{BASE}/discovery.xml"))
    assert root.tag == "discovery"
    formats = root.findall("endpoints/endpoint/formats/format")
    assert [f.text for f in formats] == ["text/xml", "application/json"]
    assert root.findtext("endpoints/endpoint/type") == "production"


def test_service_list_json(client: Client, o311: dict[str, Any]) -> None:
    body = js(client.get(f"{BASE}/services.json"))
    codes = [s["service_code"] for s in body]
    assert codes == ["0102", "0103", "0104", "0901"]  # the leaves, not the 大类
    first = body[0]
    assert list(first) == SERVICE_FIELDS
    assert first["service_name"] == "暴露垃圾"
    assert first["group"] == "市容环境"
    assert first["metadata"] is True and body[1]["metadata"] is False
    assert first["type"] == "realtime"
    assert first["keywords"] == "垃圾, 垃圾桶满"


def test_service_list_xml(client: Client, o311: dict[str, Any]) -> None:
    root = xml(client.get(f"{BASE}/services.xml"))
    assert root.tag == "services"
    service = root.findall("service")[0]
    assert [c.tag for c in service] == SERVICE_FIELDS
    assert service.findtext("metadata") == "true"
    assert root.findall("service")[1].findtext("metadata") == "false"
    assert service.findtext("group") == "市容环境"


def test_hidden_groups_are_not_services(client: Client, o311: dict[str, Any], settings: Any) -> None:
    settings.ZHIZHI_OPEN311_HIDDEN_GROUPS = ["09"]
    codes = [s["service_code"] for s in js(client.get(f"{BASE}/services.json"))]
    assert "0901" not in codes
    assert client.get(f"{BASE}/services/0901.json").status_code == 404


def test_service_definition_json(client: Client, o311: dict[str, Any]) -> None:
    body = js(client.get(f"{BASE}/services/0102.json"))
    assert body["service_code"] == "0102"
    attrs = body["attributes"]
    assert [a["code"] for a in attrs] == ["size", "bags", "seen", "smell", "more", "kinds"]
    assert [a["datatype"] for a in attrs] == [
        "singlevaluelist",
        "number",
        "datetime",
        "string",
        "text",
        "multivaluelist",
    ]
    assert list(attrs[0]) == ATTRIBUTE_FIELDS
    assert attrs[0]["required"] is True and attrs[0]["variable"] is True and attrs[0]["order"] == 1
    assert attrs[0]["values"] == [{"key": "small", "name": "少量"}, {"key": "large", "name": "大量"}]
    assert attrs[1]["values"] == []


def test_service_definition_xml_and_old_alias(client: Client, o311: dict[str, Any]) -> None:
    for path in ("services", "service"):
        root = xml(client.get(f"{BASE}/{path}/0102.xml"))
        assert root.tag == "service_definition"
        assert root.findtext("service_code") == "0102"
        attribute = root.findall("attributes/attribute")[0]
        assert [c.tag for c in attribute] == ATTRIBUTE_FIELDS
        values = attribute.findall("values/value")
        assert [(v.findtext("key"), v.findtext("name")) for v in values] == [
            ("small", "少量"),
            ("large", "大量"),
        ]
        assert attribute.findtext("required") == "true"


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_unknown_service_is_404(client: Client, o311: dict[str, Any], fmt: str) -> None:
    assert_error(client.get(f"{BASE}/services/9999.{fmt}"), fmt, 404, "9999")
    assert_error(post(client, fmt, **good(o311["key"], service_code="9999")), fmt, 404, "not found")
    assert Case.objects.count() == 0


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_unknown_jurisdiction_is_404(client: Client, o311: dict[str, Any], fmt: str) -> None:
    assert_error(client.get(f"{BASE}/services.{fmt}?jurisdiction_id=elsewhere.gov"), fmt, 404, "elsewhere")
    ok = client.get(f"{BASE}/services.{fmt}?jurisdiction_id=zhizhi")
    assert ok.status_code == 200
    # Empty = absent.
    assert client.get(f"{BASE}/services.{fmt}?jurisdiction_id=").status_code == 200


def test_default_attributes_fit_the_real_list(db: Any) -> None:
    """The seeded questions name real leaves of the shipped responsibility list."""
    from pathlib import Path

    data = json.loads(Path("zhizhi/cases/data/responsibility_list.json").read_text(encoding="utf-8"))
    wanted = set(services.DEFAULT_ATTRIBUTES)
    groups = []
    for group in data:
        leaves = [leaf for leaf in group["children"] if leaf["code"] in wanted]
        for leaf in leaves:  # this test has no org units: keep the leaves territorial
            leaf.update(responsibility="territorial", department=None, assisting=[])
        if leaves:
            groups.append({**group, "children": leaves})
    case_services.load_responsibility_list(groups, None)
    written = services.load_attributes()
    assert written == sum(len(v) for v in services.DEFAULT_ATTRIBUTES.values())
    assert services.load_attributes() == written  # idempotent by (service, code)
    assert ServiceAttribute.objects.count() == written
    definition = services.service_definition("1301")
    assert definition["attributes"][0]["datatype"] == "multivaluelist"


# --- POST requests ---------------------------------------------------------------------------------
def test_post_request_json_registers_and_routes_a_case(client: Client, o311: dict[str, Any]) -> None:
    response = post(client, **good(o311["key"], first_name="张", last_name="三", phone="13800138000"))
    assert response.status_code == 200
    body = js(response)
    assert len(body) == 1 and set(body[0]) == {"service_request_id", "token", "service_notice", "account_id"}
    case = Case.objects.get(number=body[0]["service_request_id"])
    assert case.channel == "open311"
    assert case.category is not None and case.category.code == "0102"
    assert case.status == "dispatched"  # A1 resolves to a grid with a worker: auto-dispatch
    assert case.reporter_name == "张 三"
    assert case.reporter_phone_masked.startswith("138")
    assert body[0]["service_notice"] == case_services_notice()
    row = ServiceRequestToken.objects.get(case=case)
    assert row.token == body[0]["token"] and row.attributes == {"size": "large"}
    # The answers are on the timeline, in words.
    register = CaseEvent.objects.get(case=case, action="register")
    assert "垃圾量 How much?：大量" in register.note


def case_services_notice() -> str:
    return "Handled within 3 working days of dispatch / 派遣后3个工作日内办理"


def test_post_request_xml(client: Client, o311: dict[str, Any]) -> None:
    root = xml(post(client, "xml", **good(o311["key"], account_id="acc-9")))
    assert root.tag == "service_requests"
    request = root.find("request")
    assert request is not None
    assert [c.tag for c in request] == ["service_request_id", "token", "service_notice", "account_id"]
    assert request.findtext("account_id") == "acc-9"
    assert Case.objects.filter(number=request.findtext("service_request_id")).exists()


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_missing_or_wrong_api_key_is_403(client: Client, o311: dict[str, Any], fmt: str) -> None:
    assert_error(post(client, fmt, **good(None)), fmt, 403, "api_key")  # type: ignore[arg-type]
    assert_error(post(client, fmt, **good("")), fmt, 403, "api_key")
    assert_error(post(client, fmt, **good("o311_not-a-key")), fmt, 403, "api_key")
    services.revoke_key(None, o311["obj"].pk)
    assert_error(post(client, fmt, **good(o311["key"])), fmt, 403, "api_key")
    assert Case.objects.count() == 0


def test_key_bound_to_another_jurisdiction_is_403(client: Client, o311: dict[str, Any]) -> None:
    raw, _ = services.issue_key(None, name="区平台", jurisdiction_id="zhizhi")
    assert post(client, **good(raw, jurisdiction_id="zhizhi")).status_code == 200
    key = IntegratorKey.objects.get(name="区平台")
    key.jurisdiction_id = "other"
    key.save()
    assert_error(post(client, **good(raw, jurisdiction_id="zhizhi")), "json", 403, "jurisdiction")


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_location_is_required(client: Client, o311: dict[str, Any], fmt: str) -> None:
    assert_error(post(client, fmt, **good(o311["key"], lat=None, long=None)), fmt, 400, "location")
    # Empty parameters are absent, so this is no location either.
    assert_error(post(client, fmt, **good(o311["key"], lat="", long="")), fmt, 400, "location")
    assert_error(post(client, fmt, **good(o311["key"], long=None)), fmt, 400, "together")
    # Swapped coordinates are caught by the shared validator.
    swapped = good(o311["key"], lat=str(A1[0]), long=str(A1[1]))
    assert_error(post(client, fmt, **swapped), fmt, 400)
    assert Case.objects.count() == 0


def test_address_string_alone_is_a_location(client: Client, o311: dict[str, Any]) -> None:
    body = js(post(client, **good(o311["key"], lat=None, long=None, address_string="文一路 100 号")))
    case = Case.objects.get(number=body[0]["service_request_id"])
    assert case.address == "文一路 100 号" and case.lat is None
    assert case.status == "registered"  # no place → the dispatcher's queue


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_required_attribute_and_datatypes(client: Client, o311: dict[str, Any], fmt: str) -> None:
    key = o311["key"]
    assert_error(post(client, fmt, **good(key, **{"attribute[size]": None})), fmt, 400, "attribute[size]")
    assert_error(post(client, fmt, **good(key, **{"attribute[size]": ""})), fmt, 400, "required")
    assert_error(post(client, fmt, **good(key, **{"attribute[size]": "huge"})), fmt, 400, "huge")
    assert_error(post(client, fmt, **good(key, **{"attribute[bags]": "three"})), fmt, 400, "number")
    assert_error(post(client, fmt, **good(key, **{"attribute[bags]": "nan"})), fmt, 400, "number")
    assert_error(post(client, fmt, **good(key, **{"attribute[seen]": "yesterday"})), fmt, 400, "datetime")
    assert_error(post(client, fmt, **good(key, **{"attribute[smell]": "x" * 256})), fmt, 400, "255")
    assert_error(post(client, fmt, **good(key, **{"attribute[nope]": "1"})), fmt, 400, "nope")
    assert_error(post(client, fmt, **good(key, **{"attribute[kinds][]": ["kitchen", "tv"]})), fmt, 400, "tv")
    assert Case.objects.count() == 0


def test_xml_client_sends_form_encoded_attribute_arrays(client: Client, o311: dict[str, Any]) -> None:
    data = good(
        o311["key"],
        **{
            "attribute[kinds][]": ["kitchen", "bulky"],
            "attribute[bags]": "4",
            "attribute[seen]": "2026-11-20T19:00:00+08:00",
            "attribute[more]": "x" * 1000,
        },
    )
    root = xml(post(client, "xml", **data))
    number = root.findtext("request/service_request_id")
    row = ServiceRequestToken.objects.get(case__number=number)
    assert row.attributes["kinds"] == ["kitchen", "bulky"]
    assert row.attributes["bags"] == "4"
    assert "种类 Kinds：厨余、大件" in CaseEvent.objects.get(case=row.case, action="register").note


def test_description_over_4000_and_html(client: Client, o311: dict[str, Any]) -> None:
    assert_error(post(client, **good(o311["key"], description="堆" * 4001)), "json", 400, "4000")
    body = js(post(client, **good(o311["key"], description="<script>alert(1)</script>垃圾")))
    case = Case.objects.get(number=body[0]["service_request_id"])
    assert case.description == "<script>alert(1)</script>垃圾"  # stored as text
    detail = client.get(f"{BASE}/requests/{case.number}.xml").content.decode()
    assert "&lt;script&gt;" in detail and "<script>" not in detail


def test_bad_phone_and_media_url(client: Client, o311: dict[str, Any]) -> None:
    assert_error(post(client, **good(o311["key"], phone="12")), "json", 400)
    assert_error(post(client, **good(o311["key"], media_url="javascript:alert(1)")), "json", 400, "media_url")
    body = js(post(client, **good(o311["key"], media_url="https://img.example.com/a.jpg")))
    detail = js(client.get(f"{BASE}/requests/{body[0]['service_request_id']}.json"))
    assert detail[0]["media_url"] == "https://img.example.com/a.jpg"


def test_empty_parameters_are_absent_on_post(client: Client, o311: dict[str, Any]) -> None:
    data = good(
        o311["key"], email="", account_id="", first_name="", address_string="", **{"attribute[bags]": ""}
    )
    body = js(post(client, **data))
    row = ServiceRequestToken.objects.get(case__number=body[0]["service_request_id"])
    assert row.attributes == {"size": "large"} and body[0]["account_id"] is None


def test_the_same_post_within_a_minute_is_one_case(client: Client, o311: dict[str, Any]) -> None:
    start = timezone.now()
    with clock.frozen_at(start):
        first = js(post(client, **good(o311["key"])))
    with clock.frozen_at(start + dt.timedelta(seconds=50)):
        again = js(post(client, **good(o311["key"])))
        other_text = js(post(client, **good(o311["key"], description="另一处垃圾")))
    assert again == first
    assert other_text[0]["service_request_id"] != first[0]["service_request_id"]
    assert Case.objects.count() == 2
    with clock.frozen_at(start + dt.timedelta(seconds=120)):
        later = js(post(client, **good(o311["key"])))
    assert later[0]["service_request_id"] != first[0]["service_request_id"]
    assert Case.objects.count() == 3


def test_get_on_post_only_and_post_on_get_only(client: Client, o311: dict[str, Any]) -> None:
    assert_error(client.post(f"{BASE}/services.json", {}), "json", 405)
    assert_error(client.delete(f"{BASE}/requests.xml"), "xml", 405)


# --- GET requests ---------------------------------------------------------------------------------
def _new(client: Client, key: str, **over: Any) -> Case:
    body = js(post(client, **good(key, **over)))
    return Case.objects.get(number=body[0]["service_request_id"])


def test_request_detail_json_and_xml(client: Client, o311: dict[str, Any]) -> None:
    case = _new(client, o311["key"], address_string="文一路 100 号")
    body = js(client.get(f"{BASE}/requests/{case.number}.json"))
    assert len(body) == 1
    row = body[0]
    assert list(row) == REQUEST_FIELDS
    assert row["status"] == "open" and row["service_code"] == "0102" and row["service_name"] == "暴露垃圾"
    assert row["agency_responsible"] == case.unit.name  # type: ignore[union-attr]
    assert row["expected_datetime"] == timezone.localtime(case.due_at).isoformat(timespec="seconds")  # type: ignore[arg-type]
    assert row["requested_datetime"].endswith("+08:00")
    assert (row["lat"], row["long"]) == (A1[1], A1[0])
    root = xml(client.get(f"{BASE}/requests/{case.number}.xml"))
    assert root.tag == "service_requests"
    request = root.find("request")
    assert request is not None and [c.tag for c in request] == REQUEST_FIELDS
    assert request.findtext("address") == "文一路 100 号"
    assert_error(client.get(f"{BASE}/requests/ZZ000.json"), "json", 404, "ZZ000")
    assert_error(client.get(f"{BASE}/requests/ZZ000.xml"), "xml", 404, "ZZ000")


def test_closed_status_notes_and_merged_reports(client: Client, o311: dict[str, Any]) -> None:
    loop = o311["loop"]
    case = _new(client, o311["key"])
    grid = loop.user("grid_a1")
    case_services.sign_for(grid, case.pk)
    loop.finish(Case.objects.get(pk=case.pk), grid)
    row = js(client.get(f"{BASE}/requests/{case.number}.json"))[0]
    assert row["status"] == "closed" and row["status_notes"] == "已清理"
    # A second report merged into a case being handled shows that case's progress.
    parent = loop.new(category="0102")
    child = _new(client, o311["key"], description="又一处")
    case_services.merge_case(loop.user("dispatcher"), child.pk, into=parent.number)
    assert js(client.get(f"{BASE}/requests/{child.number}.json"))[0]["status"] == "open"
    case_services.sign_for(grid, parent.pk)
    loop.finish(Case.objects.get(pk=parent.pk), grid)
    merged = js(client.get(f"{BASE}/requests/{child.number}.json"))[0]
    assert merged["status"] == "closed" and merged["status_notes"] == "已清理"
    assert merged["agency_responsible"] == Case.objects.get(pk=parent.pk).unit.name  # type: ignore[union-attr]
    closed = js(client.get(f"{BASE}/requests.json?status=closed"))
    assert {r["service_request_id"] for r in closed} == {case.number, child.number, parent.number}


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_request_list_filters(client: Client, o311: dict[str, Any], fmt: str) -> None:
    loop = o311["loop"]
    a = _new(client, o311["key"])
    b = _new(client, o311["key"], description="第二处")
    c = loop.new(category="0103", title="占道", at=B1)  # another channel: listed too
    old = loop.new(category="0102", title="很久以前")
    Case.objects.filter(pk=old.pk).update(reported_at=timezone.now() - dt.timedelta(days=100))

    def ids(query: str) -> list[str]:
        response = client.get(f"{BASE}/requests.{fmt}{query}")
        assert response.status_code == 200, response.content
        if fmt == "json":
            return [r["service_request_id"] for r in js(response)]
        root = xml(response)
        assert root.tag == "service_requests"
        return [r.findtext("service_request_id") or "" for r in root.findall("request")]

    assert set(ids("")) == {a.number, b.number, c.number}  # default: the last 90 days
    # service_request_id overrides every other filter, the date range included.
    assert set(ids(f"?service_request_id={a.number},{old.number}&service_code=0103")) == {
        a.number,
        old.number,
    }
    assert set(ids("?service_code=0103")) == {c.number}
    assert set(ids("?service_code=0102,0103&status=open")) == {a.number, b.number, c.number}
    assert ids("?status=closed") == []
    # Empty parameters are absent.
    assert set(ids("?service_code=&status=&start_date=&end_date=&service_request_id=")) == {
        a.number,
        b.number,
        c.number,
    }
    start = (timezone.now() - dt.timedelta(days=120)).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = (timezone.now() - dt.timedelta(days=60)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert ids(f"?start_date={start}&end_date={end}") == [old.number]
    assert set(ids(f"?start_date={end}")) == {a.number, b.number, c.number}


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_request_list_bad_dates(client: Client, o311: dict[str, Any], fmt: str) -> None:
    url = f"{BASE}/requests.{fmt}"
    assert_error(
        client.get(f"{url}?start_date=2026-01-01T00:00:00Z&end_date=2026-05-01T00:00:00Z"),
        fmt,
        400,
        "90 days",
    )
    assert_error(client.get(f"{url}?start_date=last-week"), fmt, 400, "start_date")
    assert_error(
        client.get(f"{url}?start_date=2026-05-01T00:00:00Z&end_date=2026-04-01T00:00:00Z"), fmt, 400, "before"
    )
    assert_error(client.get(f"{url}?status=pending"), fmt, 400, "status")


def test_request_list_caps_at_1000(client: Client, o311: dict[str, Any], monkeypatch: Any) -> None:
    monkeypatch.setattr(services, "MAX_REQUESTS", 2)
    for n in range(3):
        _new(client, o311["key"], description=f"第{n}处")
    assert len(js(client.get(f"{BASE}/requests.json"))) == 2


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_token_lookup(client: Client, o311: dict[str, Any], fmt: str) -> None:
    body = js(post(client, **good(o311["key"])))
    token = body[0]["token"]
    response = client.get(f"{BASE}/tokens/{token}.{fmt}")
    if fmt == "json":
        assert js(response) == [{"service_request_id": body[0]["service_request_id"], "token": token}]
    else:
        request = xml(response).find("request")
        assert request is not None and [c.tag for c in request] == ["service_request_id", "token"]
        assert request.findtext("service_request_id") == body[0]["service_request_id"]
    assert_error(client.get(f"{BASE}/tokens/nope.{fmt}"), fmt, 404, "nope")


# --- servicerequestupdates (FixMyStreet) ---------------------------------------------------------
@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_updates_since_a_date(client: Client, o311: dict[str, Any], fmt: str) -> None:
    loop = o311["loop"]
    case = _new(client, o311["key"])
    case_services.urge_case(loop.user("dispatcher"), case.pk, note="内部督办")  # internal: not published
    case_services.sign_for(loop.user("grid_a1"), case.pk)
    since = (timezone.now() - dt.timedelta(minutes=5)).isoformat()
    response = client.get(f"{BASE}/servicerequestupdates.{fmt}", {"start_date": since})
    if fmt == "json":
        rows = js(response)
    else:
        root = xml(response)
        assert root.tag == "service_request_updates"
        rows = [{c.tag: c.text for c in r} for r in root.findall("request_update")]
    assert [r["status"] for r in rows] == ["OPEN", "OPEN", "OPEN"]  # register, dispatch, sign
    assert {r["service_request_id"] for r in rows} == {case.number}
    assert list(rows[0]) == [
        "update_id",
        "service_request_id",
        "status",
        "updated_datetime",
        "description",
        "media_url",
    ]
    assert [r["description"] for r in rows] == ["立案", "派遣", "签收"]  # intake notes stay internal
    assert "内部督办" not in str(rows)


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_post_update_is_a_timeline_note_once(client: Client, o311: dict[str, Any], fmt: str) -> None:
    case = _new(client, o311["key"])
    data = {
        "api_key": o311["key"],
        "service_request_id": case.number,
        "update_id": "fms-77",
        "status": "investigating",
        "description": "市民补充：垃圾已经蔓延到人行道",
        "updated_datetime": "2026-11-23T10:00:00+08:00",
        "media_url": "",
    }
    first = client.post(f"{BASE}/servicerequestupdates.{fmt}", data)
    again = client.post(f"{BASE}/servicerequestupdates.{fmt}", data)
    assert first.status_code == again.status_code == 200
    assert first.content == again.content
    events = CaseEvent.objects.filter(case=case, action="open311_update")
    assert events.count() == 1
    event = events.get()
    assert event.note == "市民补充：垃圾已经蔓延到人行道" and event.data["status"] == "INVESTIGATING"
    assert Case.objects.get(pk=case.pk).status == case.status  # reported, not applied
    if fmt == "xml":
        assert xml(first).findtext("request_update/update_id") == str(event.pk)
    # It is published back (so every channel sees it).
    rows = js(client.get(f"{BASE}/servicerequestupdates.json"))
    assert rows[-1]["update_id"] == str(event.pk) and rows[-1]["description"] == event.note


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_post_update_errors(client: Client, o311: dict[str, Any], fmt: str) -> None:
    case = _new(client, o311["key"])
    url = f"{BASE}/servicerequestupdates.{fmt}"
    base = {"service_request_id": case.number, "description": "补充", "status": "OPEN"}
    assert_error(client.post(url, base), fmt, 403, "api_key")
    assert_error(client.post(url, {**base, "api_key": "bad"}), fmt, 403)
    key = o311["key"]
    assert_error(client.post(url, {**base, "api_key": key, "service_request_id": "ZZ1"}), fmt, 404)
    assert_error(client.post(url, {**base, "api_key": key, "description": ""}), fmt, 400, "description")
    assert_error(client.post(url, {**base, "api_key": key, "updated_datetime": "soon"}), fmt, 400)
    start = "2026-01-01T00:00:00Z"
    assert_error(client.get(f"{url}?start_date={start}&end_date=2026-06-01T00:00:00Z"), fmt, 400, "90")


# --- the key page ----------------------------------------------------------------------------------
def test_key_page_issue_use_revoke(client: Client, o311: dict[str, Any]) -> None:
    loop = o311["loop"]
    client.login(username=loop.user("leader").username, password=PASSWORD)
    page = client.get("/open311/keys/")
    assert page.status_code == 200 and "市民App" in page.content.decode()
    issued = client.post("/open311/keys/", {"name": "区12345平台", "jurisdiction_id": ""})
    text = issued.content.decode()
    raw = text.split('<code id="raw-key">')[1].split("</code>")[0]
    key = IntegratorKey.objects.get(name="区12345平台")
    assert raw.startswith(key.prefix) and key.key_hash != raw and key.created_by == loop.user("leader")
    assert post(Client(), **good(raw)).status_code == 200
    client.post("/open311/keys/", {"revoke": key.pk})
    assert post(Client(), **good(raw, description="别的")).status_code == 403
    assert "区12345平台" in client.get("/open311/keys/").content.decode()
    assert raw not in client.get("/open311/keys/").content.decode()  # shown once only
    # A blank name is refused with a bilingual message.
    assert "Name the integrator" in client.post("/open311/keys/", {"name": " "}).content.decode()


def test_key_page_needs_the_grant(client: Client, o311: dict[str, Any]) -> None:
    client.login(username=o311["loop"].user("grid_a1").username, password=PASSWORD)
    assert client.get("/open311/keys/").status_code == 403
    assert client.post("/open311/keys/", {"name": "x"}).status_code == 403
    assert IntegratorKey.objects.count() == 1
    assert Client().get("/open311/keys/").status_code == 302  # to the login page


def test_attribute_loader_command(loop: CaseMaker, tmp_path: Any) -> None:
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("load_open311_attributes", stdout=out)  # built-in examples: only 0103 exists here
    assert "written 2" in out.getvalue()
    assert set(ServiceAttribute.objects.values_list("code", flat=True)) == {"bin_type", "bin_count"}
    spec = tmp_path / "attrs.json"
    spec.write_text(json.dumps({"0104": [{"code": "floor", "datatype": "number", "description": "楼层"}]}))
    call_command("load_open311_attributes", str(spec), stdout=out)
    assert services.service_definition("0104")["attributes"][0]["code"] == "floor"


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_the_same_post_twice_at_once_is_one_case(street: Any) -> None:
    from django.db import connection
    from django.http import QueryDict

    from tests.test_cases_support import LIST, add_loop_units

    if connection.vendor != "postgresql":
        pytest.skip("needs two real connections (PostgreSQL); SQLite serialises writers")
    case_services.ensure_case_permissions()
    add_loop_units(street)
    case_services.load_responsibility_list(LIST, None)
    services.load_attributes(ATTRS)
    raw, key = services.issue_key(None, name="并发")
    form = QueryDict(mutable=True)
    form.update(good(raw))
    got = at_once(lambda: services.create_request(key, form).request.token, 2)
    assert len(got) == 2 and got[0] == got[1]
    assert Case.objects.filter(channel="open311").count() == 1


def test_a_point_outside_the_street_goes_to_the_dispatcher(client: Client, o311: dict[str, Any]) -> None:
    body = js(post(client, **good(o311["key"], lat="39.9087", long="116.3975")))  # Beijing
    case = Case.objects.get(number=body[0]["service_request_id"])
    assert case.grid is None and case.status == "registered"
    assert js(client.get(f"{BASE}/requests/{case.number}.json"))[0]["agency_responsible"] is None


def test_request_list_queries_do_not_grow_with_the_list(
    client: Client, o311: dict[str, Any], django_assert_max_num_queries: Any
) -> None:
    for n in range(6):
        case = _new(client, o311["key"], description=f"第{n}处")
        case_services.return_case(o311["loop"].user("grid_a1"), case.pk, reason="属地不符", note=f"不归我{n}")
    with django_assert_max_num_queries(6):
        rows = js(client.get(f"{BASE}/requests.json"))
    assert len(rows) == 6 and rows[0]["status_notes"] == "不归我5"


def test_numbers_typed_into_text_are_masked_in_the_open_api(client: Client, o311: dict[str, Any]) -> None:
    text = "联系我13800138000，身份证330105198001011234，门牌号12号"
    case = _new(client, o311["key"], description=text)
    assert Case.objects.get(pk=case.pk).description == text  # kept whole for the handlers
    shown = js(client.get(f"{BASE}/requests/{case.number}.json"))[0]["description"]
    assert shown == "联系我138****8000，身份证330105********1234，门牌号12号"
    case_services.return_case(
        o311["loop"].user("grid_a1"), case.pk, reason="属地不符", note="已电话13900001111"
    )
    assert js(client.get(f"{BASE}/requests/{case.number}.json"))[0]["status_notes"] == "已电话139****1111"
