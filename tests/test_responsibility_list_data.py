"""The demo responsibility list (zhizhi/cases/data/responsibility_list.json): shape, codes, rules.

The file is what `manage.py load_responsibility_list` and `make demo` load, so it is checked both on
its own and through the real loader against the demo street's org units.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from zhizhi.cases import worktime
from zhizhi.demo.plan import STREET_UNITS

PATH = Path(__file__).resolve().parent.parent / "zhizhi" / "cases" / "data" / "responsibility_list.json"
UNIT_CODES = {code for code, _name, _kind in STREET_UNITS}
LIMIT_KEYS = ("sign_limit", "onsite_limit", "reinforce_limit", "followup_limit", "handle_limit")
LEAF_KEYS = {
    "code",
    "name",
    "keywords",
    "register_criteria",
    "close_criteria",
    "responsibility",
    "department",
    "assisting",
    "assign_rule",
    "sign_limit",
    "onsite_limit",
    "handle_limit",
    "urgent",
    "photo_required",
    "dedup_distance_m",
}
EIGHT_VISITS = (
    "税在地不在",
    "地在税不在",
    "高管变动",
    "地址变动",
    "楼宇税收变动",
    "经营异常",
    "新增企业",
    "政策匹配",
)
CHINESE = re.compile(r"^[\u4e00-\u9fffA-Za-z0-9]{1,8}$")


@pytest.fixture(scope="module")
def data() -> list[dict[str, Any]]:
    return json.loads(PATH.read_text(encoding="utf-8"))


def leaves(data: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [leaf for big in data for leaf in big["children"]]


def by_name(data: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {leaf["name"]: leaf for leaf in leaves(data)}


def test_size_matches_the_xixia_article(data: list[dict[str, Any]]) -> None:
    # "64类200多项": 64 大类, more than 200 小类 items.
    assert len(data) == 64
    assert len(leaves(data)) >= 200
    assert all(big["children"] for big in data)


def test_codes_are_unique_and_prefixed_by_their_parent(data: list[dict[str, Any]]) -> None:
    codes = [big["code"] for big in data] + [leaf["code"] for leaf in leaves(data)]
    assert len(codes) == len(set(codes))
    for big in data:
        assert re.fullmatch(r"\d{2}", big["code"]), big["code"]
        assert big["kind"] in ("event", "component")
        assert big["name"]
        for leaf in big["children"]:
            assert re.fullmatch(r"\d{4}", leaf["code"]), leaf["code"]
            assert leaf["code"][:2] == big["code"], leaf
    assert [big["code"] for big in data] == sorted(big["code"] for big in data)
    # CJ/T 214's example: 事件 01 市容环境 → 02 暴露垃圾.
    assert data[0]["name"] == "市容环境" and by_name(data)["暴露垃圾"]["code"] == "0102"
    kinds = {big["kind"] for big in data}
    assert kinds == {"event", "component"}


def test_every_leaf_has_realistic_keywords_and_criteria(data: list[dict[str, Any]]) -> None:
    names = [leaf["name"] for leaf in leaves(data)]
    assert len(names) == len(set(names))
    for leaf in leaves(data):
        assert set(leaf) - {"reinforce_limit", "followup_limit"} == LEAF_KEYS, leaf["code"]
        words = leaf["keywords"]
        assert 5 <= len(words) <= 12, leaf["name"]
        assert len(words) == len(set(words)), leaf["name"]
        assert all(CHINESE.match(w) for w in words), words
        assert 4 <= len(leaf["register_criteria"]) <= 60, leaf["name"]
        assert 2 <= len(leaf["close_criteria"]) <= 60, leaf["name"]


def test_limits_use_valid_units_and_urgent_kinds_count_calendar_minutes(data: list[dict[str, Any]]) -> None:
    for leaf in leaves(data):
        for key in LIMIT_KEYS:
            limit = leaf.get(key)
            if limit is None:
                continue
            amount, unit = limit
            assert isinstance(amount, int | float) and amount > 0, (leaf["name"], key)
            assert unit in worktime.UNITS, (leaf["name"], key)
        assert leaf["sign_limit"] and leaf["handle_limit"], leaf["name"]
        if leaf["urgent"]:
            assert leaf["onsite_limit"], leaf["name"]
            assert all(leaf[k] is None or leaf[k][1] == "calendar_minutes" for k in LIMIT_KEYS if k in leaf)
            assert leaf["assign_rule"] == "on_duty", leaf["name"]
        else:
            assert leaf["onsite_limit"] is None, leaf["name"]
        assert isinstance(leaf["photo_required"], bool)
        assert isinstance(leaf["dedup_distance_m"], int) and leaf["dedup_distance_m"] > 0
    names = by_name(data)
    for urgent in ("燃气泄漏", "火灾", "涵洞积水", "地铁塌陷", "电梯困人"):
        assert names[urgent]["urgent"], urgent


def test_responsibility_and_units_are_consistent(data: list[dict[str, Any]]) -> None:
    seen = set()
    for leaf in leaves(data):
        resp, dept, assisting = leaf["responsibility"], leaf["department"], leaf["assisting"]
        assert resp in ("territorial", "department", "joint"), leaf["name"]
        assert leaf["assign_rule"] in ("grid_worker", "on_duty", "least_loaded"), leaf["name"]
        if resp == "territorial":
            assert dept is None and assisting == [], leaf["name"]
        elif resp == "department":
            assert dept in UNIT_CODES and assisting == [], leaf["name"]
        else:
            # 联办: one lead (a named unit, or the territorial community when null) plus assisting units.
            assert dept is None or dept in UNIT_CODES, leaf["name"]
            assert assisting and set(assisting) <= UNIT_CODES, leaf["name"]
            assert dept not in assisting and len(assisting) == len(set(assisting)), leaf["name"]
        if leaf["assign_rule"] == "grid_worker":
            assert dept is None, leaf["name"]  # only the territorial side has a grid worker
        seen |= {dept, *assisting} - {None}
    # Every unit of the demo street has work in the list (the volunteer team assists, never leads).
    assert seen == UNIT_CODES - {"DQFWZX"}
    responsibilities = {leaf["responsibility"] for leaf in leaves(data)}
    assert responsibilities == {"territorial", "department", "joint"}


def test_the_eight_must_visit_enterprise_triggers_are_there(data: list[dict[str, Any]]) -> None:
    names = by_name(data)
    for trigger in EIGHT_VISITS:
        leaf = names[trigger]
        assert leaf["department"] == "QYFZB" or "QYFZB" in leaf["assisting"], trigger
        assert leaf["handle_limit"][1] == "work_days", trigger
    codes = {names[t]["code"][:2] for t in EIGHT_VISITS}
    assert len(codes) == 1  # one 大类: 企业走访（八必访）


def test_the_yingfeng_category_carries_its_four_targets(data: list[dict[str, Any]]) -> None:
    # "30秒响应启动、9分钟到场处置、15分钟增援力量协同、24小时跟进调解"
    yingfeng = [leaf for leaf in leaves(data) if "reinforce_limit" in leaf or "followup_limit" in leaf]
    assert len(yingfeng) == 1
    leaf = yingfeng[0]
    assert leaf["sign_limit"] == [0.5, "calendar_minutes"]
    assert leaf["onsite_limit"] == [9, "calendar_minutes"]
    assert leaf["reinforce_limit"] == [15, "calendar_minutes"]
    assert leaf["followup_limit"] == [1440, "calendar_minutes"]
    assert leaf["responsibility"] == "joint" and len(leaf["assisting"]) >= 2
    assert leaf["urgent"]


def test_the_seed_scenarios_are_covered(data: list[dict[str, Any]]) -> None:
    names = by_name(data)
    scenarios = [
        "暴露垃圾",
        "垃圾满溢",
        "道路不洁",
        "乱张贴小广告",
        "占道经营",
        "店外经营",
        "餐饮油烟扰民",
        "建筑垃圾乱倒",
        "机动车违停",
        "非机动车乱停放",
        "共享单车堆积",
        "道路破损",
        "井盖缺失",
        "路灯不亮",
        "道路积水",
        "涵洞积水",
        "窨井堵塞",
        "屋面渗漏",
        "楼道照明",
        "电梯故障",
        "老旧小区改造诉求",
        "夜间施工噪声",
        "广场舞噪声",
        "商铺喇叭叫卖",
        "电动车楼道充电",
        "消防通道堵塞",
        "燃气泄漏",
        "独居老人探视",
        "孤寡老人探视",
        "残疾人生活困难",
        "低保申请",
        "居家养老上门服务",
        "漏水纠纷",
        "物业服务质量",
        "拖欠工资",
        "婚姻家庭矛盾",
        "地铁塌陷",
        "火灾",
        "风险区返回人员",
    ]
    assert [s for s in scenarios if s not in names] == []


@pytest.mark.django_db
def test_the_real_loader_accepts_it_against_the_demo_units(data: list[dict[str, Any]]) -> None:
    from zhizhi.cases.models import Category
    from zhizhi.cases.services import load_responsibility_list
    from zhizhi.orgs.models import OrgUnit

    for code, name, kind in STREET_UNITS:
        OrgUnit.objects.create(code=code, name=name, kind=kind)
    counts = load_responsibility_list(data, None)
    assert counts["created"] == 64 + len(leaves(data))
    assert Category.objects.filter(parent=None).count() == 64
    gas = Category.objects.get(name="燃气泄漏")
    assert gas.department is not None and gas.department.code == "PAB"
    assert {u.code for u in gas.assisting.all()} == {"WB-XF", "WB-GA"}
    assert gas.onsite_limit == [15, "calendar_minutes"]
    # Loading it again changes nothing.
    again = load_responsibility_list(data, None)
    assert again["created"] == 0 and again["updated"] == 0
