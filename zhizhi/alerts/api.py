"""POST /api/v1/telemetry: devices deliver readings over HTTP (docs/devices.md).

Devices do not hold user API tokens: they authenticate with their own device token, either in the
header `Authorization: Device <code>:<token>` or in the body `{device, token, readings: [...]}`.
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, HttpResponse

from zhizhi.alerts import services
from zhizhi.api import api
from zhizhi.api_common import problem_body
from zhizhi.problems import Invalid, Problem


def _json(status: int, body: dict[str, Any]) -> HttpResponse:
    return HttpResponse(
        json.dumps(body, ensure_ascii=False), status=status, content_type="application/json; charset=utf-8"
    )


@api.post("/telemetry", auth=None, tags=["alerts"], include_in_schema=True)
def telemetry(request: HttpRequest) -> HttpResponse:
    """设备上报读数 / A device delivers a batch of readings: `{device, token, readings: [{at, value}]}`."""
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return _json(
            400, problem_body(Problem("bad_json", "请求体不是合法的 JSON", "The body is not valid JSON"))
        )
    if not isinstance(body, dict):
        body = {"readings": body}
    code, token = str(body.get("device") or ""), str(body.get("token") or "")
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "device ":
        code, _, token = header[7:].strip().partition(":")
    readings = body.get("readings")
    if readings is None and "at" in body:
        readings = [{"at": body.get("at"), "value": body.get("value")}]
    try:
        result = services.ingest(code, token, readings if readings is not None else [], source="http")
    except services.DeviceRefused as refused:
        response = _json(401, problem_body(refused.problem))
        response["WWW-Authenticate"] = 'Device realm="zhizhi"'
        return response
    except Invalid as exc:
        return _json(400, problem_body(*exc.problems))
    return _json(200, result.as_dict())


from zhizhi.alerts import api_rules  # noqa: E402, F401  (rules and alarms: /api/v1/alerts/…)
