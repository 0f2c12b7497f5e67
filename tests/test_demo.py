"""The demo street: its full-scale plan is realistic and valid except for the documented injected
errors; loading it (at a small scale here) writes exactly the plan, and the injected errors are found
again in the database by query, with the documented counts."""

from __future__ import annotations

import datetime as dt
import io
from collections import Counter
from decimal import Decimal

import phonenumbers
import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from shapely.geometry import Point, shape
from shapely.ops import unary_union

from zhizhi import validators
from zhizhi.demo import checks
from zhizhi.demo.logins import DEMO_LOGINS
from zhizhi.demo.plan import INJECTED, build_plan
from zhizhi.enterprises.models import Enterprise, TaxRecord
from zhizhi.geo import services as geo
from zhizhi.geo.models import Building, Region
from zhizhi.models import ChangeLogEntry
from zhizhi.orgs.models import OrgUnit, User
from zhizhi.people.models import CareTag, House, Person, Residency
from zhizhi.problems import Invalid

TODAY = dt.date(2026, 6, 15)
EXPECTED_ERRORS = {key: count for key, _, _, count in INJECTED}


@pytest.fixture(scope="module")
def full_plan():  # type: ignore[no-untyped-def]
    return build_plan(seed=42, scale=1.0, today=TODAY)


def test_full_scale_plan_has_the_promised_size(full_plan) -> None:  # type: ignore[no-untyped-def]
    counts = full_plan.counts()
    assert counts["communities"] == 7
    assert 160 <= counts["grids"] <= 180
    assert 130 <= counts["buildings"] <= 170
    assert 4800 <= counts["houses"] <= 5300
    assert 14000 <= counts["people"] <= 16000
    assert 0.025 <= counts["tagged_people"] / counts["people"] <= 0.035
    assert counts["enterprises"] == 300
    assert counts["tax_records"] >= 300 * 18
    assert {e.key: e.count for e in full_plan.errors} == EXPECTED_ERRORS
    assert all(len(e.examples) == e.count for e in full_plan.errors)


def test_grids_tile_their_communities_without_overlap(full_plan) -> None:  # type: ignore[no-untyped-def]
    grids = {r.code: shape(r.boundary) for r in full_plan.regions if r.level == "grid"}
    assert all(g.is_valid and g.area > 0 for g in grids.values())
    union = unary_union(list(grids.values()))
    # Equal areas: no two grids overlap (any overlap would be counted twice in the sum).
    assert union.area == pytest.approx(sum(g.area for g in grids.values()), rel=1e-9)
    lng0, lat0, lng1, lat1 = union.bounds
    assert 120.12 < lng0 < lng1 < 120.18 and 30.29 < lat0 < lat1 < 30.34
    for community in (r for r in full_plan.regions if r.level == "community"):
        own = unary_union([grids[c] for c in grids if c.startswith(community.code)])
        assert own.symmetric_difference(shape(community.boundary)).area < 1e-12
    for b in full_plan.buildings:
        assert grids[b.grid].contains(Point(b.lng, b.lat)), b.code
        assert b.code.startswith(b.grid + "-B")


