"""Routing: category + place → unit → assignee (rule as data), auto-dispatch or the dispatcher's
queue, 联办 tasks, and the responsibility list loader."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from tests.factories import PASSWORD
from tests.test_cases_support import A1, B1, LIST, CaseMaker, loop_fixture  # noqa: F401
from zhizhi import clock
from zhizhi.cases import routing, services
from zhizhi.cases.models import Case, CaseEvent, Category, DutyRoster
from zhizhi.orgs.services import create_staff
from zhizhi.problems import Invalid


def test_certain_category_and_grid_dispatch_automatically(loop: CaseMaker) -> None:
    case = loop.new(category="0102", at=A1)
    assert case.status == "dispatched"
    assert case.grid == loop.street.grids["A1"]
    assert case.unit.code == "G-A1" and case.assignee == loop.user("grid_a1")
    dispatch = CaseEvent.objects.get(case=case, action="dispatch")
    assert dispatch.actor is None and dispatch.data["auto"] is True  # no human step
    assert case.stage == "sign" and case.stage_due_at is not None


def test_unknown_grid_waits_in_the_queue(loop: CaseMaker) -> None:
    case = loop.new(category="0102", at=B1)  # B1 has no grid unit and no community unit
    assert case.status == "registered" and case.unit is None and case.suggested_unit is None
    outside = loop.new(category="0102", at=(120.2, 30.4))  # in China, in no grid
    assert outside.status == "registered" and outside.grid is None
    dispatched = loop.new(category="0102", at=A1)
    queue = list(services.dispatcher_queue(loop.user("dispatcher")))
    assert case in queue and dispatched not in queue


def test_uncertain_category_waits_with_a_suggested_unit(loop: CaseMaker) -> None:
    case = loop.new(category="0102", category_certain=False)
    assert case.status == "registered" and case.suggested_unit.code == "G-A1"
    no_category = loop.new(category=None)
    assert no_category.status == "registered" and no_category.suggested_unit.code == "G-A1"
    # The dispatcher takes the suggestion with one call.
    done = services.dispatch_case(loop.user("dispatcher"), case.pk)
    assert done.unit.code == "G-A1" and done.assignee == loop.user("grid_a1")


def test_community_unit_when_the_grid_has_none(loop: CaseMaker) -> None:
    from zhizhi.orgs.models import OrgUnit

    OrgUnit.objects.filter(code="G-A1").update(active=False)
    case = loop.new(category="0102", at=A1)
    assert case.unit.code == "C-A"
    # The grid's worker serves the grid even though they are not a member of the community unit.
    assert case.assignee == loop.user("grid_a1")


def test_department_item_goes_to_the_named_department(loop: CaseMaker) -> None:
    case = loop.new(category="0103", at=B1)  # place does not matter for a department item
    assert case.status == "dispatched" and case.unit.code == "CG" and case.assignee == loop.user("cg")
    # The outside department sees it although it has no area.
    assert services.get_case(loop.user("cg"), case.pk) == case


def test_joint_case_has_lead_and_assist_tasks_and_finishes_only_when_all_are_done(loop: CaseMaker) -> None:
    case = loop.new(category="0104", at=A1)
    tasks = {t.unit.code: t for t in case.tasks.select_related("unit")}
    assert tasks["CG"].role == "lead" and tasks["SCJG"].role == "assist"
    assert tasks["SCJG"].assignee == loop.user("scjg")
    cg, scjg = loop.user("cg"), loop.user("scjg")
    services.sign_for(cg, case.pk)
    with pytest.raises(Invalid) as err:
        services.finish_case(cg, case.pk, result="油烟净化器已安装")
    assert err.value.problems[0].code == "assist_open"
    # The assisting unit may not finish or sign the whole case, only its task.
    from zhizhi.problems import Forbidden

    with pytest.raises(Forbidden):
        services.finish_case(scjg, case.pk, result="我来办结")
    services.finish_task(scjg, case.pk, result="已检查营业执照")
    done = services.finish_case(cg, case.pk, result="油烟净化器已安装")
    assert done.status == "finished"
    assert set(done.tasks.values_list("status", flat=True)) == {"done"}


def test_assignment_rules_are_data(loop: CaseMaker) -> None:
    cg_unit = loop.street.units["CG"]
    second = create_staff(
        username="cg2", full_name="城管二", role="dept_staff", password=PASSWORD, org_unit=cg_unit
    )
    # least_loaded: cg already has one open case, so cg2 gets the next.
    loop.new(category="0103")
    nxt = loop.new(category="0103")
    assert nxt.assignee == second
    # on_duty: today's roster wins over load.
    Category.objects.filter(code="0103").update(assign_rule="on_duty")
    DutyRoster.objects.create(unit=cg_unit, user=loop.user("cg"), date=clock.today())
    assert loop.new(category="0103").assignee == loop.user("cg")
    assert routing.pick_assignee("on_duty", cg_unit, None) == loop.user("cg")


def test_dispatch_to_a_chosen_unit_and_person(loop: CaseMaker) -> None:
    case = loop.new(category="0102", category_certain=False)
    with pytest.raises(Invalid):  # grid_b1 is not in CG
        services.dispatch_case(loop.user("dispatcher"), case.pk, unit="CG", assignee="grid_b1")
    with pytest.raises(Invalid):
        services.dispatch_case(loop.user("dispatcher"), case.pk, unit="NOPE")
    done = services.dispatch_case(loop.user("dispatcher"), case.pk, unit="CG", assignee="cg")
    assert done.unit.code == "CG" and done.assignee == loop.user("cg")


def test_case_numbers_are_daily_sequences(loop: CaseMaker) -> None:
    a, b = loop.new(), loop.new()
    day = clock.today().strftime("%Y%m%d")
    assert a.number == f"ZZ{day}0001" and b.number == f"ZZ{day}0002"


def test_register_validates_everything_at_once(loop: CaseMaker) -> None:
    with pytest.raises(Invalid) as err:
        services.register_case(
            loop.user("dispatcher"),
            title="",
            description="长" * 4001,
            category="9999",
            lng=30.305,
            lat=120.1025,
            reporter_phone="123",
            channel="pigeon",
        )
    fields = {p.field for p in err.value.problems}
    assert {"title", "description", "category", "channel", "reporter_phone"} <= fields
    assert len(fields) >= 6  # and the swapped coordinates
    assert Case.objects.count() == 0


def test_residents_and_volunteers(loop: CaseMaker) -> None:
    with pytest.raises(services.Forbidden):
        services.register_case(loop.user("volunteer"), title="志愿者随手拍", lng=A1[0], lat=A1[1])
    resident = loop.user("resident")
    case = services.register_case(
        resident,
        title="楼道堆物",
        lng=A1[0],
        lat=A1[1],
        reporter_user=resident,
        register=False,
        channel="web",
    )
    assert case.status == "reported"
    assert services.get_case(resident, case.pk) == case
    other = loop.new()
    with pytest.raises(services.NotFound):
        services.get_case(resident, other.pk)


# --- the responsibility list ----------------------------------------------------------------------
def test_loader_is_idempotent_and_updates_by_code(loop: CaseMaker) -> None:
    counts = services.load_responsibility_list(LIST, None)
    assert counts == {"created": 0, "updated": 0, "unchanged": 6}
    changed = json.loads(json.dumps(LIST))
    changed[0]["children"][0]["handle_limit"] = [5, "work_days"]
    counts = services.load_responsibility_list(changed, None)
    assert counts["updated"] == 1
    assert Category.objects.get(code="0102").handle_limit == [5, "work_days"]
    leaf = Category.objects.get(code="0104")
    assert [u.code for u in leaf.assisting.all()] == ["SCJG"] and leaf.parent.code == "01"


def test_loader_reports_missing_units_in_both_languages(loop: CaseMaker) -> None:
    bad = [
        {
            "code": "05",
            "name": "市场监管",
            "children": [
                {
                    "code": "0501",
                    "name": "无证经营",
                    "responsibility": "joint",
                    "department": "NOPE",
                    "assisting": ["GHOST"],
                    "handle_limit": [3, "fortnights"],
                }
            ],
        }
    ]
    with pytest.raises(Invalid) as err:
        services.load_responsibility_list(bad, None)
    messages = " ".join(p.message for p in err.value.problems)
    assert (
        "NOPE" in messages and "GHOST" in messages and "不存在" in messages and "does not exist" in messages
    )
    assert "时限格式错误" in messages
    assert not Category.objects.filter(code__startswith="05").exists()


def test_load_command(loop: CaseMaker, tmp_path: Any) -> None:
    path = tmp_path / "list.json"
    path.write_text(json.dumps(LIST, ensure_ascii=False), encoding="utf-8")
    call_command("load_responsibility_list", str(path))
    path.write_text("[{]", encoding="utf-8")
    with pytest.raises(CommandError):
        call_command("load_responsibility_list", str(path))
    with pytest.raises(CommandError):
        call_command("load_responsibility_list", str(tmp_path / "missing.json"))


def test_keyword_suggestion_waits_for_the_dispatcher_to_confirm(loop: CaseMaker) -> None:
    case = loop.new(category=None, title="小区门口垃圾桶满了没人清", at=A1)
    assert case.status == "registered" and case.category is None
    assert case.suggested_category.code == "0102" and case.suggested_unit.code == "G-A1"
    done = services.dispatch_case(loop.user("dispatcher"), case.pk)  # one click: take the suggestions
    assert done.category.code == "0102" and done.category_certain
    assert done.unit.code == "G-A1" and done.stage == "sign"
    other = loop.new(category=None, title="有人在路边摆摊", at=A1)
    assert other.suggested_category is None
    fixed = services.dispatch_case(loop.user("dispatcher"), other.pk, category="0103")
    assert fixed.category.code == "0103" and fixed.unit.code == "CG"


def test_workbench_lists(loop: CaseMaker) -> None:
    grid, sup, cg, scjg = (loop.user(k) for k in ("grid_a1", "community_a", "cg", "scjg"))
    ours = loop.at("handling")
    joint = loop.new(category="0104")
    waiting = loop.at("extension_pending")
    unhappy = loop.at("unsatisfied")
    assert set(services.my_tasks(grid)) == {ours, waiting}
    assert set(services.unit_cases(grid)) == {ours, waiting}
    assert set(services.unit_cases(cg)) == {joint} and set(services.unit_cases(scjg)) == {joint}
    assert set(services.my_tasks(scjg)) == {joint}
    assert set(services.approvals_for(sup)) == {waiting, unhappy}
    assert set(services.approvals_for(loop.user("leader"))) == {waiting, unhappy}
    assert not services.approvals_for(grid).exists()
