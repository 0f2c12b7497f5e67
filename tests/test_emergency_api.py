"""/api/v1/emergency/ the way a client calls it: a token, JSON in, bilingual problems out."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.factories import Street
from tests.test_emergency import buildings, community_b_worker, populate
from zhizhi.cockpit.emergency.models import EvacuationTask, Incident
from zhizhi.permissions import create_token

pytestmark = pytest.mark.django_db


def as_user(street: Street, name: str) -> Client:
    raw, _ = create_token(street.users[name], "test")
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw}")


def test_declare_read_mark_over_the_api(street: Street) -> None:
    populate(street)
    desk = as_user(street, "dispatcher")
    body = {
        "kind": "collapse",
        "area_mode": "buildings",
        "building_ids": buildings(street, "A1"),
        "request_id": "api-1",
    }
    first = desk.post("/api/v1/emergency/incidents/", body, content_type="application/json")
    assert first.status_code == 201, first.content
    data = first.json()
    assert data["created"] and data["totals"]["households"] == 4 and data["warnings"] == []
    again = desk.post("/api/v1/emergency/incidents/", body, content_type="application/json")
    assert again.status_code == 200 and again.json()["id"] == data["id"] and Incident.objects.count() == 1
    board = desk.get(f"/api/v1/emergency/incidents/{data['id']}").json()
    assert board["counts"]["households_total"] == 4 and board["golden_seconds"] == 600
    people = desk.get(f"/api/v1/emergency/incidents/{data['id']}/vulnerable").json()["items"]
    assert people[0]["kinds"][0] == "bedridden" and "*" in people[0]["phone_masked"]
    assert "phone" not in people[0]
    worker = as_user(street, "grid_a1")
    mine = worker.get(f"/api/v1/emergency/incidents/{data['id']}/tasks").json()["items"]
    assert mine and {t["assignee"] for t in mine} == {street.users["grid_a1"].pk}
    marked = worker.post(
        f"/api/v1/emergency/tasks/{mine[0]['id']}/mark",
        {"status": "evacuated", "request_id": "m1"},
        content_type="application/json",
    )
    assert marked.status_code == 200 and marked.json()["status"] == "evacuated"
    # The board is the command centre's.
    assert worker.get(f"/api/v1/emergency/incidents/{data['id']}").status_code == 403
    sent = desk.post(
        f"/api/v1/emergency/incidents/{data['id']}/broadcasts",
        {"subject": "集合", "body": "到A1楼下", "channels": ["inbox"]},
        content_type="application/json",
    )
    assert sent.status_code == 201 and sent.json()["total"] >= 6


def test_api_errors_are_bilingual_and_scoped(street: Street) -> None:
    populate(street)
    desk = as_user(street, "dispatcher")
    bad = desk.post(
        "/api/v1/emergency/incidents/",
        {"kind": "fire", "area_mode": "radius", "center_lng": 120.1025, "center_lat": 30.305, "radius_m": -1},
        content_type="application/json",
    )
    assert bad.status_code == 400
    problem = bad.json()["errors"][0]
    assert problem["field"] == "radius_m" and problem["zh"] and problem["en"]
    unknown = desk.post(
        "/api/v1/emergency/incidents/",
        {"kind": "fire", "area_mode": "x", "colour": "red"},
        content_type="application/json",
    )
    assert unknown.status_code in (400, 422)
    refused = as_user(street, "grid_a1").post(
        "/api/v1/emergency/incidents/",
        {"kind": "fire", "area_mode": "buildings", "building_ids": buildings(street, "A1")},
        content_type="application/json",
    )
    assert refused.status_code == 403 and refused.json()["errors"][0]["en"]
    incident = desk.post(
        "/api/v1/emergency/incidents/",
        {"kind": "fire", "area_mode": "buildings", "building_ids": buildings(street, "A1", "B1")},
        content_type="application/json",
    ).json()
    b1 = EvacuationTask.objects.get(incident_id=incident["id"], grid=street.grids["B1"])
    other_grid = as_user(street, "grid_a1").post(
        f"/api/v1/emergency/tasks/{b1.pk}/mark", {"status": "evacuated"}, content_type="application/json"
    )
    assert other_grid.status_code == 403 and "grid" in other_grid.json()["errors"][0]["en"]
    community_b = community_b_worker(street)
    raw, _ = create_token(community_b, "t")
    client_b = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client_b.get(f"/api/v1/emergency/incidents/{incident['id']}").status_code == 404
    # B1's household is in the incident, so B's worker sees B's people only; A's incident alone: 403.
    only_a = desk.post(
        "/api/v1/emergency/incidents/",
        {"kind": "fire", "area_mode": "buildings", "building_ids": buildings(street, "A1")},
        content_type="application/json",
    ).json()
    assert client_b.get(f"/api/v1/emergency/incidents/{only_a['id']}/vulnerable").status_code == 403


def test_the_command_centre_reassigns_an_unassigned_household(street: Street) -> None:
    populate(street)
    street.person("b2", grid="B2", house="B2-1-101")  # B2 has no worker: its household is unassigned
    desk = as_user(street, "dispatcher")
    incident = desk.post(
        "/api/v1/emergency/incidents/",
        {"kind": "fire", "area_mode": "buildings", "building_ids": buildings(street, "B2")},
        content_type="application/json",
    ).json()
    assert [w["code"] for w in incident["warnings"]] == ["unassigned"]
    task = EvacuationTask.objects.get(incident_id=incident["id"])
    url = f"/api/v1/emergency/incidents/{incident['id']}/tasks/{task.pk}/assign"
    worker = street.users["grid_b1"]
    moved = desk.post(url, {"assignee": worker.pk}, content_type="application/json")
    assert moved.status_code == 200 and moved.json()["assignee"] == worker.pk
    assert desk.get(f"/api/v1/emergency/incidents/{incident['id']}").json()["counts"]["unassigned"] == 0
    events = Incident.objects.get(pk=incident["id"]).events.filter(kind="assigned", task=task)
    assert events.count() == 1 and "B1网格员" in events.get().text
    assert (
        as_user(street, "grid_b1").get(f"/api/v1/emergency/incidents/{incident['id']}/tasks").json()["items"]
    )
    # Not a worker of this street, or a resident: refused naming the field; a worker may not reassign.
    bad = desk.post(url, {"assignee": street.users["resident"].pk}, content_type="application/json")
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "assignee"
    refused = as_user(street, "grid_b1").post(url, {"assignee": worker.pk}, content_type="application/json")
    assert refused.status_code == 403
