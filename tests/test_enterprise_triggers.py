"""八必访 enterprise triggers on a hand-built fixture: each of the eight trips on exactly the listed
sources, the near misses (−14.9 %, +20.0 %, a change 40 days ago …) do not, an alarm clears when its
condition is over, a re-run is idempotent, an alarm becomes a visit case routed to 区域发展办 with an
outbox row, the pages are area-scoped, and bad params and criteria are refused in both languages.

The clock is frozen at 2026-04-10, so the evaluated month is 2026-03 and the 30-day windows start
after 2026-03-11."""

from __future__ import annotations

import datetime as dt
import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

from tests.factories import PASSWORD, Street
from zhizhi import clock
from zhizhi.alerts import enterprise_triggers as et
from zhizhi.alerts import rules
from zhizhi.alerts.enterprise_models import SupportPolicy
from zhizhi.alerts.rule_models import Alarm, AlertRule
from zhizhi.cases import services as case_services
from zhizhi.cases.models import Case
from zhizhi.enterprises.models import Enterprise, Executive, TaxRecord
from zhizhi.notify.models import OutboxMessage
from zhizhi.orgs.models import OrgUnit
from zhizhi.problems import Invalid

NOW = dt.datetime(2026, 4, 10, 10, 0, tzinfo=dt.UTC)
MAR26, MAR25 = dt.date(2026, 3, 1), dt.date(2025, 3, 1)
_seq = iter(range(1, 1000))


def ent(street: Street, name: str, grid: str = "A1", building: str | None = None, **kw: Any) -> Enterprise:
    n = next(_seq)
    kw.setdefault("established_on", dt.date(2015, 1, 1))
    kw.setdefault("tax_region_code", "330105001")
    return Enterprise.objects.create(
        name=name,
        credit_code=f"91330105MA{n:07d}X",
        legal_representative="张三",
        registered_address=f"测试路{n}号",
        industry=kw.pop("industry", "F"),
        grid=street.grids[grid],
        building=street.buildings[building] if building else None,
        **kw,
    )


def tax(e: Enterprise, period: dt.date, revenue: float, tax_paid: float = 5, here: bool = True) -> None:
    TaxRecord.objects.create(
        enterprise=e, period=period, revenue=Decimal(str(revenue)), tax_paid=Decimal(str(tax_paid)),
        tax_paid_here=here,
    )  # fmt: skip


def pair(e: Enterprise, prev: float, now: float, tax_prev: float = 5, tax_now: float = 5) -> None:
    """March last year and March this year."""
    tax(e, MAR25, prev, tax_prev)
    tax(e, MAR26, now, tax_now)


