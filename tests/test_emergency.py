"""Emergency mode's rules: declaring an incident over an area (every bad input refused in both
languages), who is in it, people of special care first, one task per household assigned within
the grid, marks from the field (idempotent, scoped), help requests, overlapping incidents, cameras."""

from __future__ import annotations

import datetime as dt

import pytest
from django.http import Http404

from tests.factories import PASSWORD, Street, square, tag
from zhizhi import clock
from zhizhi.cockpit.emergency import services
from zhizhi.cockpit.emergency.models import (
    EvacuationTask,
    HelpRequest,
    Incident,
    IncidentBuilding,
    IncidentEvent,
)
from zhizhi.intake.models import Camera
from zhizhi.models import LiveEvent, RevealLog
from zhizhi.notify.models import OutboxMessage
from zhizhi.orgs.models import User
from zhizhi.orgs.services import create_staff
from zhizhi.people.services import vulnerable_residents_in
from zhizhi.problems import Forbidden, Invalid

pytestmark = pytest.mark.django_db


def populate(street: Street) -> None:
    """Residents in A1 (4 houses, 2 vulnerable), A2 (2 houses) and B1 (1 house); B2 stays empty."""
    s = street
    s.person("a1_101", grid="A1", house="A1-1-101", birth="19400101")  # 高龄 by birth date, untagged
    s.person("a1_101b", grid="A1", house="A1-1-101")
    tag(s.person("a1_201", grid="A1", house="A1-1-201"), "disabled", level="一级")
    s.person("a1_2_101", grid="A1", house="A1-2-101")
    bed = s.person("a1_2_201", grid="A1", house="A1-2-201", birth="19350101")
    tag(bed, "bedridden")
    tag(bed, "widowed_alone")
    s.person("a2_101", grid="A2", house="A2-1-101")
    tag(s.person("a2_201", grid="A2", house="A2-1-201", gender="F"), "living_alone")
    s.person("b1_101", grid="B1", house="B1-1-101")
    s.person("moved", grid="A1", house="A1-1-101", status="moved_out")  # not counted


def declare(street: Street, user: str = "dispatcher", **kwargs) -> services.Declared:  # type: ignore[no-untyped-def]
    params = {"kind": "collapse", "area_mode": "buildings", "location": "建国北路"}
    params.update(kwargs)
    return services.declare_incident(street.users[user], **params)


def buildings(street: Street, *keys: str) -> list[int]:
    return [street.buildings[k].pk for k in keys]


def community_b_worker(street: Street) -> User:
    """A community worker of community B (password PASSWORD), who has no tasks in A's incidents."""
    return create_staff(
        username="community_b",
        full_name="B社工",
        role="community_worker",
        password=PASSWORD,
        regions=[street.communities["B"]],
    )


def test_declare_by_buildings_lists_everyone_and_assigns_every_household(street: Street) -> None:
    populate(street)
    result = declare(street, building_ids=buildings(street, "A1", "A2"), request_id="r-1")
    incident = result.incident
    assert result.created and result.warnings == []
    assert incident.number.startswith("YJ") and incident.area_path == street.street.path
    # 6 households (houses with current residents), 7 residents, 4 people of special care.
    assert (incident.buildings_total, incident.households_total, incident.residents_total) == (2, 6, 7)
    assert incident.vulnerable_total == 4
    assert IncidentBuilding.objects.filter(incident=incident).count() == 2
    tasks = list(EvacuationTask.objects.filter(incident=incident).select_related("house").order_by("seq"))
    assert len(tasks) == 6
    # Vulnerable households first, the bedridden one before everyone.
    assert [t.vulnerable > 0 for t in tasks] == [True, True, True, True, False, False]
    assert tasks[0].house == street.houses["A1-2-201"]
    # A1's households go to the A1 grid worker and community A's social worker, least-loaded; A2 has no
    # grid worker, so community A's social worker takes them.
    a1 = {t.assignee for t in tasks if t.grid_id == street.grids["A1"].pk}
    assert a1 == {street.users["grid_a1"], street.users["community_a"]}
    assert {t.assignee for t in tasks if t.grid_id == street.grids["A2"].pk} == {street.users["community_a"]}
    assert all(t.assigned_at == incident.declared_at for t in tasks)
    # One notification per worker, queued in the outbox (inbox; SMS only for workers with a phone).
    notes = OutboxMessage.objects.filter(cause=f"emergency.incident:{incident.pk}")
    assert sorted(notes.values_list("user__username", "channel")) == [
        ("community_a", "inbox"),
        ("grid_a1", "inbox"),
    ]
    assert "/emergency/" in notes.first().link  # type: ignore[union-attr]
    kinds = list(IncidentEvent.objects.filter(incident=incident).values_list("kind", flat=True))
    assert kinds == ["declared", "assigned"]
    # The same request again: the same incident, nothing new.
    again = declare(street, building_ids=buildings(street, "A1", "A2"), request_id="r-1")
    assert not again.created and again.incident.pk == incident.pk
    assert Incident.objects.count() == 1 and EvacuationTask.objects.count() == 6


