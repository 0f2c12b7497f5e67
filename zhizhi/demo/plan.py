"""The demo street computed in memory: every region, building, house, resident, enterprise, org unit
and staff account, plus the deliberately wrong "legacy" rows, from one seed.

Nothing here touches the database, so a test can compute the full-scale plan and check its counts
without writing 15,000 residents. Everything random comes from one `random.Random(seed)` and one
seeded Faker, in a fixed order, so the same seed gives the same street.

Geometry: a 17 × 10 lattice of points over lng 120.135–120.165, lat 30.300–30.330 (WGS-84), each
point jittered. Each grid is one cell of the lattice, so neighbouring grids share their corner
points exactly: the polygons tile the street without gaps or overlaps. Communities are blocks
of cells; their polygons are the union of their grids.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from faker import Faker
from shapely.geometry import Polygon, mapping
from shapely.ops import unary_union
from stdnum.cn import ric, uscc

from zhizhi.demo.logins import DEMO_LOGINS, password_for

DISTRICT = ("330105", "拱墅区")
STREET = ("330105001", "小河街道")
# (name, first column, last column, first row, last row) of the 17 × 10 lattice; row 0 is the south.
COMMUNITIES = [
    ("塘河新村社区", 0, 5, 5, 9),
    ("小河佳苑社区", 6, 11, 5, 9),
    ("长乐苑社区", 12, 16, 5, 9),
    ("和睦新村社区", 0, 4, 0, 4),
    ("大关西苑社区", 5, 8, 0, 4),
    ("德胜新村社区", 9, 12, 0, 4),
    ("红石板社区", 13, 16, 0, 4),
]
LNG0, LNG1, LAT0, LAT1 = 120.135, 120.165, 30.300, 30.330
COLUMNS, ROWS = 17, 10
ROADS = ["小河路", "湖州街", "长乐路", "和睦路", "大关路", "登云路", "通益路", "金华路", "莫干山路", "德胜路"]

# Region codes for ID numbers, with the place a person comes from (来源地).
HANGZHOU_CODES = [("330102", "杭州市上城区"), ("330103", "杭州市下城区"), ("330104", "杭州市江干区")]
HANGZHOU_CODES.append(("330106", "杭州市西湖区"))
ZHEJIANG_CODES = [
    ("330302", "温州市鹿城区"),
    ("330402", "嘉兴市南湖区"),
    ("330602", "绍兴市越城区"),
    ("330702", "金华市婺城区"),
    ("331002", "台州市椒江区"),
]
PROVINCE_CODES = [
    ("340103", "安徽省合肥市"),
    ("342422", "安徽省寿县"),
    ("412726", "河南省郸城县"),
    ("510722", "四川省三台县"),
    ("513030", "四川省渠县"),
    ("430521", "湖南省邵东县"),
    ("362330", "江西省鄱阳县"),
    ("362201", "江西省宜春市"),
    ("320321", "江苏省丰县"),
    ("420111", "湖北省武汉市"),
    ("452126", "广西隆安县"),
    ("610102", "陕西省西安市"),
]
# Mobile prefixes that phonenumbers accepts as valid Chinese mobiles.
MOBILE_PREFIXES = ["130", "131", "132", "135", "136", "137", "138", "139", "150", "151", "152", "155"]
MOBILE_PREFIXES += ["157", "158", "159", "177", "180", "181", "182", "183", "185", "186", "187", "188", "189"]

INDUSTRY_WEIGHTS = [
    ("I", 18, ["信息技术", "网络科技", "软件", "数据科技"]),
    ("F", 22, ["贸易", "商贸", "电子商务", "供应链管理"]),
    ("L", 14, ["企业管理咨询", "商务咨询", "人力资源", "广告"]),
    ("M", 8, ["检测技术", "建筑设计", "环保科技", "生物科技"]),
    ("H", 9, ["餐饮管理", "酒店管理"]),
    ("O", 7, ["家政服务", "物业服务", "汽车维修"]),
    ("R", 5, ["文化传媒", "体育发展"]),
    ("P", 4, ["教育科技", "培训"]),
    ("Q", 3, ["健康管理", "医疗器械"]),
    ("K", 4, ["房地产营销策划", "物业管理"]),
    ("C", 4, ["机械制造", "服饰"]),
    ("E", 2, ["建筑工程", "装饰工程"]),
]
NAME_CHARS = "恒信华泰瑞丰嘉禾宏达鑫源博远景诚盛启明安康优联创智云星海润和新德正元汇通宇晟瀚骏铭睿"
TAX_RATES = {"I": 0.06, "F": 0.03, "L": 0.06, "M": 0.06, "H": 0.04, "O": 0.04, "R": 0.05}
TAX_RATES |= {"P": 0.05, "Q": 0.05, "K": 0.09, "C": 0.07, "E": 0.05}

# Units of the street (六办三中心), outside departments and the volunteer team: (code, name, kind).
STREET_UNITS = [
    ("DJB", "党建办", "street_office"),
    ("QYFZB", "区域发展办", "street_office"),
    ("DZB", "党政办", "street_office"),
    ("GGGLB", "公共管理办", "street_office"),
    ("GGFWB", "公共服务办", "street_office"),
    ("PAB", "平安办", "street_office"),
    ("ZHZX", "社会治理综合指挥中心", "command_centre"),
    ("DQFWZX", "党群服务中心", "street_office"),
    ("BMFWZX", "便民服务中心", "street_office"),
    ("WB-CG", "拱墅区城管局小河中队", "outside_dept"),
    ("WB-GA", "小河派出所", "outside_dept"),
    ("WB-SCJG", "小河市场监管所", "outside_dept"),
    ("WB-XF", "小河消防救援站", "outside_dept"),
    ("WB-GD", "小河供电所", "outside_dept"),
    ("WB-SW", "拱墅区水务小河服务站", "outside_dept"),
    ("ZYZ", "小河街道志愿者服务队", "volunteer_team"),
]

# The injected "legacy" data errors: (key, zh, en, count). Counts do not depend on --scale.
INJECTED = [
    ("invalid_id_check_digit", "身份证号校验位错误", "ID number with a wrong check digit", 12),
    ("id_gender_birth_mismatch", "性别或出生日期与身份证号不符", "gender or birth date disagrees with ID", 8),
    ("two_current_houses", "同时在两处房屋现住", "two current residencies in different houses", 6),
    ("deceased_still_resident", "已死亡仍登记现住", "deceased but still holding a current residency", 5),
    ("overcrowded_house", "单套房屋现住超过12人", "house with more than 12 current residents", 4),
    (
        "enterprise_in_vacant_house",
        "企业经营房屋登记为空置",
        "enterprise whose house is registered vacant",
        3,
    ),
    (
        "duplicate_id_number",
        "同一身份证号登记两次（姓名不同）",
        "same ID number entered twice, names differ",
        3,
    ),
]
# Expected signals for the later alerts work (not errors): how many enterprises show each shape.
TAX_SHAPES = [
    ("revenue_drop", "营收同比下降超过15%", "revenue down more than 15% year on year", 12),
    ("tax_here_not_business", "税在地不在", "tax registered here, business not here", 6),
    ("business_here_not_tax", "地在税不在", "business here, tax paid elsewhere", 6),
]


def _valid_codes(codes: list[tuple[str, str]]) -> list[tuple[str, str]]:
    from zhizhi import validators

    out = []
    for code, place in codes:
        body = f"{code}19800101001"
        try:
            validators.id_number(body + ric.calc_check_digit(body + "0"))
        except Exception:  # noqa: S112 - a code stdnum does not know is simply not used
            continue
        out.append((code, place))
    return out


@dataclass
class RegionRow:
    code: str
    name: str
    level: str
    parent: str | None
    boundary: dict | None


@dataclass
class BuildingRow:
    code: str
    name: str
    address: str
    kind: str
    lng: float
    lat: float
    grid: str
    units: int
    floors: int
    built_year: int


@dataclass
class HouseRow:
    building: str
    unit: int
    floor: int
    room: str
    area_m2: Decimal
    use: str
    owner: int | None = None  # index into Plan.people

    @property
    def key(self) -> str:
        return f"{self.building}-{self.unit}-{self.room}"


@dataclass
class PersonRow:
    name: str
    gender: str
    birth_date: dt.date
    id_number: str
    phone: str
    population_type: str
    status: str
    origin: str
    grid: str
    note: str = ""


@dataclass
class ResidencyRow:
    person: int
    house: int
    relation: str
    start_date: dt.date | None
    end_date: dt.date | None = None


@dataclass
class CareTagRow:
    person: int
    kind: str
    level: str
    source: str
    verified_on: dt.date


@dataclass
class EnterpriseRow:
    name: str
    credit_code: str
    legal_representative: str
    registered_address: str
    building: str | None
    house: int | None
    grid: str
    industry: str
    status: str
    established_on: dt.date
    registered_capital: Decimal
    employees: int
    tax_region_code: str
    shape: str = "normal"


@dataclass
class ExecutiveRow:
    enterprise: int
    name: str
    position: str
    start_date: dt.date
    end_date: dt.date | None = None


@dataclass
class TaxRow:
    enterprise: int
    period: dt.date
    revenue: Decimal
    tax_paid: Decimal
    tax_paid_here: bool


@dataclass
class OrgUnitRow:
    code: str
    name: str
    kind: str
    parent: str | None
    region: str | None


@dataclass
class StaffRow:
    username: str
    password: str
    full_name: str
    role: str
    unit: str | None
    regions: list[str]
    phone: str
    superuser: bool = False


@dataclass
class InjectedError:
    key: str
    zh: str
    en: str
    count: int
    examples: list[str] = field(default_factory=list)


@dataclass
class Plan:
    seed: int
    scale: float
    today: dt.date
    regions: list[RegionRow] = field(default_factory=list)
    buildings: list[BuildingRow] = field(default_factory=list)
    houses: list[HouseRow] = field(default_factory=list)
    people: list[PersonRow] = field(default_factory=list)
    residencies: list[ResidencyRow] = field(default_factory=list)
    care_tags: list[CareTagRow] = field(default_factory=list)
    enterprises: list[EnterpriseRow] = field(default_factory=list)
    executives: list[ExecutiveRow] = field(default_factory=list)
    tax_records: list[TaxRow] = field(default_factory=list)
    org_units: list[OrgUnitRow] = field(default_factory=list)
    staff: list[StaffRow] = field(default_factory=list)
    errors: list[InjectedError] = field(default_factory=list)
    tax_shapes: dict[str, list[str]] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {
            "communities": sum(r.level == "community" for r in self.regions),
            "grids": sum(r.level == "grid" for r in self.regions),
            "buildings": len(self.buildings),
            "houses": len(self.houses),
            "people": len(self.people),
            "residencies": len(self.residencies),
            "care_tags": len(self.care_tags),
            "tagged_people": len({t.person for t in self.care_tags}),
            "enterprises": len(self.enterprises),
            "executives": len(self.executives),
            "tax_records": len(self.tax_records),
            "org_units": len(self.org_units),
            "staff": len(self.staff),
        }


def _months_back(first_of_month: dt.date, n: int) -> dt.date:
    months = first_of_month.year * 12 + first_of_month.month - 1 - n
    return dt.date(months // 12, months % 12 + 1, 1)


class _Builder:
    def __init__(self, seed: int, scale: float, today: dt.date) -> None:
        self.rng = random.Random(seed)
        self.fake = Faker("zh_CN")
        self.fake.seed_instance(seed)
        self.plan = Plan(seed=seed, scale=scale, today=today)
        self.today = today
        self.scale = scale
        self.id_bodies: set[str] = set()
        self.hz = _valid_codes(HANGZHOU_CODES)
        self.zj = _valid_codes(ZHEJIANG_CODES)
        self.provinces = _valid_codes(PROVINCE_CODES)
        self.grid_polygons: dict[str, Polygon] = {}
        self.house_people: Counter[int] = Counter()

    # --- small helpers --------------------------------------------------------------------------
    def date_between(self, start: dt.date, end: dt.date) -> dt.date:
        if end <= start:
            return start
        return start + dt.timedelta(days=self.rng.randrange((end - start).days))

    def birth_for_age(self, age: int) -> dt.date:
        return self.today - dt.timedelta(days=int(age * 365.25) + self.rng.randrange(1, 364))

    def mobile(self) -> str:
        return self.rng.choice(MOBILE_PREFIXES) + f"{self.rng.randrange(10**8):08d}"

    def id_number(self, code: str, birth: dt.date, gender: str) -> str:
        while True:
            digit = self.rng.choice("13579" if gender == "M" else "02468")
            body = f"{code}{birth:%Y%m%d}{self.rng.randrange(100):02d}{digit}"
            if body not in self.id_bodies:
                self.id_bodies.add(body)
                return body + ric.calc_check_digit(body + "0")

    def given_name(self, gender: str) -> str:
        return self.fake.first_name_male() if gender == "M" else self.fake.first_name_female()

    def add_person(
        self, *, age: int, gender: str, surname: str, ptype: str, grid: str, status: str = "active"
    ) -> int:
        if ptype == "registered":
            code, origin = ("330105", "") if self.rng.random() < 0.8 else self.rng.choice(self.hz)
        elif ptype == "resident":
            code, origin = self.rng.choice(self.zj + self.hz)
        else:
            code, origin = self.rng.choice(self.provinces)
        birth = self.birth_for_age(age)
        phone = self.mobile() if age >= 14 and not (age >= 85 and self.rng.random() < 0.5) else ""
        self.plan.people.append(
            PersonRow(
                name=surname + self.given_name(gender),
                gender=gender,
                birth_date=birth,
                id_number=self.id_number(code, birth, gender),
                phone=phone,
                population_type=ptype,
                status=status,
                origin=origin,
                grid=grid,
            )
        )
        return len(self.plan.people) - 1

    def live(
        self, person: int, house: int, relation: str, start: dt.date | None, end: dt.date | None = None
    ) -> None:
        self.plan.residencies.append(ResidencyRow(person, house, relation, start, end))
        if end is None:
            self.house_people[house] += 1

    # --- places ---------------------------------------------------------------------------------
    def regions(self) -> None:
        rng, plan = self.rng, self.plan
        dx, dy = (LNG1 - LNG0) / COLUMNS, (LAT1 - LAT0) / ROWS
        # Jitter below a quarter of the spacing keeps every cell a simple quadrilateral.
        points = [
            [
                (
                    round(LNG0 + i * dx + rng.uniform(-0.22, 0.22) * dx, 6),
                    round(LAT0 + j * dy + rng.uniform(-0.22, 0.22) * dy, 6),
                )
                for j in range(ROWS + 1)
            ]
            for i in range(COLUMNS + 1)
        ]

        def cell(i: int, j: int) -> Polygon:
            ring = [points[i][j], points[i + 1][j], points[i + 1][j + 1], points[i][j + 1]]
            return Polygon(ring)

        plan.regions.append(RegionRow(DISTRICT[0], DISTRICT[1], "district", None, None))
        street_cells: list[Polygon] = []
        community_rows = []
        for n, (name, c0, c1, r0, r1) in enumerate(COMMUNITIES, start=1):
            code = f"{STREET[0]}{n:03d}"
            cells = []
            seq = 0
            for j in range(r1, r0 - 1, -1):  # north to south, west to east, as people read a map
                for i in range(c0, c1 + 1):
                    seq += 1
                    poly = cell(i, j)
                    grid_code = f"{code}{seq:03d}"
                    self.grid_polygons[grid_code] = poly
                    cells.append((grid_code, f"{name}第{seq}网格", poly))
            union = unary_union([c[2] for c in cells])
            street_cells.extend(c[2] for c in cells)
            community_rows.append((RegionRow(code, name, "community", STREET[0], mapping(union)), cells))
        plan.regions.append(
            RegionRow(STREET[0], STREET[1], "street", DISTRICT[0], mapping(unary_union(street_cells)))
        )
        for community, _cells in community_rows:
            plan.regions.append(community)
        for community, cells in community_rows:
            for grid_code, grid_name, poly in cells:
                plan.regions.append(RegionRow(grid_code, grid_name, "grid", community.code, mapping(poly)))
        for row in plan.regions:
            row.boundary = _plain_geojson(row.boundary)

    def point_in(self, grid: str) -> tuple[float, float]:
        poly = self.grid_polygons[grid]
        inner = poly.buffer(-0.0002)
        minx, miny, maxx, maxy = inner.bounds
        from shapely.geometry import Point

        while True:
            x, y = self.rng.uniform(minx, maxx), self.rng.uniform(miny, maxy)
            if inner.contains(Point(x, y)):
                return round(x, 6), round(y, 6)

    def buildings_and_houses(self) -> None:
        rng, plan = self.rng, self.plan
        target_houses = round(5000 * self.scale)
        grids = [r for r in plan.regions if r.level == "grid"]
        firsts = [g for g in grids if g.code.endswith("001")]
        rest = [g for g in grids if not g.code.endswith("001")]
        rng.shuffle(rest)
        order = firsts + rest
        per_grid: Counter[str] = Counter()
        per_community: Counter[str] = Counter()
        names = {r.code: r.name for r in plan.regions}
        n = 0
        while len(plan.houses) < target_houses:
            grid = order[n % len(order)]
            n += 1
            community = grid.parent or ""
            per_grid[grid.code] += 1
            per_community[community] += 1
            short = names[community].removesuffix("社区")
            lng, lat = self.point_in(grid.code)
            # The first grid of each community gets a residential building first, so every
            # documented grid login has residents to look at.
            roll = rng.random() if n > len(firsts) else 0.5
            if roll < 0.07:
                kind, floors, units, rooms, built = (
                    "commercial",
                    rng.randint(2, 5),
                    1,
                    4,
                    rng.randint(2000, 2020),
                )
            elif roll < 0.62:
                kind, floors, units, rooms, built = (
                    "residential",
                    6,
                    rng.randint(1, 4),
                    2,
                    rng.randint(1982, 2002),
                )
            else:
                kind, floors, units, rooms = "residential", rng.randint(11, 18), rng.randint(1, 2), 2
                built = rng.randint(2003, 2019)
            shops = kind == "residential" and rng.random() < 0.3  # ground-floor shops along the road
            code = f"{grid.code}-B{per_grid[grid.code]:02d}"
            plan.buildings.append(
                BuildingRow(
                    code=code,
                    name=f"{short}{per_community[community]}幢",
                    address=f"拱墅区{rng.choice(ROADS)}{rng.randint(1, 399)}号",
                    kind="mixed" if shops else kind,
                    lng=lng,
                    lat=lat,
                    grid=grid.code,
                    units=units,
                    floors=floors,
                    built_year=built,
                )
            )
            for unit in range(1, units + 1):
                for floor in range(1, floors + 1):
                    for r in range(1, rooms + 1):
                        if kind == "commercial" or (shops and floor == 1):
                            use = "commercial"
                        else:
                            use = rng.choices(["owner", "rented", "vacant"], [73, 23, 3.5])[0]
                        low, high = (45, 90) if built < 2003 else (70, 140)
                        plan.houses.append(
                            HouseRow(
                                building=code,
                                unit=unit,
                                floor=floor,
                                room=f"{floor}{r:02d}",
                                area_m2=Decimal(f"{rng.uniform(low, high):.2f}"),
                                use=use,
                            )
                        )

    # --- people -----------------------------------------------------------------------------------
    def households(self) -> None:
        rng, plan = self.rng, self.plan
        grid_of = {b.code: b.grid for b in plan.buildings}
        built_of = {b.code: b.built_year for b in plan.buildings}
        recent = self.today - dt.timedelta(days=3 * 365)
        for h, house in enumerate(plan.houses):
            grid = grid_of[house.building]
            if house.use == "owner":
                moved_in = self.date_between(dt.date(max(built_of[house.building], 1990), 1, 1), recent)
                members = self.owner_family()
                surname = self.fake.last_name()
                ptype = "registered" if rng.random() < 0.82 else "resident"
                idxs = []
                for k, (age, gender, relation, own_surname) in enumerate(members):
                    p = self.add_person(
                        age=age,
                        gender=gender,
                        surname=self.fake.last_name() if own_surname else surname,
                        ptype=ptype,
                        grid=grid,
                    )
                    born = plan.people[p].birth_date
                    self.live(p, h, relation, max(moved_in, born))
                    idxs.append(p)
                    if k == 0:
                        house.owner = p
                if rng.random() < 0.05:  # 借住: a relative or friend staying
                    p = self.add_person(
                        age=rng.randint(18, 70),
                        gender=rng.choice("MF"),
                        surname=self.fake.last_name(),
                        ptype="resident",
                        grid=grid,
                    )
                    self.live(p, h, "lodger", self.date_between(recent, self.today))
                roll = rng.random()
                if roll < 0.015:  # a grown child who moved away: history, not a current resident
                    p = self.add_person(
                        age=rng.randint(22, 40),
                        gender=rng.choice("MF"),
                        surname=surname,
                        ptype=ptype,
                        grid=grid,
                        status="moved_out",
                    )
                    self.live(p, h, "family", moved_in, self.date_between(moved_in, self.today))
                elif roll < 0.02:  # a member who died: the residency was closed properly
                    p = self.add_person(
                        age=rng.randint(75, 98),
                        gender=rng.choice("MF"),
                        surname=surname,
                        ptype=ptype,
                        grid=grid,
                        status="deceased",
                    )
                    self.live(p, h, "family", moved_in, self.date_between(recent, self.today))
            elif house.use == "rented":
                self.tenants(h, grid, recent)

    def owner_family(self) -> list[tuple[int, str, str, bool]]:
        """(age, gender, relation, own surname) for each member; the first is the head (户主)."""
        rng = self.rng
        size = rng.choices([1, 2, 3, 4, 5, 6], [9, 19, 26, 24, 14, 8])[0]

        def couple(low: int, high: int) -> list[tuple[int, str, str, bool]]:
            a = rng.randint(low, high)
            b = max(18, min(100, a + rng.randint(-4, 3)))
            head_male = rng.random() < 0.6
            return [
                (a, "M" if head_male else "F", "head", False),
                (b, "F" if head_male else "M", "family", True),
            ]

        def child(parent_age: int) -> tuple[int, str, str, bool]:
            return (max(0, parent_age - rng.randint(24, 34)), rng.choice("MF"), "family", False)

        if size == 1:
            age = rng.randint(65, 96) if rng.random() < 0.7 else rng.randint(22, 45)
            return [(age, "F" if rng.random() < 0.6 else "M", "head", False)]
        if size == 2:
            return couple(60, 88) if rng.random() < 0.65 else couple(24, 40)
        if size == 3:
            people = couple(30, 62)
            return [*people, child(people[0][0])]
        if size == 4:
            people = couple(30, 50)
            if rng.random() < 0.6:
                return [*people, child(people[0][0]), child(people[0][0])]
            elder = min(100, people[0][0] + rng.randint(24, 32))
            return [*people, child(people[0][0]), (elder, rng.choice("MF"), "family", False)]
        people = couple(30, 48)
        elder = min(98, people[0][0] + rng.randint(24, 32))
        elders = [(elder, "M", "family", False), (max(55, elder - rng.randint(0, 4)), "F", "family", True)]
        kids = [child(people[0][0]) for _ in range(size - 4)]
        return [*people, *elders, *kids]

    def tenants(self, h: int, grid: str, recent: dt.date) -> None:
        rng = self.rng
        start = self.date_between(recent, self.today - dt.timedelta(days=20))
        if rng.random() < 0.6:  # flat-sharers, each on their own
            for _ in range(rng.choices([1, 2, 3, 4], [25, 35, 22, 18])[0]):
                p = self.add_person(
                    age=rng.randint(20, 45),
                    gender=rng.choice("MF"),
                    surname=self.fake.last_name(),
                    ptype="floating" if rng.random() < 0.85 else "resident",
                    grid=grid,
                )
                self.live(p, h, "tenant", start)
        else:  # a tenant family
            ptype = "floating" if rng.random() < 0.8 else "resident"
            surname = self.fake.last_name()
            a = rng.randint(25, 42)
            family = [(a, "M", False), (a + rng.randint(-3, 2), "F", True)]
            if rng.random() < 0.6:
                family.append((max(0, a - rng.randint(24, 32)), rng.choice("MF"), False))
            for age, gender, own in family:
                p = self.add_person(
                    age=age,
                    gender=gender,
                    surname=self.fake.last_name() if own else surname,
                    ptype=ptype,
                    grid=grid,
                )
                self.live(p, h, "tenant", max(start, self.plan.people[p].birth_date))

    def care_tags(self) -> None:
        rng, plan = self.rng, self.plan
        target = round(0.03 * len(plan.people))
        size_of: Counter[int] = Counter()
        house_of: dict[int, int] = {}
        for r in plan.residencies:
            if r.end_date is None:
                size_of[r.house] += 1
                house_of[r.person] = r.house
        candidates: list[tuple[int, list[tuple[str, str, str]]]] = []
        for p, person in enumerate(plan.people):
            if person.status != "active" or p not in house_of:
                continue
            age = (self.today - person.birth_date).days // 365
            kinds: list[tuple[str, str, str]] = []
            alone = size_of[house_of[p]] == 1
            if age >= 80:
                kinds.append(("elderly_80", "", "civil_affairs"))
                if rng.random() < 0.12:
                    kinds.append(("bedridden", "", "visit"))
            if age >= 65 and alone:
                kinds.append(("living_alone", "", "visit"))
                if rng.random() < 0.25:
                    kinds.append(("widowed_alone", "", "civil_affairs"))
            if rng.random() < 0.012:
                level = rng.choices(["一级", "二级", "三级", "四级"], [10, 20, 35, 35])[0]
                kinds.append(("disabled", level, "disabled_fed"))
            if age >= 18 and rng.random() < 0.008:
                kinds.append(("min_allowance", "", "civil_affairs"))
            if age >= 60 and rng.random() < 0.012:
                kinds.append(("extreme_hardship", "", "civil_affairs"))
            if person.gender == "M" and age >= 40 and rng.random() < 0.012:
                kinds.append(("veteran", "", "veterans"))
                if rng.random() < 0.3:
                    kinds.append(("special_care", "", "veterans"))
            if kinds:
                candidates.append((p, kinds))
        rng.shuffle(candidates)
        for p, kinds in candidates[:target]:
            for kind, level, source in kinds:
                verified = self.date_between(self.today - dt.timedelta(days=400), self.today)
                plan.care_tags.append(CareTagRow(p, kind, level, source, verified))

    # --- enterprises ----------------------------------------------------------------------------
    def credit_code(self) -> str:
        digits = [self.rng.randrange(10) for _ in range(8)]
        check = 11 - sum(d * w for d, w in zip(digits, (3, 7, 9, 10, 5, 8, 4, 2), strict=True)) % 11
        org = "".join(map(str, digits)) + {10: "X", 11: "0"}.get(check, str(check))
        body = f"91{DISTRICT[0]}{org}"
        return body + uscc.calc_check_digit(body)

    def enterprises(self) -> None:
        rng, plan = self.rng, self.plan
        n = max(30, round(300 * self.scale))
        commercial = [h for h, house in enumerate(plan.houses) if house.use == "commercial"]
        rng.shuffle(commercial)
        grid_of = {b.code: b.grid for b in plan.buildings}
        address_of = {b.code: b.address for b in plan.buildings}
        grids = [r.code for r in plan.regions if r.level == "grid"]
        industries = [i for i, _, _ in INDUSTRY_WEIGHTS]
        weights = [w for _, w, _ in INDUSTRY_WEIGHTS]
        suffixes = {i: s for i, _, s in INDUSTRY_WEIGHTS}
        names: set[str] = set()
        codes: set[str] = set()
        shapes = [s for s, _, _, count in TAX_SHAPES for _ in range(count)]
        shapes += ["normal"] * max(0, n - len(shapes))
        rng.shuffle(shapes)
        for e in range(n):
            industry = rng.choices(industries, weights)[0]
            while True:
                word = rng.choice(NAME_CHARS) + rng.choice(NAME_CHARS)
                name = f"杭州{word}{rng.choice(suffixes[industry])}有限公司"
                if name not in names and word[0] != word[1]:
                    names.add(name)
                    break
            code = self.credit_code()
            while code in codes:
                code = self.credit_code()
            codes.add(code)
            shape = shapes[e]
            house = commercial[e % len(commercial)] if commercial else None
            building = plan.houses[house].building if house is not None else None
            if shape == "tax_here_not_business":
                # Registered at a shared business address in the street; nobody works there.
                house, building = None, None
                grid = rng.choice(grids)
                address = f"拱墅区{rng.choice(ROADS)}{rng.randint(1, 399)}号{rng.randint(1, 30)}楼集中办公区"
            else:
                assert building is not None
                grid = grid_of[building]
                address = f"{address_of[building]}{plan.houses[house].room if house is not None else ''}室"
                if rng.random() < 0.1:
                    house = None  # the building is known, the room is not
            status = rng.choices(
                ["operating", "active", "moved_out", "revoked", "cancelled"], [80, 12, 4, 2, 2]
            )[0]
            if shape != "normal":
                status = "operating"
            young = shape == "normal" and rng.random() < 0.12
            established = (
                self.date_between(self.today - dt.timedelta(days=700), self.today - dt.timedelta(days=60))
                if young
                else self.date_between(dt.date(2000, 1, 1), self.today - dt.timedelta(days=1100))
            )
            plan.enterprises.append(
                EnterpriseRow(
                    name=name,
                    credit_code=code,
                    legal_representative=self.fake.name(),
                    registered_address=address,
                    building=building,
                    house=house,
                    grid=grid,
                    industry=industry,
                    status=status,
                    established_on=established,
                    registered_capital=Decimal(f"{min(50000, rng.lognormvariate(5.3, 1.1)):.2f}"),
                    employees=max(1, int(rng.lognormvariate(2.5, 1.0))),
                    tax_region_code="330106" if shape == "business_here_not_tax" else STREET[0],
                    shape=shape,
                )
            )
            plan.tax_shapes.setdefault(shape, []).append(name)
            self.executives(e)
            self.tax_records(e)

    def executives(self, e: int) -> None:
        rng, plan = self.rng, self.plan
        ent = plan.enterprises[e]
        start = ent.established_on
        if rng.random() < 0.12:  # the legal representative changed recently
            changed = self.date_between(max(start, self.today - dt.timedelta(days=540)), self.today)
            plan.executives.append(ExecutiveRow(e, self.fake.name(), "legal_rep", start, changed))
            plan.executives.append(ExecutiveRow(e, ent.legal_representative, "legal_rep", changed))
        else:
            plan.executives.append(ExecutiveRow(e, ent.legal_representative, "legal_rep", start))
        for position in rng.sample(
            ["gm", "supervisor", "cfo"], rng.choices([0, 1, 2, 3], [30, 35, 25, 10])[0]
        ):
            plan.executives.append(
                ExecutiveRow(e, self.fake.name(), position, self.date_between(start, self.today))
            )

    def tax_records(self, e: int) -> None:
        rng, plan = self.rng, self.plan
        ent = plan.enterprises[e]
        # A closed or departed enterprise stops filing some months ago.
        stop = rng.randint(6, 20) if ent.status in ("revoked", "cancelled", "moved_out") else 24
        this_month = self.today.replace(day=1)
        base = rng.lognormvariate(3.0, 1.2)  # 万元 per month
        growth = rng.uniform(-0.05, 0.15)  # per year
        rate = TAX_RATES[ent.industry] * rng.uniform(0.8, 1.2)
        drop_from, drop = 99, 1.0
        if ent.shape == "revenue_drop":
            # Deep enough that the latest month is >15% below the same month a year before.
            growth, drop_from, drop = (
                rng.uniform(-0.05, 0.05),
                24 - rng.randint(6, 11),
                rng.uniform(0.5, 0.72),
            )
        for k in range(min(stop, 24)):
            period = _months_back(this_month, 24 - k)
            if period < ent.established_on.replace(day=1):
                continue
            season = {1: 0.95, 2: 0.7, 3: 1.0, 6: 1.08, 11: 1.05, 12: 1.2}.get(period.month, 1.0)
            revenue = base * (1 + growth) ** (k / 12) * season * rng.uniform(0.95, 1.05)
            if k >= drop_from:
                revenue *= drop
            plan.tax_records.append(
                TaxRow(
                    enterprise=e,
                    period=period,
                    revenue=Decimal(f"{revenue:.2f}"),
                    tax_paid=Decimal(f"{revenue * rate:.2f}"),
                    tax_paid_here=ent.shape != "business_here_not_tax",
                )
            )

    # --- organisation ---------------------------------------------------------------------------
    def organisation(self) -> None:
        plan = self.plan
        for code, name, kind in STREET_UNITS:
            plan.org_units.append(OrgUnitRow(code, name, kind, None, STREET[0]))
        for r in plan.regions:
            if r.level == "community":
                plan.org_units.append(OrgUnitRow(f"C{r.code}", f"{r.name}居委会", "community", None, r.code))
        for r in plan.regions:
            if r.level == "grid":
                plan.org_units.append(OrgUnitRow(f"G{r.code}", r.name, "grid", f"C{r.parent}", r.code))
        documented = {d.username for d in DEMO_LOGINS}

        def staff(username: str, role: str, unit: str | None, regions: list[str], name: str = "") -> None:
            plan.staff.append(
                StaffRow(
                    username=username,
                    password=password_for(username),
                    full_name=name or self.fake.name(),
                    role=role,
                    unit=unit,
                    regions=regions,
                    phone=self.mobile(),
                )
            )

        plan.staff.append(StaffRow("admin", password_for("admin"), "系统管理员", "", None, [], "", True))
        staff("leader", "street_leader", "DZB", [STREET[0]])
        staff("dispatcher", "dispatcher", "ZHZX", [STREET[0]])
        for code, _, kind in STREET_UNITS:
            if kind == "volunteer_team":
                continue
            if code != "ZHZX":
                staff(code.lower(), "dept_staff", code, [STREET[0]])
        communities = [r for r in plan.regions if r.level == "community"]
        for n, r in enumerate(communities, start=1):
            staff(f"community{n:02d}", "community_worker", f"C{r.code}", [r.code])
        grids = [r for r in plan.regions if r.level == "grid"]
        for n, r in enumerate(grids, start=1):
            staff(f"grid{n:02d}", "grid_worker", f"G{r.code}", [r.code])
        staff("volunteer", "volunteer", "ZYZ", [STREET[0]])
        staff("resident", "resident", None, [])
        missing = documented - {s.username for s in plan.staff}
        assert not missing, missing

    # --- the injected errors --------------------------------------------------------------------
    def inject_errors(self) -> None:
        rng, plan = self.rng, self.plan
        current: dict[int, int] = {}
        for r in plan.residencies:
            if r.end_date is None:
                current.setdefault(r.person, r.house)
        house_key = [h.key for h in plan.houses]
        # People whose rows stay untouched so that each error is found exactly once.
        pool = [p for p in current if plan.people[p].status == "active"]
        rng.shuffle(pool)
        used: set[int] = set()

        def take(pred: Callable[[int], bool] = lambda p: True) -> int:
            for p in pool:
                if p not in used and pred(p):
                    used.add(p)
                    return p
            raise RuntimeError("the demo street is too small for its injected errors; raise --scale")

        def age(p: int) -> int:
            return (self.today - plan.people[p].birth_date).days // 365

        errors = {key: InjectedError(key, zh, en, count) for key, zh, en, count in INJECTED}

        for _ in range(errors["invalid_id_check_digit"].count):
            p = take()
            number = plan.people[p].id_number
            wrong = rng.choice([c for c in "0123456789X" if c != number[-1]])
            plan.people[p].id_number = number[:-1] + wrong
            plan.people[p].note = ""
            errors["invalid_id_check_digit"].examples.append(plan.people[p].name)

        for k in range(errors["id_gender_birth_mismatch"].count):
            p = take(lambda p: age(p) >= 18)
            person = plan.people[p]
            if k % 2 == 0:
                person.gender = "F" if person.gender == "M" else "M"
            else:
                person.birth_date = person.birth_date.replace(day=1 if person.birth_date.day > 1 else 2)
            errors["id_gender_birth_mismatch"].examples.append(person.name)

        small_houses = [h for h, n in self.house_people.items() if 1 <= n <= 6]
        rng.shuffle(small_houses)
        for _ in range(errors["two_current_houses"].count):
            p = take(lambda p: age(p) >= 18)
            other = next(h for h in small_houses if h != current[p])
            small_houses.remove(other)
            self.live(p, other, "lodger", self.date_between(self.today - dt.timedelta(days=300), self.today))
            errors["two_current_houses"].examples.append(f"{plan.people[p].name} {house_key[other]}")

        for _ in range(errors["deceased_still_resident"].count):
            p = take(lambda p: age(p) >= 75)
            plan.people[p].status = "deceased"
            errors["deceased_still_resident"].examples.append(plan.people[p].name)

        rented = [
            h for h, house in enumerate(plan.houses) if house.use == "rented" and h in self.house_people
        ]
        rng.shuffle(rented)
        for h in rented[: errors["overcrowded_house"].count]:
            grid = next(b.grid for b in plan.buildings if b.code == plan.houses[h].building)
            start = self.date_between(self.today - dt.timedelta(days=400), self.today)
            while self.house_people[h] < rng.randint(13, 16):
                q = self.add_person(
                    age=rng.randint(19, 40),
                    gender=rng.choice("MF"),
                    surname=self.fake.last_name(),
                    ptype="floating",
                    grid=grid,
                )
                self.live(q, h, "tenant", start)
            errors["overcrowded_house"].examples.append(house_key[h])

        vacant = [h for h, house in enumerate(plan.houses) if house.use == "vacant"]
        normal = [
            e for e, ent in enumerate(plan.enterprises) if ent.shape == "normal" and ent.house is not None
        ]
        for e, h in zip(
            rng.sample(normal, errors["enterprise_in_vacant_house"].count),
            rng.sample(vacant, errors["enterprise_in_vacant_house"].count),
            strict=True,
        ):
            ent = plan.enterprises[e]
            ent.house, ent.building = h, plan.houses[h].building
            ent.grid = next(b.grid for b in plan.buildings if b.code == ent.building)
            errors["enterprise_in_vacant_house"].examples.append(f"{ent.name} {house_key[h]}")

        for _ in range(errors["duplicate_id_number"].count):
            p = take(lambda p: self.house_people[current[p]] <= 8)
            original = plan.people[p]
            other_name = original.name[:-1] + self.given_name(original.gender)[-1]
            while other_name == original.name:
                other_name = original.name[:-1] + rng.choice("伟芳敏静丽强磊洋艳勇军杰娟涛明超秀霞")
            copy = PersonRow(**{**original.__dict__, "name": other_name, "phone": ""})
            plan.people.append(copy)
            self.live(len(plan.people) - 1, current[p], "family", self.today - dt.timedelta(days=200))
            errors["duplicate_id_number"].examples.append(f"{original.name} / {other_name}")

        plan.errors = list(errors.values())


def _plain_geojson(geometry: dict | None) -> dict | None:
    """Shapely's mapping() holds tuples; the database keeps plain JSON lists."""
    if geometry is None:
        return None

    def lists(value: Any) -> Any:
        if isinstance(value, tuple | list):
            return [lists(v) for v in value]
        return value

    return {"type": geometry["type"], "coordinates": lists(geometry["coordinates"])}


def build_plan(seed: int = 42, scale: float = 1.0, today: dt.date | None = None) -> Plan:
    """The whole demo street for `seed` at `scale` (1.0 ≈ 5,000 houses and 15,000 residents)."""
    from zhizhi import clock

    if scale < 0.05:
        raise ValueError("scale must be at least 0.05: the injected errors need a few hundred residents")
    builder = _Builder(seed, scale, today or clock.today())
    builder.regions()
    builder.buildings_and_houses()
    builder.households()
    builder.enterprises()
    builder.care_tags()
    builder.organisation()
    builder.inject_errors()
    return builder.plan
