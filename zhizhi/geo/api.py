"""API for places: regions and buildings (generic registry endpoints) and point → grid."""

from typing import Any, Literal

from django.http import HttpRequest
from ninja import Query, Schema
from pydantic import Field

from zhizhi.api import app_router, register_registry
from zhizhi.api_common import ERRORS, RefOut
from zhizhi.geo import coords
from zhizhi.geo.services import locate as locate_point
from zhizhi.problems import Invalid, Problem

regions = register_registry("geo.region", "regions")
buildings = register_registry("geo.building", "buildings")


class LocateParams(Schema):
    lng: str = Field(..., description="经度 longitude")
    lat: str = Field(..., description="纬度 latitude")
    crs: Literal["wgs84", "gcj02"] = Field(
        "wgs84", description="坐标系：wgs84（GPS）或 gcj02（高德/腾讯/微信）"
    )


class LocateOut(Schema):
    inside: bool
    lng: float = Field(..., description="WGS-84")
    lat: float = Field(..., description="WGS-84")
    grid: RefOut | None = None
    community: RefOut | None = None
    street: RefOut | None = None
    message: str = ""


def _region(region: Any) -> dict[str, Any] | None:
    if region is None:
        return None
    return {"id": region.pk, "key": region.code, "name": region.name}


@app_router("geo").get("/locate", response={200: LocateOut, **ERRORS}, operation_id="geo_locate")
def locate(request: HttpRequest, params: Query[LocateParams]) -> dict[str, Any]:
    """坐标定位 Which grid (and community, street) a point lies in; outside → inside=false."""
    try:
        lng, lat = float(params.lng), float(params.lat)
    except ValueError:
        raise Invalid(
            [
                Problem(
                    "coord_number", "经纬度必须是数字", "Longitude and latitude must be numbers", field="lng"
                )
            ]
        ) from None
    lng, lat = coords.to_wgs84(lng, lat, params.crs)
    where = locate_point(lng, lat)
    if where.grid is None:
        return {"inside": False, "lng": where.lng, "lat": where.lat, "message": where.message}
    community = where.grid.parent
    street = community.parent if community is not None else None
    return {
        "inside": True,
        "lng": where.lng,
        "lat": where.lat,
        "grid": _region(where.grid),
        "community": _region(community),
        "street": _region(street),
        "message": where.message,
    }