def test_people_are_valid_except_the_injected_errors(full_plan) -> None:  # type: ignore[no-untyped-def]
    bad_check, mismatch = 0, 0
    for person in full_plan.people:
        try:
            number = validators.id_number(person.id_number)
        except Invalid as exc:
            assert [p.code for p in exc.problems] == ["id_checksum"]
            bad_check += 1
            continue
        birth, gender = validators.id_birth_and_gender(number)
        mismatch += birth != person.birth_date or gender != person.gender
    assert (bad_check, mismatch) == (12, 8)
    ids = Counter(p.id_number for p in full_plan.people)
    assert sum(1 for n in ids.values() if n > 1) == 3
    phones = [p.phone for p in full_plan.people if p.phone]
    assert len(phones) > 0.7 * len(full_plan.people)
    assert all(phonenumbers.is_valid_number(phonenumbers.parse(x, "CN")) for x in phones[:3000])
    ages = Counter(min((TODAY - p.birth_date).days // 3653 * 10, 90) for p in full_plan.people)
    share = {k: v / len(full_plan.people) for k, v in ages.items()}
    assert share[0] > 0.05 and share[30] > 0.1
    assert share[60] + share[70] + share[80] + share[90] > 0.15  # an old street: many elderly
    assert share[80] + share[90] > 0.02
    for tag in full_plan.care_tags:
        if tag.kind == "elderly_80":
            assert (TODAY - full_plan.people[tag.person].birth_date).days >= 80 * 365
        if tag.kind == "disabled":
            assert tag.level in ("一级", "二级", "三级", "四级")


def test_enterprises_have_valid_codes_and_two_years_of_taxes(full_plan) -> None:  # type: ignore[no-untyped-def]
    codes = [e.credit_code for e in full_plan.enterprises]
    assert len(set(codes)) == len(codes)
    assert all(validators.credit_code(c) == c for c in codes)
    months = Counter(t.enterprise for t in full_plan.tax_records)
    assert max(months.values()) == 24
    assert sum(1 for e in full_plan.enterprises if e.shape == "revenue_drop") == 12
    here = {e: full_plan.enterprises[e].shape for e in range(len(full_plan.enterprises))}
    elsewhere = {t.enterprise for t in full_plan.tax_records if not t.tax_paid_here}
    assert {here[e] for e in elsewhere} == {"business_here_not_tax"}
    for e, ent in enumerate(full_plan.enterprises):
        if ent.shape == "revenue_drop":
            rows = sorted((t for t in full_plan.tax_records if t.enterprise == e), key=lambda t: t.period)
            assert len(rows) == 24
            assert rows[-1].revenue < rows[-13].revenue * Decimal("0.85")  # same month, a year apart
            assert sum(t.revenue for t in rows[-12:]) < sum(t.revenue for t in rows[:12]) * Decimal("0.95")
    legal = [x for x in full_plan.executives if x.position == "legal_rep" and x.end_date is None]
    assert len(legal) == 300
    assert any(x.end_date is not None for x in full_plan.executives)  # some changes


def test_same_seed_same_street_other_seed_other_street() -> None:
    a = build_plan(seed=5, scale=0.1, today=TODAY)
    b = build_plan(seed=5, scale=0.1, today=TODAY)
    c = build_plan(seed=6, scale=0.1, today=TODAY)
    assert [(p.name, p.id_number) for p in a.people] == [(p.name, p.id_number) for p in b.people]
    assert [r.boundary for r in a.regions] == [r.boundary for r in b.regions]
    assert [(p.name, p.id_number) for p in a.people] != [(p.name, p.id_number) for p in c.people]


def test_scale_below_the_minimum_is_refused() -> None:
    with pytest.raises(ValueError, match="scale"):
        build_plan(seed=1, scale=0.01, today=TODAY)


@pytest.mark.django_db
def test_loading_writes_the_plan_and_the_errors_are_found_again() -> None:
    out = io.StringIO()
    call_command("demo_street", seed=7, scale=0.1, stdout=out)
    plan = build_plan(seed=7, scale=0.1)
    counts = plan.counts()
    assert Region.objects.filter(level="grid").count() == counts["grids"]
    assert Building.objects.count() == counts["buildings"]
    assert House.objects.count() == counts["houses"]
    assert Person.objects.count() == counts["people"]
    assert Residency.objects.count() == counts["residencies"]
    assert CareTag.objects.count() == counts["care_tags"]
    assert Enterprise.objects.count() == counts["enterprises"]
    assert TaxRecord.objects.count() == counts["tax_records"]
    assert OrgUnit.objects.count() == counts["org_units"]
    assert User.objects.count() == counts["staff"]
    printed = out.getvalue()
    for key, count in EXPECTED_ERRORS.items():
        assert f"{count:>3}  {key}" in printed

    found = checks.find_injected_errors()
    assert {k: len(v) for k, v in found.items()} == EXPECTED_ERRORS
    for group in found["duplicate_id_number"]:
        assert len(group) == 2 and group[0].name != group[1].name

    # Rows are scoped: every person, house and tax record knows its grid's path.
    assert not Person.objects.filter(area_path="").exists()
    assert not House.objects.exclude(area_path__startswith="/330105/330105001/").exists()
    assert not TaxRecord.objects.filter(area_path="").exists()
    street = Region.objects.get(code="330105001")
    assert street.path == "/330105/330105001/" and street.parent.code == "330105"
    grid = Region.objects.get(code="330105001001001")
    assert grid.name == "塘河新村社区第1网格" and grid.center_lng is not None

    # One summary change-log row per registry, not one per row.
    assert ChangeLogEntry.objects.filter(object_id="demo", action="import").count() == 10
    assert ChangeLogEntry.objects.count() == 10

    # Point → grid agrees with where every building was put.
    for b in Building.objects.select_related("grid"):
        assert geo.grid_for_point(b.lng, b.lat) == b.grid

    # Loading again with --if-empty changes nothing; without it, it refuses rather than doubling up.
    call_command("demo_street", if_empty=True, stdout=io.StringIO())
    assert Person.objects.count() == counts["people"]
    with pytest.raises(CommandError, match="already exists"):
        call_command("demo_street", stdout=io.StringIO())
    assert Person.objects.count() == counts["people"]


@pytest.mark.django_db
def test_a_scale_too_small_is_a_command_error() -> None:
    with pytest.raises(CommandError, match="scale"):
        call_command("demo_street", scale=0.01, stdout=io.StringIO())
    assert not Region.objects.exists()


@pytest.mark.django_db
def test_demo_logins_work_and_see_their_scope() -> None:
    call_command("demo_street", seed=42, scale=0.1, stdout=io.StringIO())
    for login in DEMO_LOGINS:
        client = Client()
        assert client.login(username=login.username, password=login.password), login.username
    grid_worker = User.objects.get(username="grid01")
    own = Person.objects.visible_to(grid_worker)
    assert own.exists()
    assert set(own.values_list("grid__code", flat=True)) == {"330105001001001"}
    community = User.objects.get(username="community01")
    assert (
        Person.objects.visible_to(community).count()
        == Person.objects.filter(area_path__startswith="/330105/330105001/330105001001/").count()
    )
    leader = User.objects.get(username="leader")
    assert Person.objects.visible_to(leader).count() == Person.objects.count()
    qyfzb = User.objects.get(username="qyfzb")
    assert Enterprise.objects.visible_to(qyfzb).count() == Enterprise.objects.count()
    assert Person.objects.visible_to(User.objects.get(username="resident")).count() == 0
    # Every grid has its grid worker, every community its community worker.
    assert User.objects.filter(role="grid_worker").count() == Region.objects.filter(level="grid").count()
    assert User.objects.filter(role="community_worker").count() == 7

    out = io.StringIO()
    call_command("demo_logins", stdout=out)
    text = out.getvalue()
    assert "http://127.0.0.1:8000/" in text
    for login in DEMO_LOGINS:
        assert login.username in text and login.password in text
    assert "not created yet" not in text