def test_care_list_is_sorted_by_priority_with_building_unit_floor_room_and_workers(street: Street) -> None:
    populate(street)
    incident = declare(street, building_ids=buildings(street, "A1", "A2")).incident
    rows = services.care_list(street.users["dispatcher"], incident)
    assert [r.name for r in rows] == ["居民a1_2_201", "居民a1_201", "居民a2_201", "居民a1_101"]
    first = rows[0]
    assert first.kinds[:2] == ["bedridden", "widowed_alone"] and "卧床" in first.kind_labels
    assert (first.building, first.unit, first.floor, first.room) == ("A1-1幢", 2, 2, "201")
    assert first.grid_workers == ["A1网格员"] and first.social_workers == ["A社工"]
    assert first.phone_masked and "*" in first.phone_masked
    assert rows[-1].kinds == [services.ELDERLY_BY_AGE]  # 85 years old, not yet tagged
    # Everyone the people app calls vulnerable is on the list.
    expected = set(
        vulnerable_residents_in([street.buildings["A1"], street.buildings["A2"]]).values_list("pk", flat=True)
    )
    assert expected <= {r.person_id for r in rows}


def test_care_list_scope_workers_see_their_area_only(street: Street) -> None:
    populate(street)
    incident = declare(street, building_ids=buildings(street, "A1", "A2")).incident
    community_b = community_b_worker(street)
    with pytest.raises(Forbidden) as refused:
        services.care_list(community_b, incident)
    assert refused.value.zh and refused.value.en
    with pytest.raises(Forbidden):
        services.care_list(street.users["dept"], incident)
    assert len(services.care_list(street.users["community_a"], incident)) == 4
    # A grid worker sees the people of their own grid only.
    assert {r.grid for r in services.care_list(street.users["grid_a1"], incident)} == {"A1网格"}
    with pytest.raises(Forbidden):
        services.care_list(street.users["grid_b1"], incident)
    # Incidents: a commander sees the street's; a worker only those holding their tasks.
    assert services.incidents_for(street.users["leader"]).count() == 1
    assert services.incidents_for(community_b).count() == 0
    with pytest.raises(Http404):
        services.get_incident(community_b, incident.pk)


def test_reveal_of_the_vulnerable_phones_is_logged_with_the_incident_as_purpose(street: Street) -> None:
    populate(street)
    incident = declare(street, building_ids=buildings(street, "A1")).incident
    rows = services.care_list(street.users["leader"], incident)
    phones = services.reveal_phones(street.users["leader"], incident, [r.person_id for r in rows])
    assert len(phones) == len(rows) == 3 and all(p.startswith("138") for p in phones.values())
    logged = RevealLog.objects.filter(actor=street.users["leader"])
    assert logged.count() == 3
    assert set(logged.values_list("purpose", flat=True)) == {f"emergency {incident.number}"}
    assert IncidentEvent.objects.filter(incident=incident, kind="reveal").count() == 1
    # The command centre's seat may read the list but holds no reveal grant: nothing is shown or logged.
    assert services.reveal_phones(street.users["dispatcher"], incident, [r.person_id for r in rows]) == {}
    assert RevealLog.objects.filter(actor=street.users["dispatcher"]).count() == 0
    # A person outside the incident's list is never revealed through it.
    outsider = street.person("b1_x", grid="B1", house="B1-2-101")
    assert services.reveal_phones(street.users["leader"], incident, [outsider.pk]) == {}


def test_only_the_command_centre_declares(street: Street) -> None:
    populate(street)
    for user in ("grid_a1", "community_a", "dept", "volunteer", "resident"):
        with pytest.raises(Forbidden) as refused:
            declare(street, user=user, building_ids=buildings(street, "A1"))
        assert "指挥中心" in refused.value.zh and "command centre" in refused.value.en
    assert declare(street, user="leader", building_ids=buildings(street, "A1")).created
    assert declare(street, user="admin", building_ids=buildings(street, "A1")).created
    assert Incident.objects.count() == 2


