"""Point → grid: lookups per second with the STRtree index against the brute-force loop over every
polygon, for 170 grids (the demo street) and for 10,000 grids (a city), measured in the same run.

Standalone: builds `zhizhi.geo.spatial.GridIndex` directly from generated polygons, no database.
Run: .venv/bin/python bench/bench_point_grid.py   (prints figures; never asserts timings)
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shapely.geometry import Polygon, mapping

from zhizhi.geo.spatial import GridIndex


def lattice(columns: int, rows: int, rng: random.Random, cell: float = 0.0018) -> list:
    """A jittered lattice of quadrilateral grids that share corner points, as the demo street has."""
    lng0, lat0 = 120.135, 30.300
    pts = [
        [
            (
                lng0 + i * cell + rng.uniform(-0.22, 0.22) * cell,
                lat0 + j * cell + rng.uniform(-0.22, 0.22) * cell,
            )
            for j in range(rows + 1)
        ]
        for i in range(columns + 1)
    ]
    grids = []
    for i in range(columns):
        for j in range(rows):
            ring = [pts[i][j], pts[i + 1][j], pts[i + 1][j + 1], pts[i][j + 1]]
            grids.append(
                (len(grids) + 1, f"G{len(grids):05d}", f"网格{len(grids)}", "/", mapping(Polygon(ring)))
            )
    bounds = (lng0 - cell, lat0 - cell, lng0 + (columns + 1) * cell, lat0 + (rows + 1) * cell)
    return grids, bounds


def rate(fn, points, min_seconds: float = 1.0) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    """Lookups per second, repeating the point list until at least `min_seconds` have passed."""
    done, started = 0, time.perf_counter()
    while True:
        for lng, lat in points:
            fn(lng, lat)
        done += len(points)
        elapsed = time.perf_counter() - started
        if elapsed >= min_seconds:
            return done / elapsed, done


def main() -> None:
    rng = random.Random(2)
    print("point → grid: STRtree index vs brute-force loop (lookups per second, same run)")
    print(f"{'grids':>7} {'build s':>8} {'index /s':>11} {'brute /s':>10} {'ratio':>7}  agree")
    for columns, rows in ((17, 10), (100, 100)):
        grids, (x0, y0, x1, y1) = lattice(columns, rows, rng)
        started = time.perf_counter()
        index = GridIndex(grids)
        build = time.perf_counter() - started
        points = [
            (rng.uniform(x0, x1), rng.uniform(y0, y1)) for _ in range(2000 if len(grids) < 1000 else 200)
        ]
        # The two must give the same grid (points never land exactly on a shared border here).
        agree = all(index.lookup(x, y) == index.brute_force(x, y) for x, y in points[:200])
        fast, _ = rate(index.lookup, points)
        slow, _ = rate(index.brute_force, points)
        print(f"{len(grids):>7} {build:>8.3f} {fast:>11,.0f} {slow:>10,.0f} {fast / slow:>6.1f}×  {agree}")


if __name__ == "__main__":
    main()
