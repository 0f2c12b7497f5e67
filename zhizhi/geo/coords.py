"""GCJ-02 ⇄ WGS-84 conversion at the edge.

Zhizhi stores WGS-84. Chinese web maps and phone SDKs (AMap/Gaode, Tencent, WeChat location)
report GCJ-02, an obfuscated datum that shifts points by a few hundred metres inside China.
The forward transform is the published formula; it has no closed-form inverse, so
`gcj02_to_wgs84` iterates the forward transform until it lands on the given point
(converges to well under a millimetre in a handful of steps).
"""

from __future__ import annotations

import math

# Krasovsky 1940 ellipsoid, as used by the GCJ-02 formula.
_A = 6378245.0
_EE = 0.00669342162296594323

WGS84 = "wgs84"
GCJ02 = "gcj02"
CRS_CHOICES = (WGS84, GCJ02)


def out_of_china(lng: float, lat: float) -> bool:
    """GCJ-02 leaves points outside this box unshifted (the formula's own bounding box)."""
    return not (72.004 <= lng <= 137.8347 and 0.8293 <= lat <= 55.8271)


def _transform_lat(x: float, y: float) -> float:
    ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (160.0 * math.sin(y / 12.0 * math.pi) + 320.0 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    return ret


def _transform_lng(x: float, y: float) -> float:
    ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    return ret


def _offset(lng: float, lat: float) -> tuple[float, float]:
    dlat = _transform_lat(lng - 105.0, lat - 35.0)
    dlng = _transform_lng(lng - 105.0, lat - 35.0)
    radlat = lat / 180.0 * math.pi
    magic = 1 - _EE * math.sin(radlat) ** 2
    sqrtmagic = math.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrtmagic) * math.pi)
    dlng = (dlng * 180.0) / (_A / sqrtmagic * math.cos(radlat) * math.pi)
    return dlng, dlat


def wgs84_to_gcj02(lng: float, lat: float) -> tuple[float, float]:
    if out_of_china(lng, lat):
        return lng, lat
    dlng, dlat = _offset(lng, lat)
    return lng + dlng, lat + dlat


def gcj02_to_wgs84(
    lng: float, lat: float, tolerance: float = 1e-10, max_steps: int = 30
) -> tuple[float, float]:
    """Invert the forward transform by fixed-point iteration (error < `tolerance` degrees)."""
    if out_of_china(lng, lat):
        return lng, lat
    dlng, dlat = _offset(lng, lat)
    x, y = lng - dlng, lat - dlat
    for _ in range(max_steps):
        gx, gy = wgs84_to_gcj02(x, y)
        ex, ey = gx - lng, gy - lat
        if abs(ex) < tolerance and abs(ey) < tolerance:
            break
        x, y = x - ex, y - ey
    return x, y


def to_wgs84(lng: float, lat: float, crs: str) -> tuple[float, float]:
    """A point in `crs` ("wgs84" or "gcj02") as WGS-84."""
    if crs == GCJ02:
        return gcj02_to_wgs84(lng, lat)
    if crs == WGS84:
        return lng, lat
    raise ValueError(crs)
