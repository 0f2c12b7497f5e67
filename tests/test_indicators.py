"""Indicators as data: values against hand-computed fixtures at every region level (district, street,
community, grid) for several sources, the definition check, the board / trend / ranking shapes and the
indicator pages."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from tests.factories import PASSWORD, Street, tag
from zhizhi import clock
from zhizhi.alerts.models import Device
from zhizhi.alerts.rule_models import Alarm, AlertRule
from zhizhi.cases.models import Case, Category
from zhizhi.cockpit import services
from zhizhi.cockpit.forms import IndicatorForm
from zhizhi.cockpit.models import Indicator
from zhizhi.enterprises.models import Enterprise, TaxRecord
from zhizhi.people.models import Residency
from zhizhi.problems import Invalid

pytestmark = pytest.mark.django_db
_numbers = itertools.count(1)
TZ = timezone.get_current_timezone()
NOW = dt.datetime(2026, 3, 10, 15, 0, tzinfo=TZ)
TODAY = NOW.date()


def at(day: int, hour: int = 10, month: int = 3) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, 0, tzinfo=TZ)


def case(street: Street, grid: str, channel: str = "hotline", **kwargs: Any) -> Case:
    c = Case(
        number=f"T{next(_numbers):08d}",
        title="测试",
        channel=channel,
        grid=street.grids[grid],
        reported_at=kwargs.pop("reported_at", at(10, 9)),
        **kwargs,
    )
    c.save()
    return c


def indicator(code: str, **kwargs: Any) -> Indicator:
    kwargs.setdefault("name", code)
    ind = Indicator(code=code, **kwargs)
    ind.full_clean()
    ind.save()
    return ind


def levels(street: Street, code: str, day: dt.date | None = None) -> dict[str, float | None]:
    """The indicator's value at every region of the small street, by short name."""
    regions = {
        "district": street.district,
        "street": street.street,
        "A": street.communities["A"],
        "B": street.communities["B"],
        **street.grids,
    }
    return {name: services.value(code, region, day) for name, region in regions.items()}


def test_cases_by_channel_today_at_every_level(street: Street) -> None:
    case(street, "A1", "hotline")
    case(street, "A1", "hotline")
    case(street, "A2", "hotline")
    case(street, "B1", "hotline")
    case(street, "B1", "mailbox")  # another channel
    case(street, "B2", "hotline", reported_at=at(9))  # yesterday
    case(street, "B2", "hotline", reported_at=at(10, 16))  # later today than now
    indicator("hotline_today", source="cases.reported", params={"channel": ["hotline"]}, window="day")
    indicator("mailbox_month", source="cases.reported", params={"channel": ["mailbox"]}, window="month")
    with clock.frozen_at(NOW):
        assert levels(street, "hotline_today") == {
            "district": 4, "street": 4, "A": 3, "B": 1, "A1": 2, "A2": 1, "B1": 1, "B2": 0,
        }  # fmt: skip
        assert levels(street, "hotline_today", dt.date(2026, 3, 9)) == {
            "district": 1, "street": 1, "A": 0, "B": 1, "A1": 0, "A2": 0, "B1": 0, "B2": 1,
        }  # fmt: skip
        assert levels(street, "mailbox_month")["B1"] == 1
        assert levels(street, "mailbox_month")["A"] == 0


def test_overdue_is_past_the_deadline_and_not_finished_at_each_moment(street: Street) -> None:
    due = at(8, 17)
    case(street, "A1", due_at=due, reported_at=at(1))  # overdue since the 8th, still open
    case(street, "A1", due_at=due, reported_at=at(1), finished_at=at(9, 12))  # overdue 8th–9th
    case(street, "A2", due_at=due, reported_at=at(1), finished_at=at(8, 12))  # finished in time
    case(street, "B1", due_at=at(10, 18), reported_at=at(1))  # due later today: not yet
    case(street, "B2", due_at=due, reported_at=at(1), cancelled_at=at(9, 9), status="cancelled")
    indicator("overdue", source="cases.overdue", window="now")
    with clock.frozen_at(NOW):
        assert levels(street, "overdue") == {
            "district": 1, "street": 1, "A": 1, "B": 0, "A1": 1, "A2": 0, "B1": 0, "B2": 0,
        }  # fmt: skip
        assert levels(street, "overdue", dt.date(2026, 3, 8)) == {
            "district": 3, "street": 3, "A": 2, "B": 1, "A1": 2, "A2": 0, "B1": 0, "B2": 1,
        }  # fmt: skip
        assert levels(street, "overdue", dt.date(2026, 3, 7))["street"] == 0


