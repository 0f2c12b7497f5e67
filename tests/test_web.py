"""The web pages through Django's test client: the generic registry pages for every registry, area
scoping (out of scope is a 404), reveal with a purpose, the logs, conflicts, the map and the home pages."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from django.test import Client

from tests.factories import PASSWORD, Street, make_id_number, tag
from zhizhi import registry
from zhizhi.enterprises.models import Enterprise, Executive, TaxRecord
from zhizhi.geo.models import Region
from zhizhi.models import ChangeLogEntry, RevealLog
from zhizhi.orgs.models import OrgUnit
from zhizhi.people.models import CareTag, Person, Residency

ALL_KEYS = sorted(registry.registries())


def login(client: Client, street: Street, who: str) -> Client:
    assert client.login(username=street.users[who].username, password=PASSWORD)
    return client


@pytest.fixture
def data(street: Street) -> dict[str, Any]:
    """One row of every registry inside grid A1, plus a resident of B1 for scope checks."""
    a = street.person("a", grid="A1", house="A1-1-101", name="张三")
    b = street.person("b", grid="B1", house="B1-1-101", name="李四")
    care = tag(a, "living_alone", source="visit")
    ent = Enterprise.objects.create(
        name="小河科技有限公司",
        credit_code="91330105MA2H2H2H2A",
        legal_representative="王五",
        registered_address="测试路A1号",
        building=street.buildings["A1"],
        grid=street.grids["A1"],
        industry="I",
    )
    exe = Executive.objects.create(enterprise=ent, name="王五", position="legal_rep", start_date="2020-01-01")
    tax = TaxRecord.objects.create(enterprise=ent, period=dt.date(2026, 1, 1), revenue=100, tax_paid=5)
    return {
        "geo.region": street.grids["A1"],
        "geo.building": street.buildings["A1"],
        "people.house": street.houses["A1-1-101"],
        "people.person": a,
        "people.residency": Residency.objects.get(person=a),
        "people.caretag": care,
        "enterprises.enterprise": ent,
        "enterprises.executive": exe,
        "enterprises.taxrecord": tax,
        "orgs.orgunit": street.units["A1"],
        "other_person": b,
    }


# --- anonymous ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url", ["/", "/r/people.person/", "/r/people.person/1/", "/map/", "/logs/reveals/", "/map/grids.geojson"]
)
def test_anonymous_is_sent_to_login(client: Client, url: str, db: Any) -> None:
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_login_page_and_login_logout(client: Client, street: Street) -> None:
    page = client.get("/accounts/login/")
    assert page.status_code == 200 and "登录" in page.content.decode()
    bad = client.post("/accounts/login/", {"username": "leader", "password": "wrong"})
    assert "Wrong username or password" in bad.content.decode()
    ok = client.post("/accounts/login/", {"username": "leader", "password": PASSWORD})
    assert ok.status_code == 302 and ok["Location"] == "/"
    assert client.get("/").status_code == 200
    assert client.get("/accounts/logout/").status_code == 302 and client.get("/").status_code == 200
    client.post("/accounts/logout/")
    assert client.get("/").status_code == 302


# --- the generic registry pages, every registry ---------------------------------------------------
@pytest.mark.parametrize("key", ALL_KEYS)
def test_every_registry_list_and_detail_for_a_community_worker(
    client: Client, street: Street, data: dict[str, Any], key: str
) -> None:
    login(client, street, "community_a")
    obj = data[key]
    listing = client.get(f"/r/{key}/")
    assert listing.status_code == 200
    reg = registry.get(key)
    body = listing.content.decode()
    for name in reg.list_columns:
        assert reg.column(name).zh in body
    assert f"/r/{key}/{obj.pk}/" in body
    detail = client.get(f"/r/{key}/{obj.pk}/")
    assert detail.status_code == 200
    assert "变更记录" in detail.content.decode()
    assert client.get(f"/r/{key}/new/").status_code == 200
    edit = client.get(f"/r/{key}/{obj.pk}/edit/")
    assert edit.status_code == 200
    assert f'name="version" value="{obj.version}"' in edit.content.decode()


@pytest.mark.parametrize("key", ALL_KEYS)
def test_every_registry_edit_saves_through_the_registry_pipeline(
    client: Client, street: Street, data: dict[str, Any], key: str
) -> None:
    """Posting the edit form unchanged except one field writes exactly that change and a change-log row."""
    login(client, street, "community_a")
    obj = data[key]
    reg = registry.get(key)
    form = client.get(f"/r/{key}/{obj.pk}/edit/").context
    post = {f["name"]: f["value"] for f in form["fields"]}
    post["version"] = str(obj.version)
    edits = {
        "geo.region": ("name", "A1网格（改）"),
        "geo.building": ("name", "A1-1幢（改）"),
        "people.house": ("area_m2", "88.5"),
        "people.person": ("note", "已走访"),
        "people.residency": ("relation", "family"),
        "people.caretag": ("note", "每周探视"),
        "enterprises.enterprise": ("employees", "12"),
        "enterprises.executive": ("end_date", "2026-01-31"),
        "enterprises.taxrecord": ("tax_paid", "6.5"),
        "orgs.orgunit": ("duty", "网格巡查"),
    }
    name, value = edits[key]
    post[name] = value
    response = client.post(f"/r/{key}/{obj.pk}/edit/", post)
    assert response.status_code == 302, response.content.decode()[:2000]
    fresh = reg.model._default_manager.get(pk=obj.pk)
    assert str(getattr(fresh, name)) in (value, value + "0")
    assert fresh.version == obj.version + 1
    entry = ChangeLogEntry.objects.filter(object_id=str(obj.pk), action="update").first()
    assert entry is not None and entry.actor == street.users["community_a"]


CREATE = {
    "geo.region": lambda s: {
        "code": "330105001001009",
        "name": "A9网格",
        "level": "grid",
        "parent": "330105001001",
    },
    "geo.building": lambda s: {
        "code": "B-NEW",
        "name": "新楼",
        "address": "测试路9号",
        "lng": "120.1010",
        "lat": "30.3010",
        "units": "2",
        "floors": "6",
    },
    "people.house": lambda s: {"building": "B-A1", "unit": "2", "floor": "3", "room": "301", "use": "rented"},
    "people.person": lambda s: {
        "name": "赵六",
        "id_number": make_id_number("19900101", "F"),
        "grid": s.grids["A1"].code,
    },
    "people.residency": lambda s: {
        "person": s.people["a"].decrypt_sensitive("id_number"),
        "house": "B-A1-2-201",
        "relation": "tenant",
        "start_date": "2025-01-01",
    },
    "people.caretag": lambda s: {
        "person": s.people["a"].decrypt_sensitive("id_number"),
        "kind": "elderly_80",
    },
    "enterprises.enterprise": lambda s: {
        "name": "新企业",
        "credit_code": "91330105MA27XL2A59",
        "legal_representative": "钱七",
        "registered_address": "测试路A1号",
        "grid": s.grids["A1"].code,
        "industry": "F",
    },
    "enterprises.executive": lambda s: {
        "enterprise": "91330105MA2H2H2H2A",
        "name": "孙八",
        "position": "cfo",
        "start_date": "2024-01-01",
    },
    "enterprises.taxrecord": lambda s: {
        "enterprise": "91330105MA2H2H2H2A",
        "period": "2026-02-01",
        "revenue": "90",
        "tax_paid": "4",
    },
    "orgs.orgunit": lambda s: {
        "code": "G-A2",
        "name": "A2网格",
        "kind": "grid",
        "region": s.grids["A2"].code,
    },
}


@pytest.mark.parametrize("key", ALL_KEYS)
def test_every_registry_create_form(client: Client, street: Street, data: dict[str, Any], key: str) -> None:
    login(client, street, "community_a")
    reg = registry.get(key)
    before = reg.model._default_manager.count()
    response = client.post(f"/r/{key}/new/", CREATE[key](street))
    assert response.status_code == 302, response.content.decode()[:3000]
    assert reg.model._default_manager.count() == before + 1
    new = reg.model._default_manager.order_by("-pk").first()
    assert response["Location"] == f"/r/{key}/{new.pk}/"
    assert ChangeLogEntry.objects.filter(object_id=str(new.pk), action="create").exists()


def test_create_form_shows_every_problem_next_to_its_field_in_both_languages(
    client: Client, street: Street
) -> None:
    login(client, street, "community_a")
    response = client.post(
        "/r/people.person/new/", {"name": "", "id_number": "330105199001011234", "phone": "12345"}
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert 'data-field="name"' in body and "必填" in body and "is required" in body
    assert 'data-field="id_number"' in body
    assert 'data-field="phone"' in body
    assert Person.objects.count() == 0


def test_create_outside_scope_is_refused_and_nothing_written(client: Client, street: Street) -> None:
    login(client, street, "grid_a1")
    post = {"name": "王九", "id_number": make_id_number("19850505"), "grid": street.grids["B1"].code}
    response = client.post("/r/people.person/new/", post)
    assert response.status_code == 403
    assert "辖区之外" in response.content.decode()
    assert not Person.objects.filter(name="王九").exists()


# --- scoping --------------------------------------------------------------------------------------
def test_grid_worker_lists_only_their_grid(client: Client, street: Street, data: dict[str, Any]) -> None:
    login(client, street, "grid_a1")
    body = client.get("/r/people.person/").content.decode()
    assert "张三" in body and "李四" not in body
    # the masked ID number is what the list shows
    assert data["people.person"].id_number_masked in body
    assert data["people.person"].decrypt_sensitive("id_number") not in body


@pytest.mark.parametrize("key", ALL_KEYS)
def test_every_registry_hides_rows_of_another_grid(
    client: Client, street: Street, data: dict[str, Any], key: str
) -> None:
    """The B1 grid worker: A1's row is absent from the list and a 404 on detail, edit and reveal."""
    login(client, street, "grid_b1")
    obj = data[key]
    listing = client.get(f"/r/{key}/")
    assert listing.status_code in (200, 403)
    assert f"/r/{key}/{obj.pk}/" not in listing.content.decode()
    assert client.get(f"/r/{key}/{obj.pk}/").status_code == 404
    assert client.get(f"/r/{key}/{obj.pk}/edit/").status_code == 404
    assert client.post(f"/r/{key}/{obj.pk}/reveal/phone/", {"purpose": "核实"}).status_code == 404


