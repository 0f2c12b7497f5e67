"""The risk-area list and the list match on hand-built data: a bad import reports every problem by
row and column in both languages and writes nothing; a match raises one alarm per person and pushes a
list to the right grid worker and community; re-runs are silent; a level rise escalates; an expired
entry clears; returns recorded on a page match at once; every page is area-scoped."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from openpyxl import Workbook

from tests.factories import PASSWORD, Street
from zhizhi import clock
from zhizhi.alerts import risk
from zhizhi.alerts.risk_models import RiskArea, TravelRecord
from zhizhi.alerts.rule_models import Alarm, AlertRule
from zhizhi.models import RevealLog
from zhizhi.notify.models import InboxMessage, OutboxMessage
from zhizhi.notify.services import deliver_due
from zhizhi.problems import Forbidden, Invalid

CST = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime(2026, 7, 10, 10, 0, tzinfo=CST)
TODAY = NOW.date()
HEAD = "地区名称,行政区划代码,风险等级,生效日期,截止日期,来源\n"


def csv(text: str, name: str = "risk.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, ("\ufeff" + text).encode())


def list_rule(**kw: Any) -> AlertRule:
    return AlertRule.objects.create(
        code="RISK", name="风险区返回人员", kind="list_match", params={"lookback_days": 14}, **kw
    )


def returned(street: Street, key: str, grid: str, origin: str, days_ago: int, **kw: Any) -> Any:
    person = street.person(key, grid=grid, house=f"{grid}-1-201", name=f"返回{key}")
    TravelRecord.objects.create(
        person=person, origin=origin, arrived_on=TODAY - dt.timedelta(days=days_ago), **kw
    )
    return person


def login(street: Street, who: str) -> Client:
    client = Client()
    assert client.login(username=street.users[who].username, password=PASSWORD)
    return client


def test_a_bad_import_reports_row_and_column_in_both_languages_and_writes_nothing(street: Street) -> None:
    list_rule()
    returned(street, "a", "A1", "河北省石家庄市藁城区", 3)
    admin = street.users["admin"]
    body = HEAD + (
        "石家庄市藁城区,130109,高,2026-07-08,,国务院客户端\n"  # row 2: fine
        "某某县,12345,极高,2026-07-08,,\n"  # row 3: code and level
        "另一县,,中,2026-13-01,,\n"  # row 4: date
        ",,低,2026-07-01,2026-06-01,\n"  # row 5: name missing, ends before it starts
        "石家庄市藁城区,130109,中,2026-07-08,,\n"  # row 6: repeats row 2
    )
    with clock.frozen_at(NOW), pytest.raises(Invalid) as bad:
        risk.import_areas(admin, csv(body), "risk.csv")
    where = [(p.row, p.column, p.field) for p in bad.value.problems]
    assert where == [
        (3, "行政区划代码", "region_code"),
        (3, "风险等级", "level"),
        (4, "生效日期", "valid_from"),
        (5, "地区名称", "region_name"),
        (5, "截止日期", "valid_to"),
        (6, "地区名称", "region_name"),
    ]
    assert all(p.zh and p.en for p in bad.value.problems)
    assert "第3行" in bad.value.problems[0].message and "row 3" in bad.value.problems[0].message
    assert not RiskArea.objects.exists() and not Alarm.objects.exists() and not OutboxMessage.objects.exists()
    # The header itself: an unknown column and a missing required one, located on row 1.
    with pytest.raises(Invalid) as bad:
        risk.import_areas(admin, csv("地区名称,等级,生效日期\n某地,高,2026-07-01\n"), "risk.csv")
    assert [(p.code, p.row, p.column) for p in bad.value.problems] == [
        ("unknown_column", 1, "等级"),
        ("missing_column", 1, "风险等级"),
    ]
    # Not a spreadsheet at all, and not a maintainer.
    with pytest.raises(Invalid):
        risk.import_areas(
            admin, SimpleUploadedFile("x.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1rest"), "x.xls"
        )
    with pytest.raises(Forbidden):
        risk.import_areas(street.users["grid_a1"], csv(HEAD + "某地,,高,2026-07-01,,\n"), "risk.csv")
    assert not RiskArea.objects.exists()


def test_an_xlsx_import_matches_and_pushes_the_list_to_the_right_workers(street: Street) -> None:
    list_rule()
    a1 = returned(street, "a1", "A1", "河北省石家庄市藁城区增村镇", 3)
    b1 = returned(street, "b1", "B1", "浙江省杭州市西湖区", 3)  # elsewhere
    returned(street, "old", "A2", "河北省石家庄市藁城区", 40)  # came back long before the area was listed
    book = Workbook()
    sheet = book.active
    sheet.append(["Region name", "Region code", "Level", "Valid from", "Valid to", "Source"])
    sheet.append(["石家庄市藁城区", "130109", "高", dt.datetime(2026, 7, 8), None, "国务院客户端"])
    sheet.append(
        ["西湖区", None, "低", dt.datetime(2026, 7, 1), dt.datetime(2026, 7, 5), "省卫健委"]
    )  # expired
    data = io.BytesIO()
    book.save(data)
    with clock.frozen_at(NOW):
        counts = risk.import_areas(
            street.users["admin"], SimpleUploadedFile("r.xlsx", data.getvalue()), "r.xlsx"
        )
    assert (counts["created"], counts["alarms_raised"]) == (2, 1)
    alarm = Alarm.objects.get()
    assert (alarm.source_key, alarm.person, alarm.severity, alarm.rule.kind) == (
        f"person:{a1.pk}",
        a1,
        "major",
        "list_match",
    )
    assert alarm.area_path == street.grids["A1"].path
    assert alarm.evidence["entries"][0]["region"] == "石家庄市藁城区"
    # The push: the A1 grid worker and the A community, nobody in B.
    pushed = OutboxMessage.objects.filter(cause="alerts.risk")
    assert set(pushed.values_list("user__username", flat=True)) == {"grid_a1", "community_a"}
    message = pushed.get(user=street.users["grid_a1"])
    assert "返回a1" in message.body and a1.decrypt_sensitive("phone") not in message.body
    assert message.link.startswith("/alerts/risk/matches/?since=")
    deliver_due()
    inbox = InboxMessage.objects.get(user=street.users["grid_a1"])
    assert inbox.link == message.link
    # The linked page: the grid worker sees the person with a masked phone; B1 sees nobody.
    page = login(street, "grid_a1").get(inbox.link).content.decode()
    assert "返回a1" in page and a1.phone_masked in page and a1.decrypt_sensitive("phone") not in page
    other = login(street, "grid_b1").get(inbox.link).content.decode()
    assert "返回a1" not in other and "返回b1" not in other
    # Revealing the phone on the list needs a purpose and is logged.
    client = login(street, "grid_a1")
    assert f"/r/people.person/{a1.pk}/reveal/phone/" in page
    shown = client.post(f"/r/people.person/{a1.pk}/reveal/phone/", {"purpose": "电话核实行程"})
    assert a1.decrypt_sensitive("phone") in shown.content.decode()
    assert RevealLog.objects.get().purpose == "电话核实行程"
    # A second run (the hourly task, a restart) changes nothing and pushes nothing.
    with clock.frozen_at(NOW + dt.timedelta(hours=1)):
        assert risk.run() == {"raised": 0, "updated": 1, "cleared": 0}
    assert OutboxMessage.objects.filter(cause="alerts.risk").count() == 2
    assert Alarm.objects.count() == 1 and alarm.events.filter(kind="raised").count() == 1
    assert not Alarm.objects.filter(person=b1).exists()


def test_a_level_rise_escalates_and_an_expired_entry_clears(street: Street) -> None:
    list_rule()
    p = returned(street, "p", "A1", "石家庄市藁城区", 2)
    admin = street.users["admin"]
    with clock.frozen_at(NOW):
        area = risk.save_area(
            admin,
            {
                "region_name": "石家庄市藁城区",
                "level": "中",
                "valid_from": "2026-07-09",
                "valid_to": "2026-07-15",
                "source": "国务院客户端",
            },
        )
    alarm = Alarm.objects.get()
    assert alarm.severity == "minor"
    assert OutboxMessage.objects.filter(cause="alerts.risk").count() == 2
    with clock.frozen_at(NOW + dt.timedelta(days=1)):
        risk.save_area(
            admin,
            {
                "region_name": "石家庄市藁城区",
                "level": "high",
                "valid_from": "2026-07-09",
                "valid_to": "2026-07-15",
                "source": "国务院客户端",
            },
            area,
        )
    alarm.refresh_from_db()
    assert (alarm.severity, alarm.status) == ("major", "active")
    assert list(alarm.events.values_list("kind", flat=True)) == ["raised", "escalated"]
    assert OutboxMessage.objects.filter(cause="alerts.risk").count() == 4  # pushed again: it got worse
    # The last day of the entry still matches; the day after, the hourly run clears the alarm.
    with clock.frozen_at(dt.datetime(2026, 7, 15, 23, 0, tzinfo=CST)):
        risk.run()
    alarm.refresh_from_db()
    assert alarm.status == "active"
    with clock.frozen_at(dt.datetime(2026, 7, 16, 0, 7, tzinfo=CST)):
        assert risk.run()["cleared"] == 1
    alarm.refresh_from_db()
    assert alarm.status == "cleared" and "不再匹配" in alarm.events.last().note
    # A new window for the same area later is a new alarm for the person (who returned again).
    TravelRecord.objects.create(person=p, origin="石家庄市藁城区", arrived_on=dt.date(2026, 8, 1))
    with clock.frozen_at(dt.datetime(2026, 8, 3, 10, 0, tzinfo=CST)):
        risk.save_area(admin, {"region_name": "石家庄市藁城区", "level": "高", "valid_from": "2026-08-02"})
    assert list(Alarm.objects.order_by("pk").values_list("status", flat=True)) == ["cleared", "active"]
    # Deleting the entry clears it at once; only maintainers may.
    with pytest.raises(Forbidden):
        risk.delete_area(street.users["grid_a1"], RiskArea.objects.get(valid_from=dt.date(2026, 8, 2)))
    with clock.frozen_at(dt.datetime(2026, 8, 3, 11, 0, tzinfo=CST)):
        risk.delete_area(admin, RiskArea.objects.get(valid_from=dt.date(2026, 8, 2)))
    assert not Alarm.objects.filter(status="active").exists()


def test_a_recorded_return_matches_at_once_and_is_checked(street: Street) -> None:
    list_rule()
    with clock.frozen_at(NOW):
        risk.save_area(
            street.users["admin"],
            {"region_name": "某市某区", "region_code": "130109", "level": "高", "valid_from": "2026-07-01"},
        )
    p = street.person("p", grid="A1", house="A1-1-101", origin="浙江省杭州市")
    worker = street.users["grid_a1"]
    with clock.frozen_at(NOW), pytest.raises(Invalid) as bad:
        risk.record_travel(worker, p, arrived_on="2026-07-11", origin_code="13", source="rumour")
    assert [x.field for x in bad.value.problems] == ["arrived_on", "origin_code", "source"]
    assert all(x.zh and x.en for x in bad.value.problems)
    with clock.frozen_at(NOW), pytest.raises(Forbidden):
        risk.record_travel(street.users["grid_b1"], p, arrived_on="2026-07-09", origin_code="130109001")
    assert not TravelRecord.objects.exists()
    # The region code decides when both sides have one (the name in the text does not matter then).
    with clock.frozen_at(NOW):
        record = risk.record_travel(worker, p, arrived_on="2026/7/9", origin="出差", origin_code="130109001")
    alarm = Alarm.objects.get(status="active")
    assert alarm.person == p and record.arrived_on == dt.date(2026, 7, 9)
    # Removing the record (entered by mistake) clears the match.
    with clock.frozen_at(NOW):
        risk.delete_travel(worker, record)
    alarm.refresh_from_db()
    assert alarm.status == "cleared"
    # An empty origin falls back on the person's registered origin.
    p2 = street.person("p2", grid="A1", house="A1-1-201", origin="河北省某市某区")
    with clock.frozen_at(NOW):
        risk.record_travel(worker, p2, arrived_on="2026-07-08")
    assert Alarm.objects.get(status="active").person == p2


def test_the_pages_are_scoped_and_only_maintainers_edit_the_list(street: Street) -> None:
    list_rule()
    a = returned(street, "a", "A1", "石家庄市藁城区", 1)
    with clock.frozen_at(NOW):
        assert (
            login(street, "grid_a1")
            .post("/alerts/risk/", {"region_name": "x", "level": "高", "valid_from": "2026-07-01"})
            .status_code
            == 403
        )
        lead = login(street, "leader")
        bad = lead.post("/alerts/risk/", {"region_name": "石家庄市藁城区", "level": "极高", "valid_from": ""})
        assert bad.status_code == 400 and 'data-field="level"' in bad.content.decode()
        assert not RiskArea.objects.exists()
        ok = lead.post(
            "/alerts/risk/", {"region_name": "石家庄市藁城区", "level": "高", "valid_from": "2026-07-09"}
        )
        assert ok.status_code == 302 and Alarm.objects.filter(person=a, status="active").exists()
        bad_file = lead.post("/alerts/risk/import/", {"file": csv(HEAD + "某地,,很高,2026-07-01,,\n")})
        text = bad_file.content.decode()
        assert bad_file.status_code == 400 and "风险等级" in text and "Unknown risk level" in text
        assert RiskArea.objects.count() == 1
        assert (
            "石家庄市藁城区" in login(street, "grid_b1").get("/alerts/risk/").content.decode()
        )  # the list is public
        assert login(street, "resident").get("/alerts/risk/").status_code == 403
    # A resident's returns page: in scope for A1, 404 for B1.
    assert login(street, "grid_a1").get(f"/alerts/risk/people/{a.pk}/").status_code == 200
    assert login(street, "grid_b1").get(f"/alerts/risk/people/{a.pk}/").status_code == 404
    assert (
        login(street, "grid_b1")
        .post(f"/alerts/risk/people/{a.pk}/", {"arrived_on": "2026-07-01"})
        .status_code
        == 404
    )
    with clock.frozen_at(NOW):
        saved = login(street, "grid_a1").post(
            f"/alerts/risk/people/{a.pk}/",
            {"arrived_on": "2026-07-05", "origin": "北京市", "source": "grid_visit"},
        )
    assert saved.status_code == 302 and TravelRecord.objects.filter(person=a).count() == 2
    matches = login(street, "community_a").get("/alerts/risk/matches/").content.decode()
    assert "返回a" in matches
    assert "返回a" not in login(street, "grid_b1").get("/alerts/risk/matches/").content.decode()


def test_the_indexed_match_agrees_with_the_plain_definition(street: Street) -> None:
    """`matches()` looks entries up by code prefix and by name per origin text; it must find exactly
    what checking every record against every entry with `origin_matches` finds."""
    areas = [
        RiskArea.objects.create(
            region_name="石家庄市藁城区",
            region_code="130109",
            level="high",
            valid_from=TODAY - dt.timedelta(days=3),
        ),
        RiskArea.objects.create(
            region_name="增村镇",
            region_code="130109102",
            level="medium",
            valid_from=TODAY - dt.timedelta(days=30),
            valid_to=TODAY,
        ),
        RiskArea.objects.create(region_name="绥芬河市", level="low", valid_from=TODAY - dt.timedelta(days=1)),
        RiskArea.objects.create(
            region_name="石家庄市",
            level="low",
            valid_from=TODAY - dt.timedelta(days=40),
            valid_to=TODAY - dt.timedelta(days=20),
        ),
    ]
    origins = [
        ("河北省石家庄市藁城区", ""),
        ("河北省石家庄市藁城区增村镇", "130109102"),
        ("出差", "130109"),
        ("石家庄市 藁城区", "130102"),  # the code says 长安区: no match by name then
        ("黑龙江省绥芬河市", ""),
        ("黑龙江省绥芬河市", "231081"),
        ("浙江省杭州市", ""),
        ("", ""),  # falls back on the registered origin
    ]
    records = []
    for i, (origin, code) in enumerate(origins):
        for days in (0, 2, 10, 25):
            person = street.person(f"p{i}-{days}", grid="A1", origin="河北省石家庄市藁城区")
            records.append(
                TravelRecord.objects.create(
                    person=person, origin=origin, origin_code=code, arrived_on=TODAY - dt.timedelta(days=days)
                )
            )
    found = risk.matches(TODAY)
    expected: dict[int, set[int]] = {}
    for r in records:
        for a in areas:
            span = a.valid_from - dt.timedelta(days=14) <= r.arrived_on <= (a.valid_to or TODAY)
            if a.in_force(TODAY) and span and risk.origin_matches(a, r.where_from, r.origin_code):
                expected.setdefault(r.person_id, set()).add(a.pk)
    assert {pid: {a.pk for a, _ in m.entries} for pid, m in found.items()} == expected
    assert len(expected) > 10  # the data exercises the rule, not an empty list