def test_on_time_rate_is_a_ratio_of_two_parts(street: Street) -> None:
    def finished(grid: str, on_time: bool, day: int = 5) -> None:
        due = at(day, 17)
        done = at(day, 12) if on_time else at(day + 1, 9)
        case(street, grid, due_at=due, reported_at=at(1), dispatched_at=at(1, 11), finished_at=done)

    finished("A1", True)
    finished("A1", True)
    finished("A1", False)
    finished("A2", False)
    finished("B1", True)
    case(street, "B1", reported_at=at(1), finished_at=at(5, 12))  # no deadline: not in the rate
    finished("B2", True, day=2)
    Case.objects.filter(finished_at__month=3, finished_at__day=2).update(finished_at=at(10, 16))  # after now
    indicator(
        "on_time", source="cases.finished", params={"on_time": True}, window="month", aggregation="ratio",
        denominator_source="cases.finished", denominator_params={"with_deadline": True},
    )  # fmt: skip
    indicator(
        "avg_hours", source="cases.finished", window="month", aggregation="avg", measure="handling_hours"
    )
    with clock.frozen_at(NOW):
        got = levels(street, "on_time")
        assert got["street"] == pytest.approx(3 / 5 * 100)
        assert got["A"] == pytest.approx(2 / 4 * 100)
        assert got["A1"] == pytest.approx(2 / 3 * 100)
        assert got["A2"] == 0
        assert got["B1"] == 100
        assert got["B2"] is None  # nothing finished there yet this month: no rate, not 0 %
        hours = levels(street, "avg_hours")
        # A1: two finished on the 5th at 12:00 (97 h after dispatch), one on the 6th at 09:00 (118 h)
        assert hours["A1"] == pytest.approx((97 + 97 + 118) / 3)
        assert hours["B1"] == pytest.approx(97)  # the case without dispatch has no handling time


def test_active_alarms_by_rule_kind_and_device_kind(street: Street) -> None:
    smoke = AlertRule.objects.create(code="SM", name="烟感", kind="threshold", device_kind="smoke")
    door = AlertRule.objects.create(code="DO", name="无活动", kind="inactivity", device_kind="door")
    devices = {
        g: Device.objects.create(code=f"D-{g}", name=g, kind="smoke", grid=street.grids[g])
        for g in street.grids
    }

    def alarm(rule: AlertRule, grid: str, first: dt.datetime, cleared: dt.datetime | None = None) -> None:
        Alarm.objects.create(
            rule=rule, device=devices[grid], source_key=f"{rule.code}-{grid}-{first}", severity="major",
            status="cleared" if cleared else "active", first_seen_at=first, cleared_at=cleared,
            area_path=street.grids[grid].path,
        )  # fmt: skip

    alarm(smoke, "A1", at(9))
    alarm(smoke, "A1", at(10, 8))
    alarm(smoke, "B2", at(8), cleared=at(10, 9))  # cleared this morning
    alarm(door, "A2", at(10, 14))
    alarm(door, "B1", at(10, 16))  # after now
    indicator("smoke_alarms", source="alarms.active", params={"device_kind": ["smoke"]}, window="now")
    indicator("inactivity", source="alarms.active", params={"rule_kind": ["inactivity"]}, window="now")
    indicator("raised_today", source="alarms.raised", window="day")
    with clock.frozen_at(NOW):
        # every alarm has a smoke device here; the device kind filter goes through the device
        assert levels(street, "smoke_alarms") == {
            "district": 3, "street": 3, "A": 3, "B": 0, "A1": 2, "A2": 1, "B1": 0, "B2": 0,
        }  # fmt: skip
        assert levels(street, "inactivity")["A2"] == 1
        assert levels(street, "inactivity")["B"] == 0
        assert levels(street, "smoke_alarms", dt.date(2026, 3, 9))["B2"] == 1  # still active then
        assert levels(street, "raised_today") == {
            "district": 2, "street": 2, "A": 2, "B": 0, "A1": 1, "A2": 1, "B1": 0, "B2": 0,
        }  # fmt: skip