class World:
    def __init__(self, street: Street) -> None:
        s = street
        self.street = s
        # 1 税在地不在: tax here in Jan–Mar, no building — trips; a building in the street — no;
        # last tax here in Dec (outside the 3 months) — no.
        self.tax_here = ent(s, "税在此公司", "A1")
        for m in (1, 2, 3):
            tax(self.tax_here, dt.date(2026, m, 1), 50, 4)
        self.tax_here_present = ent(s, "在此经营公司", "A1", "A1")
        pair(self.tax_here_present, 100, 100)
        self.tax_here_old = ent(s, "去年纳税公司", "A2")
        tax(self.tax_here_old, dt.date(2025, 12, 1), 50, 4)
        # 2 地在税不在: registered in another district — trips; the district or the street — no;
        # paid elsewhere in February — trips.
        self.elsewhere = ent(s, "外区登记公司", "A2", "A2", tax_region_code="330106")
        self.district = ent(s, "区级登记公司", "A2", "A2", tax_region_code="330105")
        self.paid_out = ent(s, "税缴外地公司", "B1", "B1")
        tax(self.paid_out, dt.date(2026, 2, 1), 80, 6, here=False)
        # 3 高管变动: legal representative replaced on 2026-03-26 — trips; 2026-03-01 — no.
        self.exec_new = ent(s, "换法人公司", "A1", "A1")
        Executive.objects.create(enterprise=self.exec_new, name="王老", position="legal_rep",
                                 start_date=dt.date(2015, 1, 1), end_date=dt.date(2026, 3, 25))  # fmt: skip
        Executive.objects.create(enterprise=self.exec_new, name="李新", position="legal_rep",
                                 start_date=dt.date(2026, 3, 26))  # fmt: skip
        self.exec_old = ent(s, "早换法人公司", "A1", "A1")
        Executive.objects.create(enterprise=self.exec_old, name="赵某", position="gm",
                                 start_date=dt.date(2026, 3, 1))  # fmt: skip
        # 4 地址变动: registered address changed on 2026-04-01 — trips; only the headcount — no.
        self.moved = ent(s, "搬家公司", "A2", "A2")
        self.headcount = ent(s, "扩招公司", "A2", "A2")
        with clock.frozen_at(dt.datetime(2026, 4, 1, 9, 0, tzinfo=dt.UTC)):
            self.moved.registered_address = "新地址路1号"
            self.moved.building = s.buildings["A1"]
            self.moved.save()
            self.headcount.employees = 99
            self.headcount.save()
        # 5 楼宇税收变动: building B2 −30 % — trips; B1 +20.0 % exactly — no.
        self.b2 = ent(s, "B2楼企业", "B2", "B2")
        pair(self.b2, 100, 100, tax_prev=10, tax_now=7)
        self.b1 = ent(s, "B1楼企业", "B1", "B1")
        pair(self.b1, 100, 100, tax_prev=10, tax_now=12)
        # 6 经营异常: revenue −16 % — trips; −14.9 % — no; no record this month — no.
        self.drop = ent(s, "浙江物联电子商务有限公司", "A1", "A1")
        pair(self.drop, 100, 84)
        self.near = ent(s, "小降公司", "A1", "A1")
        pair(self.near, 100, 85.1)
        self.silent = ent(s, "停报公司", "A1", "A1")
        tax(self.silent, MAR25, 100, 0)
        # 7 新增企业: established 2026-03-20 — trips (its founding executive is no change); 2026-02-01 — no.
        self.new = ent(s, "新开公司", "B1", "B1", established_on=dt.date(2026, 3, 20))
        Executive.objects.create(enterprise=self.new, name="钱新", position="legal_rep",
                                 start_date=dt.date(2026, 3, 20))  # fmt: skip
        self.newish = ent(s, "稍早新开公司", "B1", "B1", established_on=dt.date(2026, 2, 1))
        # 8 政策匹配: software, ≤ 50 staff, revenue +20 % — trips; +5 % — no; 500 staff — no.
        self.grow = ent(s, "成长软件公司", "A2", "A2", industry="I", employees=20)
        pair(self.grow, 100, 120)
        self.slow = ent(s, "慢长软件公司", "A2", "A2", industry="I", employees=20)
        pair(self.slow, 100, 105)
        self.big = ent(s, "大软件公司", "A2", "A2", industry="I", employees=500)
        pair(self.big, 100, 130)
        self.policy = SupportPolicy.objects.create(
            name="科技型中小企业成长奖励", issued_by="拱墅区科技局", valid_from=dt.date(2026, 1, 1),
            criteria={"industries": ["I"], "min_revenue_growth_pct": 10, "max_employees": 50},
        )  # fmt: skip

    def key(self, e: Enterprise) -> str:
        return f"enterprise:{e.credit_code}"


EXPECTED = {
    "ENT-TAX-HERE-NOT-PRESENT": ["tax_here"],
    "ENT-PRESENT-TAX-ELSEWHERE": ["elsewhere", "paid_out"],
    "ENT-EXECUTIVE-CHANGED": ["exec_new"],
    "ENT-ADDRESS-CHANGED": ["moved"],
    "ENT-BUILDING-TAX-CHANGE": ["building:B-B2"],
    "ENT-REVENUE-DROP": ["drop"],
    "ENT-NEW": ["new"],
    "ENT-POLICY-MATCH": ["grow"],
}


