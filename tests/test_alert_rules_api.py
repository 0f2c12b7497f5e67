"""/api/v1/alerts/rules and /api/v1/alerts/alarms as a client uses them: bilingual 400s naming the field,
nothing saved on a bad request, 409 on a stale edit, area-scoped alarms, idempotent acknowledge."""

from __future__ import annotations

import json
from typing import Any

from django.test import Client

from tests.factories import Street
from tests.test_alert_pages import WATER, categories, make_rule, raise_alarm
from zhizhi.alerts import alarms
from zhizhi.alerts.rule_models import AlarmEvent, AlertRule
from zhizhi.permissions import create_token


def api(street: Street, name: str) -> Client:
    raw, _ = create_token(street.users[name], "test")
    return Client(headers={"Authorization": f"Bearer {raw}"})


def send(client: Client, method: str, url: str, data: Any = None, **headers: str) -> Any:
    call = getattr(client, method)
    return call(
        url, json.dumps(data) if data is not None else "", content_type="application/json", headers=headers
    )


def fields(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Problems by field; every one carries Chinese and English."""
    out = {}
    for p in body["errors"]:
        assert p["zh"] and p["en"] and p["message"], p
        out[p["field"]] = p
    return out


RULE = {"code": "WL", "name": "河道水位", "kind": "threshold", "device_kind": "water_level", "params": WATER}


def test_create_a_rule_and_read_it_back(street: Street) -> None:
    categories(street)
    client = api(street, "dispatcher")
    created = send(
        client, "post", "/api/v1/alerts/rules", {**RULE, "category_code": "0901", "creates_case": True}
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["code"], body["params"], body["version"], body["creates_case"]) == ("WL", WATER, 1, True)
    listed = client.get("/api/v1/alerts/rules?kind=threshold").json()
    assert [r["code"] for r in listed["results"]] == ["WL"]
    assert client.get(f"/api/v1/alerts/rules/{body['id']}").json()["category_code"] == "0901"
    # Every staff role reads the rules; a resident does not.
    assert api(street, "grid_a1").get("/api/v1/alerts/rules").status_code == 200
    assert api(street, "resident").get("/api/v1/alerts/rules").status_code == 403


def test_bad_rules_answer_400_at_their_fields_and_save_nothing(street: Street) -> None:
    client = api(street, "dispatcher")
    bad = {
        **RULE,
        "code": "",
        "device_kind": "toaster",
        "params": {"ladder": [{"above": "高", "severity": "major"}, {"below": 1, "severity": "huge"}]},
    }
    response = send(client, "post", "/api/v1/alerts/rules", bad)
    assert response.status_code == 400
    where = fields(response.json())
    assert {"code", "device_kind", "params.ladder[0]", "params.ladder[1]"} <= set(where)
    assert where["params.ladder[0]"]["en"] == "Parameter above must be a number"
    assert where["params.ladder[1]"]["zh"] == "级别无效"
    assert not AlertRule.objects.exists()
    unknown = send(client, "post", "/api/v1/alerts/rules", {**RULE, "colour": "red"})
    assert unknown.status_code == 400 and "colour" in fields(unknown.json())
    rate = send(
        client, "post", "/api/v1/alerts/rules", {**RULE, "kind": "rate_of_change", "params": {"delta": 0}}
    )
    assert set(fields(rate.json())) == {"params.delta", "params.within_seconds"}
    assert send(client, "post", "/api/v1/alerts/rules", {**RULE, "params": []}).status_code == 400
    assert not AlertRule.objects.exists()
    # A grid worker may not create rules at all.
    assert send(api(street, "grid_a1"), "post", "/api/v1/alerts/rules", RULE).status_code == 403


def test_update_needs_the_version_read_and_a_stale_one_is_a_409(street: Street) -> None:
    rule = make_rule()
    client = api(street, "dispatcher")
    url = f"/api/v1/alerts/rules/{rule.pk}"
    missing = send(client, "patch", url, {"name": "无版本"})
    assert missing.status_code == 400 and "version" in fields(missing.json())
    first = send(client, "patch", url, {"name": "甲改", "version": 1})
    assert first.status_code == 200 and first.json()["version"] == 2
    stale = send(client, "patch", url, {"name": "乙改", "version": 1})
    assert stale.status_code == 409
    assert stale.json()["current_version"] == 2 and fields(stale.json())["version"]["code"] == "conflict"
    by_header = send(client, "patch", url, {"enabled": False}, **{"If-Match": '"2"'})
    assert by_header.status_code == 200 and by_header.json()["enabled"] is False
    bad = send(client, "patch", url, {"params": {"ladder": []}, "version": 3})
    assert bad.status_code == 400 and "params.ladder" in fields(bad.json())
    rule.refresh_from_db()
    assert (rule.name, rule.enabled, rule.params, rule.version) == ("甲改", False, WATER, 3)
    assert send(api(street, "grid_a1"), "patch", url, {"name": "x", "version": 3}).status_code == 403
    assert send(client, "patch", "/api/v1/alerts/rules/99999", {"name": "x", "version": 1}).status_code == 404


def test_alarms_are_listed_in_the_callers_area_with_their_timeline(street: Street) -> None:
    mine = raise_alarm(street, "A1", "WL-1", "major")
    other = raise_alarm(street, "B1", "WL-2", "critical")
    a1 = api(street, "grid_a1")
    assert [a["id"] for a in a1.get("/api/v1/alerts/alarms").json()["results"]] == [mine.pk]
    assert a1.get(f"/api/v1/alerts/alarms/{other.pk}").status_code == 404
    leader = api(street, "leader")
    assert {a["id"] for a in leader.get("/api/v1/alerts/alarms").json()["results"]} == {mine.pk, other.pk}
    assert [a["id"] for a in leader.get("/api/v1/alerts/alarms?severity=critical").json()["results"]] == [
        other.pk
    ]
    detail = a1.get(f"/api/v1/alerts/alarms/{mine.pk}").json()
    assert detail["device"]["code"] == "WL-1" and [e["kind"] for e in detail["timeline"]] == ["raised"]
    bad = leader.get("/api/v1/alerts/alarms?severity=huge&status=gone&ack=maybe")
    assert bad.status_code == 400 and set(fields(bad.json())) == {"severity", "status", "ack"}


def test_acknowledge_is_idempotent_and_scoped(street: Street) -> None:
    alarm = raise_alarm(street, "A1")
    url = f"/api/v1/alerts/alarms/{alarm.pk}/acknowledge"
    assert send(api(street, "grid_b1"), "post", url, {}).status_code == 404
    first = send(api(street, "grid_a1"), "post", url, {"note": "已电话联系"})
    assert first.status_code == 200
    body = first.json()
    assert body["acknowledged_by"] == "grid_a1" and body["status"] == "active"
    again = send(api(street, "leader"), "post", url, {})
    assert again.status_code == 200
    assert (again.json()["acknowledged_at"], again.json()["acknowledged_by"]) == (
        body["acknowledged_at"],
        "grid_a1",
    )
    events = AlarmEvent.objects.filter(alarm=alarm, kind="acknowledged")
    assert [(e.note, e.actor_id) for e in events] == [("已电话联系", street.users["grid_a1"].pk)]
    assert [e["kind"] for e in again.json()["timeline"]] == ["raised", "acknowledged"]
    alarms.clear(alarm, at=alarm.last_seen_at)
    listed = api(street, "grid_a1").get("/api/v1/alerts/alarms?status=cleared&ack=yes").json()["results"]
    assert [a["id"] for a in listed] == [alarm.pk]