def test_people_of_special_care_counted_once_each(street: Street) -> None:
    alone = street.person("alone", grid="A1", house="A1-1-101", birth="19400101")
    tag(alone, "living_alone", verified_on=dt.date(2026, 1, 5))
    tag(alone, "elderly_80", verified_on=dt.date(2026, 1, 5))  # two tags, one person
    disabled = street.person("disabled", grid="B1", house="B1-1-101")
    tag(disabled, "disabled", verified_on=dt.date(2026, 3, 1))
    gone = street.person("gone", grid="B2", status="moved_out")
    tag(gone, "disabled")
    street.person("plain", grid="A2")
    indicator("care", source="care.people", window="now")
    indicator("care_disabled", source="care.people", params={"kind": ["disabled"]}, window="now")
    with clock.frozen_at(NOW):
        assert levels(street, "care") == {
            "district": 2, "street": 2, "A": 1, "B": 1, "A1": 1, "A2": 0, "B1": 1, "B2": 0,
        }  # fmt: skip
        assert levels(street, "care_disabled")["B1"] == 1
        assert levels(street, "care_disabled")["A"] == 0
        # known since their verification: before 1 March only the person living alone
        assert levels(street, "care", dt.date(2026, 2, 20))["street"] == 1


def test_residents_by_age_as_of_each_day(street: Street) -> None:
    street.person("turns60", grid="A1", house="A1-1-101", birth="19660305")
    street.person("old", grid="B1", house="B1-1-101", birth="19300101")
    street.person("young", grid="A2", house="A2-1-101", birth="20000101")
    moved = street.person("moved", grid="B2", house="B2-1-101", birth="19500101", status="moved_out")
    Residency.objects.filter(person=moved).update(end_date=dt.date(2026, 3, 1))
    indicator("elderly", source="residents", params={"min_age": 60}, window="now")
    indicator("population", source="residents", window="now")
    with clock.frozen_at(NOW):
        assert levels(street, "elderly") == {
            "district": 2, "street": 2, "A": 1, "B": 1, "A1": 1, "A2": 0, "B1": 1, "B2": 0,
        }  # fmt: skip
        assert levels(street, "elderly", dt.date(2026, 3, 4))["A1"] == 0  # the day before the birthday
        assert levels(street, "elderly", dt.date(2026, 2, 27))["B2"] == 1  # before moving out
        assert levels(street, "population")["street"] == 3
        assert levels(street, "population", dt.date(2026, 2, 27))["street"] == 4


def test_enterprises_by_industry_status_and_tax(street: Street) -> None:
    def firm(
        n: int, grid: str, industry: str, status: str = "operating", since: str = "2020-01-01"
    ) -> Enterprise:
        return Enterprise.objects.create(
            name=f"企业{n}", credit_code=f"91330105MA{n:08d}", legal_representative="张三",
            registered_address="地址", grid=street.grids[grid], industry=industry, status=status,
            established_on=since,
        )  # fmt: skip

    a = firm(1, "A1", "C")
    firm(2, "A1", "I")
    firm(3, "A2", "C", since="2026-03-02")
    firm(4, "B1", "C", status="cancelled")
    firm(5, "B2", "F", status="moved_out")
    for month, paid in ((1, 10), (2, 20), (3, 30)):
        TaxRecord.objects.create(enterprise=a, period=dt.date(2026, month, 1), revenue=100, tax_paid=paid)
    TaxRecord.objects.create(enterprise=a, period=dt.date(2025, 1, 1), revenue=80, tax_paid=5)
    indicator("firms", source="enterprises", window="now")
    indicator("factories", source="enterprises", params={"industry": ["C"]}, window="now")
    indicator("new_month", source="enterprises.new", window="month")
    indicator("tax_year", source="tax", window="year", aggregation="sum", measure="tax_paid")
    indicator(
        "revenue_yoy", source="tax", window="year", aggregation="growth", measure="revenue",
        denominator_source="tax", denominator_window="year_last_year",
    )  # fmt: skip
    with clock.frozen_at(NOW):
        assert levels(street, "firms") == {
            "district": 3, "street": 3, "A": 3, "B": 0, "A1": 2, "A2": 1, "B1": 0, "B2": 0,
        }  # fmt: skip
        assert levels(street, "factories")["A"] == 2
        assert levels(street, "factories", dt.date(2026, 3, 1))["A"] == 1  # before the second opened
        assert levels(street, "new_month")["street"] == 1
        assert levels(street, "tax_year")["A1"] == 60
        assert levels(street, "tax_year")["B"] == 0
        # 300 this year to 10 March against 80 by 10 March last year
        assert levels(street, "revenue_yoy")["A1"] == pytest.approx((300 / 80 - 1) * 100)
        assert levels(street, "revenue_yoy")["B1"] is None