@pytest.mark.parametrize("key", ["people.person", "people.house", "geo.building", "people.residency"])
def test_out_of_scope_detail_and_edit_are_404(
    client: Client, street: Street, data: dict[str, Any], key: str
) -> None:
    login(client, street, "grid_b1")
    obj = data[key]
    assert client.get(f"/r/{key}/{obj.pk}/").status_code == 404
    assert client.get(f"/r/{key}/{obj.pk}/edit/").status_code == 404
    assert client.post(f"/r/{key}/{obj.pk}/edit/", {"version": "1"}).status_code == 404


def test_no_permission_at_all_is_404_on_detail_and_forbidden_list(
    client: Client, street: Street, data: dict[str, Any]
) -> None:
    login(client, street, "volunteer")
    person = data["people.person"]
    assert client.get(f"/r/people.person/{person.pk}/").status_code == 404
    listing = client.get("/r/people.person/")
    assert listing.status_code == 403 and "张三" not in listing.content.decode()
    assert client.get("/r/people.person/new/").status_code == 403
    assert client.get("/r/nosuch.model/").status_code == 404


def test_read_only_role_cannot_edit(client: Client, street: Street, data: dict[str, Any]) -> None:
    login(client, street, "dispatcher")
    person = data["people.person"]
    detail = client.get(f"/r/people.person/{person.pk}/")
    assert detail.status_code == 200 and "/edit/" not in detail.content.decode()
    assert client.get(f"/r/people.person/{person.pk}/edit/").status_code == 404


