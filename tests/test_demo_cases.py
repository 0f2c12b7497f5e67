"""The generated case history: every timeline is a legal walk through the transition table, the time
and SLA columns agree with the core (`sla.refresh`, the real sweep finds nothing left to do), the
shares are plausible, cases sit in their grid, and the command is reproducible and refuses twice.

Runs on a small demo street (scale 0.05) with the real responsibility list and a few hundred cases
over one month, so the last days' cases are still open in every state."""

from __future__ import annotations

import copy
import datetime as dt
import io
from collections import Counter
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command

from zhizhi import clock
from zhizhi.cases import demo_history, services, sla, transitions
from zhizhi.cases.models import Case, CaseEvent, CaseSequence, CaseTask
from zhizhi.geo import spatial
from zhizhi.notify.models import OutboxMessage
from zhizhi.orgs.models import User

CST = ZoneInfo("Asia/Shanghai")
NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=CST)  # a working Monday morning
COUNT = 400

pytestmark = pytest.mark.django_db


def demo_street() -> None:
    call_command("demo_street", seed=3, scale=0.05, stdout=io.StringIO())
    call_command("load_responsibility_list", stdout=io.StringIO())
    spatial.invalidate()


def replay(case: Case, events: list[CaseEvent], roles: dict[int, str]) -> str:
    """Walk the events through the transition table; returns the status reached."""
    status = ""
    for e in events:
        where = f"{case.number} {e.action} at {e.at}"
        assert e.from_status == status, where
        if e.action.startswith("sla_"):
            # The sweep's colour marks never change the status and only touch open cases.
            assert e.to_status == status and status in transitions.OPEN, where
            assert e.actor_id is None, where
            continue
        row = transitions.find(status, e.action)
        assert row is not None, f"illegal: {where} from {status!r}"
        assert e.to_status in row.targets, where
        if e.actor_id is None:
            assert {"system", "reporter"} & set(row.who), where
        elif set(row.who) <= {"dispatcher", "system"}:
            assert roles[e.actor_id] in ("dispatcher", "street_leader") or e.action == "register", where
        status = e.to_status
    return status


