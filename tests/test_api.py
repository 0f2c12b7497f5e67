"""The API under /api/v1/ as an integrator and a browser use it: tokens and sessions, errors,
pagination, idempotent retries, concurrent edits, and the endpoints beyond the generic ones
(reveal, lookup by ID number, residents, residence history, locate). The per-registry
list/get/create/update/import/export matrix is the battery in tests/battery/."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.middleware.csrf import get_token
from django.test import Client, RequestFactory

from tests.factories import Street, make_id_number
from zhizhi.geo import coords
from zhizhi.models import APIToken, ChangeLogEntry, RevealLog
from zhizhi.people.models import Person, Residency
from zhizhi.permissions import create_token

PERSONS = "/api/v1/people/persons/"
REGIONS = "/api/v1/geo/regions/"


def as_user(street: Street, name: str) -> Client:
    client = Client()
    client.force_login(street.users[name])
    return client


def token_for(street: Street, name: str) -> str:
    raw, _ = create_token(street.users[name], "test")
    return raw


def new_person(street: Street, grid: str = "A1", **extra: Any) -> dict[str, Any]:
    return {
        "name": "新居民",
        "id_number": make_id_number("19850607", "F"),
        "phone": "13912345678",
        "grid": street.grids[grid].code,
        **extra,
    }


def post(client: Client, url: str, data: dict[str, Any], **headers: str) -> Any:
    return client.post(url, json.dumps(data), content_type="application/json", headers=headers)


def assert_bilingual(body: dict[str, Any], code: str) -> dict[str, Any]:
    assert body["errors"], body
    problem = next(p for p in body["errors"] if p["code"] == code)
    assert problem["zh"] and problem["en"] and problem["zh"] != problem["en"]
    assert problem["zh"] in problem["message"] and problem["en"] in problem["message"]
    return problem


# --- authentication ---------------------------------------------------------------------------
def test_anonymous_gets_401_with_both_languages(street: Street) -> None:
    for response in (Client().get(PERSONS), post(Client(), PERSONS, new_person(street))):
        assert response.status_code == 401
        assert response["WWW-Authenticate"].startswith("Bearer")
        assert_bilingual(response.json(), "unauthenticated")
    assert Person.objects.count() == 0


def test_token_from_the_command_works_as_bearer_and_header(street: Street) -> None:
    out = io.StringIO()
    call_command("create_api_token", "grid_a1", "hotline-bridge", stdout=out, stderr=io.StringIO())
    raw = out.getvalue().strip()
    assert raw.startswith("zz_")
    token = APIToken.objects.get(name="hotline-bridge")
    assert token.user == street.users["grid_a1"] and raw not in token.key_hash
    a1 = street.person("a1", grid="A1")
    street.person("b1", grid="B1")
    for headers in ({"Authorization": f"Bearer {raw}"}, {"X-API-Token": raw}):
        response = Client().get(PERSONS, headers=headers)
        assert response.status_code == 200
        assert [r["id"] for r in response.json()["results"]] == [a1.pk]
    bad = Client().get(PERSONS, headers={"Authorization": "Bearer zz_not-a-token"})
    assert bad.status_code == 401
    token.enabled = False
    token.save()
    assert Client().get(PERSONS, headers={"X-API-Token": raw}).status_code == 401


def test_create_api_token_refuses_an_unknown_user(db: None) -> None:
    with pytest.raises(CommandError):
        call_command("create_api_token", "nobody", "x", stdout=io.StringIO())


def test_token_writes_are_attributed_to_the_token_owner(street: Street) -> None:
    raw = token_for(street, "community_a")
    response = post(Client(), PERSONS, new_person(street), Authorization=f"Bearer {raw}")
    assert response.status_code == 201, response.content
    person = Person.objects.get(pk=response.json()["id"])
    assert person.created_by == street.users["community_a"]
    entry = ChangeLogEntry.objects.get(
        object_id=str(person.pk), action="create", content_type__model="person"
    )
    assert entry.actor == street.users["community_a"]


def test_session_writes_need_the_csrf_token(street: Street) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(street.users["community_a"])
    assert client.get(PERSONS).status_code == 200
    refused = post(client, PERSONS, new_person(street))
    assert refused.status_code == 403
    assert_bilingual(refused.json(), "csrf")
    assert Person.objects.count() == 0
    # What a page with a form hands the browser: the CSRF cookie and the token to send back.
    page = RequestFactory().get("/")
    csrf = get_token(page)
    client.cookies[settings.CSRF_COOKIE_NAME] = page.META["CSRF_COOKIE"]
    accepted = post(client, PERSONS, new_person(street), **{"X-CSRFToken": csrf})
    assert accepted.status_code == 201, accepted.content
    # A token client never meets CSRF, even with enforce_csrf_checks.
    raw = token_for(street, "community_a")
    other = Client(enforce_csrf_checks=True)
    response = post(other, PERSONS, new_person(street), Authorization=f"Bearer {raw}")
    assert response.status_code == 201


# --- output, errors -----------------------------------------------------------------------------
def test_output_masks_and_shapes_refs_and_choices(street: Street) -> None:
    person = street.person("m", grid="A1", house="A1-1-101")
    plain = person.decrypt_sensitive("id_number")
    phone = person.decrypt_sensitive("phone")
    response = as_user(street, "grid_a1").get(f"{PERSONS}{person.pk}/")
    row = response.json()
    text = response.content.decode()
    assert plain not in text and phone not in text
    assert row["id_number_masked"] == person.id_number_masked and "*" in row["id_number_masked"]
    assert row["gender"] == "M" and row["gender_label"] == "男"
    assert row["grid"] == {"id": street.grids["A1"].pk, "key": street.grids["A1"].code, "name": "A1网格"}
    assert "area_path" not in row


def test_invalid_input_reports_every_problem_by_field(street: Street) -> None:
    good = make_id_number("19850607", "F")
    bad_id = good[:-1] + ("0" if good[-1] != "0" else "1")  # a wrong check digit
    data = new_person(street, id_number=bad_id, phone="12345", population_type="火星人")
    response = post(as_user(street, "community_a"), PERSONS, data)
    assert response.status_code == 400
    fields = {p["field"] for p in response.json()["errors"]}
    assert {"id_number", "phone", "population_type"} <= fields
    choice = assert_bilingual(response.json(), "choice")
    assert "户籍" in choice["expected_zh"]
    assert Person.objects.count() == 0


def test_labels_are_accepted_and_checked_against_the_id_number(street: Street) -> None:
    client = as_user(street, "community_a")
    mismatch = post(client, PERSONS, new_person(street, gender="男"))
    assert mismatch.status_code == 400
    assert_bilingual(mismatch.json(), "gender_mismatch")
    ok = post(client, PERSONS, new_person(street, gender="女", population_type="流动"))
    assert ok.status_code == 201
    assert ok.json()["population_type"] == "floating" and ok.json()["birth_date"] == "1985-06-07"


def test_unknown_fields_and_parameters_are_errors_not_ignored(street: Street) -> None:
    client = as_user(street, "community_a")
    response = post(client, PERSONS, {**new_person(street), "id_number_masked": "x"})
    assert response.status_code == 400
    assert assert_bilingual(response.json(), "unknown_field")["field"] == "id_number_masked"
    listing = client.get(PERSONS, {"gird": street.grids["A1"].code})
    assert listing.status_code == 400
    assert "grid" in assert_bilingual(listing.json(), "unknown_filter")["expected_en"]


# --- pagination, search, ordering -----------------------------------------------------------------
def test_pagination_links_and_the_500_cap(street: Street) -> None:
    client = as_user(street, "leader")
    # The leader sees the street and everything under it (7 regions), not the district above.
    first = client.get(REGIONS, {"limit": 3, "ordering": "code"}).json()
    assert first["count"] == 7 and len(first["results"]) == 3 and first["previous"] is None
    assert "offset=3" in first["next"] and "ordering=code" in first["next"]
    second = client.get(first["next"]).json()
    assert [r["code"] for r in second["results"]] > [r["code"] for r in first["results"]]
    last = client.get(REGIONS, {"limit": 3, "offset": 6}).json()
    assert len(last["results"]) == 1 and last["next"] is None and "offset=3" in last["previous"]
    codes = [r["code"] for r in first["results"] + second["results"] + last["results"]]
    assert codes == sorted(codes) and len(set(codes)) == 7
    assert street.district.code not in codes
    capped = client.get(REGIONS, {"limit": 100000})
    assert capped.status_code == 200 and capped.json()["next"] is None


def test_search_filter_and_ordering(street: Street) -> None:
    client = as_user(street, "leader")
    found = client.get(REGIONS, {"q": "A1"}).json()
    assert [r["code"] for r in found["results"]] == [street.grids["A1"].code]
    grids = client.get(REGIONS, {"level": "网格", "ordering": "-code"}).json()
    assert [r["code"] for r in grids["results"]] == sorted(
        (g.code for g in street.grids.values()), reverse=True
    )
    under_a = client.get(REGIONS, {"parent": street.communities["A"].code}).json()
    assert {r["code"] for r in under_a["results"]} == {street.grids["A1"].code, street.grids["A2"].code}
    bad = client.get(REGIONS, {"ordering": "boundary"})
    assert bad.status_code == 400 and assert_bilingual(bad.json(), "ordering")


# --- scope --------------------------------------------------------------------------------------
def test_out_of_scope_is_404_and_unpermitted_is_403(street: Street) -> None:
    b1 = street.person("b1", grid="B1")
    client = as_user(street, "grid_a1")
    response = client.get(f"{PERSONS}{b1.pk}/")
    assert response.status_code == 404
    assert b1.name not in response.content.decode()
    assert_bilingual(response.json(), "not_found")
    assert client.get(f"{PERSONS}999999/").status_code == 404
    volunteer = as_user(street, "volunteer")
    assert volunteer.get(PERSONS).status_code == 403
    assert volunteer.get(f"{PERSONS}{b1.pk}/").status_code == 403
    assert_bilingual(volunteer.get(PERSONS).json(), "forbidden")
    # The volunteer may read the region tree of their street.
    assert volunteer.get(REGIONS).json()["count"] == 7


def test_a_grid_worker_cannot_create_in_another_grid_nor_move_a_row_out(street: Street) -> None:
    client = as_user(street, "grid_a1")
    refused = post(client, PERSONS, new_person(street, grid="B1"))
    assert refused.status_code == 403
    assert_bilingual(refused.json(), "forbidden")
    assert Person.objects.count() == 0
    a1 = street.person("a1", grid="A1")
    moved = client.patch(
        f"{PERSONS}{a1.pk}/",
        {"grid": street.grids["B1"].code, "version": a1.version},
        content_type="application/json",
    )
    assert moved.status_code == 403
    a1.refresh_from_db()
    assert a1.grid == street.grids["A1"] and a1.version == 1


# --- idempotency and duplicates -----------------------------------------------------------------
def test_idempotency_key_replays_the_first_create(street: Street) -> None:
    client = as_user(street, "community_a")
    data = new_person(street)
    first = post(client, PERSONS, data, **{"Idempotency-Key": "req-42"})
    again = post(client, PERSONS, data, **{"Idempotency-Key": "req-42"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert Person.objects.count() == 1
    # Without the key (or from another user) the natural key still refuses a second row.
    other = as_user(street, "admin")
    for c, headers in ((client, {}), (other, {"Idempotency-Key": "req-42"})):
        duplicate = post(c, PERSONS, data, **headers)
        assert duplicate.status_code == 400
        assert_bilingual(duplicate.json(), "duplicate")
    assert Person.objects.count() == 1


# --- concurrent edits ---------------------------------------------------------------------------
def test_concurrent_edits_the_later_stale_one_gets_409(street: Street) -> None:
    person = street.person("c", grid="A1")
    url = f"{PERSONS}{person.pk}/"
    worker, social = as_user(street, "grid_a1"), as_user(street, "community_a")
    read_by_worker = worker.get(url)
    read_by_social = social.get(url)
    assert read_by_worker["ETag"] == read_by_social["ETag"] == '"1"'
    first = worker.patch(
        url, {"note": "网格员走访"}, content_type="application/json", headers={"If-Match": '"1"'}
    )
    assert first.status_code == 200 and first.json()["version"] == 2
    second = social.patch(url, {"note": "社工覆盖", "version": 1}, content_type="application/json")
    assert second.status_code == 409
    assert second.json()["current_version"] == 2
    assert_bilingual(second.json(), "conflict")
    person.refresh_from_db()
    assert person.note == "网格员走访"
    retry = social.patch(url, {"note": "社工补充", "version": 2}, content_type="application/json")
    assert retry.status_code == 200 and retry.json()["note"] == "社工补充"


def test_put_needs_every_required_field(street: Street) -> None:
    building = street.buildings["A1"]
    client = as_user(street, "community_a")
    url = f"/api/v1/geo/buildings/{building.pk}/"
    partial = client.put(url, {"name": "新名", "version": 1}, content_type="application/json")
    assert partial.status_code == 400
    assert {p["field"] for p in partial.json()["errors"]} >= {"code", "address", "lng", "lat"}
    full = {
        "code": building.code,
        "name": "新名",
        "address": building.address,
        "lng": building.lng,
        "lat": building.lat,
        "version": 1,
    }
    assert client.put(url, full, content_type="application/json").status_code == 200


# --- reveal, lookup, residents, residences ------------------------------------------------------
def test_reveal_needs_a_purpose_is_logged_and_scoped(street: Street) -> None:
    a1, b1 = street.person("a1", grid="A1"), street.person("b1", grid="B1")
    raw = token_for(street, "grid_a1")
    client = Client(headers={"Authorization": f"Bearer {raw}"})
    url = f"{PERSONS}{a1.pk}/reveal"
    no_purpose = post(client, url, {"field": "phone", "purpose": ""})
    assert no_purpose.status_code == 400
    assert_bilingual(no_purpose.json(), "purpose_required")
    assert RevealLog.objects.count() == 0
    shown = post(client, url, {"field": "phone", "purpose": "上门走访联系"})
    assert shown.status_code == 200
    assert shown.json() == {"field": "phone", "value": a1.decrypt_sensitive("phone")}
    log = RevealLog.objects.get()
    assert (log.actor, log.field, log.purpose, log.object_id) == (
        street.users["grid_a1"],
        "phone",
        "上门走访联系",
        str(a1.pk),
    )
    assert post(client, f"{PERSONS}{b1.pk}/reveal", {"field": "phone", "purpose": "走访"}).status_code == 404
    assert post(client, url, {"field": "name", "purpose": "走访"}).status_code == 400
    # The dispatcher may read residents but not reveal them.
    dispatcher = post(as_user(street, "dispatcher"), url, {"field": "phone", "purpose": "回访"})
    assert dispatcher.status_code == 403
    assert RevealLog.objects.count() == 1


def test_lookup_by_id_number_uses_the_hash_and_the_scope(street: Street) -> None:
    a1, b1 = street.person("a1", grid="A1"), street.person("b1", grid="B1")
    client = as_user(street, "grid_a1")
    number = a1.decrypt_sensitive("id_number")
    found = client.get(f"{PERSONS}lookup", {"id_number": number.lower()})
    assert found.status_code == 200 and found.json()["id"] == a1.pk
    elsewhere = client.get(f"{PERSONS}lookup", {"id_number": b1.decrypt_sensitive("id_number")})
    assert elsewhere.status_code == 404
    nobody = client.get(f"{PERSONS}lookup", {"id_number": make_id_number("19700101")})
    assert nobody.status_code == 404
    invalid = client.get(f"{PERSONS}lookup", {"id_number": "330105198001011234"})
    assert invalid.status_code == 400 and invalid.json()["errors"][0]["field"] == "id_number"


def test_residents_today_and_residence_history(street: Street) -> None:
    mover = street.person("mover", grid="A1", house="A1-1-101")
    stays = street.person("stays", grid="A1", house="A1-1-101")
    Residency.objects.filter(person=mover).update(end_date="2023-06-30")
    Residency.objects.create(
        person=mover, house=street.houses["A1-2-201"], relation="tenant", start_date="2023-07-01"
    )
    client = as_user(street, "grid_a1")
    house = street.houses["A1-1-101"]
    today = client.get(f"/api/v1/people/houses/{house.pk}/residents").json()
    assert [r["person"]["id"] for r in today["results"]] == [stays.pk]
    history = client.get(f"{PERSONS}{mover.pk}/residences").json()
    assert [r["house"]["key"] for r in history["results"]] == ["B-A1-2-201", "B-A1-1-101"]
    assert history["results"][1]["end_date"] == "2023-06-30"
    other = street.houses["B1-1-101"]
    assert client.get(f"/api/v1/people/houses/{other.pk}/residents").status_code == 404


# --- locate ---------------------------------------------------------------------------------------
def test_locate_wgs84_gcj02_and_outside(street: Street) -> None:
    client = as_user(street, "volunteer")
    inside = client.get("/api/v1/geo/locate", {"lng": 120.1025, "lat": 30.305}).json()
    assert inside["inside"] is True
    assert inside["grid"]["key"] == street.grids["A1"].code
    assert inside["community"]["key"] == street.communities["A"].code
    assert inside["street"]["name"] == "小河街道"
    gx, gy = coords.wgs84_to_gcj02(120.1125, 30.305)  # a phone in B1 reporting GCJ-02
    assert abs(gx - 120.1125) > 0.003  # the datum shift is larger than half a grid here
    as_gcj = client.get("/api/v1/geo/locate", {"lng": gx, "lat": gy, "crs": "gcj02"}).json()
    assert as_gcj["grid"]["key"] == street.grids["B1"].code
    assert abs(as_gcj["lng"] - 120.1125) < 1e-7
    outside = client.get("/api/v1/geo/locate", {"lng": 116.404, "lat": 39.915})
    assert outside.status_code == 200
    assert outside.json()["inside"] is False and "outside" in outside.json()["message"]
    swapped = client.get("/api/v1/geo/locate", {"lng": 30.305, "lat": 120.1025})
    assert swapped.status_code == 400 and assert_bilingual(swapped.json(), "coord_swapped")
    assert client.get("/api/v1/geo/locate", {"lng": "东经", "lat": "30"}).status_code == 400
    assert client.get("/api/v1/geo/locate", {"lng": 120.1, "lat": 30.3, "crs": "bd09"}).status_code == 400


def test_gcj02_matches_the_reference_and_inverts() -> None:
    # Reference pair used by the common open implementations (e.g. eviltransform's tests).
    gx, gy = coords.wgs84_to_gcj02(116.404, 39.915)
    assert abs(gx - 116.41024449916938) < 1e-9 and abs(gy - 39.91640428150164) < 1e-9
    for lng, lat in ((120.1025, 30.305), (87.6, 43.8), (113.9, 22.5), (126.6, 45.7)):
        back = coords.gcj02_to_wgs84(*coords.wgs84_to_gcj02(lng, lat))
        assert abs(back[0] - lng) < 1e-9 and abs(back[1] - lat) < 1e-9
    assert coords.wgs84_to_gcj02(2.35, 48.85) == (2.35, 48.85)  # outside China: unchanged


# --- docs -----------------------------------------------------------------------------------------
def test_openapi_docs_are_served(db: None) -> None:
    docs = Client().get("/api/v1/docs")
    assert docs.status_code == 200
    page = docs.content.decode()
    assert "/static/ninja/swagger-ui-bundle.js" in page and "cdn" not in page.lower()  # never a CDN
    assert Client().get("/static/ninja/swagger-ui-bundle.js").status_code == 200
    schema = Client().get("/api/v1/openapi.json").json()
    assert "/api/v1/people/persons/{id}/reveal" in schema["paths"]
    assert {"BearerToken", "HeaderToken", "BrowserSession"} <= set(schema["components"]["securitySchemes"])


def test_a_referenced_person_outside_the_area_shows_only_an_id(street: Street) -> None:
    owner = street.person("owner", grid="B1", name="外网格业主")
    house = street.houses["A1-1-201"]
    house.owner = owner
    house.save()
    mine = as_user(street, "grid_a1").get(f"/api/v1/people/houses/{house.pk}/")
    assert mine.json()["owner"] == {"id": owner.pk, "key": "", "name": ""}
    assert "外网格业主" not in mine.content.decode()
    listed = as_user(street, "grid_a1").get("/api/v1/people/houses/", {"building": "B-A1"}).json()
    assert {"id": owner.pk, "key": "", "name": ""} in [r["owner"] for r in listed["results"]]
    leader = as_user(street, "leader").get(f"/api/v1/people/houses/{house.pk}/").json()
    assert leader["owner"]["name"] == "外网格业主" and leader["owner"]["key"] == owner.id_number_masked


def test_import_over_the_api_reports_every_bad_row_and_writes_nothing(street: Street) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    good = make_id_number("19700101")
    rows = [
        "姓名,身份证号,网格编码",
        f"好人,{good},{street.grids['A1'].code}",
        f"坏号,{good[:-1]}{'0' if good[-1] != '0' else '1'},{street.grids['A1'].code}",
        f"无网格,{make_id_number('19710101')},999999999999999",
    ]
    upload = SimpleUploadedFile("居民.csv", "\n".join(rows).encode("utf-8-sig"), content_type="text/csv")
    client = as_user(street, "community_a")
    response = client.post(f"{PERSONS}import", {"file": upload})
    assert response.status_code == 400
    problems = response.json()["errors"]
    assert {p["row"] for p in problems} == {3, 4}
    assert all(p["zh"] and p["en"] for p in problems)
    assert Person.objects.count() == 0
    not_a_sheet = SimpleUploadedFile("photo.xlsx", b"\x89PNG\r\n\x1a\n" + b"0" * 100)
    refused = client.post(f"{PERSONS}import", {"file": not_a_sheet})
    assert refused.status_code == 400 and refused.json()["errors"]
    fixed = SimpleUploadedFile("居民.csv", "\n".join(rows[:2]).encode("utf-8-sig"), content_type="text/csv")
    done = client.post(f"{PERSONS}import", {"file": fixed})
    assert done.status_code == 200 and done.json()["created"] == 1
    assert Person.objects.get().created_by == street.users["community_a"]