# --- search, filters, pagination ------------------------------------------------------------------
def test_search_filter_and_htmx_fragment(client: Client, street: Street, data: dict[str, Any]) -> None:
    no_phone = street.person("c", grid="B2", name="王无电话")
    no_phone.set_sensitive("phone", "")
    no_phone.save()
    login(client, street, "leader")
    by_name = client.get("/r/people.person/?q=张").content.decode()
    assert "张三" in by_name and "李四" not in by_name and "王无电话" not in by_name
    number = data["other_person"].decrypt_sensitive("id_number")
    found = client.get("/r/people.person/", {"q": number}).content.decode()
    assert "李四" in found and "张三" not in found
    grid = street.grids["B1"]
    filtered = client.get("/r/people.person/", {"grid": grid.pk}).content.decode()
    assert "李四" in filtered and "张三" not in filtered
    fragment = client.get(
        "/r/people.person/", {"gender": "M"}, headers={"HX-Request": "true", "HX-Target": "results"}
    )
    text = fragment.content.decode()
    assert "<html" not in text and 'id="registry-table"' in text
    bad = client.get("/r/people.residency/", {"house": "no-such-house"}).content.decode()
    assert "筛选值格式不对" in bad and "wrong format" in bad


def test_pagination_is_50_per_page(client: Client, street: Street) -> None:
    for i in range(55):
        street.person(f"p{i}", grid="A2", name=f"居民{i:02d}")
    login(client, street, "leader")
    first = client.get("/r/people.person/")
    assert len(first.context["rows"]) == 50 and first.context["page"].paginator.num_pages == 2
    second = client.get("/r/people.person/?page=2")
    assert len(second.context["rows"]) == 5


