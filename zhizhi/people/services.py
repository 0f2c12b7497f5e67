"""Rules for people and housing: residents (ID number ↔ gender/birth), houses, residencies, care tags,
and the two everyday questions: who lives here today, and where has this person lived."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import QuerySet

from zhizhi import clock, validators
from zhizhi.geo.models import Building, Region
from zhizhi.people.models import CareTag, House, Person, Residency
from zhizhi.problems import Problem
from zhizhi.registry import Column, Ref, Registry, register

HOUSE_KEY_SEPARATOR = "-"


def house_key(house: House) -> str:
    """The written form of a house: <building code>-<unit>-<room>, e.g. 330105001001-B03-2-401."""
    return f"{house.building.code}{HOUSE_KEY_SEPARATOR}{house.unit}{HOUSE_KEY_SEPARATOR}{house.room}"


def resolve_house(key: str) -> House | None:
    try:
        building_code, unit, room = key.rsplit(HOUSE_KEY_SEPARATOR, 2)
        unit_no = int(unit)
    except ValueError:
        return None
    return (
        House.objects.select_related("building")
        .filter(building__code=building_code, unit=unit_no, room=room)
        .first()
    )


def _person_by_id_number(value: str) -> Person | None:
    return Person.objects.with_id_number(value).first()


PERSON_REF = Ref(
    Person,
    "id_number_hash",
    "居民（身份证号）",
    resolve=_person_by_id_number,
    write=lambda p: p.id_number_masked,
)
HOUSE_REF = Ref(House, "pk", "房屋（楼幢编码-单元-房号）", resolve=resolve_house, write=house_key)


# --- rules ------------------------------------------------------------------------------------
def person_rules(values: dict[str, Any], instance: Person | None) -> list[Problem]:
    """Gender and birth date come from the ID number; what was typed must agree with it."""
    problems: list[Problem] = []
    number = values.get("id_number")
    if not number and instance is not None and ("birth_date" in values or "gender" in values):
        # An edit of gender or birth date alone is still checked against the stored ID number.
        number = instance.decrypt_sensitive("id_number") if instance.id_number_enc else ""
    if not number:
        return problems
    try:
        birth, gender = validators.id_birth_and_gender(number)
    except (ValueError, IndexError):
        return problems  # a legacy ID number that no longer parses: the data-quality work reports it
    if values.get("birth_date") is None:
        values["birth_date"] = birth
    elif values["birth_date"] != birth:
        problems.append(
            Problem(
                "birth_mismatch",
                "出生日期与身份证号不符",
                "The birth date does not match the ID number",
                field="birth_date",
                value=values["birth_date"].isoformat(),
                expected_zh=birth.isoformat(),
                expected_en=birth.isoformat(),
            )
        )
    if values.get("gender") is None:
        values["gender"] = gender
    elif values["gender"] != gender:
        label = dict(Person.GENDERS)[gender]
        problems.append(
            Problem(
                "gender_mismatch",
                "性别与身份证号不符",
                "The gender does not match the ID number",
                field="gender",
                value=values["gender"],
                expected_zh=label,
                expected_en="male" if gender == "M" else "female",
            )
        )
    if birth > clock.today():
        problems.append(
            Problem("birth_future", "出生日期晚于今天", "The birth date is in the future", field="id_number")
        )
    return problems


def house_rules(values: dict[str, Any], instance: House | None) -> list[Problem]:
    problems: list[Problem] = []
    building: Building | None = values.get("building") or (instance.building if instance else None)
    if building is None:
        return problems
    unit = values.get("unit", instance.unit if instance else 1)
    floor = values.get("floor", instance.floor if instance else None)
    if unit is not None and building.units and unit > building.units:
        problems.append(
            Problem(
                "unit_range",
                f"该楼只有{building.units}个单元",
                f"The building has {building.units} units",
                field="unit",
                value=unit,
            )
        )
    if unit is not None and unit < 1:
        problems.append(
            Problem("unit_range", "单元号应从1开始", "Unit numbers start at 1", field="unit", value=unit)
        )
    if floor is not None and building.floors and (floor > building.floors or floor < -5 or floor == 0):
        problems.append(
            Problem(
                "floor_range",
                f"楼层应在1–{building.floors}之间（地下为负数）",
                f"The floor must be 1–{building.floors} (negative underground)",
                field="floor",
                value=floor,
            )
        )
    area = values.get("area_m2")
    if area is not None and not (0 < area < 100000):
        problems.append(
            Problem(
                "area_range", "面积应大于0", "The area must be positive", field="area_m2", value=str(area)
            )
        )
    return problems


def residency_rules(values: dict[str, Any], instance: Residency | None) -> list[Problem]:
    return validators.period_order(values, instance, "截止日期早于起始日期")


def care_tag_rules(values: dict[str, Any], instance: CareTag | None) -> list[Problem]:
    kind = values.get("kind", instance.kind if instance else None)
    level = values.get("level", instance.level if instance else "")
    if kind == "disabled" and level and level not in ("一级", "二级", "三级", "四级"):
        return [
            Problem(
                "disability_level",
                "残疾等级应为一级至四级",
                "A disability level is grade 1 to 4",
                field="level",
                value=level,
                expected_zh="一级/二级/三级/四级",
                expected_en="一级/二级/三级/四级",
            )
        ]
    return []


# --- area paths follow the house ---------------------------------------------------------------
def _person_grid_from_residencies(person: Person) -> Region | None:
    current = (
        Residency.objects.current()
        .filter(person=person)
        .select_related("house__building__grid")
        .order_by("relation", "-start_date")
        .first()
    )
    return current.house.building.grid if current else None


def _residency_saved(residency: Residency, created: bool) -> None:
    person = residency.person
    grid = _person_grid_from_residencies(person)
    if grid is not None and grid.pk != person.grid_id:
        Person.objects.filter(pk=person.pk).update(grid=grid, area_path=grid.path)
        CareTag.objects.filter(person=person).update(area_path=grid.path)


def _person_saved(person: Person, created: bool) -> None:
    if not created:
        CareTag.objects.filter(person=person).update(area_path=person.area_path)


def refresh_building_area(building: Building) -> None:
    """After a building moved grid: its houses, residencies and residents follow."""
    path = building.grid.path
    House.objects.filter(building=building).update(area_path=path)
    Residency.objects.filter(house__building=building).update(area_path=path)
    people = Residency.objects.current().filter(house__building=building).values_list("person_id", flat=True)
    Person.objects.filter(pk__in=list(people)).update(grid=building.grid, area_path=path)
    CareTag.objects.filter(person_id__in=list(people)).update(area_path=path)


# --- the everyday questions ---------------------------------------------------------------------
def residents_of(house: House, on: dt.date | None = None) -> QuerySet[Residency]:
    """Who lives in this house on `on` (default today)."""
    return Residency.objects.current(on).filter(house=house).select_related("person")


def residents_at(building_code: str, unit: int, room: str, on: dt.date | None = None) -> QuerySet[Residency]:
    """Who lives in building 3, unit 2, room 401 today: one query."""
    return (
        Residency.objects.current(on)
        .filter(house__building__code=building_code, house__unit=unit, house__room=room)
        .select_related("person", "house__building")
    )


def residence_history(person: Person) -> QuerySet[Residency]:
    """Where has this person lived: every residency, newest first, one query."""
    return (
        Residency.objects.filter(person=person)
        .select_related("house__building")
        .order_by("-start_date", "-id")
    )


def vulnerable_residents_in(
    buildings: QuerySet[Building] | list[Building], on: dt.date | None = None
) -> QuerySet[Person]:
    """People of special care living today in these buildings (used by emergency mode)."""
    ids = Residency.objects.current(on).filter(house__building__in=buildings).values("person_id")
    return Person.objects.filter(pk__in=ids, status="active", care_tags__isnull=False).distinct()


# --- registries ---------------------------------------------------------------------------------
HOUSES = register(
    Registry(
        key="people.house",
        model=House,
        zh="房屋",
        en="Houses",
        columns=[
            Column(
                "building",
                "楼幢编码",
                "Building code",
                kind="ref",
                required=True,
                ref=Ref(Building, "code", "楼幢"),
            ),
            Column("unit", "单元", "Unit", kind="int", required=True),
            Column("floor", "楼层", "Floor", kind="int", required=True),
            Column("room", "房号", "Room", required=True),
            Column("area_m2", "面积", "Area (m²)", kind="decimal"),
            Column("use", "用途", "Use", kind="choice"),
            Column("owner", "产权人身份证号", "Owner ID number", kind="ref", ref=PERSON_REF),
        ],
        natural_key=("building", "unit", "room"),
        search=("room", "building__name", "building__code"),
        filters=("use", "building", "unit", "floor"),
        list_columns=("building", "unit", "floor", "room", "area_m2", "use"),
        rules=house_rules,
    )
)

PERSONS = register(
    Registry(
        key="people.person",
        model=Person,
        zh="居民",
        en="Residents",
        columns=[
            Column("name", "姓名", "Name", required=True),
            Column("id_number", "身份证号", "ID number", kind="sensitive", required=True),
            Column("gender", "性别", "Gender", kind="choice"),
            Column("birth_date", "出生日期", "Birth date", kind="date", not_future=True),
            Column("phone", "手机号", "Phone", kind="sensitive"),
            Column("population_type", "人口类型", "Population type", kind="choice"),
            Column("status", "状态", "Status", kind="choice"),
            Column("origin", "来源地", "Origin"),
            Column("grid", "网格编码", "Grid code", kind="ref", ref=Ref(Region, "code", "网格")),
            Column("note", "备注", "Note"),
        ],
        natural_key=("id_number",),
        search=("name",),
        filters=("gender", "population_type", "status", "grid"),
        list_columns=(
            "name",
            "gender",
            "birth_date",
            "id_number",
            "phone",
            "population_type",
            "status",
            "grid",
        ),
        rules=person_rules,
        after_save=_person_saved,
    )
)

RESIDENCIES = register(
    Registry(
        key="people.residency",
        model=Residency,
        zh="居住关系",
        en="Residencies",
        columns=[
            Column("person", "居民身份证号", "Resident ID number", kind="ref", required=True, ref=PERSON_REF),
            Column("house", "房屋", "House (building-unit-room)", kind="ref", required=True, ref=HOUSE_REF),
            Column("relation", "关系", "Relation", kind="choice", required=True),
            Column("start_date", "起始日期", "From", kind="date"),
            Column("end_date", "截止日期", "To", kind="date"),
        ],
        natural_key=("person", "house", "start_date"),
        search=("person__name",),
        filters=("relation", "house", "person"),
        list_columns=("person", "house", "relation", "start_date", "end_date"),
        rules=residency_rules,
        after_save=_residency_saved,
    )
)

CARE_TAGS = register(
    Registry(
        key="people.caretag",
        model=CareTag,
        zh="关怀标签",
        en="Care tags",
        columns=[
            Column("person", "居民身份证号", "Resident ID number", kind="ref", required=True, ref=PERSON_REF),
            Column("kind", "类别", "Kind", kind="choice", required=True),
            Column("level", "等级", "Level"),
            Column("source", "来源", "Source", kind="choice"),
            Column("verified_on", "核实日期", "Verified on", kind="date", not_future=True),
            Column("note", "备注", "Note"),
        ],
        natural_key=("person", "kind"),
        search=("person__name",),
        filters=("kind", "source"),
        list_columns=("person", "kind", "level", "source", "verified_on"),
        rules=care_tag_rules,
    )
)