def active(code: str | None = None) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    qs = Alarm.objects.filter(status=Alarm.ACTIVE).select_related("rule")
    for a in qs.filter(rule__code=code) if code else qs:
        out.setdefault(a.rule.code, set()).add(a.source_key)
    return out


def expected(w: World) -> dict[str, set[str]]:
    return {code: {k if ":" in k else w.key(getattr(w, k)) for k in keys} for code, keys in EXPECTED.items()}


def evaluate(**kw: Any) -> dict[str, Any]:
    with clock.frozen_at(kw.pop("at", NOW)):
        return et.evaluate_enterprises(**kw)


@pytest.fixture
def world(street: Street) -> World:
    return World(street)


def load_visit_categories(street: Street) -> None:
    """The real responsibility-list item 29 (2901–2908), owned by 区域发展办."""
    case_services.ensure_case_permissions()
    OrgUnit.objects.create(code="WB-SCJG", name="市场监管所", kind="outside_dept")
    path = Path(case_services.__file__).parent / "data" / "responsibility_list.json"
    data = [big for big in json.loads(path.read_text(encoding="utf-8")) if big["code"] == "29"]
    case_services.load_responsibility_list(data, street.users["admin"])


def test_each_of_the_eight_trips_on_exactly_the_expected_sources(world: World) -> None:
    result = evaluate()
    assert result["month"] == "2026-03" and result["as_of"] == "2026-04-10"
    assert active() == expected(world)
    assert result["raised"] == 9 and result["cleared"] == 0
    assert set(AlertRule.objects.filter(kind="registry").values_list("category_code", flat=True)) == {
        f"29{i:02d}" for i in range(1, 9)
    }


def test_the_evidence_carries_the_numbers(world: World) -> None:
    evaluate()
    drop = Alarm.objects.get(rule__code="ENT-REVENUE-DROP")
    assert drop.enterprise == world.drop and drop.area_path == world.street.grids["A1"].path
    assert drop.evidence == {"month": "2026-03", "revenue_now": 84.0, "revenue_last_year": 100.0,
                             "change_pct": -16.0}  # fmt: skip
    assert drop.value == -16.0 and "同比下降 16.0%" in drop.title
    building = Alarm.objects.get(rule__code="ENT-BUILDING-TAX-CHANGE")
    assert building.enterprise is None and building.area_path == world.street.grids["B2"].path
    assert (building.evidence["tax_now"], building.evidence["tax_last_year"]) == (7.0, 10.0)
    assert building.evidence["change_pct"] == -30.0 and building.severity == "major"
    exe = Alarm.objects.get(rule__code="ENT-EXECUTIVE-CHANGED")
    assert exe.evidence == {"changes": [{"position": "法定代表人", "old": "王老", "new": "李新",
                                         "on": "2026-03-26"}]}  # fmt: skip
    moved = Alarm.objects.get(rule__code="ENT-ADDRESS-CHANGED")
    assert moved.evidence["new_address"] == "新地址路1号"
    assert (moved.evidence["old_building"], moved.evidence["new_building"]) == ("A2-1幢", "A1-1幢")
    here = Alarm.objects.get(rule__code="ENT-TAX-HERE-NOT-PRESENT")
    assert (here.evidence["tax_paid_here"], here.evidence["months_paid"]) == (12.0, 3)
    out = {a.enterprise_id: a.evidence for a in Alarm.objects.filter(rule__code="ENT-PRESENT-TAX-ELSEWHERE")}
    assert out[world.elsewhere.pk]["tax_region_code"] == "330106"
    assert (
        out[world.paid_out.pk]["months_paid_elsewhere"],
        out[world.paid_out.pk]["tax_paid_elsewhere"],
    ) == (
        1,
        6.0,
    )
    policy = Alarm.objects.get(rule__code="ENT-POLICY-MATCH")
    assert policy.evidence == {"policies": [{"policy": "科技型中小企业成长奖励", "issued_by": "拱墅区科技局",
                               "matched": {"industry": "I 信息传输、软件和信息技术服务业",
                                           "revenue_growth_pct": 20.0, "employees": 20}}]}  # fmt: skip