def test_generated_history_is_legal_consistent_and_plausible() -> None:
    demo_street()
    with clock.frozen_at(NOW):
        gen, counts = demo_history.generate(seed=11, months=1, count=COUNT, now=NOW)
    assert counts["cases"] == COUNT == Case.objects.count()
    assert counts["events"] == CaseEvent.objects.count() > COUNT * 5
    assert OutboxMessage.objects.count() == 0  # history never sends messages

    roles = dict(User.objects.values_list("pk", "role"))
    events: dict[int, list[CaseEvent]] = {}
    for e in CaseEvent.objects.order_by("case_id", "at", "id"):
        events.setdefault(e.case_id, []).append(e)
    cases = list(Case.objects.select_related("category", "grid").order_by("id"))
    statuses = Counter(c.status for c in cases)
    for case in cases:
        timeline = events[case.pk]
        # Every event sequence is legal and ends in the case's status.
        assert replay(case, timeline, roles) == case.status
        # Time never runs backwards, nothing lies in the future, ids follow time.
        ats = [e.at for e in timeline]
        assert ats == sorted(ats) and ats[-1] <= NOW
        assert [e.pk for e in timeline] == sorted(e.pk for e in timeline)
        stamps = [
            case.reported_at,
            case.registered_at,
            case.dispatched_at,
            case.signed_at,
            case.finished_at,
            case.closed_at,
            case.visited_at,
        ]
        present = [s for s in stamps if s is not None]
        assert present == sorted(present), case.number
        assert case.reported_at == timeline[0].at
        # Each time column is the time of the action that stamped it last.
        last = {e.action: e.at for e in timeline}
        if case.dispatched_at:
            assert (
                case.dispatched_at == [e.at for e in timeline if e.action in ("dispatch", "redispatch")][-1]
            )
        if case.finished_at:
            assert case.finished_at == last["finish"]
        if case.status == "merged":
            assert case.duplicate_of is not None and case.duplicate_of.reported_at <= case.reported_at
        # The case lives in its grid, found again from its point.
        assert case.area_path == case.grid.path
        assert spatial.index().lookup(case.lng, case.lat).grid_id == case.grid_id
        # SLA columns: what the core computes from the same columns.
        again = copy.copy(case)
        sla.refresh(again)
        assert (again.stage, again.stage_warn_at, again.stage_due_at, again.due_at) == (
            case.stage,
            case.stage_warn_at,
            case.stage_due_at,
            case.due_at,
        ), case.number
        if case.status not in transitions.OPEN:
            assert case.stage == "" and case.sla_level == "green"
        if case.overdue and case.finished_at and case.due_at:
            assert case.finished_at > case.due_at or any(e.action == "sla_red" for e in timeline)
        tasks = list(CaseTask.objects.filter(case=case))
        if case.status in ("finished", "closed", "visited") and tasks:
            assert all(t.status == "done" for t in tasks), case.number

    # The real minute sweep, run at the same moment, finds nothing the simulation missed.
    with clock.frozen_at(NOW):
        assert sla.sweep() == {"yellow": 0, "red": 0, "escalated": 0}

    # Plausible shares: most cases are done, some open in many states, some overdue.
    done = statuses["visited"] + statuses["closed"]
    assert done > COUNT * 0.7
    open_states = {s for s in statuses if s in transitions.ACTIVE or s in ("finished", "unsatisfied")}
    assert len(open_states) >= 5, statuses
    overdue = sum(c.overdue for c in cases) / COUNT
    assert 0.03 <= overdue <= 0.16, overdue
    share = demo_history.shares(gen)
    assert 0.01 <= share["returned"] <= 0.1
    rated = share["satisfaction"]
    assert rated["satisfied"] > rated["basic"] + rated["unsatisfied"]
    levels = Counter(c.sla_level for c in cases if c.status in transitions.OPEN)
    assert levels["red"] >= 1 and levels["green"] >= 1

    # The workbenches have work, seen through the core's own queries.
    dispatcher = User.objects.get(username="dispatcher")
    assert services.dispatcher_queue(dispatcher).exists()
    assert services.overdue_board(dispatcher).exists()


def test_same_seed_same_history_and_the_command_refuses_twice() -> None:
    demo_street()
    with clock.frozen_at(NOW):
        a = demo_history.Generator(seed=5, months=1, count=120, now=NOW)
        b = demo_history.Generator(seed=5, months=1, count=120, now=NOW)
        c = demo_history.Generator(seed=6, months=1, count=120, now=NOW)
        runs = [g.build() for g in (a, b, c)]

    def fingerprint(sims: list) -> list[tuple]:
        return [(s.case.number, s.case.title, s.case.status, [e.action for e in s.events]) for s in sims]

    assert fingerprint(runs[0]) == fingerprint(runs[1])
    assert fingerprint(runs[0]) != fingerprint(runs[2])

    with clock.frozen_at(NOW):
        out = io.StringIO()
        call_command("demo_cases", seed=5, months=1, count=120, stdout=out)
        assert "120 cases" in out.getvalue()
        assert [c.title for c in Case.objects.order_by("reported_at", "id")] == [
            s.case.title for s in runs[0]
        ]
        skipped = io.StringIO()
        call_command("demo_cases", if_empty=True, stdout=skipped)
        assert "跳过" in skipped.getvalue() and Case.objects.count() == 120
        with pytest.raises(CommandError, match="already exist"):
            call_command("demo_cases", stdout=io.StringIO())
        # A case registered today continues the day's numbers after the generated ones.
        today = NOW.strftime("%Y%m%d")
        taken = set(Case.objects.filter(number__startswith=f"ZZ{today}").values_list("number", flat=True))
        assert taken, "the history reaches into today"
        assert CaseSequence.objects.get(day=today).last >= len(taken)
        assert services.next_number() not in taken
