"""What each registry contributes to the generic battery: its data, nothing else.

For every registry in `zhizhi.registry.registries()` a `Sample` says how to write the raw input of
a valid new row standing in a given grid ("A1" or "B1" of the test street), how to make an existing
row in a grid, one valid change, and which user is the area-constrained one (a grid worker where
grid workers may write, else a community worker: both have A1 in scope and B1 out of it).
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stdnum.cn import uscc

from tests.factories import Street, make_id_number, tag
from zhizhi.enterprises.models import Enterprise, Executive, TaxRecord
from zhizhi.orgs.models import OrgUnit
from zhizhi.people.models import Residency

_seq = itertools.count(11)

GRID_INDEX = {"A1": 0, "A2": 1, "B1": 2, "B2": 3}


def seq() -> int:
    return next(_seq)


def credit_code() -> str:
    """A valid USCC: 91 (enterprise), the district, an organisation code, the check character."""
    body = f"91330105MA{seq() % 10**7:07d}"
    return body + uscc.calc_check_digit(body)


def point_in(grid: str) -> tuple[float, float]:
    return 120.100 + 0.005 * GRID_INDEX[grid] + 0.001 + (seq() % 30) * 0.0001, 30.302


def enterprise_in(street: Street, grid: str) -> Enterprise:
    n = seq()
    return Enterprise.objects.create(
        name=f"测试企业{grid}{n}",
        credit_code=credit_code(),
        legal_representative="张三",
        registered_address=f"测试路{n}号",
        building=street.buildings[grid],
        grid=street.grids[grid],
        industry="C",
    )


@dataclass
class Sample:
    new: Callable[[Street, str], dict[str, Any]]
    existing: Callable[[Street, str], Any]
    change: dict[str, Any]  # raw values sent
    changed: dict[str, Any]  # what the API shows afterwards
    marker: Callable[[Any], str]  # text that an export of the row contains
    constrained: str = "grid_a1"
    # False where no new row can land inside the constrained user's area (a region under grid A1).
    constrained_creates: bool = True


def _new_region(street: Street, grid: str) -> dict[str, Any]:
    community = street.grids[grid].parent
    return {
        "code": f"{community.code}{seq() % 900 + 100:03d}",
        "name": f"新网格{seq()}",
        "level": "网格",
        "parent": community.code,
    }


def _new_building(street: Street, grid: str) -> dict[str, Any]:
    lng, lat = point_in(grid)
    n = seq()
    return {
        "code": f"NB-{grid}-{n}",
        "name": f"{grid}-{n}幢",
        "address": f"新路{n}号",
        "kind": "住宅",
        "lng": lng,
        "lat": lat,
        "grid": street.grids[grid].code,
        "units": 2,
        "floors": 6,
    }


def _new_house(street: Street, grid: str) -> dict[str, Any]:
    return {
        "building": f"B-{grid}",
        "unit": 2,
        "floor": 5,
        "room": f"5{seq():02d}",
        "area_m2": "66.5",
        "use": "出租",
    }


def _new_person(street: Street, grid: str) -> dict[str, Any]:
    return {
        "name": f"新居民{seq()}",
        "id_number": make_id_number("19900315", "F"),
        "phone": f"139{seq() % 10**8:08d}",
        "population_type": "流动",
        "grid": street.grids[grid].code,
    }


def _plain_id(street: Street, grid: str) -> str:
    return street.person(f"p{seq()}", grid=grid).decrypt_sensitive("id_number")


def _new_residency(street: Street, grid: str) -> dict[str, Any]:
    return {
        "person": _plain_id(street, grid),
        "house": f"B-{grid}-2-201",
        "relation": "租户",
        "start_date": "2024-03-01",
    }


def _new_caretag(street: Street, grid: str) -> dict[str, Any]:
    return {"person": _plain_id(street, grid), "kind": "独居", "source": "社区走访", "note": "新标签"}


def _new_enterprise(street: Street, grid: str) -> dict[str, Any]:
    n = seq()
    return {
        "name": f"新企业{n}",
        "credit_code": credit_code(),
        "legal_representative": "李四",
        "registered_address": f"新路{n}号",
        "building": f"B-{grid}",
        "industry": "制造业",
        "employees": 5,
    }


def _new_executive(street: Street, grid: str) -> dict[str, Any]:
    return {
        "enterprise": enterprise_in(street, grid).credit_code,
        "name": f"王{seq()}",
        "position": "总经理",
        "start_date": "2023-01-01",
    }


def _new_taxrecord(street: Street, grid: str) -> dict[str, Any]:
    return {
        "enterprise": enterprise_in(street, grid).credit_code,
        "period": "2024-05-01",
        "revenue": "100.50",
        "tax_paid": "3.20",
        "tax_paid_here": "是",
    }


def _new_orgunit(street: Street, grid: str) -> dict[str, Any]:
    n = seq()
    return {
        "code": f"G-{grid}-{n}",
        "name": f"{grid}网格党支部{n}",
        "kind": "网格",
        "region": street.grids[grid].code,
    }


def _existing_person(street: Street, grid: str) -> Any:
    return street.person(f"e{seq()}", grid=grid, name=f"已有居民{seq()}")


def _existing_residency(street: Street, grid: str) -> Any:
    person = street.person(f"r{seq()}", grid=grid, house=f"{grid}-1-101")
    return Residency.objects.get(person=person)


def _existing_caretag(street: Street, grid: str) -> Any:
    return tag(street.person(f"t{seq()}", grid=grid), "elderly_80", note=f"标记{seq()}")


def _existing_executive(street: Street, grid: str) -> Any:
    return Executive.objects.create(
        enterprise=enterprise_in(street, grid),
        name=f"赵{seq()}",
        position="gm",
        start_date=dt.date(2022, 1, 1),
    )


def _existing_taxrecord(street: Street, grid: str) -> Any:
    return TaxRecord.objects.create(
        enterprise=enterprise_in(street, grid), period=dt.date(2024, 1, 1), revenue="88.00", tax_paid="2.00"
    )


def _existing_orgunit(street: Street, grid: str) -> Any:
    n = seq()
    return OrgUnit.objects.create(
        code=f"X-{grid}-{n}", name=f"{grid}服务站{n}", kind="grid", region=street.grids[grid]
    )


SAMPLES: dict[str, Sample] = {
    "geo.region": Sample(
        _new_region,
        lambda s, g: s.grids[g],
        {"name": "改名网格"},
        {"name": "改名网格"},
        marker=lambda o: o.code,
        constrained_creates=False,
    ),
    "geo.building": Sample(
        _new_building,
        lambda s, g: s.buildings[g],
        {"name": "改名楼"},
        {"name": "改名楼"},
        marker=lambda o: o.code,
    ),
    "people.house": Sample(
        _new_house,
        lambda s, g: s.houses[f"{g}-1-101"],
        {"use": "空置"},
        {"use": "vacant", "use_label": "空置"},
        marker=lambda o: o.building.code,
    ),
    "people.person": Sample(
        _new_person,
        _existing_person,
        {"note": "已走访", "population_type": "常住"},
        {"note": "已走访", "population_type": "resident"},
        marker=lambda o: o.name,
    ),
    "people.residency": Sample(
        _new_residency,
        _existing_residency,
        {"relation": "家庭成员"},
        {"relation": "family"},
        marker=lambda o: o.house.building.code,
    ),
    "people.caretag": Sample(
        _new_caretag,
        _existing_caretag,
        {"level": "", "note": "已核实"},
        {"note": "已核实"},
        marker=lambda o: o.note,
    ),
    "enterprises.enterprise": Sample(
        _new_enterprise,
        enterprise_in,
        {"employees": 12},
        {"employees": 12},
        marker=lambda o: o.credit_code,
    ),
    "enterprises.executive": Sample(
        _new_executive,
        _existing_executive,
        {"end_date": "2025-01-01"},
        {"end_date": "2025-01-01"},
        marker=lambda o: o.name,
        constrained="community_a",
    ),
    "enterprises.taxrecord": Sample(
        _new_taxrecord,
        _existing_taxrecord,
        {"revenue": "200.00"},
        {"revenue": "200.00"},
        marker=lambda o: o.enterprise.credit_code,
        constrained="community_a",
    ),
    "orgs.orgunit": Sample(
        _new_orgunit,
        _existing_orgunit,
        {"duty": "巡查走访"},
        {"duty": "巡查走访"},
        marker=lambda o: o.code,
        constrained="community_a",
    ),
}