# --- related rows on detail pages -----------------------------------------------------------------
def test_detail_pages_show_related_rows(client: Client, street: Street, data: dict[str, Any]) -> None:
    login(client, street, "leader")
    house = client.get(f"/r/people.house/{data['people.house'].pk}/").content.decode()
    assert "现住居民" in house and "张三" in house
    person = client.get(f"/r/people.person/{data['people.person'].pk}/").content.decode()
    assert "居住历史" in person and "独居" in person and "A1-1幢" in person
    building = client.get(f"/r/geo.building/{data['geo.building'].pk}/").content.decode()
    assert "1 单元" in building and "101" in building and "小河科技有限公司" in building
    ent = client.get(f"/r/enterprises.enterprise/{data['enterprises.enterprise'].pk}/").content.decode()
    assert "王五" in ent and "2026-01" in ent
    region = client.get(f"/r/geo.region/{street.communities['A'].pk}/")
    rows = {row[0].text: [c.text for c in row[2:]] for row in region.context["sections"][1].rows}
    assert rows["A1网格"][:3] == ["1", "4", "1"]


def test_detail_change_log_shows_before_and_after(
    client: Client, street: Street, data: dict[str, Any]
) -> None:
    person = data["people.person"]
    login(client, street, "community_a")
    client.post(f"/r/people.person/{person.pk}/edit/", {"version": person.version, "note": "腿脚不便"})
    client.post(f"/r/people.person/{person.pk}/edit/", {"version": person.version + 1, "status": "moved_out"})
    client.post(
        f"/r/people.person/{person.pk}/edit/",
        {"version": person.version + 2, "grid": street.grids["A2"].code},
    )
    response = client.get(f"/r/people.person/{person.pk}/")
    body = response.content.decode()
    assert "修改" in body and "备注" in body and "腿脚不便" in body
    diffs = [d for row in response.context["log"] for d in row["diff"]]
    assert {"field": "状态", "before": "在册", "after": "迁出"} in diffs  # labels, not codes
    assert {"field": "网格编码", "before": "A1网格", "after": "A2网格"} in diffs  # names, not ids
    # a reference the reader may not see stays an id: A1's house owned by B1's 李四
    house = street.houses["A1-1-101"]
    house.owner = data["other_person"]
    house.save()
    login(client, street, "grid_a1")
    owner = [d for row in client.get(f"/r/people.house/{house.pk}/").context["log"] for d in row["diff"]]
    assert {"field": "产权人身份证号", "before": "", "after": f"#{data['other_person'].pk}"} in owner