def test_the_definition_is_checked_field_by_field_in_both_languages(street: Street) -> None:
    bad = Indicator(code="bad", name="坏", source="cases.nowhere", window="day")
    with pytest.raises(ValidationError) as caught:
        bad.full_clean()
    assert "source" in caught.value.message_dict
    assert "cases.nowhere" in caught.value.message_dict["source"][0]
    assert "unknown source" in caught.value.message_dict["source"][0]

    with pytest.raises(ValidationError) as caught:
        Indicator(
            code="b2", name="b", source="cases.reported", params={"colour": ["red"]}, window="day"
        ).full_clean()
    text = caught.value.message_dict["params"][0]
    assert "没有筛选字段「colour」" in text and "has no filter 'colour'" in text and "channel" in text

    with pytest.raises(ValidationError) as caught:
        Indicator(
            code="b3", name="b", source="cases.reported", params={"channel": ["fax"]}, window="forever"
        ).full_clean()
    errors = caught.value.message_dict
    assert "fax" in errors["params"][0] and "hotline" in errors["params"][0]
    assert set(errors) >= {"params", "window"}

    with pytest.raises(ValidationError) as caught:
        Indicator(code="b4", name="b", source="cases.open", window="month").full_clean()  # a stock: "now"
    assert "window" in caught.value.message_dict

    with pytest.raises(ValidationError) as caught:
        Indicator(code="b5", name="b", source="cases.reported", window="day", aggregation="sum").full_clean()
    assert "measure" in caught.value.message_dict

    with pytest.raises(ValidationError) as caught:
        Indicator(
            code="b6", name="b", source="cases.reported", window="day", aggregation="ratio"
        ).full_clean()
    assert "denominator_source" in caught.value.message_dict

    with pytest.raises(ValidationError) as caught:
        Indicator(
            code="b7", name="b", source="cases.reported", window="day", params={"category_class": ["99"]}
        ).full_clean()
    assert "99" in caught.value.message_dict["params"][0]  # checked against the responsibility list
    Category.objects.create(code="99", name="测试大类")
    Indicator(
        code="b7", name="b", source="cases.reported", window="day", params={"category_class": ["99"]}
    ).full_clean()


def test_import_refuses_the_whole_file_with_row_and_column(street: Street) -> None:
    rows = [
        {"code": "ok", "name": "好", "source": "cases.reported", "window": "day"},
        {
            "code": "nope",
            "name": "坏",
            "source": "cases.reported",
            "window": "day",
            "params": {"channnel": "x"},
        },
        {"code": "ok", "name": "重复", "source": "cases.open", "window": "now"},
        {"code": "extra", "name": "多列", "source": "cases.open", "window": "now", "colour": "red"},
    ]
    with pytest.raises(Invalid) as caught:
        services.import_indicators(rows)
    where = {(p.row, p.column) for p in caught.value.problems}
    assert (2, "params") in where and (3, "code") in where and (4, "colour") in where
    assert not Indicator.objects.exists()  # nothing half-written
    counts = services.import_indicators(rows[:1])
    assert counts == {"created": 1, "updated": 0, "unchanged": 0}
    assert services.import_indicators(rows[:1]) == {"created": 0, "updated": 0, "unchanged": 1}


def test_the_demo_file_has_four_scenes_and_over_a_hundred_valid_indicators(street: Street) -> None:
    # the classes of the responsibility list the demo indicators filter on
    rows = json.loads(services.DATA_FILE.read_text(encoding="utf-8"))
    classes = {c for r in rows for c in r.get("params", {}).get("category_class", [])}
    Category.objects.bulk_create([Category(code=c, name=f"大类{c}") for c in sorted(classes)])
    counts = services.load_indicator_file()
    assert counts["created"] >= 100
    by_scene = {s["code"]: len(s["indicators"]) for s in services.scenes()}
    assert set(by_scene) == {"overview", "safety", "livelihood", "industry"}
    assert all(n >= 15 for n in by_scene.values())
    with clock.frozen_at(NOW):
        board = services.board(street.street)
    assert len(board["indicators"]) == counts["created"]
    rows = {r["code"]: r for r in board["indicators"]}
    assert rows["cases_open"]["value"] == 0
    assert rows["on_time_rate_month"]["value"] is None


