"""The geometry of an evacuation area: a drawn polygon, a circle around a point, or the hull of
picked buildings; which buildings stand in it; which cameras stand in it or look into it.

Coordinates are WGS-84 (lng, lat). Distances of a few hundred metres are turned into degrees with
the local scale (one degree of latitude ≈ 111.32 km; of longitude, that times cos(latitude)),
which is well within a metre at street scale.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from shapely.geometry import MultiPoint, Point, Polygon, mapping, shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union
from shapely.prepared import prep

from zhizhi import validators
from zhizhi.problems import Invalid, Problem

METRES_PER_DEGREE = 111_320.0
MAX_RADIUS_M = 3000  # beyond this an evacuation is a district's, not a street's: draw it instead
MIN_RADIUS_M = 10
CIRCLE_VERTICES = 64
# The picked buildings' hull is widened by this much, so one building alone is still an area.
BUILDING_MARGIN_M = 25


def metres_to_degrees(metres: float, lat: float) -> tuple[float, float]:
    """(Δlng, Δlat) of `metres` at latitude `lat`."""
    dlat = metres / METRES_PER_DEGREE
    dlng = metres / (METRES_PER_DEGREE * max(math.cos(math.radians(lat)), 0.01))
    return dlng, dlat


def circle(lng: float, lat: float, radius_m: float) -> Polygon:
    dlng, dlat = metres_to_degrees(radius_m, lat)
    ring = [
        (
            lng + dlng * math.cos(2 * math.pi * i / CIRCLE_VERTICES),
            lat + dlat * math.sin(2 * math.pi * i / CIRCLE_VERTICES),
        )
        for i in range(CIRCLE_VERTICES)
    ]
    return Polygon(ring)


def sector(lng: float, lat: float, heading: float | None, fov_deg: float, range_m: float) -> Polygon:
    """What a camera sees: a wedge `fov_deg` wide around compass `heading` (a circle when the
    camera has no heading, e.g. a dome)."""
    if heading is None or fov_deg >= 360:
        return circle(lng, lat, range_m)
    dlng, dlat = metres_to_degrees(range_m, lat)
    steps = max(int(fov_deg // 10), 2)
    start = heading - fov_deg / 2
    ring = [(lng, lat)]
    for i in range(steps + 1):
        theta = math.radians(start + fov_deg * i / steps)
        # Compass bearing: 0° north, 90° east.
        ring.append((lng + dlng * math.sin(theta), lat + dlat * math.cos(theta)))
    ring.append((lng, lat))
    return Polygon(ring)


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(number) or math.isinf(number):
        return None
    return number


@dataclass
class Area:
    """A validated area: the shape, how it was given, and (for picked buildings) which ones."""

    mode: str
    geometry: BaseGeometry
    radius_m: int | None = None
    center: tuple[float, float] | None = None
    building_ids: list[int] | None = None

    @property
    def geojson(self) -> dict:
        return dict(mapping(self.geometry))


def parse_area(
    mode: str,
    *,
    polygon: Any = None,
    center_lng: Any = None,
    center_lat: Any = None,
    radius_m: Any = None,
    building_ids: Iterable[Any] | None = None,
    buildings_by_id: dict[int, tuple[float, float]] | None = None,
) -> Area:
    """Check one way of giving an area and return it; raises `Invalid` naming the field.

    `buildings_by_id` holds the (lng, lat) of the buildings the declarer may pick (their scope)."""
    if mode == "polygon":
        if polygon in (None, "", {}):
            raise Invalid(
                [
                    Problem(
                        "area_required",
                        "请在地图上绘制疏散范围",
                        "Draw the evacuation area on the map",
                        "area",
                    )
                ]
            )
        value = validators.polygon(polygon, field="area")
        return Area("polygon", shape(value))
    if mode == "radius":
        problems: list[Problem] = []
        point: tuple[float, float] | None = None
        if center_lng in (None, "") or center_lat in (None, ""):
            problems.append(
                Problem("center_required", "请在地图上点选圆心", "Click the centre on the map", "center")
            )
        else:
            try:
                point = validators.coordinates(center_lng, center_lat, field="center")
            except Invalid as exc:
                problems.extend(exc.problems)
        radius = _number(radius_m)
        if radius is None:
            problems.append(
                Problem(
                    "radius_number",
                    "半径应为数字（米）",
                    "The radius must be a number (metres)",
                    "radius_m",
                    value=str(radius_m),
                )
            )
        elif radius <= 0:
            problems.append(
                Problem(
                    "radius_positive",
                    "半径应大于0米",
                    "The radius must be more than 0 metres",
                    "radius_m",
                    value=radius_m,
                    expected_zh=f"{MIN_RADIUS_M}–{MAX_RADIUS_M}米",
                    expected_en=f"{MIN_RADIUS_M}–{MAX_RADIUS_M} m",
                )
            )
        elif radius < MIN_RADIUS_M or radius > MAX_RADIUS_M:
            problems.append(
                Problem(
                    "radius_range",
                    f"半径{radius:g}米不合理：街道疏散范围应在{MIN_RADIUS_M}–{MAX_RADIUS_M}米之间，更大范围请绘制多边形",
                    f"A radius of {radius:g} m is not plausible for a street evacuation: use"
                    f" {MIN_RADIUS_M}–{MAX_RADIUS_M} m, or draw the area",
                    "radius_m",
                    value=radius_m,
                    expected_zh=f"{MIN_RADIUS_M}–{MAX_RADIUS_M}米",
                    expected_en=f"{MIN_RADIUS_M}–{MAX_RADIUS_M} m",
                )
            )
        if problems:
            raise Invalid(problems)
        assert point is not None and radius is not None
        rounded = round(radius)
        return Area("radius", circle(point[0], point[1], rounded), radius_m=rounded, center=point)
    if mode == "buildings":
        raw = [b for b in (building_ids or []) if str(b).strip() != ""]
        if not raw:
            raise Invalid(
                [
                    Problem(
                        "buildings_required",
                        "请至少选择一幢楼",
                        "Pick at least one building",
                        "building_ids",
                    )
                ]
            )
        known = buildings_by_id or {}
        ids: list[int] = []
        bad: list[str] = []
        for item in raw:
            try:
                pk = int(str(item).strip())
            except ValueError:
                bad.append(str(item))
                continue
            if pk in known:
                if pk not in ids:
                    ids.append(pk)
            else:
                bad.append(str(item))
        if bad:
            raise Invalid(
                [
                    Problem(
                        "building_unknown",
                        f"楼幢不存在或不在您的辖区：{'、'.join(bad[:10])}",
                        f"No such building in your area: {', '.join(bad[:10])}",
                        "building_ids",
                        value=",".join(bad[:10]),
                    )
                ]
            )
        points = [known[pk] for pk in ids]
        lat = sum(p[1] for p in points) / len(points)
        dlng, dlat = metres_to_degrees(BUILDING_MARGIN_M, lat)
        hull = MultiPoint(points).convex_hull
        # Buffer in a space scaled so the margin is round, then scale back.
        from shapely import affinity

        scaled = affinity.scale(hull, xfact=dlat / dlng, yfact=1.0, origin=(0, 0))
        widened = affinity.scale(
            scaled.buffer(dlat, quad_segs=8), xfact=dlng / dlat, yfact=1.0, origin=(0, 0)
        )
        return Area("buildings", widened, building_ids=ids)
    raise Invalid(
        [
            Problem(
                "area_mode",
                "请选择疏散范围的方式：绘制范围、圆形范围或选择楼幢",
                "Choose how to give the area: polygon, radius or buildings",
                "area_mode",
                value=str(mode),
                expected_zh="polygon / radius / buildings",
                expected_en="polygon / radius / buildings",
            )
        ]
    )


def boundary_of(boundaries: Iterable[dict | None]) -> BaseGeometry | None:
    shapes = [shape(b) for b in boundaries if b]
    return unary_union(shapes) if shapes else None


def points_inside(geometry: BaseGeometry, points: Iterable[tuple[int, float, float]]) -> list[int]:
    """The ids of the points (id, lng, lat) that the area covers."""
    prepared = prep(geometry)
    minx, miny, maxx, maxy = geometry.bounds
    return [
        pk
        for pk, lng, lat in points
        if minx <= lng <= maxx and miny <= lat <= maxy and prepared.covers(Point(lng, lat))
    ]


def camera_sees(geometry: BaseGeometry, camera: Any) -> str:
    """ "inside" when the camera stands in the area, "facing" when its view reaches into it, else ""."""
    if geometry.covers(Point(camera.lng, camera.lat)):
        return "inside"
    view = sector(camera.lng, camera.lat, camera.heading, camera.fov_deg or 90, camera.range_m or 60)
    return "facing" if view.intersects(geometry) else ""