BOW_TIE = {
    "type": "Polygon",
    "coordinates": [
        [[120.100, 30.300], [120.105, 30.305], [120.105, 30.300], [120.100, 30.305], [120.100, 30.300]]
    ],
}
FLAT = {"type": "Polygon", "coordinates": []}  # no ring at all
ELSEWHERE = square(121.500, 31.200, 121.510, 31.210)  # Shanghai, not this street


@pytest.mark.parametrize(
    ("params", "code", "fld"),
    [
        ({"area_mode": "polygon", "polygon": BOW_TIE}, "polygon_invalid", "area"),
        ({"area_mode": "polygon", "polygon": FLAT}, "polygon_empty", "area"),
        ({"area_mode": "polygon", "polygon": None}, "area_required", "area"),
        ({"area_mode": "polygon", "polygon": "{not json"}, "geojson_json", "area"),
        ({"area_mode": "polygon", "polygon": ELSEWHERE}, "area_outside", "area"),
        (
            {"area_mode": "radius", "center_lng": 120.1025, "center_lat": 30.305, "radius_m": 0},
            "radius_positive",
            "radius_m",
        ),
        (
            {"area_mode": "radius", "center_lng": 120.1025, "center_lat": 30.305, "radius_m": -50},
            "radius_positive",
            "radius_m",
        ),
        (
            {"area_mode": "radius", "center_lng": 120.1025, "center_lat": 30.305, "radius_m": 50000},
            "radius_range",
            "radius_m",
        ),
        (
            {"area_mode": "radius", "center_lng": 120.1025, "center_lat": 30.305, "radius_m": "abc"},
            "radius_number",
            "radius_m",
        ),
        (
            {"area_mode": "radius", "center_lng": "", "center_lat": "", "radius_m": 100},
            "center_required",
            "center",
        ),
        (
            {"area_mode": "radius", "center_lng": 30.305, "center_lat": 120.1025, "radius_m": 100},
            "coord_swapped",
            "center",
        ),
        ({"area_mode": "buildings", "building_ids": []}, "buildings_required", "building_ids"),
        ({"area_mode": "buildings", "building_ids": [999999]}, "building_unknown", "building_ids"),
        ({"area_mode": "circle"}, "area_mode", "area_mode"),
        ({"area_mode": "buildings", "building_ids": ["x"], "kind": "meteor"}, "kind", "kind"),
    ],
)
def test_bad_areas_are_refused_in_both_languages(street: Street, params: dict, code: str, fld: str) -> None:
    populate(street)
    with pytest.raises(Invalid) as refused:
        declare(street, **params)
    problem = next(p for p in refused.value.problems if p.code == code)
    assert problem.field == fld and problem.zh and problem.en and problem.zh != problem.en
    assert Incident.objects.count() == 0 and EvacuationTask.objects.count() == 0


def test_bad_times_are_refused(street: Street) -> None:
    populate(street)
    now = clock.now()
    for value, code in [
        ((now + dt.timedelta(hours=2)).isoformat(), "occurred_at_future"),
        ((now - dt.timedelta(days=30)).isoformat(), "occurred_at_old"),
        ("yesterday-ish", "occurred_at_format"),
    ]:
        with pytest.raises(Invalid) as refused:
            declare(street, building_ids=buildings(street, "A1"), occurred_at=value)
        assert refused.value.problems[0].code == code and refused.value.problems[0].field == "occurred_at"


def test_a_building_outside_the_declarers_scope_cannot_be_picked(street: Street) -> None:
    populate(street)
    # A street leader of another street: same district, other street, no grids here.
    from zhizhi.geo.models import Region

    other = Region.objects.create(level="street", code="330105002", name="别的街道", parent=street.district)
    leader2 = create_staff(
        username="leader2", full_name="别街领导", role="street_leader", password=PASSWORD, regions=[other]
    )
    with pytest.raises(Invalid) as refused:
        services.declare_incident(
            leader2, kind="fire", area_mode="buildings", building_ids=[street.buildings["A1"].pk]
        )
    assert refused.value.problems[0].code == "building_unknown"
    with pytest.raises(Invalid) as refused:
        services.declare_incident(
            leader2, kind="fire", area_mode="polygon", polygon=square(120.1, 30.3, 120.11, 30.31)
        )
    assert refused.value.problems[0].code == "area_outside"


