"""Rules for enterprises: credit codes, where they actually operate, executives and tax records."""

from __future__ import annotations

import datetime as dt
from typing import Any

from zhizhi import validators
from zhizhi.enterprises.models import Enterprise, Executive, TaxRecord
from zhizhi.geo.models import Building, Region
from zhizhi.people.services import HOUSE_REF
from zhizhi.problems import Problem
from zhizhi.registry import Column, Ref, Registry, register

ENTERPRISE_REF = Ref(Enterprise, "credit_code", "企业（统一社会信用代码）")


def enterprise_rules(values: dict[str, Any], instance: Enterprise | None) -> list[Problem]:
    problems: list[Problem] = []
    building = values.get("building") or (instance.building if instance and instance.building_id else None)
    house = values.get("house")
    if house is not None:
        if building is not None and house.building_id != building.pk:
            problems.append(
                Problem(
                    "house_building",
                    "经营房屋不在所填楼幢内",
                    "The house is not in the building given",
                    field="house",
                )
            )
        building = building or house.building
        values.setdefault("building", house.building)
    if values.get("grid") is None and building is not None and not (instance and instance.grid_id):
        values["grid"] = building.grid
    grid = values.get("grid")
    if grid is not None and grid.level != Region.GRID:
        problems.append(
            Problem(
                "not_grid",
                "所属网格必须是网格级区域",
                "The grid must be a grid-level region",
                field="grid",
                value=grid.code,
            )
        )
    capital = values.get("registered_capital")
    if capital is not None and capital < 0:
        problems.append(
            Problem(
                "negative",
                "注册资本不能为负",
                "Registered capital cannot be negative",
                field="registered_capital",
                value=str(capital),
            )
        )
    return problems


def executive_rules(values: dict[str, Any], instance: Executive | None) -> list[Problem]:
    return validators.period_order(values, instance, "离任日期早于任职日期")


def tax_rules(values: dict[str, Any], instance: TaxRecord | None) -> list[Problem]:
    problems: list[Problem] = []
    period: dt.date | None = values.get("period")
    if period is not None:
        values["period"] = period.replace(day=1)
    for name in ("revenue", "tax_paid"):
        value = values.get(name)
        if value is not None and value < 0:
            problems.append(
                Problem(
                    "negative", "金额不能为负", "The amount cannot be negative", field=name, value=str(value)
                )
            )
    return problems


def tax_history(enterprise: Enterprise, months: int = 24) -> list[TaxRecord]:
    return list(enterprise.tax_records.order_by("-period")[:months])[::-1]


def current_executives(enterprise: Enterprise, on: dt.date) -> list[Executive]:
    return [
        e
        for e in enterprise.executives.all()
        if e.start_date <= on and (e.end_date is None or e.end_date > on)
    ]


ENTERPRISES = register(
    Registry(
        key="enterprises.enterprise",
        model=Enterprise,
        zh="企业",
        en="Enterprises",
        columns=[
            Column("name", "名称", "Name", required=True),
            Column("credit_code", "统一社会信用代码", "Credit code", kind="credit_code", required=True),
            Column("legal_representative", "法定代表人", "Legal representative", required=True),
            Column("registered_address", "注册地址", "Registered address", required=True),
            Column(
                "building", "经营楼幢编码", "Building code", kind="ref", ref=Ref(Building, "code", "楼幢")
            ),
            Column("house", "经营房屋", "House (building-unit-room)", kind="ref", ref=HOUSE_REF),
            Column("grid", "网格编码", "Grid code", kind="ref", ref=Ref(Region, "code", "网格")),
            Column("industry", "行业", "Industry", kind="choice", required=True),
            Column("status", "状态", "Status", kind="choice"),
            Column("established_on", "成立日期", "Established on", kind="date", not_future=True),
            Column("registered_capital", "注册资本(万元)", "Registered capital (10k CNY)", kind="decimal"),
            Column("employees", "从业人数", "Employees", kind="int"),
            Column("tax_region_code", "税务登记地区划代码", "Tax region code"),
        ],
        natural_key=("credit_code",),
        search=("name", "credit_code", "legal_representative"),
        filters=("industry", "status", "grid", "building"),
        list_columns=("name", "credit_code", "legal_representative", "industry", "status", "grid"),
        rules=enterprise_rules,
    )
)

EXECUTIVES = register(
    Registry(
        key="enterprises.executive",
        model=Executive,
        zh="高管",
        en="Executives",
        columns=[
            Column(
                "enterprise", "统一社会信用代码", "Credit code", kind="ref", required=True, ref=ENTERPRISE_REF
            ),
            Column("name", "姓名", "Name", required=True),
            Column("position", "职务", "Position", kind="choice", required=True),
            Column("start_date", "任职日期", "From", kind="date", required=True),
            Column("end_date", "离任日期", "To", kind="date"),
        ],
        natural_key=("enterprise", "name", "position", "start_date"),
        search=("name", "enterprise__name"),
        filters=("position", "enterprise"),
        list_columns=("enterprise", "name", "position", "start_date", "end_date"),
        rules=executive_rules,
    )
)

TAX_RECORDS = register(
    Registry(
        key="enterprises.taxrecord",
        model=TaxRecord,
        zh="税收记录",
        en="Tax records",
        columns=[
            Column(
                "enterprise", "统一社会信用代码", "Credit code", kind="ref", required=True, ref=ENTERPRISE_REF
            ),
            Column("period", "所属期", "Period", kind="date", required=True),
            Column("revenue", "营业收入(万元)", "Revenue (10k CNY)", kind="decimal", required=True),
            Column("tax_paid", "纳税额(万元)", "Tax paid (10k CNY)", kind="decimal", required=True),
            Column("tax_paid_here", "在本街道纳税", "Tax paid here", kind="bool"),
        ],
        natural_key=("enterprise", "period"),
        search=("enterprise__name",),
        filters=("enterprise", "tax_paid_here"),
        list_columns=("enterprise", "period", "revenue", "tax_paid", "tax_paid_here"),
        rules=tax_rules,
    )
)