def test_changing_the_definition_marks_rollups_stale_but_thresholds_do_not(street: Street) -> None:
    ind = indicator("hotline", source="cases.reported", params={"channel": ["hotline"]}, window="day")
    Indicator.objects.filter(pk=ind.pk).update(stale_since=None)
    ind = Indicator.objects.get(pk=ind.pk)
    ind.threshold_green = 5
    ind.save()
    assert Indicator.objects.get(pk=ind.pk).stale_since is None
    ind.params = {"channel": ["mailbox"]}
    ind.save()
    assert Indicator.objects.get(pk=ind.pk).stale_since is not None


def test_board_shape(street: Street) -> None:
    case(street, "A1", "hotline")
    case(street, "B1", "hotline", reported_at=at(9))
    indicator(
        "hotline_today", source="cases.reported", params={"channel": ["hotline"]}, window="day",
        scene="overview", unit="件", threshold_green=0, threshold_red=5, higher_is_better=False,
    )  # fmt: skip
    indicator("open_cases", source="cases.open", window="now", scene="safety", breakdown_level="community")
    with clock.frozen_at(NOW):
        board = services.board(street.street)
        scenes = services.scenes()
        only_safety = services.board(street.communities["A"], scene="safety")
        trend = services.trend("hotline_today", street.street, days=3)
        ranking = services.ranking("open_cases", street.street)
        grid_board = services.board(street.communities["A"])
    assert board["region"] == {
        "id": street.street.pk, "code": "330105001", "name": street.street.name, "level": "street",
        "path": street.street.path,
    }  # fmt: skip
    assert board["day"] == "2026-03-10"
    rows = {r["code"]: r for r in board["indicators"]}
    assert rows["hotline_today"] == {
        "code": "hotline_today", "name": "hotline_today", "unit": "件", "scene": "overview", "value": 1,
        "previous": 1, "trend": "flat", "status": "yellow", "target": None, "higher_is_better": False,
    }  # fmt: skip
    assert rows["open_cases"]["value"] == 2 and rows["open_cases"]["trend"] == "up"
    assert [c["code"] for c in board["children"]] == [
        street.communities["A"].code,
        street.communities["B"].code,
    ]
    assert board["children"][0]["values"] == {"hotline_today": 1, "open_cases": 1}
    assert [s["code"] for s in scenes] == ["overview", "safety", "livelihood", "industry"]
    assert scenes[1]["indicators"] == ["open_cases"]
    assert [r["code"] for r in only_safety["indicators"]] == ["open_cases"]
    # grids are below the open-cases breakdown level: their values leave it out
    assert grid_board["children"][0]["values"] == {"hotline_today": 1}
    assert trend == [(dt.date(2026, 3, 8), 0), (dt.date(2026, 3, 9), 1), (dt.date(2026, 3, 10), 1)]
    assert [(r["code"], r["value"], r["rank"]) for r in ranking] == [
        (street.communities["A"].code, 1, 1),
        (street.communities["B"].code, 1, 2),
    ]


def test_status_against_the_lines() -> None:
    up = Indicator(threshold_green=90, threshold_red=75, higher_is_better=True)
    assert [services.status_of(up, v) for v in (95, 90, 80, 75, 10, None)] == [
        "green", "green", "yellow", "red", "red", "",
    ]  # fmt: skip
    down = Indicator(threshold_green=0, threshold_red=5, higher_is_better=False)
    assert [services.status_of(down, v) for v in (0, 3, 5, 9)] == ["green", "yellow", "red", "red"]
    assert services.status_of(Indicator(), 3) == ""


def login(client: Any, street: Street, user: str) -> None:
    assert client.login(username=street.users[user].username, password=PASSWORD)