def test_rerun_is_idempotent_and_conditions_that_end_clear(world: World) -> None:
    evaluate()
    again = evaluate()
    assert (again["raised"], again["updated"], again["cleared"], again["unchanged"]) == (0, 0, 0, 9)
    assert Alarm.objects.count() == 9
    # Revenue recovers to −10 %; the policy expires; 50 days later the event windows are over.
    TaxRecord.objects.filter(enterprise=world.drop, period=MAR26).update(revenue=90)
    SupportPolicy.objects.filter(pk=world.policy.pk).update(valid_until=dt.date(2026, 4, 9))
    result = evaluate()
    assert result["cleared"] == 2
    cleared = set(Alarm.objects.filter(status="cleared").values_list("rule__code", flat=True))
    assert cleared == {"ENT-REVENUE-DROP", "ENT-POLICY-MATCH"}
    later = evaluate(at=dt.datetime(2026, 5, 30, 10, 0, tzinfo=dt.UTC), month="2026-03")
    assert later["as_of"] == "2026-03-31"  # a past month's windows end with the month
    later = evaluate(at=dt.datetime(2026, 5, 30, 10, 0, tzinfo=dt.UTC))
    assert later["month"] == "2026-03"  # nothing filed for April yet: the latest filed month
    assert set(active()) == {
        "ENT-TAX-HERE-NOT-PRESENT",
        "ENT-PRESENT-TAX-ELSEWHERE",
        "ENT-BUILDING-TAX-CHANGE",
    }
    # April asked for: no building tax that month; its windows end on 04-30 (the move of 04-01 is in).
    later = evaluate(at=dt.datetime(2026, 5, 30, 10, 0, tzinfo=dt.UTC), month="2026-04")
    assert later["as_of"] == "2026-04-30"
    assert set(active()) == {"ENT-TAX-HERE-NOT-PRESENT", "ENT-PRESENT-TAX-ELSEWHERE", "ENT-ADDRESS-CHANGED"}
    # A trigger that holds again is a new alarm; the cleared one keeps its history.
    TaxRecord.objects.filter(enterprise=world.drop, period=MAR26).update(revenue=80)
    evaluate(month="2026-03")
    assert Alarm.objects.filter(rule__code="ENT-REVENUE-DROP").count() == 2


def test_a_month_not_yet_filed_keeps_the_revenue_alarm(world: World) -> None:
    evaluate()
    # Early May: April is not filed by anyone, so March is still the month compared.
    assert evaluate(at=dt.datetime(2026, 5, 2, 10, 0, tzinfo=dt.UTC))["month"] == "2026-03"
    assert "ENT-REVENUE-DROP" in active()
    # The enterprise's March filing is withdrawn (re-filed later): unknown, the alarm stays.
    TaxRecord.objects.filter(enterprise=world.drop, period=MAR26).delete()
    assert evaluate()["cleared"] == 0
    assert Alarm.objects.get(rule__code="ENT-REVENUE-DROP").status == "active"
    tax(world.drop, MAR26, 84)
    assert evaluate()["raised"] == 0 and Alarm.objects.filter(rule__code="ENT-REVENUE-DROP").count() == 1


def test_a_changed_figure_updates_the_alarm_in_place(world: World) -> None:
    evaluate()
    TaxRecord.objects.filter(enterprise=world.drop, period=MAR26).update(revenue=70)
    result = evaluate()
    assert (result["raised"], result["updated"]) == (0, 1)
    alarm = Alarm.objects.get(rule__code="ENT-REVENUE-DROP")
    assert alarm.evidence["change_pct"] == -30.0 and "30.0%" in alarm.title


