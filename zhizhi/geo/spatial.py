"""Point → grid in memory: an STRtree over the grid polygons, rebuilt when a polygon changes.

Each process keeps one index. It is rebuilt when this process saves a region (`invalidate()`)
and, for changes made by other processes, when the grids' stamp (count + last update) moves;
the stamp is read at most every `STAMP_TTL_SECONDS`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from django.db.models import Count, Max
from shapely import STRtree
from shapely.geometry import Point, shape
from shapely.prepared import prep

STAMP_TTL_SECONDS = 2.0


@dataclass(frozen=True)
class GridHit:
    grid_id: int
    code: str
    name: str
    path: str


class GridIndex:
    def __init__(self, grids: list[tuple[int, str, str, str, dict]]) -> None:
        self.hits = [GridHit(pk, code, name, path) for pk, code, name, path, _ in grids]
        self.geoms = [shape(boundary) for *_, boundary in grids]
        self.prepared = [prep(g) for g in self.geoms]
        self.tree = STRtree(self.geoms) if self.geoms else None

    def lookup(self, lng: float, lat: float) -> GridHit | None:
        if self.tree is None:
            return None
        point = Point(lng, lat)
        for i in self.tree.query(point):
            if self.prepared[int(i)].covers(point):
                return self.hits[int(i)]
        return None

    def brute_force(self, lng: float, lat: float) -> GridHit | None:
        """The naive loop over every polygon (kept for the benchmark's baseline and tests)."""
        point = Point(lng, lat)
        for hit, geom in zip(self.hits, self.geoms, strict=True):
            if geom.covers(point):
                return hit
        return None


_lock = threading.Lock()
_index: GridIndex | None = None
_stamp: tuple | None = None
_checked_at = 0.0


def _grid_rows() -> list[tuple[int, str, str, str, dict]]:
    from zhizhi.geo.models import Region

    return [
        row
        for row in Region.objects.filter(level=Region.GRID, boundary__isnull=False).values_list(
            "pk", "code", "name", "path", "boundary"
        )
        if row[4]
    ]


def _current_stamp() -> tuple:
    from zhizhi.geo.models import Region

    agg = Region.objects.filter(level=Region.GRID).aggregate(n=Count("pk"), last=Max("updated_at"))
    return (agg["n"], agg["last"])


def index() -> GridIndex:
    global _index, _stamp, _checked_at
    with _lock:
        now = time.monotonic()
        if _index is None or now - _checked_at > STAMP_TTL_SECONDS:
            stamp = _current_stamp()
            _checked_at = now
            if _index is None or stamp != _stamp:
                _index, _stamp = GridIndex(_grid_rows()), stamp
        return _index


def invalidate() -> None:
    global _index
    with _lock:
        _index = None
