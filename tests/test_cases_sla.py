"""Deadlines of the current stage and the minute sweep: yellow at 80 %, red when overdue, the
supervisor told, automatic escalation after the grace; extension moves, deferral pauses; the
Yingfeng 30 s / 9 min / 15 min / 24 h targets as one category. Time is moved with clock.frozen_at."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.test_cases_support import A1, CaseMaker, loop_fixture  # noqa: F401
from zhizhi import clock
from zhizhi.cases import services, sla, worktime
from zhizhi.cases.models import Case, CaseEvent
from zhizhi.notify.models import OutboxMessage

CST = ZoneInfo("Asia/Shanghai")
MONDAY_9 = dt.datetime(2026, 11, 23, 9, 0, tzinfo=CST)  # an ordinary working Monday


def at(hh: int, mm: int = 0, ss: int = 0, day: dt.datetime = MONDAY_9) -> dt.datetime:
    return day.replace(hour=hh, minute=mm, second=ss)


def sweep_at(moment: dt.datetime) -> dict[str, int]:
    with clock.frozen_at(moment):
        return sla.sweep()


def messages(case: Case, **kw: object) -> list[str]:
    return list(
        OutboxMessage.objects.filter(cause=f"cases.case:{case.pk}", **kw)
        .order_by("id")
        .values_list("subject", flat=True)
    )


def test_yellow_then_red_then_escalation_after_grace(loop: CaseMaker, settings: object) -> None:
    settings.ZHIZHI_ESCALATION_GRACE_MINUTES = 30  # type: ignore[attr-defined]
    with clock.frozen_at(MONDAY_9):
        case = loop.new(category="0102")  # sign within 2 working hours
    assert case.stage == "sign"
    assert case.stage_due_at == at(11) and case.stage_warn_at == at(10, 36)

    assert sweep_at(at(10, 30)) == {"yellow": 0, "red": 0, "escalated": 0}
    assert sweep_at(at(10, 40))["yellow"] == 1
    case.refresh_from_db()
    assert case.sla_level == "yellow"
    grid = loop.user("grid_a1")
    assert any(s.startswith("即将超时") for s in messages(case, user=grid))
    assert sweep_at(at(10, 45)) == {"yellow": 0, "red": 0, "escalated": 0}  # told once

    assert sweep_at(at(11, 1))["red"] == 1
    case.refresh_from_db()
    assert case.sla_level == "red" and case.escalate_at == at(11, 30)
    supervisor = loop.user("community_a")
    assert any(s.startswith("下属案件超时") for s in messages(case, user=supervisor))

    assert sweep_at(at(11, 20))["escalated"] == 0
    assert sweep_at(at(11, 31))["escalated"] == 1
    case.refresh_from_db()
    assert case.escalation_level == 1 and case.status == "dispatched"
    escalated = CaseEvent.objects.get(case=case, action="escalate")
    assert escalated.actor is None and escalated.data["level"] == 1
    assert sweep_at(at(12, 2))["escalated"] == 1  # still red: the next level after another grace
    case.refresh_from_db()
    assert case.escalation_level == 2

    # Signing starts the next stage: green again, no more escalation pending.
    with clock.frozen_at(at(12, 5)):
        services.sign_for(grid, case.pk)
    case.refresh_from_db()
    assert case.stage == "handle" and case.sla_level == "green" and case.escalate_at is None
    assert case.escalation_level == 2  # history is kept


def test_overdue_handling_marks_the_case_late_for_kpis(loop: CaseMaker) -> None:
    with clock.frozen_at(MONDAY_9):
        case = loop.at("handling")
    assert case.stage == "handle" and case.due_at == case.stage_due_at
    sweep_at(case.due_at + dt.timedelta(minutes=1))
    case.refresh_from_db()
    assert case.sla_level == "red" and case.overdue is True


def test_extension_moves_the_deadline(loop: CaseMaker) -> None:
    with clock.frozen_at(MONDAY_9):
        case = loop.at("handling")
        before = case.due_at
        services.request_extension(loop.user("grid_a1"), case.pk, amount=2, reason="需要采购配件")
        case = services.approve_extension(loop.user("community_a"), case.pk)
    assert case.due_at == worktime.add(before, 2, "work_days")
    assert case.stage_due_at == case.due_at and case.stage_warn_at < case.due_at
    assert not messages(case, subject__startswith="已超时")


def test_deferral_pauses_the_clock(loop: CaseMaker) -> None:
    with clock.frozen_at(MONDAY_9):
        case = loop.at("handling")
    before = case.due_at
    with clock.frozen_at(at(10)):
        case = services.defer_case(loop.user("community_a"), case.pk, reason="等待业主维修基金")
    assert case.stage == "" and case.stage_due_at is None
    # While deferred nothing turns red, however long it takes.
    assert sweep_at(before + dt.timedelta(days=30))["red"] == 0
    resume = at(10, day=MONDAY_9 + dt.timedelta(days=2))  # two calendar days later
    with clock.frozen_at(resume):
        case = services.resume_case(loop.user("community_a"), case.pk)
    assert case.paused_seconds == 2 * 24 * 3600
    assert case.due_at == worktime.add(case.sla_start_at + dt.timedelta(days=2), 3, "work_days")
    assert case.due_at > before


def test_deferral_over_a_weekend_moves_working_deadlines_by_nothing(loop: CaseMaker) -> None:
    """Deferred Friday 17:30, resumed Monday 08:30: no working time passed, the deadline stays."""
    friday = MONDAY_9 + dt.timedelta(days=4)
    with clock.frozen_at(MONDAY_9):
        case = loop.at("handling")
    before = case.due_at
    with clock.frozen_at(at(17, 30, day=friday)):
        case = services.defer_case(loop.user("community_a"), case.pk, reason="等待业主维修基金")
    with clock.frozen_at(at(8, 30, day=friday + dt.timedelta(days=3))):
        case = services.resume_case(loop.user("community_a"), case.pk)
    assert case.paused_seconds == (2 * 24 + 15) * 3600
    assert case.paused_work_minutes == 0
    assert case.due_at == before


def test_yingfeng_targets_as_one_category(loop: CaseMaker) -> None:
    """30 s response, 9 min on site, 15 min reinforcement, 24 h follow-up (calendar time)."""
    t0 = at(22, 0)  # at night: urgent kinds count calendar minutes
    with clock.frozen_at(t0):
        case = loop.new(category="0901")
    assert case.urgent and case.status == "dispatched"
    assert (case.stage, case.stage_due_at) == ("sign", t0 + dt.timedelta(seconds=30))
    assert sweep_at(t0 + dt.timedelta(seconds=31))["red"] == 1  # 30 s missed: red at once

    grid, cg = loop.user("grid_a1"), loop.user("cg")
    with clock.frozen_at(t0 + dt.timedelta(seconds=40)):
        case = services.sign_for(grid, case.pk)
    assert (case.stage, case.stage_due_at, case.sla_level) == (
        "onsite",
        t0 + dt.timedelta(minutes=9),
        "green",
    )
    with clock.frozen_at(t0 + dt.timedelta(minutes=8)):
        case = services.arrive(grid, case.pk, lng=A1[0], lat=A1[1])
    assert (case.stage, case.stage_due_at) == ("reinforce", t0 + dt.timedelta(minutes=15))
    with clock.frozen_at(t0 + dt.timedelta(minutes=14)):
        case = services.arrive(cg, case.pk, lng=A1[0], lat=A1[1])  # the assisting unit arrives
    assert case.reinforced_at is not None
    assert (case.stage, case.stage_due_at) == ("followup", t0 + dt.timedelta(hours=24))
    with clock.frozen_at(t0 + dt.timedelta(hours=20)):
        case = services.follow_up(grid, case.pk, note="已调解，双方同意")
    assert case.stage == "handle"


def test_sweep_is_a_few_indexed_queries_not_one_per_case(loop: CaseMaker) -> None:
    with clock.frozen_at(MONDAY_9):
        for _ in range(15):
            loop.new(category="0102")
    with CaptureQueriesContext(connection) as ctx, clock.frozen_at(at(9, 30)):
        assert sla.sweep() == {"yellow": 0, "red": 0, "escalated": 0}
    assert len(ctx.captured_queries) == 3
    assert all(
        "stage_warn_at" in q["sql"] or "stage_due_at" in q["sql"] or "escalate_at" in q["sql"]
        for q in ctx.captured_queries
    )


def test_the_periodic_task_runs_the_sweep(loop: CaseMaker) -> None:
    from zhizhi.cases.tasks import sweep_case_deadlines

    with clock.frozen_at(MONDAY_9):
        case = loop.new(category="0102")
    with clock.frozen_at(at(10, 40)):
        result = sweep_case_deadlines.call_local()
    assert result["yellow"] == 1
    case.refresh_from_db()
    assert case.sla_level == "yellow"


def test_escalation_stops_at_the_district(loop: CaseMaker, settings: object) -> None:
    settings.ZHIZHI_ESCALATION_GRACE_MINUTES = 10  # type: ignore[attr-defined]
    settings.ZHIZHI_CASE_ROBOTS = {"dingtalk": "指挥中心值班群"}  # type: ignore[attr-defined]
    with clock.frozen_at(MONDAY_9):
        case = loop.new(category="0102")
    sweep_at(at(11, 1))  # red; first escalation at 11:10
    levels = []
    for minute in (11, 21, 31, 41, 51):
        sweep_at(at(11, minute))
        case.refresh_from_db()
        levels.append(case.escalation_level)
    assert levels == [1, 2, 3, 3, 3]
    assert case.escalate_at is None
    leader = loop.user("leader")
    assert any(s.startswith("升级至区") for s in messages(case, user=leader))
    # From the command-centre level on, the group robots hear it too.
    robots = OutboxMessage.objects.filter(cause=f"cases.case:{case.pk}", channel="dingtalk")
    assert list(robots.values_list("recipient", flat=True)) == ["指挥中心值班群", "指挥中心值班群"]
    assert CaseEvent.objects.filter(case=case, action="escalate").count() == 3


def test_editing_the_list_does_not_move_deadlines_under_way(loop: CaseMaker) -> None:
    from zhizhi.cases.models import Category

    with clock.frozen_at(MONDAY_9):
        case = loop.new(category="0102")
    Category.objects.filter(code="0102").update(sign_limit=[8, "work_hours"])
    with clock.frozen_at(at(9, 30)):
        case = services.urge_case(loop.user("dispatcher"), case.pk, note="请尽快签收")
    assert case.stage_due_at == at(11)
    with clock.frozen_at(MONDAY_9):
        fresh = loop.new(category="0102")
    assert fresh.stage_due_at == worktime.add(MONDAY_9, 8, "work_hours")


def test_sweep_queries_can_use_their_indexes(loop: CaseMaker) -> None:
    """The sweep's range queries are answerable from an index (partial, or (status, deadline))."""
    now = clock.now()
    queries = [
        Case.objects.filter(
            sla_level="green", status__in=sla.OPEN, stage_warn_at__lte=now, stage_due_at__gt=now
        ),
        Case.objects.filter(status__in=sla.OPEN, stage_due_at__lte=now, sla_level__in=("green", "yellow")),
    ]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET enable_seqscan = off")
        for qs in queries:
            sql, params = qs.values("pk").query.sql_with_params()
            prefix = "EXPLAIN QUERY PLAN " if connection.vendor == "sqlite" else "EXPLAIN "
            cursor.execute(prefix + sql, params)
            plan = " ".join(str(row) for row in cursor.fetchall())
            assert "case_sweep" in plan or "case_status_" in plan, plan
        if connection.vendor == "postgresql":
            cursor.execute("SET enable_seqscan = on")