def test_an_alarm_becomes_a_visit_case_for_qyfzb_with_an_outbox_row(world: World) -> None:
    load_visit_categories(world.street)
    evaluate()
    alarm = Alarm.objects.get(rule__code="ENT-REVENUE-DROP")
    case = alarm.case
    assert case is not None
    assert (case.channel, case.category.code, case.unit.code) == ("alert", "2906", "QYFZB")
    assert case.status == "dispatched" and "浙江物联电子商务有限公司" in case.title
    assert "revenue_last_year：100.0" in case.description
    assert OutboxMessage.objects.filter(cause=f"cases.case:{case.pk}").exists()
    codes = dict(Alarm.objects.values_list("rule__code", "case__category__code"))
    assert codes == {r.code: r.category_code for r in AlertRule.objects.filter(kind="registry")}
    # Every one of the nine alarms made exactly one case; a re-run makes none.
    assert Case.objects.filter(channel="alert").count() == 9
    evaluate()
    assert Case.objects.filter(channel="alert").count() == 9


def test_the_evaluation_is_a_command_and_a_huey_task(world: World) -> None:
    import zhizhi.alerts.tasks  # noqa: F401  (huey's autodiscovered module imports the task)
    from zhizhi.alerts import tasks_enterprise

    out = io.StringIO()
    with clock.frozen_at(NOW):
        call_command("evaluate_enterprises", stdout=out)
    assert "month 2026-03" in out.getvalue() and "raised 9" in out.getvalue()
    assert Alarm.objects.count() == 9
    with clock.frozen_at(NOW):
        assert tasks_enterprise.evaluate_enterprise_triggers.call_local()["unchanged"] == 9
    with pytest.raises(Exception) as bad:
        call_command("evaluate_enterprises", "--month", "2026/13", stdout=io.StringIO())
    assert "YYYY-MM" in str(bad.value)


def test_bad_params_and_criteria_are_refused_in_both_languages(db: Any) -> None:
    assert rules.check_params("registry", {"trigger": "revenue_drop", "threshold_pct": -15})
    cases = [
        ({"trigger": "bankrupt"}, "params.trigger"),
        ({}, "params.trigger"),
        ({"trigger": "revenue_drop", "threshold_pct": 15}, "params.threshold_pct"),
        ({"trigger": "revenue_drop", "threshold_pct": "-15"}, "params.threshold_pct"),
        ({"trigger": "building_tax_change", "threshold_pct": -20}, "params.threshold_pct"),
        ({"trigger": "executive_changed", "window_days": 2.5}, "params.window_days"),
        ({"trigger": "tax_here_not_present", "months": 24}, "params.months"),
    ]
    for params, where in cases:
        with pytest.raises(Invalid) as bad:
            rules.check_params("registry", params)
        assert [p.field for p in bad.value.problems] == [where], params
        assert all(p.zh and p.en for p in bad.value.problems)
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as refused:
        AlertRule(code="X", name="X", kind="registry", params={"trigger": "revenue_drop",
                  "threshold_pct": 5}).full_clean()  # fmt: skip
    assert "params" in refused.value.message_dict
    with pytest.raises(Invalid) as bad:
        et.check_criteria({"industries": ["ZZ"], "max_employees": -1, "color": "red",
                           "min_registered_capital": 100, "max_registered_capital": 10})  # fmt: skip
    fields = [p.field for p in bad.value.problems]
    assert fields == ["criteria.industries", "criteria.max_employees", "criteria.color",
                      "criteria.min_registered_capital"]  # fmt: skip
    with pytest.raises(ValidationError):
        SupportPolicy(name="坏政策", criteria={"industries": "I"}).full_clean()


# --- pages ---------------------------------------------------------------------------------------
def login(user: str) -> Client:
    client = Client()
    assert client.login(username=user, password=PASSWORD)
    return client


