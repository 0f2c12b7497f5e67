"""The cockpit pages: the big screen (/cockpit/, one region per page, drill-down by region id), its live
event stream (SSE) and map shapes, and the role dashboards (/cockpit/dashboard/). Thin: the numbers
come from screen.py on top of the indicator services."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import render

from zhizhi import live
from zhizhi.cockpit import screen

CHANNELS = ["alarm", "case", "cockpit"]


def _scene(request: HttpRequest, scenes: list[dict[str, Any]]) -> str:
    """The scene tab asked for, else the first scene that has indicators (a street's catalogue runs to
    over a hundred: one scene at a time fits a wall)."""
    value = request.GET.get("scene", "")
    if value in {s["code"] for s in scenes}:
        return value
    return next((s["code"] for s in scenes if s["indicators"]), "")


@login_required
def big_screen(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    user = request.user
    region = screen.region_for(user, pk if pk is not None else request.GET.get("region"))
    scenes = screen.scenes()
    scene = _scene(request, scenes)
    board = screen.screen_board(user, region, scene)
    ctx: dict[str, Any] = {
        "region": region,
        "board": board,
        "scenes": scenes,
        "scene": scene,
        "feed": screen.feed(user, region),
        "labels": screen.labels(),
        "tile_url": getattr(settings, "ZHIZHI_TILE_URL", ""),
        "time_zone": settings.TIME_ZONE,
        "title": "驾驶舱",
    }
    return render(request, "cockpit/screen.html", ctx)


@login_required
def stream(request: HttpRequest) -> StreamingHttpResponse:
    """Cases, alarms and indicator changes under the region, as server-sent events."""
    region = screen.region_for(request.user, request.GET.get("region"))
    return live.stream(request, CHANNELS, area=region.path)


@login_required
def areas(request: HttpRequest, pk: int) -> JsonResponse:
    return JsonResponse(screen.children_geojson(request.user, screen.region_for(request.user, pk)))


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    user = request.user
    region = screen.region_for(user, request.GET.get("region"))
    role = screen.dashboard_role(user)
    ctx: dict[str, Any] = {"region": region, "role": role, "title": "看板"}
    if role == "leader":
        ctx["scenes"] = screen.scenes()
        ctx["scene"] = _scene(request, ctx["scenes"])
        ctx["board"] = screen.screen_board(user, region, ctx["scene"])
    elif role == "dispatcher":
        ctx["figures"] = screen.dispatcher_figures(user, region)
        ctx["board"] = screen.screen_board(user, region, screen.scene_or_all(screen.DISPATCH_SCENE))
    else:
        ctx["figures"] = screen.department_figures(user)
        ctx["board"] = screen.department_board(user, region)
    return render(request, f"cockpit/dashboard_{role}.html", ctx)
