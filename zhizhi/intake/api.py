"""Intake endpoints under /api/v1/intake/ (token auth, like the rest of the API):

- POST workorders          a hotline/mailbox work order (or an update of one) from an upstream system
- GET  workorders/results  export rows of work orders whose result was fed back (?since=ISO time)
- POST camera-events       an AI event from a camera platform (collapsed per camera and type)
- GET  cases/{id}/messages the channel messages behind a case and its merged reports

Thin: each is one call into zhizhi/intake/services.py; docs in docs/integrations/.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils.dateparse import parse_datetime
from ninja import Schema
from ninja.responses import Status

from zhizhi.api import app_router
from zhizhi.api_common import ERRORS, acting
from zhizhi.cases import services as case_services
from zhizhi.intake import services
from zhizhi.intake.models import ChannelMessage
from zhizhi.problems import Forbidden, invalid

router = app_router("intake")

INTEGRATION_ROLES = ("dispatcher", "street_leader")


def _integrator(request: HttpRequest) -> Any:
    user = request.auth  # type: ignore[attr-defined]
    if not (user.is_superuser or getattr(user, "role", "") in INTEGRATION_ROLES):
        raise Forbidden("此令牌无权接入工单", "This token may not deliver work orders")
    return user


class WorkOrderIn(Schema):
    source: str
    order_id: str
    kind: str = "create"
    seq: str | int | None = None
    title: str = ""
    content: str = ""
    category: str | None = None
    address: str = ""
    lng: float | str | None = None
    lat: float | str | None = None
    reporter_name: str = ""
    reporter_phone: str = ""


class CameraEventIn(Schema):
    camera: str
    event_type: str
    event_id: str = ""
    occurred_at: str | None = None
    snapshot_url: str = ""
    snapshot_base64: str = ""


def _answer(got: services.Received) -> dict[str, Any]:
    case = got.case
    return {
        "status": "waiting" if case is None else "created" if got.created else "existing",
        "case_number": case.number if case else None,
        "case_id": case.pk if case else None,
        "case_status": case.status if case else None,
        "channel": got.message.channel,
        "external_id": got.message.external_id,
        "count": got.message.count if not got.info.get("count") else got.info["count"],
    }


@router.post(
    "/workorders", response={200: dict[str, Any], 201: dict[str, Any], 202: dict[str, Any], **ERRORS}
)
def push_workorder(request: HttpRequest, payload: WorkOrderIn) -> Any:
    """接收上游工单（12345、市长信箱、居民信箱、信访）；同一工单重复推送返回原案件。
    Receive an upstream work order; a repeat returns the existing case (200), a new one 201, an
    update for an order not yet received 202 (kept until the order arrives)."""
    user = _integrator(request)
    with acting(request):
        got = services.receive_workorder(user, payload.source, payload.dict())
    body = _answer(got)
    code = 202 if got.case is None else 201 if got.created else 200
    return Status(code, body)


@router.get("/workorders/results", response={200: dict[str, Any], **ERRORS})
def workorder_results(request: HttpRequest, since: str = "", limit: int = 1000, format: str = "json") -> Any:
    """已反馈结果的工单（供热线系统拉取，`format=csv` 为表格）。Work orders whose result was fed
    back since `since` (JSON, or CSV with `format=csv`)."""
    _integrator(request)
    when: dt.datetime | None = None
    if since:
        when = parse_datetime(since)
        if when is None:
            raise invalid(
                "since", "since 须为 ISO 时间", "since must be an ISO date-time", field="since", value=since
            )
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
    rows = services.results_since(when, max(1, min(limit, 5000)))
    if format == "csv":
        # A spreadsheet for systems that import files: the exchange's formula-safe CSV writer.
        from zhizhi.exchange import _write_csv

        columns = ["source", "order_id", "case_number", "status", "result", "finished_at", "fed_back_at"]
        body = _write_csv(columns, iter([[r[c] for c in columns] for r in rows]))
        response = HttpResponse(body, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="workorder-results.csv"'
        return response
    return {"count": len(rows), "results": rows}


@router.post("/camera-events", response={200: dict[str, Any], 201: dict[str, Any], **ERRORS})
def camera_event(request: HttpRequest, payload: CameraEventIn) -> Any:
    """视频AI事件；同一摄像头同类事件在时间窗内合并为一件。A camera AI event; within
    ZHIZHI_CAMERA_WINDOW_MINUTES the same type at the same camera joins the open case (200)."""
    user = _integrator(request)
    with acting(request):
        got = services.receive_camera_event(user, payload.dict())
    return Status(201 if got.created else 200, _answer(got))


@router.get("/cases/{case_id}/messages", response={200: dict[str, Any], **ERRORS})
def case_messages(request: HttpRequest, case_id: int) -> Any:
    """案件及其合并报件的渠道消息（次数、最近接收、反馈时间）。The channel messages behind a case
    and the reports merged into it: count, last_seen, fed_back_at (no reporter details)."""
    case = case_services.get_case(request.auth, case_id)  # type: ignore[attr-defined]
    members = services.family(case)
    rows = (
        ChannelMessage.objects.filter(case__in=members).select_related("case").order_by("received_at", "id")
    )
    return {
        "case": case.number,
        "messages": [
            {
                "channel": m.channel,
                "source": m.source,
                "external_id": m.external_id,
                "case": m.case.number if m.case else None,
                "count": m.count,
                "received_at": m.received_at.isoformat(),
                "last_seen": m.last_seen.isoformat(),
                "fed_back_at": m.fed_back_at.isoformat() if m.fed_back_at else None,
            }
            for m in rows
        ],
    }
