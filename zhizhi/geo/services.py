"""Rules for places: the region tree, grid polygons (valid, not overlapping), buildings, point → grid."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Concat, Substr
from shapely.geometry import shape

from zhizhi import validators
from zhizhi.geo import spatial
from zhizhi.geo.models import Building, Region
from zhizhi.problems import Invalid, Problem
from zhizhi.registry import Column, Ref, Registry, register

# Overlaps smaller than this (in squared degrees, about 1 m²) are rounding on shared borders.
OVERLAP_TOLERANCE = 1e-10


@dataclass(frozen=True)
class Location:
    """The answer to "where is this point": a grid and its community and street, or outside."""

    lng: float
    lat: float
    grid: Region | None

    @property
    def inside(self) -> bool:
        return self.grid is not None

    @property
    def message(self) -> str:
        if self.grid is None:
            return "该位置不在本街道任何网格内 / This location is outside the street's grids"
        return f"{self.grid.name}"


def grid_for_point(lng: float, lat: float) -> Region | None:
    """The grid whose polygon covers (lng, lat) in WGS-84, or None when outside every grid."""
    hit = spatial.index().lookup(lng, lat)
    if hit is None:
        return None
    return Region.objects.filter(pk=hit.grid_id).first()


def locate(lng: Any, lat: Any) -> Location:
    """Validate a coordinate pair and resolve its grid; never raises for a point outside the street."""
    x, y = validators.coordinates(lng, lat)
    return Location(x, y, grid_for_point(x, y))


def region_rules(values: dict[str, Any], instance: Region | None) -> list[Problem]:
    problems: list[Problem] = []
    level = values.get("level", instance.level if instance else None)
    code = values.get("code", instance.code if instance else "")
    parent = values.get("parent", instance.parent if instance else None)
    expected = Region.CODE_LENGTHS.get(level or "")
    if expected and (len(code) != expected or not code.isdigit()):
        problems.append(
            Problem(
                "code_length",
                f"{dict(Region.LEVELS)[str(level)]}编码应为{expected}位数字",
                f"A {level} code has {expected} digits",
                field="code",
                value=code,
            )
        )
    want_parent = Region.PARENT_LEVEL.get(level or "")
    if want_parent:
        if parent is None:
            problems.append(
                Problem("parent_required", "需要上级区域", "A parent region is required", field="parent")
            )
        elif parent.level != want_parent:
            problems.append(
                Problem(
                    "parent_level",
                    f"上级应为{dict(Region.LEVELS)[want_parent]}",
                    f"The parent must be a {want_parent}",
                    field="parent",
                    value=parent.code,
                )
            )
        elif not code.startswith(parent.code):
            problems.append(
                Problem(
                    "code_prefix",
                    "编码应以上级编码开头",
                    "The code must start with the parent's code",
                    field="code",
                    value=code,
                    expected_zh=parent.code + "…",
                    expected_en=parent.code + "…",
                )
            )
    if "boundary" in values and values["boundary"] is not None:
        try:
            boundary = validators.polygon(values["boundary"])
        except Invalid as exc:
            return problems + exc.problems
        values["boundary"] = boundary
        if level == Region.GRID:
            problems.extend(_overlaps(boundary, instance))
    return problems


def _overlaps(boundary: dict, instance: Region | None) -> list[Problem]:
    geom = shape(boundary)
    others = Region.objects.filter(level=Region.GRID, boundary__isnull=False)
    if instance is not None and instance.pk:
        others = others.exclude(pk=instance.pk)
    problems = []
    index = spatial.index()
    candidates = (
        {h.grid_id for h in (index.hits[int(i)] for i in index.tree.query(geom))} if index.tree else set()
    )
    for _pk, code, name, other in others.filter(pk__in=candidates).values_list(
        "pk", "code", "name", "boundary"
    ):
        overlap = geom.intersection(shape(other)).area
        if overlap > OVERLAP_TOLERANCE:
            problems.append(
                Problem(
                    "polygon_overlap",
                    f"边界与网格「{name}」({code})重叠",
                    f"The boundary overlaps grid '{name}' ({code})",
                    field="boundary",
                    value=code,
                )
            )
    return problems


def _region_saved(region: Region, created: bool) -> None:
    if region.boundary:
        c = shape(region.boundary).representative_point()
        Region.objects.filter(pk=region.pk).update(center_lng=c.x, center_lat=c.y)
        region.center_lng, region.center_lat = c.x, c.y
    if not created:
        _cascade_path(region)
    spatial.invalidate()


def _cascade_path(region: Region) -> None:
    """Keep descendants' paths and every scoped row's area_path under a moved region."""
    old = (getattr(region, "_loaded", None) or {}).get("path")
    if not old or old == region.path:
        return
    from zhizhi.registry import registries

    for reg in registries().values():
        model = reg.model
        field = "path" if model is Region else "area_path"
        model._default_manager.filter(**{f"{field}__startswith": old}).update(
            **{field: Concat(Value(region.path), Substr(F(field), len(old) + 1))}
        )
        if model is Region:
            model._default_manager.filter(path__startswith=region.path).update(area_path=F("path"))


def building_rules(values: dict[str, Any], instance: Building | None) -> list[Problem]:
    problems: list[Problem] = []
    lng = values.get("lng", instance.lng if instance else None)
    lat = values.get("lat", instance.lat if instance else None)
    if lng is None or lat is None:
        return problems
    try:
        x, y = validators.coordinates(lng, lat, "lng")
    except Invalid as exc:
        return exc.problems
    grid = values.get("grid") or (instance.grid if instance and instance.grid_id else None)
    found = grid_for_point(x, y)
    if grid is None:
        if found is None:
            problems.append(
                Problem(
                    "outside_street",
                    "楼幢坐标不在本街道任何网格内",
                    "The building's coordinates are outside every grid of the street",
                    field="lng",
                    value=f"{lng},{lat}",
                )
            )
        else:
            values["grid"] = found
    elif grid.level != Region.GRID:
        problems.append(
            Problem(
                "not_grid",
                "所属网格必须是网格级区域",
                "The grid must be a grid-level region",
                field="grid",
                value=grid.code,
            )
        )
    elif found is not None and found.pk != grid.pk:
        problems.append(
            Problem(
                "grid_mismatch",
                f"坐标位于网格「{found.name}」，与所填网格不符",
                f"The coordinates lie in grid '{found.name}', not in the grid given",
                field="grid",
                value=grid.code,
            )
        )
    return problems


def _building_saved(building: Building, created: bool) -> None:
    if created:
        return
    old = (getattr(building, "_loaded", None) or {}).get("grid_id")
    if old is not None and old != building.grid_id:
        from zhizhi.people.services import refresh_building_area

        refresh_building_area(building)


REGIONS = register(
    Registry(
        key="geo.region",
        model=Region,
        zh="区域",
        en="Regions",
        columns=[
            Column("code", "编码", "Code", required=True),
            Column("name", "名称", "Name", required=True),
            Column("level", "层级", "Level", kind="choice", required=True),
            Column("parent", "上级编码", "Parent code", kind="ref", ref=Ref(Region, "code", "上级区域")),
            Column("boundary", "边界", "Boundary", kind="json"),
        ],
        natural_key=("code",),
        search=("code", "name"),
        filters=("level", "parent"),
        list_columns=("code", "name", "level", "parent"),
        rules=region_rules,
        after_save=_region_saved,
    )
)

BUILDINGS = register(
    Registry(
        key="geo.building",
        model=Building,
        zh="楼幢",
        en="Buildings",
        columns=[
            Column("code", "楼幢编码", "Building code", required=True),
            Column("name", "名称", "Name", required=True),
            Column("address", "地址", "Address", required=True),
            Column("kind", "类型", "Kind", kind="choice"),
            Column("lng", "经度", "Longitude", kind="float", required=True),
            Column("lat", "纬度", "Latitude", kind="float", required=True),
            Column("grid", "网格编码", "Grid code", kind="ref", ref=Ref(Region, "code", "网格")),
            Column("units", "单元数", "Units", kind="int"),
            Column("floors", "层数", "Floors", kind="int"),
            Column("built_year", "建成年份", "Year built", kind="int"),
        ],
        natural_key=("code",),
        search=("code", "name", "address"),
        filters=("kind", "grid"),
        list_columns=("code", "name", "address", "grid", "units", "floors"),
        rules=building_rules,
        after_save=_building_saved,
    )
)


@transaction.atomic
def save_boundary(actor: Any, region: Region, boundary: Any, version: int | None = None) -> Region:
    """Replace a region's polygon (the map editor's save)."""
    from zhizhi import registry

    return registry.update(REGIONS, actor, region, {"boundary": boundary}, version)
