"""The cockpit's board under /api/v1/cockpit/: what the big screen re-fetches after a live event.

Every endpoint takes `region` (an id; default: the caller's widest region) and answers 404 for a region
outside the caller's area. The numbers are `zhizhi.cockpit.services`' (board, trend, ranking); see
docs/cockpit.md.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.http import HttpRequest
from ninja import Query, Schema

from zhizhi.api import app_router
from zhizhi.api_common import ERRORS
from zhizhi.cockpit import screen
from zhizhi.problems import Invalid, Problem

router = app_router("cockpit")
OK = {200: dict[str, Any], **ERRORS}
LIST = {200: list[dict[str, Any]], **ERRORS}


class BoardQuery(Schema):
    region: int | None = None
    scene: str = ""
    day: str = ""
    fresh: bool = False


class IndicatorQuery(Schema):
    region: int | None = None
    days: int = 30


def _scene(value: str) -> str:
    codes = [s["code"] for s in screen.scenes()]
    if value and value not in codes:
        raise Invalid(
            [
                Problem(
                    "scene",
                    "场景不存在",
                    "Unknown scene",
                    field="scene",
                    value=value,
                    expected_zh="、".join(codes),
                    expected_en=", ".join(codes),
                )
            ]
        )
    return value


def _day(value: str) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise Invalid(
            [
                Problem(
                    "date",
                    "日期格式应为 YYYY-MM-DD",
                    "The day must be YYYY-MM-DD",
                    field="day",
                    value=value,
                    expected_zh="YYYY-MM-DD",
                    expected_en="YYYY-MM-DD",
                )
            ]
        ) from None


def _indicator(code: str) -> str:
    if code not in screen.indicator_codes():
        raise Invalid([Problem("indicator", "指标不存在", "Unknown indicator", field="code", value=code)])
    return code


@router.get(
    "/scenes", response=LIST, operation_id="cockpit_scenes", url_name="cockpit_scenes", tags=["cockpit"]
)
def scenes(request: HttpRequest) -> list[dict[str, Any]]:
    """驾驶舱场景 The scenes (tabs) and the indicator codes under each."""
    return screen.scenes()


@router.get("/board", response=OK, operation_id="cockpit_board", url_name="cockpit_board", tags=["cockpit"])
def board(request: HttpRequest, q: Query[BoardQuery]) -> dict[str, Any]:
    """驾驶舱看板 Key numbers of a region (with previous value, trend and status) and its children's
    values, for one scene (default: all) and one day (default: today). `fresh=1` computes today's
    figures from the rows instead of the few-seconds cache (the screen asks so after a live event)."""
    user = request.auth  # type: ignore[attr-defined]
    region = screen.region_for(user, q.region)
    return screen.screen_board(user, region, _scene(q.scene), _day(q.day), fresh=q.fresh)


@router.get("/feed", response=LIST, operation_id="cockpit_feed", url_name="cockpit_feed", tags=["cockpit"])
def feed(request: HttpRequest, region: int | None = None) -> list[dict[str, Any]]:
    """最新事件与告警 The newest case events and alarms under the region, newest first."""
    user = request.auth  # type: ignore[attr-defined]
    return screen.feed(user, screen.region_for(user, region))


@router.get(
    "/trend/{code}", response=LIST, operation_id="cockpit_trend", url_name="cockpit_trend", tags=["cockpit"]
)
def trend(request: HttpRequest, code: str, q: Query[IndicatorQuery]) -> list[dict[str, Any]]:
    """指标走势 One indicator's daily values over the last `days` days (default 30)."""
    user = request.auth  # type: ignore[attr-defined]
    region = screen.region_for(user, q.region)
    return screen.trend(_indicator(code), region, q.days)


@router.get(
    "/ranking/{code}",
    response=LIST,
    operation_id="cockpit_ranking",
    url_name="cockpit_ranking",
    tags=["cockpit"],
)
def ranking(request: HttpRequest, code: str, region: int | None = None) -> list[dict[str, Any]]:
    """下级排名 The region's children ranked by one indicator."""
    user = request.auth  # type: ignore[attr-defined]
    return screen.ranking(user, _indicator(code), screen.region_for(user, region))


from zhizhi.cockpit import indicator_api  # noqa: E402, F401  (indicator definitions: /api/v1/cockpit/indicators)
