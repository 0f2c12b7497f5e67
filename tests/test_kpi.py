"""KPI formulas against a hand-computed fixture: twelve cases with known timestamps written straight
into the tables (no services), November 2026 as the period. Every expected number below is worked out
by hand in the comments of `cases`, so a change of definition shows up as a changed test."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from tests.factories import Street
from zhizhi.cases import kpi
from zhizhi.cases.models import Case, CaseEvent, Category

NOV = kpi.Period.month(2026, 11)


def t(month: int, day: int, hour: float = 9) -> dt.datetime:
    h, m = int(hour), round((hour % 1) * 60)
    return dt.datetime(2026, month, day, h, m, tzinfo=timezone.get_current_timezone())


@pytest.fixture
def cases(street: Street) -> dict[str, Any]:
    big = Category.objects.create(code="01", name="市容环境")
    garbage = Category.objects.create(code="0102", name="暴露垃圾", parent=big)
    other = Category.objects.create(code="0201", name="道路破损", parent=big)
    a1, a2 = street.grids["A1"], street.grids["A2"]
    g_a1, c_a = street.units["A1"], street.units["A"]
    worker, social = street.users["grid_a1"], street.users["community_a"]
    made: dict[str, Case] = {}

    def mk(name: str, **kw: Any) -> Case:
        kw.setdefault("grid", a1)
        kw.setdefault("category", garbage)
        if kw.get("unit") is None and kw.get("dispatched_at"):
            kw["unit"], kw["assignee"] = g_a1, worker
        kw.setdefault("registered_at", kw["reported_at"])
        case = Case(number=f"KPI{name}", title=name, **kw)
        case.save()
        made[name] = case
        return case

    # c1: on time, satisfied; handling 24 h.
    mk("c1", status="visited", reported_at=t(11, 2), dispatched_at=t(11, 2, 10), signed_at=t(11, 2, 10.5),
       finished_at=t(11, 3, 10), due_at=t(11, 5, 17.5), closed_at=t(11, 3, 12), visited_at=t(11, 4),
       satisfaction="satisfied")  # fmt: skip
    # c2: closed late, sign-for turned red, 基本满意; handling 168 h.
    mk("c2", status="visited", reported_at=t(11, 3), dispatched_at=t(11, 3), signed_at=t(11, 3, 15),
       finished_at=t(11, 10), due_at=t(11, 6), closed_at=t(11, 10, 10), visited_at=t(11, 11),
       satisfaction="basic")  # fmt: skip
    # c3: reworked once, extended once, on time, 不满意; handling 24 h.
    mk("c3", status="unsatisfied", reported_at=t(11, 4), dispatched_at=t(11, 4), signed_at=t(11, 4, 10),
       finished_at=t(11, 5), due_at=t(11, 8), closed_at=t(11, 6), visited_at=t(11, 7),
       satisfaction="unsatisfied", rework_count=1, extension_count=1)  # fmt: skip
    # c4: deferred (缓办), due in November, not closed.
    mk("c4", status="deferred", reported_at=t(11, 5), dispatched_at=t(11, 5), signed_at=t(11, 5, 10),
       deferred_at=t(11, 6), due_at=t(11, 9))  # fmt: skip
    # c5: still handling, overdue, not closed.
    mk("c5", status="handling", reported_at=t(11, 6), dispatched_at=t(11, 6), signed_at=t(11, 6, 10),
       due_at=t(11, 12))  # fmt: skip
    # c6: reported and dispatched in October, due and finished (late) in November; handling 192 h.
    mk("c6", status="closed", reported_at=t(10, 25), dispatched_at=t(10, 25), signed_at=t(10, 26),
       finished_at=t(11, 2), due_at=t(11, 1, 12), closed_at=t(11, 2, 10))  # fmt: skip
    # c7: registered then cancelled (注销); c8: accepted only (受理, never registered).
    mk("c7", status="cancelled", reported_at=t(11, 7), cancelled_at=t(11, 7, 10))
    mk("c8", status="reported", reported_at=t(11, 8), registered_at=None)
    # c9: grid A2, the community unit, other category; on time, satisfied; handling 12 h.
    mk("c9", status="visited", grid=a2, unit=c_a, assignee=social, category=other, reported_at=t(11, 10),
       dispatched_at=t(11, 10), signed_at=t(11, 10, 10), finished_at=t(11, 10, 21), due_at=t(11, 15),
       closed_at=t(11, 11), visited_at=t(11, 12), satisfaction="satisfied")  # fmt: skip
    # c10: due in December; c11: merged (never due); c12: dispatched, not signed, due in December.
    mk("c10", status="handling", grid=a2, unit=c_a, assignee=social, category=other, reported_at=t(11, 20),
       dispatched_at=t(11, 20), signed_at=t(11, 20, 10), due_at=t(12, 3))  # fmt: skip
    mk("c11", status="merged", grid=a2, unit=c_a, assignee=social, category=other, reported_at=t(11, 21),
       merged_at=t(11, 21, 10), due_at=t(11, 25))  # fmt: skip
    mk("c12", status="dispatched", reported_at=t(11, 28), dispatched_at=t(11, 28), due_at=t(12, 5))

    def event(case: str, actor: Any, at: dt.datetime, action: str = "followup", **data: Any) -> None:
        CaseEvent.objects.create(case=made[case], actor=actor, at=at, action=action, data=data)

    event("c2", None, t(11, 3, 12), "sla_red", stage="sign")  # the sign-for deadline was missed
    event("c5", None, t(11, 13), "sla_red", stage="handle")  # a red handling stage is not a late sign
    event("c1", worker, t(11, 2, 10.5), "sign")
    event("c1", worker, t(11, 3, 10), "finish")
    event("c2", worker, t(11, 3, 15), "sign")
    event("c6", worker, t(10, 26), "sign")  # October: not in the period
    event("c9", social, t(11, 10, 10), "sign")
    return {"cases": made, "garbage": garbage, "other": other, "street": street}


def test_totals_for_the_month(cases: dict[str, Any]) -> None:
    row = kpi.total(Case.objects.all(), NOV)
    assert row.accepted == 11  # all but c6 (October)
    assert row.registered == 10  # c8 never registered, c6 in October
    assert row.due == 7  # c1 c2 c3 c4 c5 c6 c9 (c11 merged; c10 c12 due in December)
    assert row.deferred == 1  # c4
    assert row.closed == 5  # c1 c2 c3 c6 c9
    assert row.closed_on_time == 3  # c1 c3 c9
    assert row.close_rate == pytest.approx(5 / 7)
    assert row.on_time_rate == pytest.approx(3 / 6)  # 按期结案数 / (应结案数 − 缓办数)
    assert row.rework_rate == pytest.approx(1 / 5)  # c3 of the closed
    assert row.extension_rate == pytest.approx(1 / 7)  # c3 of the due
    assert (row.signed, row.signed_on_time) == (7, 6)  # dispatched in Nov and signed; c2 signed late
    assert row.sign_on_time_rate == pytest.approx(6 / 7)
    assert (row.visited, row.satisfied) == (4, 3)  # c1 满意, c2 基本满意, c9 满意; c3 不满意
    assert row.satisfaction_rate == pytest.approx(0.75)
    assert row.finished == 5
    assert row.avg_hours == pytest.approx((24 + 168 + 24 + 192 + 12) / 5)
    assert row.p90_hours == pytest.approx(192)  # sorted 12 24 24 168 192 → rank ⌈4.5⌉ = 5


def test_by_unit(cases: dict[str, Any]) -> None:
    street = cases["street"]
    rows = {r.key: r for r in kpi.breakdown(Case.objects.all(), NOV, "unit")}
    grid_unit, community = rows[street.units["A1"].pk], rows[street.units["A"].pk]
    assert (grid_unit.accepted, grid_unit.due, grid_unit.closed, grid_unit.closed_on_time) == (6, 6, 4, 2)
    assert grid_unit.on_time_rate == pytest.approx(2 / 5)  # c4 deferred leaves the denominator
    assert grid_unit.avg_hours == pytest.approx((24 + 168 + 24 + 192) / 4)
    assert grid_unit.p90_hours == pytest.approx(192)
    assert (community.accepted, community.due, community.closed, community.closed_on_time) == (3, 1, 1, 1)
    assert community.on_time_rate == 1.0 and community.avg_hours == pytest.approx(12)
    # c7, c8 have no unit: they count as accepted under "no unit" and nowhere else.
    nobody = rows[None]
    assert (nobody.accepted, nobody.registered, nobody.due, nobody.close_rate) == (2, 1, 0, None)


def test_by_region_person_and_category(cases: dict[str, Any]) -> None:
    street = cases["street"]
    grids = street.grids
    community = street.communities["A"]
    width = len(community.path) + 15 + 1  # a grid code is 15 characters
    rows = {r.key: r for r in kpi.breakdown(Case.objects.all(), NOV, f"prefix:{width}")}
    assert set(rows) == {grids["A1"].path, grids["A2"].path}
    assert rows[grids["A1"].path].accepted == 8 and rows[grids["A2"].path].accepted == 3
    assert rows[grids["A2"].path].satisfaction_rate == 1.0
    # The street level holds one community, with the street's totals.
    width = len(street.street.path) + 12 + 1
    (only,) = kpi.breakdown(Case.objects.all(), NOV, f"prefix:{width}")
    assert only.key == community.path and only.accepted == 11 and only.due == 7

    people = {r.key: r for r in kpi.breakdown(Case.objects.all(), NOV, "person")}
    assert people[street.users["grid_a1"].pk].closed == 4
    assert people[street.users["community_a"].pk].satisfaction_rate == 1.0

    by_grid = {r.key: r for r in kpi.breakdown(Case.objects.all(), NOV, "grid")}
    assert by_grid[grids["A1"].pk].accepted == 8 and by_grid[grids["A2"].pk].closed == 1

    cats = {r.key: r for r in kpi.breakdown(Case.objects.all(), NOV, "category")}
    assert cats[cases["garbage"].pk].accepted == 8 and cats[cases["other"].pk].accepted == 3
    assert cats[cases["other"].pk].due == 1  # c11 merged, c10 in December


def test_workload_counts_events_per_person(cases: dict[str, Any]) -> None:
    street = cases["street"]
    rows = {r["actor_id"]: r for r in kpi.workload(Case.objects.all(), NOV)}
    worker, social = street.users["grid_a1"].pk, street.users["community_a"].pk
    assert set(rows) == {worker, social}  # system events (actor None) are not anyone's work
    assert (rows[worker]["events"], rows[worker]["cases"]) == (3, 2)  # the October sign is out
    assert rows[worker]["actions"] == {"sign": 2, "finish": 1}
    assert (rows[social]["events"], rows[social]["cases"]) == (1, 1)


def test_trend_and_scoping(cases: dict[str, Any]) -> None:
    street = cases["street"]
    october, november = kpi.trend(Case.objects.all(), NOV, months=2)
    assert (october.label, october.accepted, october.due, october.closed) == ("2026-10", 1, 0, 0)
    assert (november.label, november.accepted) == ("2026-11", 11)
    # A grid worker's KPIs are computed over the cases they can see only.
    from zhizhi.cases.services import cases_visible_to

    mine = kpi.total(cases_visible_to(street.users["grid_a1"]), NOV)
    assert mine.accepted == 8 and mine.due == 6


def test_empty_period_has_no_rates(cases: dict[str, Any]) -> None:
    row = kpi.total(Case.objects.all(), kpi.Period.month(2025, 1))
    assert row.accepted == 0 and row.close_rate is None and row.avg_hours is None and row.p90_hours is None


def test_p90_nearest_rank() -> None:
    assert kpi.p90([]) is None
    assert kpi.p90([5.0]) == 5.0
    assert kpi.p90([float(i) for i in range(1, 11)]) == 9.0
    assert kpi.p90([float(i) for i in range(1, 12)]) == 10.0


def test_a_day_range_equals_the_month_it_covers(cases: dict[str, Any]) -> None:
    days = kpi.Period.days(dt.date(2026, 11, 1), dt.date(2026, 11, 30))
    assert (days.start, days.end) == (NOV.start, NOV.end)
    assert kpi.total(Case.objects.all(), days).as_dict() | {"label": ""} == kpi.total(
        Case.objects.all(), NOV
    ).as_dict() | {"label": ""}
    # The first week only: c1 c2 c3 c4 c5 c7 reported on 2–7 November.
    week = kpi.total(Case.objects.all(), kpi.Period.days(dt.date(2026, 11, 1), dt.date(2026, 11, 7)))
    assert week.accepted == 6 and week.due == 3  # c1 (5th), c2 (6th), c6 (1st)


def test_without_times_the_counts_are_the_same(cases: dict[str, Any]) -> None:
    full, light = kpi.total(Case.objects.all(), NOV), kpi.total(Case.objects.all(), NOV, times=False)
    assert light.avg_hours is None and light.p90_hours is None
    assert (light.accepted, light.due, light.closed_on_time, light.signed_on_time) == (
        full.accepted,
        full.due,
        full.closed_on_time,
        full.signed_on_time,
    )


def test_the_trend_in_one_scan_equals_month_by_month(cases: dict[str, Any]) -> None:
    rows = kpi.trend(Case.objects.all(), NOV, months=3)
    assert [r.label for r in rows] == ["2026-09", "2026-10", "2026-11"]
    for row, month in zip(rows, NOV.previous_months(3), strict=True):
        alone = kpi.total(Case.objects.all(), month)
        assert row.as_dict() | {"key": None, "label": ""} == alone.as_dict() | {"key": None, "label": ""}