# --- conflicts ------------------------------------------------------------------------------------
def test_stale_version_shows_conflict_and_does_not_overwrite(
    client: Client, street: Street, data: dict[str, Any]
) -> None:
    person = data["people.person"]
    stale = person.version
    other = Client()
    login(other, street, "leader")  # read-only, so use the community worker for the first save
    first = Client()
    login(first, street, "community_a")
    assert (
        first.post(f"/r/people.person/{person.pk}/edit/", {"version": stale, "note": "先保存"}).status_code
        == 302
    )
    login(client, street, "grid_a1")
    response = client.post(f"/r/people.person/{person.pk}/edit/", {"version": stale, "note": "后保存"})
    assert response.status_code == 409
    body = response.content.decode()
    assert "此记录已被他人修改" in body and "先保存" in body
    assert Person.objects.get(pk=person.pk).note == "先保存"


# --- reveal ---------------------------------------------------------------------------------------
def test_reveal_needs_a_purpose_and_is_logged(client: Client, street: Street, data: dict[str, Any]) -> None:
    person = data["people.person"]
    login(client, street, "grid_a1")
    url = f"/r/people.person/{person.pk}/reveal/phone/"
    detail = client.get(f"/r/people.person/{person.pk}/").content.decode()
    assert url in detail  # the 查看 button
    form = client.get(url)
    assert form.status_code == 200 and 'name="purpose"' in form.content.decode()
    refused = client.post(url, {"purpose": ""})
    assert refused.status_code == 400
    assert "请说明查看原因" in refused.content.decode() and "State why" in refused.content.decode()
    assert RevealLog.objects.count() == 0
    shown = client.post(url, {"purpose": "入户走访联系"})
    assert shown.status_code == 200
    assert person.decrypt_sensitive("phone") in shown.content.decode()
    entry = RevealLog.objects.get()
    assert (entry.actor, entry.field, entry.purpose) == (street.users["grid_a1"], "phone", "入户走访联系")


def test_reveal_out_of_scope_or_without_permission(
    client: Client, street: Street, data: dict[str, Any]
) -> None:
    person = data["people.person"]
    login(client, street, "grid_b1")
    assert client.post(f"/r/people.person/{person.pk}/reveal/phone/", {"purpose": "核实"}).status_code == 404
    login(client, street, "dispatcher")  # can view, cannot reveal
    detail = client.get(f"/r/people.person/{person.pk}/").content.decode()
    assert "/reveal/" not in detail
    refused = client.post(f"/r/people.person/{person.pk}/reveal/phone/", {"purpose": "核实身份"})
    assert refused.status_code == 403 and person.decrypt_sensitive("phone") not in refused.content.decode()
    assert RevealLog.objects.count() == 0
    assert client.post(f"/r/people.person/{person.pk}/reveal/name/", {"purpose": "核实"}).status_code == 404


# --- logs -----------------------------------------------------------------------------------------
def test_leader_sees_reveal_log_and_grid_worker_does_not(
    client: Client, street: Street, data: dict[str, Any]
) -> None:
    person = data["people.person"]
    login(client, street, "grid_a1")
    client.post(f"/r/people.person/{person.pk}/reveal/id_number/", {"purpose": "办理低保核对"})
    assert client.get("/logs/reveals/").status_code == 404
    assert client.get("/logs/changes/").status_code == 404
    login(client, street, "leader")
    body = client.get("/logs/reveals/").content.decode()
    assert "办理低保核对" in body and "A1网格员" in body and "身份证号" in body
    assert "办理低保核对" in client.get("/logs/reveals/", {"user": "grid_a1"}).content.decode()
    assert "办理低保核对" not in client.get("/logs/reveals/", {"user": "leader"}).content.decode()
    tomorrow = (dt.date.today() + dt.timedelta(days=2)).isoformat()
    assert "办理低保核对" not in client.get("/logs/reveals/", {"from": tomorrow}).content.decode()
    changes = client.get("/logs/changes/", {"model": "people.person"})
    assert changes.status_code == 200 and "张三" in changes.content.decode()


