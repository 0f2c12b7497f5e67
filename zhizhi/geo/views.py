"""The map page: grid polygons and building points as GeoJSON (scoped by visible_to), a side panel
for one grid, and "which grid is this point in". Coordinates are WGS-84 (lng, lat)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse

from zhizhi import clock
from zhizhi.geo.models import Building, Region
from zhizhi.geo.services import locate
from zhizhi.problems import Invalid


def _feature(geometry: dict, props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Feature", "geometry": geometry, "properties": props}


@login_required
def map_page(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "geo/map.html",
        {"tile_url": getattr(settings, "ZHIZHI_TILE_URL", ""), "title": "地图"},
    )


@login_required
def grids_geojson(request: HttpRequest) -> JsonResponse:
    grids = (
        Region.objects.visible_to(request.user)
        .filter(level=Region.GRID, boundary__isnull=False)
        .select_related("parent")
        .order_by("code")
    )
    features = [
        _feature(
            g.boundary,
            {
                "id": g.pk,
                "code": g.code,
                "name": g.name,
                "community": g.parent.name if g.parent_id else "",
                "community_code": g.parent.code if g.parent_id else "",
                "panel": reverse("map_grid_panel", args=[g.pk]),
            },
        )
        for g in grids
    ]
    return JsonResponse({"type": "FeatureCollection", "features": features})


@login_required
def buildings_geojson(request: HttpRequest) -> JsonResponse:
    rows = Building.objects.visible_to(request.user).values_list(
        "pk", "code", "name", "lng", "lat", "grid_id"
    )
    features = [
        _feature(
            {"type": "Point", "coordinates": [lng, lat]},
            {"id": pk, "code": code, "name": name, "grid": grid, "url": f"/r/geo.building/{pk}/"},
        )
        for pk, code, name, lng, lat, grid in rows
    ]
    return JsonResponse({"type": "FeatureCollection", "features": features})


@login_required
def grid_panel(request: HttpRequest, pk: int) -> HttpResponse:
    from zhizhi.people.models import CareTag, House, Person, Residency

    user = request.user
    grid = Region.objects.visible_to(user).filter(pk=pk, level=Region.GRID).select_related("parent").first()
    if grid is None:
        raise Http404("not found")
    buildings = list(
        Building.objects.visible_to(user)
        .filter(grid=grid)
        .annotate(n_houses=Count("houses", distinct=True))
        .order_by("code")
    )
    residents = dict(
        Residency.objects.visible_to(user)
        .current(clock.today())
        .filter(house__building__grid=grid)
        .values_list("house__building_id")
        .annotate(n=Count("person_id", distinct=True))
        .values_list("house__building_id", "n")
    )
    people = Person.objects.visible_to(user).filter(grid=grid, status="active")
    counts = {
        "houses": House.objects.visible_to(user).filter(building__grid=grid).count(),
        "residents": people.count(),
        "care": CareTag.objects.visible_to(user)
        .filter(person__in=people)
        .values("person_id")
        .distinct()
        .count(),
    }
    rows = [{"b": b, "residents": residents.get(b.pk, 0)} for b in buildings]
    return render(request, "geo/_grid_panel.html", {"grid": grid, "buildings": rows, "counts": counts})


@login_required
def locate_view(request: HttpRequest) -> HttpResponse:
    ctx: dict[str, Any] = {"lng": request.GET.get("lng", ""), "lat": request.GET.get("lat", "")}
    try:
        where = locate(ctx["lng"], ctx["lat"])
    except Invalid as exc:
        ctx["errors"] = [p.message for p in exc.problems]
        return render(request, "geo/_locate.html", ctx, status=400)
    ctx["where"] = where
    if where.grid is not None:
        ctx["visible"] = Region.objects.visible_to(request.user).filter(pk=where.grid.pk).exists()
    return render(request, "geo/_locate.html", ctx)