def test_pages_are_area_scoped(world: World) -> None:
    evaluate()
    a_drop, b_new = world.drop, world.new
    dept = login("dept")
    page = dept.get("/alerts/enterprises/")
    assert page.status_code == 200
    text = page.content.decode()
    assert a_drop.name in text and b_new.name in text and "B2-1幢" in text
    filtered = dept.get("/alerts/enterprises/", {"trigger": "revenue_drop"}).content.decode()
    assert a_drop.name in filtered and b_new.name not in filtered
    community = dept.get("/alerts/enterprises/", {"community": world.street.communities["B"].pk})
    assert a_drop.name not in community.content.decode() and b_new.name in community.content.decode()
    detail = dept.get(f"/alerts/enterprises/{a_drop.pk}/")
    assert detail.status_code == 200
    body = detail.content.decode()
    assert "-16.0" in body and "ent-series" in body and "vendor/echarts.min.js" in body
    grid_b = login("grid_b1")
    assert grid_b.get(f"/alerts/enterprises/{a_drop.pk}/").status_code == 404
    assert grid_b.get(f"/alerts/enterprises/{b_new.pk}/").status_code == 200
    mine = grid_b.get("/alerts/enterprises/").content.decode()
    assert b_new.name in mine and a_drop.name not in mine and world.paid_out.name in mine
    assert (
        f"/alerts/enterprises/{b_new.pk}/"
        in grid_b.get(f"/r/enterprises.enterprise/{b_new.pk}/").content.decode()
    )
    assert login("resident").get("/alerts/enterprises/").status_code == 403
    assert Client().get("/alerts/enterprises/").status_code == 302


def test_the_enterprise_page_lists_past_triggers_and_visits(world: World) -> None:
    load_visit_categories(world.street)
    evaluate()
    TaxRecord.objects.filter(enterprise=world.drop, period=MAR26).update(revenue=90)
    evaluate()
    case = Alarm.objects.get(enterprise=world.drop).case
    assert case is not None
    body = login("leader").get(f"/alerts/enterprises/{world.drop.pk}/").content.decode()
    assert "已恢复" in body and case.number in body


# --- demo layer ----------------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_demo_layer_trips_every_trigger_and_is_idempotent() -> None:
    from zhizhi.alerts import enterprise_demo
    from zhizhi.geo.models import Region

    call_command("demo_street", seed=42, scale=0.1, stdout=io.StringIO())
    call_command("load_responsibility_list", stdout=io.StringIO())
    street = Region.objects.get(level="street", code="330105001")
    first = enterprise_demo.load(street)
    assert all(first[name] >= 1 for name in et.TRIGGERS), first
    assert first["policies"] == 3 and first["touched"] >= 5
    alarms, cases = Alarm.objects.count(), Case.objects.count()
    again = enterprise_demo.load(street)
    assert (again["touched"], again["march_raised"]) == (0, 0)
    assert (Alarm.objects.count(), Case.objects.count()) == (alarms, cases)
    wulian = Alarm.objects.get(enterprise__name=enterprise_demo.WULIAN, rule__code="ENT-REVENUE-DROP")
    assert wulian.status == "active" and wulian.evidence["change_pct"] < -15
    assert wulian.case is not None and wulian.case.unit.code == "QYFZB"
    assert wulian.case.status == "finished" and wulian.case.result == enterprise_demo.VISIT_RESULT
    assert wulian.first_seen_at.month == 4  # raised by the March evaluation, early in April


def test_support_policies_are_edited_in_the_admin_with_checked_criteria(street: Street) -> None:
    admin = login("admin")
    assert admin.get("/admin/alerts/supportpolicy/").status_code == 200
    bad = admin.post("/admin/alerts/supportpolicy/add/", {
        "name": "坏政策", "issued_by": "区科技局", "summary": "", "criteria": '{"industries": ["ZZ"]}',
        "valid_from": "2026-01-01", "active": "on",
    })  # fmt: skip
    assert bad.status_code == 200 and "Industries: a list of industry codes" in bad.content.decode()
    assert not SupportPolicy.objects.exists()