def test_reveal_log_is_scoped_by_area(client: Client, street: Street, data: dict[str, Any]) -> None:
    from zhizhi.models import ObjectPermission
    from zhizhi.permissions import forget

    a, b = data["people.person"], data["other_person"]
    login(client, street, "community_a")
    client.post(f"/r/people.person/{a.pk}/reveal/phone/", {"purpose": "A社区走访"})
    login(client, street, "leader")
    client.post(f"/r/people.person/{b.pk}/reveal/phone/", {"purpose": "B社区走访"})
    perm = ObjectPermission.objects.create(
        name="A社区查看日志",
        object_types=["zhizhi.reveallog"],
        actions=["view"],
        constraints={"area_path__startswith": "$scope"},
        roles=["community_worker"],
    )
    assert perm.pk
    forget(street.users["community_a"])
    login(client, street, "community_a")
    body = client.get("/logs/reveals/").content.decode()
    assert "A社区走访" in body and "B社区走访" not in body


# --- home pages -----------------------------------------------------------------------------------
def test_leader_home_counts_by_community_and_care_kind(
    client: Client, street: Street, data: dict[str, Any]
) -> None:
    tag(data["other_person"], "disabled", level="二级")
    tag(data["people.person"], "elderly_80")  # a second tag on the same person counts them once
    login(client, street, "leader")
    ctx = client.get("/").context
    cards = {c["label"]: c["count"] for c in ctx["cards"]}
    assert cards["居民"] == 2 and cards["房屋"] == 16 and cards["楼幢"] == 4 and cards["企业"] == 1
    assert cards["重点人群"] == 2
    assert {c["label"]: c["count"] for c in ctx["care"]} == {"独居": 1, "残疾": 1, "高龄": 1}
    rows = {r["region"].name: r["counts"] for r in ctx["breakdown"]}
    assert rows == {"A社区": [1, 8, 2, 1, 1], "B社区": [1, 8, 2, 0, 1]}


def test_grid_worker_home_lists_their_buildings_and_people_of_care(
    client: Client, street: Street, data: dict[str, Any]
) -> None:
    tag(data["other_person"], "disabled")
    login(client, street, "grid_a1")
    response = client.get("/")
    body = response.content.decode()
    assert "本网格重点人群" in body and "张三" in body and "李四" not in body
    assert "A1-1幢" in body and "B1-1幢" not in body
    cards = {c["label"]: c["count"] for c in response.context["cards"]}
    assert cards["居民"] == 1


def test_community_home_breaks_down_by_grid(client: Client, street: Street, data: dict[str, Any]) -> None:
    login(client, street, "community_a")
    ctx = client.get("/").context
    assert [r["region"].name for r in ctx["breakdown"]] == ["A1网格", "A2网格"]
    login(client, street, "admin")  # a superuser serves no region: the street's communities
    assert [r["region"].name for r in client.get("/").context["breakdown"]] == ["A社区", "B社区"]


# --- map ------------------------------------------------------------------------------------------
def test_map_geojson_is_scoped(client: Client, street: Street, data: dict[str, Any]) -> None:
    login(client, street, "grid_a1")
    grids = json.loads(client.get("/map/grids.geojson").content)
    assert [f["properties"]["name"] for f in grids["features"]] == ["A1网格"]
    assert grids["features"][0]["geometry"]["type"] == "Polygon"
    buildings = json.loads(client.get("/map/buildings.geojson").content)
    assert [f["properties"]["code"] for f in buildings["features"]] == ["B-A1"]
    login(client, street, "leader")
    assert len(json.loads(client.get("/map/grids.geojson").content)["features"]) == 4
    page = client.get("/map/").content.decode()
    assert "vendor/leaflet/leaflet.js" in page and "tile.openstreetmap" not in page


def test_map_grid_panel_counts_and_scope(client: Client, street: Street, data: dict[str, Any]) -> None:
    login(client, street, "leader")
    panel = client.get(f"/map/grid/{street.grids['A1'].pk}/")
    assert panel.status_code == 200
    assert panel.context["counts"] == {"houses": 4, "residents": 1, "care": 1}
    assert "A1-1幢" in panel.content.decode()
    login(client, street, "grid_b1")
    assert client.get(f"/map/grid/{street.grids['A1'].pk}/").status_code == 404


