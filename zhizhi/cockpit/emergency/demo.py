"""The demo street's emergency layer: about twenty street cameras (when none exist), and the choice
of buildings for a rehearsal of the 建国北路 evacuation (`manage.py emergency_drill`).

No incident is declared here: the drill is something a user does (docs/emergency.md)."""

from __future__ import annotations

import math
from typing import Any

from django.db import transaction
from django.db.models import Count

from zhizhi import clock
from zhizhi.cockpit.emergency.area import METRES_PER_DEGREE
from zhizhi.geo.models import Building, Region
from zhizhi.people.models import Residency

CAMERA_PREFIX = "EMCAM-"
CAMERAS = 20
SNAPSHOT = "/static/emergency/demo-snapshot.svg"


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    dx = (a[0] - b[0]) * METRES_PER_DEGREE * math.cos(math.radians((a[1] + b[1]) / 2))
    dy = (a[1] - b[1]) * METRES_PER_DEGREE
    return math.hypot(dx, dy)


def load(street: Region) -> dict[str, int]:
    """Add the demo cameras (idempotent: nothing when the street already has cameras)."""
    from zhizhi.geo.services import grid_for_point
    from zhizhi.intake.models import Camera

    buildings = list(
        Building.objects.filter(grid__path__startswith=street.path)
        .order_by("code")
        .values_list("code", "name", "lng", "lat")
    )
    if not buildings:
        return {"cameras": 0}
    lngs = [b[2] for b in buildings]
    lats = [b[3] for b in buildings]
    box = {"lng__gte": min(lngs), "lng__lte": max(lngs), "lat__gte": min(lats), "lat__lte": max(lats)}
    if (
        Camera.objects.filter(code__startswith=CAMERA_PREFIX).exists()
        or Camera.objects.filter(**box).exists()
    ):
        return {"cameras": 0}
    step = max(len(buildings) // CAMERAS, 1)
    rows = []
    for n, (code, name, lng, lat) in enumerate(buildings[::step][:CAMERAS], start=1):
        # On a pole about 40 m from the building, looking at it; every fourth one a dome.
        angle = (n * 137) % 360
        dlng = 40 * math.sin(math.radians(angle)) / (METRES_PER_DEGREE * math.cos(math.radians(lat)))
        dlat = 40 * math.cos(math.radians(angle)) / METRES_PER_DEGREE
        cam_lng, cam_lat = round(lng + dlng, 6), round(lat + dlat, 6)
        heading = None if n % 4 == 0 else (angle + 180) % 360
        grid = grid_for_point(cam_lng, cam_lat)
        rows.append(
            Camera(
                code=f"{CAMERA_PREFIX}{n:03d}",
                name=f"{name}旁监控",
                lng=cam_lng,
                lat=cam_lat,
                grid=grid,
                snapshot_url=SNAPSHOT,
                stream_url=f"rtsp://video.example.invalid/live/{code}",
                heading=heading,
                fov_deg=360 if heading is None else 90,
                range_m=80,
            )
        )
    with transaction.atomic():
        Camera.objects.bulk_create(rows)
    return {"cameras": len(rows)}


def households_by_building(street: Region) -> dict[int, int]:
    """Houses with current residents, per building of the street (one grouped query)."""
    return dict(
        Residency.objects.current(clock.today())
        .filter(person__status="active", house__building__grid__path__startswith=street.path)
        .values_list("house__building_id")
        .annotate(n=Count("house_id", distinct=True))
        .values_list("house__building_id", "n")
    )


def drill_buildings(street: Region, count: int = 13) -> tuple[list[int], int]:
    """The `count` adjacent buildings holding the most households: for each building, it and its
    nearest neighbours; the group with the most households wins. Returns (ids, households)."""
    points = list(
        Building.objects.filter(grid__path__startswith=street.path)
        .values_list("pk", "lng", "lat")
        .order_by("pk")
    )
    households = households_by_building(street)
    best: tuple[int, list[int]] = (-1, [])
    for _pk, lng, lat in points:
        group = sorted(points, key=lambda p: _metres((p[1], p[2]), (lng, lat)))[:count]
        total = sum(households.get(p[0], 0) for p in group)
        if total > best[0]:
            best = (total, [p[0] for p in group])
    return best[1], max(best[0], 0)


def street_of(code: str = "") -> Any:
    qs = Region.objects.filter(level=Region.STREET)
    return qs.filter(code=code).first() if code else qs.order_by("code").first()