def test_an_area_without_residents_is_declared_without_tasks_and_says_so(street: Street) -> None:
    populate(street)
    result = declare(street, building_ids=buildings(street, "B2"))
    assert result.created and [w.code for w in result.warnings] == ["no_residents"]
    assert result.warnings[0].zh and result.warnings[0].en
    assert result.incident.households_total == 0 and EvacuationTask.objects.count() == 0


def test_radius_and_polygon_take_the_buildings_inside(street: Street) -> None:
    populate(street)
    # A1's building stands at 120.1025; 200 m reaches neither A2's (120.1075, ~480 m) nor B's.
    by_radius = declare(
        street, area_mode="radius", center_lng=120.1025, center_lat=30.305, radius_m=200
    ).incident
    assert by_radius.radius_m == 200 and by_radius.buildings_total == 1 and by_radius.households_total == 4
    by_polygon = declare(street, area_mode="polygon", polygon=square(120.1, 30.3, 120.11, 30.31)).incident
    assert by_polygon.buildings_total == 2 and by_polygon.households_total == 6
    # A grid without any worker: its households are listed but unassigned, and the declarer is told.
    populate_b2 = street.person("b2", grid="B2", house="B2-1-101")
    assert populate_b2.pk
    result = declare(street, area_mode="polygon", polygon=square(120.115, 30.3, 120.12, 30.31))
    assert [w.code for w in result.warnings] == ["unassigned"] and "B2网格" in result.warnings[0].zh
    assert EvacuationTask.objects.get(incident=result.incident).assignee is None


def test_least_loaded_assignment_within_the_grid(street: Street) -> None:
    populate(street)
    extra = create_staff(
        username="grid_a1b",
        full_name="A1网格员乙",
        role="grid_worker",
        password=PASSWORD,
        regions=[street.grids["A1"]],
    )
    incident = declare(street, building_ids=buildings(street, "A1")).incident
    first = list(
        EvacuationTask.objects.filter(incident=incident)
        .order_by("seq")
        .values_list("assignee__username", flat=True)
    )
    # Round the pool (grid workers, then the community's social worker), least-loaded first.
    assert first == ["grid_a1", "grid_a1b", "community_a", "grid_a1"] and extra.username in first
    # A second incident over the same building: those holding fewer open tasks are chosen first, so the
    # load evens out across both incidents.
    second = declare(street, kind="fire", building_ids=buildings(street, "A1")).incident
    seconds = EvacuationTask.objects.filter(incident=second).order_by("seq")
    assert seconds.first().assignee.username == "grid_a1b"  # type: ignore[union-attr]
    totals: dict[str, int] = {}
    for name in EvacuationTask.objects.values_list("assignee__username", flat=True):
        totals[name] = totals.get(name, 0) + 1
    assert max(totals.values()) - min(totals.values()) <= 1 and sum(totals.values()) == 8


