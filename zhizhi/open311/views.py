"""GeoReport v2 endpoints (each in .json and .xml) and the page that issues integrator keys.

Rendering follows the spec: XML is UTF-8 with its declaration and the spec's element names,
JSON is `application/json`; errors are the array of {code, description} with the same HTTP
status. Nothing here decides anything: services.py does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from xml.etree import ElementTree as ET

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt

from zhizhi.open311 import services
from zhizhi.open311.models import IntegratorKey
from zhizhi.open311.services import Open311Error
from zhizhi.permissions import can
from zhizhi.problems import Invalid

# The element name of each item of a list-valued field in XML.
ITEM_TAGS = {"attributes": "attribute", "values": "value", "endpoints": "endpoint", "formats": "format"}
CONTENT_TYPES = {"json": "application/json; charset=utf-8", "xml": "text/xml; charset=utf-8"}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _fill(parent: ET.Element, data: dict[str, Any]) -> None:
    for name, value in data.items():
        child = ET.SubElement(parent, name)
        if isinstance(value, list):
            for item in value:
                sub = ET.SubElement(child, ITEM_TAGS.get(name, "item"))
                if isinstance(item, dict):
                    _fill(sub, item)
                else:
                    sub.text = _text(item)
        elif isinstance(value, dict):
            _fill(child, value)
        else:
            child.text = _text(value)


def _xml(root: str, item: str | None, body: Any) -> str:
    top = ET.Element(root)
    if item is None:
        _fill(top, body)
    else:
        for row in body:
            _fill(ET.SubElement(top, item), row)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(top, encoding="unicode")


def respond(fmt: str, root: str, item: str | None, body: Any, status: int = 200) -> HttpResponse:
    text = json.dumps(body, ensure_ascii=False) if fmt == "json" else _xml(root, item, body)
    return HttpResponse(text, status=status, content_type=CONTENT_TYPES[fmt])


def error(fmt: str, exc: Open311Error) -> HttpResponse:
    body = [{"code": exc.code, "description": exc.description}]
    return respond(fmt, "errors", "error", body, status=exc.code)


View = Callable[..., HttpResponse]


def endpoint(methods: tuple[str, ...]) -> Callable[[View], View]:
    """Allowed methods, jurisdiction_id checked, Open311Error → the spec's error answer."""

    def wrap(view: View) -> View:
        @csrf_exempt
        def inner(request: HttpRequest, fmt: str, **kwargs: Any) -> HttpResponse:
            try:
                if request.method not in methods:
                    response = error(
                        fmt,
                        Open311Error(
                            405, f"Method not allowed; use {', '.join(methods)}", "不支持此请求方法"
                        ),
                    )
                    response["Allow"] = ", ".join(methods)
                    return response
                data = request.POST if request.method == "POST" else request.GET
                services.check_jurisdiction(services.param(data, "jurisdiction_id"))
                return view(request, fmt, data, **kwargs)
            except Open311Error as exc:
                return error(fmt, exc)

        inner.__name__ = view.__name__
        inner.__doc__ = view.__doc__
        return inner

    return wrap


@endpoint(("GET",))
def discovery(request: HttpRequest, fmt: str, data: Any) -> HttpResponse:
    base = request.build_absolute_uri("/open311/v2/")
    body = {
        "changeset": "2026-11-23T00:00:00+08:00",
        "contact": "街道指挥中心 Street command centre",
        "key_service": request.build_absolute_uri("/open311/keys/"),
        "endpoints": [
            {
                "specification": services.SPEC_URL,
                "url": base.rstrip("/"),
                "changeset": "2026-11-23T00:00:00+08:00",
                "type": "production",
                "formats": ["text/xml", "application/json"],
            }
        ],
    }
    return respond(fmt, "discovery", None, body)


@endpoint(("GET",))
def service_list(request: HttpRequest, fmt: str, data: Any) -> HttpResponse:
    return respond(fmt, "services", "service", services.service_list())


@endpoint(("GET",))
def service_definition(request: HttpRequest, fmt: str, data: Any, code: str) -> HttpResponse:
    return respond(fmt, "service_definition", None, services.service_definition(code))


@endpoint(("GET", "POST"))
def requests(request: HttpRequest, fmt: str, data: Any) -> HttpResponse:
    if request.method == "POST":
        key = services.key_for(services.param(data, "api_key"), services.param(data, "jurisdiction_id"))
        created = services.create_request(key, data)
        row = created.request
        body = [
            {
                "service_request_id": row.case.number if row.case else None,
                "token": row.token,
                "service_notice": services.service_notice(row.case.category if row.case else None) or None,
                "account_id": row.account_id or None,
            }
        ]
        return respond(fmt, "service_requests", "request", body)
    rows = services.request_views(services.find_requests(data))
    return respond(fmt, "service_requests", "request", rows)


@endpoint(("GET",))
def request_detail(request: HttpRequest, fmt: str, data: Any, request_id: str) -> HttpResponse:
    case = services.case_for_id(request_id)
    return respond(fmt, "service_requests", "request", [services.request_view(case)])


@endpoint(("GET",))
def token_detail(request: HttpRequest, fmt: str, data: Any, token: str) -> HttpResponse:
    row = services.request_for_token(token)
    body = [{"service_request_id": row.case.number if row.case else None, "token": row.token}]
    return respond(fmt, "service_requests", "request", body)


@endpoint(("GET", "POST"))
def request_updates(request: HttpRequest, fmt: str, data: Any) -> HttpResponse:
    if request.method == "POST":
        key = services.key_for(services.param(data, "api_key"), services.param(data, "jurisdiction_id"))
        event = services.post_update(key, data)
        body = [{"update_id": str(event.pk)}]
        return respond(fmt, "service_request_updates", "request_update", body)
    rows = [services.update_view(e) for e in services.find_updates(data)]
    return respond(fmt, "service_request_updates", "request_update", rows)


# --- the key page -------------------------------------------------------------------------------------
def _forbidden(request: HttpRequest) -> HttpResponse:
    context = {
        "problem_zh": "您没有管理 Open311 对接密钥的权限",
        "problem_en": "You may not manage Open311 keys",
    }
    return render(request, "forbidden.html", context, status=403)


@login_required
def keys_page(request: HttpRequest) -> HttpResponse:
    if not can(request.user, "view", IntegratorKey):
        return _forbidden(request)
    may_change = can(request.user, "add", IntegratorKey)
    issued: str | None = None
    problems: list[str] = []
    if request.method == "POST":
        if not may_change:
            return _forbidden(request)
        if "revoke" in request.POST:
            try:
                key = services.revoke_key(request.user, int(request.POST["revoke"]))
            except (ValueError, IntegratorKey.DoesNotExist):
                return redirect("open311_keys")
            messages.success(request, f"已吊销 {key.name}（{key.prefix}…）")
            return redirect("open311_keys")
        try:
            issued, _ = services.issue_key(
                request.user,
                name=request.POST.get("name", ""),
                jurisdiction_id=request.POST.get("jurisdiction_id", ""),
            )
        except Invalid as exc:
            problems = [p.message for p in exc.problems]
    return render(
        request,
        "open311/keys.html",
        {
            "keys": services.keys_in_use(),
            "issued": issued,
            "problems": problems,
            "may_change": may_change,
            "jurisdiction": services.jurisdiction(),
            "endpoint": request.build_absolute_uri("/open311/v2/"),
        },
    )