def test_indicator_pages_check_the_form_and_who_may_edit(client: Any, street: Street) -> None:
    login(client, street, "grid_a1")
    assert client.get("/cockpit/indicators/").status_code == 403
    assert client.post("/cockpit/indicators/new/", {}).status_code == 403
    client.logout()
    login(client, street, "dispatcher")
    assert client.get("/cockpit/indicators/new/").status_code == 200
    form = {
        "code": "hotline_week", "name": "热线", "unit": "件", "scene": "overview", "source": "cases.reported",
        "params": json.dumps({"channel": ["hotline"], "colour": "red"}), "window": "day",
        "aggregation": "count", "breakdown_level": "grid", "order": 1, "enabled": "on",
        "denominator_params": "",
    }  # fmt: skip
    page = client.post("/cockpit/indicators/new/", form)
    assert page.status_code == 400
    html = page.content.decode()
    assert 'data-field="params"' in html and "colour" in html and "has no filter" in html
    assert not Indicator.objects.exists()
    form["params"] = json.dumps({"channel": ["hotline"]})
    assert client.post("/cockpit/indicators/new/", form).status_code == 302
    ind = Indicator.objects.get(code="hotline_week")
    assert ind.params == {"channel": ["hotline"]}
    listing = client.get("/cockpit/indicators/").content.decode()
    assert "hotline_week" in listing
    # an edit based on an old version is refused, not silently applied
    Indicator.objects.filter(pk=ind.pk).update(version=ind.version + 1)
    stale = client.post(f"/cockpit/indicators/{ind.pk}/", {**form, "name": "改名", "version": ind.version})
    assert stale.status_code == 409
    assert Indicator.objects.get(pk=ind.pk).name == "热线"


def test_the_admin_form_is_the_same_checked_form(street: Street) -> None:
    form = IndicatorForm(
        data={"code": "x", "name": "x", "scene": "overview", "source": "alarms.active", "window": "day",
              "aggregation": "count", "breakdown_level": "grid", "order": 0, "params": "{}"}
    )  # fmt: skip
    assert not form.is_valid()
    assert "window" in form.errors


def bearer(street: Street, user: str) -> dict[str, str]:
    from zhizhi.permissions import create_token

    raw, _ = create_token(street.users[user], "test")
    return {"Authorization": f"Bearer {raw}"}


def test_the_api_checks_the_definition_and_the_version(client: Any, street: Street) -> None:
    url = "/api/v1/cockpit/indicators"
    body = {"code": "api_open", "name": "在办", "source": "cases.open", "window": "day"}
    grid = client.post(url, body, content_type="application/json", headers=bearer(street, "grid_a1"))
    assert grid.status_code == 403
    headers = bearer(street, "leader")
    bad = client.post(
        url, {**body, "params": {"channel": ["fax"]}}, content_type="application/json", headers=headers
    )
    assert bad.status_code == 400
    errors = {e["field"]: e["message"] for e in bad.json()["errors"]}
    assert set(errors) == {"params", "window"}
    assert "fax" in errors["params"] and "has no value" in errors["params"]
    assert not Indicator.objects.exists()
    made = client.post(url, {**body, "window": "now"}, content_type="application/json", headers=headers)
    assert made.status_code == 201
    created = made.json()
    assert created["code"] == "api_open" and created["stale"] is True
    one = f"{url}/{created['id']}"
    assert client.get(one, headers=bearer(street, "community_a")).json()["source"] == "cases.open"
    change = {"params": {"urgent": True}, "version": created["version"]}
    assert client.patch(one, change, content_type="application/json", headers=headers).status_code == 200
    old = {"name": "改名", "version": created["version"]}
    stale = client.patch(one, old, content_type="application/json", headers=headers)
    assert stale.status_code == 409
    assert Indicator.objects.get(code="api_open").params == {"urgent": True}
    sources = client.get("/api/v1/cockpit/indicator-sources", headers=headers).json()
    channel = next(
        f for s in sources if s["name"] == "cases.reported" for f in s["filters"] if f["name"] == "channel"
    )
    assert "police110" in channel["values"]


def test_an_indicator_whose_source_went_away_does_not_break_the_board(street: Street) -> None:
    case(street, "A1", "hotline")
    indicator("hotline_today", source="cases.reported", params={"channel": ["hotline"]}, window="day")
    gone = indicator("gone", source="cases.open", window="now")
    Indicator.objects.filter(pk=gone.pk).update(source="cases.removed_in_an_upgrade")
    with clock.frozen_at(NOW):
        board = services.board(street.street)
        past = services.board(street.street, day=dt.date(2026, 3, 9))
    values = {r["code"]: r["value"] for r in board["indicators"]}
    assert values == {"hotline_today": 1, "gone": None}
    assert {r["code"]: r["value"] for r in past["indicators"]} == {"hotline_today": 0, "gone": None}