def test_locate_inside_outside_and_swapped(client: Client, street: Street) -> None:
    login(client, street, "leader")
    inside = client.get("/map/locate/", {"lng": "120.1025", "lat": "30.305"}).content.decode()
    assert "A1网格" in inside
    outside = client.get("/map/locate/", {"lng": "121.5", "lat": "31.2"})
    assert outside.status_code == 200
    assert (
        "不在本街道任何网格内" in outside.content.decode()
        and "outside the street" in outside.content.decode()
    )
    swapped = client.get("/map/locate/", {"lng": "30.305", "lat": "120.1025"})
    assert swapped.status_code == 400 and "填反" in swapped.content.decode()


# --- language -------------------------------------------------------------------------------------
def test_english_switch(client: Client, street: Street, data: dict[str, Any]) -> None:
    login(client, street, "leader")
    client.post("/i18n/setlang/", {"language": "en", "next": "/"})
    body = client.get("/r/people.person/").content.decode()
    assert "Residents" in body and "ID number" in body and "Search" in body
    home = client.get("/").content.decode()
    assert "Home" in home and "Log out" in home


def test_static_assets_are_vendored(client: Client, street: Street) -> None:
    login(client, street, "leader")
    body = client.get("/").content.decode()
    assert "/static/vendor/htmx.min.js" in body and "/static/vendor/alpine.min.js" in body
    assert "cdn" not in body.lower()


def test_admin_is_scoped_and_never_shows_ciphertext(
    client: Client, street: Street, data: dict[str, Any]
) -> None:
    from zhizhi.orgs.models import User

    login(client, street, "admin")
    person = data["people.person"]
    page = client.get(f"/admin/people/person/{person.pk}/change/").content.decode()
    assert person.id_number_masked in page
    assert "id_number_enc" not in page and "id_number_hash" not in page and person.id_number_enc not in page
    # a staff user with admin access sees only their area
    staff: User = street.users["grid_a1"]
    staff.is_staff = True
    staff.save()
    from django.contrib.auth.models import Permission

    staff.user_permissions.add(*Permission.objects.filter(codename__in=["view_person", "change_person"]))
    login(client, street, "grid_a1")
    listing = client.get("/admin/people/person/").content.decode()
    assert "张三" in listing and "李四" not in listing
    assert client.get(f"/admin/people/person/{data['other_person'].pk}/change/").status_code in (302, 404)
    assert OrgUnit.objects.count() and Region.objects.count() and CareTag.objects.count()


def test_grid_boundary_edit_rejects_overlap_and_self_intersection(client: Client, street: Street) -> None:
    from tests.factories import square

    grid = street.grids["A2"]
    login(client, street, "community_a")
    url = f"/r/geo.region/{grid.pk}/edit/"
    overlap = json.dumps(square(120.103, 30.300, 120.110, 30.310))
    response = client.post(url, {"version": grid.version, "boundary": overlap})
    assert response.status_code == 400
    body = response.content.decode()
    assert 'data-field="boundary"' in body and "A1网格" in body and "overlaps" in body
    bow_tie = {
        "type": "Polygon",
        "coordinates": [
            [[120.105, 30.30], [120.11, 30.31], [120.11, 30.30], [120.105, 30.31], [120.105, 30.30]]
        ],
    }
    response = client.post(url, {"version": grid.version, "boundary": json.dumps(bow_tie)})
    assert response.status_code == 400 and 'data-field="boundary"' in response.content.decode()
    assert Region.objects.get(pk=grid.pk).boundary == grid.boundary


@pytest.mark.parametrize("key", ["people.residency", "people.caretag", "people.person"])
def test_list_query_count_does_not_grow_with_rows(client: Client, street: Street, key: str) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    login(client, street, "leader")

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(f"/r/{key}/").status_code == 200
        return len(ctx.captured_queries)

    tag(street.person("q0", grid="A1", house="A1-1-101"), "veteran")
    queries()  # warm-up: per-process caches (the holiday table behind the leader's banner) load once
    few = queries()
    for i in range(1, 8):
        tag(street.person(f"q{i}", grid="A2", house="A2-2-201"), "veteran")
    assert queries() == few
