"""A small, hand-checkable street for tests: 1 district, 1 street, 2 communities, 4 square grids,
a few buildings and houses, and one staff user per role.

Grid layout (longitude 120.100–120.120, latitude 30.300–30.310), each grid 0.005° wide:

    community A: grid A1 [120.100,120.105]  grid A2 [120.105,120.110]
    community B: grid B1 [120.110,120.115]  grid B2 [120.115,120.120]
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from zhizhi.geo.models import Building, Region
from zhizhi.orgs.models import OrgUnit, User
from zhizhi.orgs.services import create_staff, grant_department_domain
from zhizhi.people.models import CareTag, House, Person, Residency
from zhizhi.permissions import ensure_default_permissions

PASSWORD = "pass-1234"
_seq = itertools.count(1)


def square(x0: float, y0: float, x1: float, y1: float) -> dict:
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}


def make_id_number(birth: str = "19800101", gender: str = "M", region: str = "330105") -> str:
    """A valid 18-character ID number with a fresh sequence code."""
    from stdnum.cn import ric

    # The three-digit sequence code: its last digit is odd for men and even for women.
    n = next(_seq) % 500
    seq = f"{2 * n + (1 if gender == 'M' else 0):03d}"
    body = f"{region}{birth}{seq}"
    return body + ric.calc_check_digit(body + "0")  # stdnum expects a placeholder check digit


@dataclass
class Street:
    district: Region
    street: Region
    communities: dict[str, Region]
    grids: dict[str, Region]
    buildings: dict[str, Building]
    houses: dict[str, House]
    users: dict[str, User]
    units: dict[str, OrgUnit]
    people: dict[str, Person] = field(default_factory=dict)

    def person(self, key: str, grid: str = "A1", house: str | None = None, **kwargs: Any) -> Person:
        birth = kwargs.pop("birth", "19800101")
        gender = kwargs.pop("gender", "M")
        person = Person(
            name=kwargs.pop("name", f"居民{key}"),
            gender=gender,
            birth_date=f"{birth[:4]}-{birth[4:6]}-{birth[6:]}",
            grid=self.grids[grid],
            **kwargs,
        )
        person.set_sensitive("id_number", make_id_number(birth, gender))
        person.set_sensitive("phone", "1381234" + f"{next(_seq) % 10000:04d}")
        person.save()
        person.refresh_from_db()
        if house:
            Residency.objects.create(
                person=person, house=self.houses[house], relation="head", start_date="2020-01-01"
            )
        self.people[key] = person
        return person


def build_street() -> Street:
    ensure_default_permissions()
    district = Region.objects.create(level="district", code="330105", name="拱墅区")
    street = Region.objects.create(level="street", code="330105001", name="小河街道", parent=district)
    communities = {
        "A": Region.objects.create(
            level="community",
            code="330105001001",
            name="A社区",
            parent=street,
            boundary=square(120.100, 30.300, 120.110, 30.310),
        ),
        "B": Region.objects.create(
            level="community",
            code="330105001002",
            name="B社区",
            parent=street,
            boundary=square(120.110, 30.300, 120.120, 30.310),
        ),
    }
    grids = {}
    for i, (key, comm) in enumerate([("A1", "A"), ("A2", "A"), ("B1", "B"), ("B2", "B")]):
        x0 = 120.100 + 0.005 * i
        grids[key] = Region.objects.create(
            level="grid",
            code=communities[comm].code + f"{int(key[1]):03d}",
            name=f"{key}网格",
            parent=communities[comm],
            boundary=square(x0, 30.300, x0 + 0.005, 30.310),
        )
    buildings = {}
    for key in grids:
        x = 120.100 + 0.005 * list(grids).index(key) + 0.0025
        buildings[key] = Building.objects.create(
            code=f"B-{key}",
            name=f"{key}-1幢",
            address=f"测试路{key}号",
            lng=x,
            lat=30.305,
            grid=grids[key],
            units=2,
            floors=6,
        )
    houses = {}
    for key, b in buildings.items():
        for unit in (1, 2):
            for room in ("101", "201"):
                houses[f"{key}-{unit}-{room}"] = House.objects.create(
                    building=b, unit=unit, floor=int(room[0]), room=room, area_m2=80
                )
    units = {
        "street": OrgUnit.objects.create(code="STREET", name="小河街道", kind="street_office", region=street),
        "QYFZB": OrgUnit.objects.create(code="QYFZB", name="区域发展办", kind="street_office", region=street),
        "A": OrgUnit.objects.create(
            code="C-A", name="A社区居委会", kind="community", region=communities["A"]
        ),
        "A1": OrgUnit.objects.create(code="G-A1", name="A1网格", kind="grid", region=grids["A1"]),
    }
    grant_department_domain(units["QYFZB"])
    users = {
        "leader": create_staff(
            username="leader",
            full_name="领导",
            role="street_leader",
            password=PASSWORD,
            org_unit=units["street"],
            regions=[street],
        ),
        "dispatcher": create_staff(
            username="dispatcher",
            full_name="坐席",
            role="dispatcher",
            password=PASSWORD,
            org_unit=units["street"],
            regions=[street],
        ),
        "dept": create_staff(
            username="dept",
            full_name="区域发展办员",
            role="dept_staff",
            password=PASSWORD,
            org_unit=units["QYFZB"],
            regions=[street],
        ),
        "community_a": create_staff(
            username="community_a",
            full_name="A社工",
            role="community_worker",
            password=PASSWORD,
            org_unit=units["A"],
            regions=[communities["A"]],
        ),
        "grid_a1": create_staff(
            username="grid_a1",
            full_name="A1网格员",
            role="grid_worker",
            password=PASSWORD,
            org_unit=units["A1"],
            regions=[grids["A1"]],
        ),
        "grid_b1": create_staff(
            username="grid_b1",
            full_name="B1网格员",
            role="grid_worker",
            password=PASSWORD,
            regions=[grids["B1"]],
        ),
        "volunteer": create_staff(
            username="volunteer", full_name="志愿者", role="volunteer", password=PASSWORD, regions=[street]
        ),
        "resident": create_staff(username="resident", full_name="居民", role="resident", password=PASSWORD),
    }
    admin = User.objects.create_superuser("admin", password=PASSWORD)
    users["admin"] = admin
    return Street(district, street, communities, grids, buildings, houses, users, units)


def tag(person: Person, kind: str, **kwargs: Any) -> CareTag:
    return CareTag.objects.create(person=person, kind=kind, **kwargs)