def test_marks_are_idempotent_scoped_and_raise_help(street: Street) -> None:
    populate(street)
    incident = declare(street, building_ids=buildings(street, "A1", "B1")).incident
    task = EvacuationTask.objects.filter(incident=incident, grid=street.grids["A1"]).first()
    assert task is not None
    worker = street.users["grid_a1"]
    services.mark_task(worker, task.pk, "evacuated", request_id="m-1")
    services.mark_task(worker, task.pk, "evacuated", request_id="m-2")  # a double tap
    services.mark_task(worker, task.pk, "evacuated", request_id="m-1")  # a retried request
    assert IncidentEvent.objects.filter(incident=incident, kind="marked").count() == 1
    # Another household's mark that happens to carry the same request id is not lost.
    neighbour = EvacuationTask.objects.filter(
        incident=incident, grid=street.grids["A1"], status="pending"
    ).last()
    assert neighbour is not None
    services.mark_task(worker, neighbour.pk, "not_home", request_id="m-1")
    neighbour.refresh_from_db()
    assert neighbour.status == "not_home"
    task.refresh_from_db()
    assert task.status == "evacuated" and task.marked_by == worker and task.marked_at is not None
    # Another grid's worker: 403 in both languages, nothing changes.
    other = EvacuationTask.objects.filter(incident=incident, grid=street.grids["B1"]).first()
    assert other is not None
    with pytest.raises(Forbidden) as refused:
        services.mark_task(worker, other.pk, "evacuated")
    assert "网格" in refused.value.zh and "grid" in refused.value.en
    other.refresh_from_db()
    assert other.status == "pending"
    with pytest.raises(Invalid):
        services.mark_task(worker, task.pk, "vanished")
    # 需要协助: a help request, an inbox message to the command centre, a live event with the counts.
    helpme = EvacuationTask.objects.filter(
        incident=incident, grid=street.grids["A1"], status="pending"
    ).first()
    assert helpme is not None
    services.mark_task(worker, helpme.pk, "needs_help", note="卧床老人需担架")
    item = HelpRequest.objects.get(incident=incident)
    assert item.task == helpme and item.note == "卧床老人需担架" and item.resolved_at is None
    inbox = OutboxMessage.objects.filter(
        cause=f"emergency.incident:{incident.pk}", user=street.users["dispatcher"]
    )
    assert inbox.count() == 1 and "需要协助" in inbox.first().subject  # type: ignore[union-attr]
    event = LiveEvent.objects.filter(channel="emergency").order_by("-pk").first()
    assert event is not None and event.payload["help"]["note"] == "卧床老人需担架"
    assert event.payload["households_done"] == 2 and event.payload["households_total"] == 5
    assert event.area_path == street.grids["A1"].path
    # Once helped out, the household closes and the help request with it.
    services.mark_task(worker, helpme.pk, "evacuated")
    item.refresh_from_db()
    assert item.resolved_at is not None and item.resolved_by == worker
    counts = services.board_counts(incident)
    assert (counts["households_done"], counts["needs_help"]) == (3, 0)


def test_every_outcome_and_vulnerable_progress(street: Street) -> None:
    populate(street)
    incident = declare(street, building_ids=buildings(street, "A1")).incident
    leader = street.users["leader"]
    outcomes = ["evacuated", "not_home", "refused", "evacuated"]
    for task, outcome in zip(
        EvacuationTask.objects.filter(incident=incident).order_by("seq"), outcomes, strict=True
    ):
        services.mark_task(leader, task.pk, outcome)
    counts = services.board_counts(incident)
    assert counts["households_done"] == counts["households_total"] == 4
    assert counts["vulnerable_done"] == counts["vulnerable_total"] == 3
    services.close_incident(leader, incident)
    incident.refresh_from_db()
    assert incident.status == "closed" and incident.closed_at is not None
    with pytest.raises(Invalid):
        services.mark_task(leader, EvacuationTask.objects.filter(incident=incident).first().pk, "refused")  # type: ignore[union-attr]


def test_two_overlapping_incidents_give_a_household_one_task_each(street: Street) -> None:
    populate(street)
    first = declare(street, building_ids=buildings(street, "A1")).incident
    second = declare(
        street, kind="gas_leak", area_mode="radius", center_lng=120.1025, center_lat=30.305, radius_m=800
    ).incident
    house = street.houses["A1-1-101"]
    assert EvacuationTask.objects.filter(house=house).count() == 2
    assert services.overlapping(first) == [second] and services.overlapping(second) == [first]
    task = EvacuationTask.objects.get(house=house, incident=first)
    services.mark_task(street.users["grid_a1"], task.pk, "evacuated")
    assert EvacuationTask.objects.get(house=house, incident=second).status == "pending"


def test_cameras_inside_or_facing_the_area(street: Street) -> None:
    populate(street)
    incident = declare(
        street, area_mode="radius", center_lng=120.1025, center_lat=30.305, radius_m=100
    ).incident
    inside = Camera.objects.create(
        code="C1", name="楼下", lng=120.1026, lat=30.3051, snapshot_url="http://127.0.0.1/s.jpg"
    )
    # 150 m east of the centre, looking west (270°) 100 m: its view reaches the circle.
    facing = Camera.objects.create(
        code="C2", name="路口", lng=120.10406, lat=30.305, heading=270, range_m=100
    )
    # Same place looking east: away from the area.
    Camera.objects.create(code="C3", name="背向", lng=120.10406, lat=30.305, heading=90, range_m=100)
    Camera.objects.create(code="C4", name="停用", lng=120.1025, lat=30.305, enabled=False)
    found = {c["code"]: c["how"] for c in services.cameras_for(incident)}
    assert found == {inside.code: "inside", facing.code: "facing"}
