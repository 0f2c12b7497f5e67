"""Shared fixtures for the case tests: a small responsibility list on top of the `street` fixture,
and `CaseMaker.at(status)`, which walks a fresh case through real service calls to any status.

Points: A1 (120.1025, 30.305) has a grid unit and a grid worker → auto-dispatch;
B1 (120.1125, 30.305) has neither a grid nor a community unit → the dispatcher's queue.
"""

from __future__ import annotations

import base64
import itertools
from dataclasses import dataclass
from typing import Any

import pytest

from tests.factories import PASSWORD, Street
from zhizhi.cases import services
from zhizhi.cases.models import Case
from zhizhi.orgs.models import OrgUnit
from zhizhi.orgs.services import create_staff

A1 = (120.1025, 30.305)
B1 = (120.1125, 30.305)
# A 1×1 PNG: real image bytes for the photo rule.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
_seq = itertools.count(1)

LIST = [
    {
        "code": "01",
        "name": "市容环境",
        "kind": "event",
        "children": [
            {
                "code": "0102",
                "name": "暴露垃圾",
                "keywords": ["垃圾", "垃圾桶满"],
                "register_criteria": "垃圾裸露堆放",
                "close_criteria": "清理干净",
                "responsibility": "territorial",
                "department": None,
                "assisting": [],
                "sign_limit": [2, "work_hours"],
                "onsite_limit": None,
                "handle_limit": [3, "work_days"],
                "urgent": False,
                "photo_required": True,
                "dedup_distance_m": 50,
            },
            {
                "code": "0103",
                "name": "占道经营",
                "responsibility": "department",
                "department": "CG",
                "sign_limit": [1, "work_hours"],
                "handle_limit": [1, "work_days"],
            },
            {
                "code": "0104",
                "name": "餐饮油烟",
                "responsibility": "joint",
                "department": "CG",
                "assisting": ["SCJG"],
                "sign_limit": [2, "work_hours"],
                "handle_limit": [5, "work_days"],
            },
        ],
    },
    {
        "code": "09",
        "name": "应急处置",
        "kind": "event",
        "children": [
            {
                "code": "0901",
                "name": "火情险情",
                "responsibility": "joint",
                "assisting": ["CG"],
                "urgent": True,
                "sign_limit": [0.5, "calendar_minutes"],
                "onsite_limit": [9, "calendar_minutes"],
                "reinforce_limit": [15, "calendar_minutes"],
                "followup_limit": [1440, "calendar_minutes"],
                "handle_limit": [3, "work_days"],
            }
        ],
    },
]


@dataclass
class CaseMaker:
    street: Street

    def user(self, key: str) -> Any:
        return self.street.users[key]

    def new(self, *, at: tuple[float, float] = A1, category: str | None = "0102", **kw: Any) -> Case:
        kw.setdefault("title", f"测试案件{next(_seq)}")
        actor = kw.pop("actor", self.user("dispatcher"))
        return services.register_case(actor, category=category, lng=at[0], lat=at[1], **kw)

    def photo(self, case: Case, who: str = "grid_a1") -> int:
        return services.add_photo(self.user(who), case.pk, name="现场.png", data=PNG).pk

    def at(self, status: str, category: str = "0102") -> Case:
        """A fresh case in `status`, reached through the real actions."""
        d, g = self.user("dispatcher"), self.handler(category)
        # The A1 grid's supervisor is the community; outside departments have none here.
        sup = d if category in ("0103", "0104") else self.user("community_a")
        if status == "reported":
            return self.new(category=category, register=False)
        if status == "registered":
            return self.new(category=category, category_certain=False)
        if status == "cancelled":
            case = self.at("registered", category)
            return services.reject_case(d, case.pk, reason="不属于立案范围")
        if status == "merged":
            other = self.at("registered", category)
            case = self.at("registered", category)
            return services.merge_case(d, case.pk, into=other.number)
        case = self.new(category=category)
        assert case.status == "dispatched", case.status
        if status == "dispatched":
            return case
        if status == "returned":
            return services.return_case(g, case.pk, reason="属地不符")
        case = services.sign_for(g, case.pk)
        if status == "handling":
            return case
        if status == "extension_pending":
            return services.request_extension(g, case.pk, amount=2, reason="需要协调")
        if status == "deferred":
            return services.defer_case(sup, case.pk, reason="等待施工")
        case = self.finish(case, g)
        if status == "finished":
            return case
        case = services.verify_case(d, case.pk, passed=True)
        if status == "closed":
            return case
        word = "不满意" if status == "unsatisfied" else "满意"
        case = services.visit_case(d, case.pk, satisfaction=word)
        assert case.status == status, (case.status, status)
        return case

    def finish(self, case: Case, who: Any) -> Case:
        for task in case.tasks.filter(role="assist").select_related("unit"):
            helper = task.unit.members.order_by("id").first()
            services.finish_task(helper, case.pk, result="协办完成")
        return services.finish_case(who, case.pk, result="已清理", photos=[self.photo(case)])

    def handler(self, category: str) -> Any:
        return self.user("cg") if category in ("0103", "0104") else self.user("grid_a1")


def add_loop_units(street: Street) -> None:
    """Outside departments 城管 (CG) and 市场监管 (SCJG), each with one member."""
    for code, name, username in (("CG", "城管", "cg"), ("SCJG", "市场监管", "scjg")):
        unit = OrgUnit.objects.create(code=code, name=name, kind="outside_dept")
        street.units[code] = unit
        street.users[username] = create_staff(
            username=username, full_name=f"{name}队员", role="dept_staff", password=PASSWORD, org_unit=unit
        )


@pytest.fixture(name="loop")
def loop_fixture(street: Street) -> CaseMaker:
    """Import `loop_fixture` into a test module to use the `loop` fixture there."""
    services.ensure_case_permissions()
    add_loop_units(street)
    services.load_responsibility_list(LIST, street.users["admin"])
    return CaseMaker(street)
