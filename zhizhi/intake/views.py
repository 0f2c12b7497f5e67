"""Intake pages: the resident report (no login) and its follow link, the public grid outline, the
operator's phone form and work-order import (dispatchers), the grid worker's patrol report.

Every error is shown in both languages; text typed by residents is rendered escaped."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_POST

from zhizhi.cases import services as case_services
from zhizhi.cases.models import Case, Category
from zhizhi.exchange import read_limited
from zhizhi.geo.models import Region
from zhizhi.intake import services
from zhizhi.problems import Invalid, Problem
from zhizhi.views import forbidden_page, problem_text

DESK_ROLES = ("dispatcher", "street_leader")


def _client_ip(request: HttpRequest) -> str:
    # Behind the reverse proxy of the deployment guide the first X-Forwarded-For hop is the client.
    if getattr(settings, "ZHIZHI_TRUST_X_FORWARDED_FOR", False):
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return forwarded.split(",")[0].strip()
    return str(request.META.get("REMOTE_ADDR", ""))


def _files(request: HttpRequest, name: str = "photos") -> list[tuple[str, bytes]]:
    limit = case_services.photo_limit()
    out = []
    for upload in request.FILES.getlist(name):
        if upload.size and upload.size > limit:
            # Refused by size before reading it (the check gives the bilingual message).
            case_services.check_photo_size(upload.size)
        out.append((upload.name or "photo", upload.read(limit + 1)))
    return out


def _leaves() -> list[Category]:
    return list(Category.objects.filter(active=True, parent__isnull=False).select_related("parent"))


def _staff(request: HttpRequest, roles: tuple[str, ...]) -> HttpResponse | None:
    user: Any = request.user
    if user.is_superuser or getattr(user, "role", "") in roles:
        return None
    return forbidden_page(request, "您的角色不能使用此页面", "Your role cannot use this page")


# --- public: the resident report -------------------------------------------------------------------
def report(request: HttpRequest) -> HttpResponse:
    """/intake/report/: describe or pick, photos, GPS or a tap on the map, contact (no login)."""
    problems: list[str] = []
    fields: list[str] = []
    form = request.POST if request.method == "POST" else {}
    status = 200
    if request.method == "POST":
        try:
            got = services.resident_report(
                description=request.POST.get("description", ""),
                category=request.POST.get("category") or None,
                lng=request.POST.get("lng"),
                lat=request.POST.get("lat"),
                gps_lng=request.POST.get("gps_lng"),
                gps_lat=request.POST.get("gps_lat"),
                address=request.POST.get("address", "")[:200],
                reporter_name=request.POST.get("reporter_name", "")[:50],
                reporter_phone=request.POST.get("reporter_phone", ""),
                photos=_files(request),
                ip=_client_ip(request),
                code=request.POST.get("code", ""),
            )
        except services.RateLimited as exc:
            response = render(
                request,
                "intake/report.html",
                {"problems": [f"{exc.zh} / {exc.en}"], "form": form, "categories": _leaves()},
                status=429,
            )
            response["Retry-After"] = str(exc.retry_after)
            return response
        except Invalid as exc:
            problems = [problem_text(p) for p in exc.problems]
            fields = [p.field for p in exc.problems if p.field]
            status = 400
        else:
            assert got.case is not None
            return render(
                request,
                "intake/reported.html",
                {"case": got.case, "follow": f"/intake/follow/{got.message.follow_token}/"},
                status=201,
            )
    return render(
        request,
        "intake/report.html",
        {
            "problems": problems,
            "fields": fields,
            "form": form,
            "categories": _leaves(),
            "verify": services.verification_required(),
        },
        status=status,
    )


@require_POST
def send_code(request: HttpRequest) -> JsonResponse:
    """/intake/report/code/: text a verification code to the phone (JSON answer, 429 when limited)."""
    try:
        services.send_code(request.POST.get("reporter_phone", ""), _client_ip(request))
    except services.RateLimited as exc:
        response = JsonResponse(
            {"errors": [{"code": "rate_limited", "zh": exc.zh, "en": exc.en}]}, status=429
        )
        response["Retry-After"] = str(exc.retry_after)
        return response
    except Invalid as exc:
        return JsonResponse({"errors": [p.as_dict() for p in exc.problems]}, status=400)
    return JsonResponse({"sent": True, "zh": "验证码已发送", "en": "The code was sent"})


def follow(request: HttpRequest, token: str) -> HttpResponse:
    """/intake/follow/<token>/: the reporter's view (status, result) and the rating once closed."""
    message = services.message_for_follow(token)
    if message is None or message.case is None:
        return render(request, "intake/follow.html", {"missing": True}, status=404)
    case = services.root_of(message.case)
    problems: list[str] = []
    done = ""
    if request.method == "POST":
        try:
            case = case_services.visit_case(
                None,
                case.pk,
                satisfaction=request.POST.get("satisfaction", ""),
                note=request.POST.get("note", "")[:500],
                rate_token=case.rate_token,
            )
            done = case.get_satisfaction_display()
        except case_services.IllegalAction as exc:
            problems = [problem_text(exc.problem)]
        except Invalid as exc:
            problems = [problem_text(p) for p in exc.problems]
    return render(
        request,
        "intake/follow.html",
        {
            "case": case,
            "own": message.case,
            "done": done,
            "problems": problems,
            "satisfactions": list(case_services.SATISFACTION_WORDS),
        },
        status=400 if problems else 200,
    )


@cache_control(public=True, max_age=300)
def outline(request: HttpRequest) -> JsonResponse:
    """/intake/outline.geojson: the grids' outlines for the public map (shape and name only)."""
    grids = Region.objects.filter(level=Region.GRID, boundary__isnull=False).order_by("code")
    features = [{"type": "Feature", "geometry": g.boundary, "properties": {"name": g.name}} for g in grids]
    return JsonResponse({"type": "FeatureCollection", "features": features})


# --- staff: operator form, import, patrol -------------------------------------------------------
@login_required
def operator(request: HttpRequest) -> HttpResponse:
    """/intake/operator/: a call or letter typed in by the operator (坐席录入)."""
    denied = _staff(request, DESK_ROLES)
    if denied:
        return denied
    problems: list[str] = []
    got = None
    status = 200
    if request.method == "POST":
        data = {k: request.POST.get(k, "") for k in services.WORKORDER_FIELDS}
        try:
            got = services.operator_workorder(request.user, request.POST.get("source", "12345"), data)
        except Invalid as exc:
            problems = [problem_text(p) for p in exc.problems]
            status = 400
    return render(
        request,
        "intake/operator.html",
        {
            "problems": problems,
            "got": got,
            "sources": services.SOURCES,
            "categories": _leaves(),
            "form": request.POST if problems else {},
        },
        status=status,
    )


@login_required
def import_page(request: HttpRequest) -> HttpResponse:
    """/intake/import/: save a source's column mapping, then import its export file."""
    denied = _staff(request, DESK_ROLES)
    if denied:
        return denied
    problems: list[str] = []
    result: dict[str, Any] | None = None
    source = request.POST.get("source") or request.GET.get("source") or "12345"
    status = 200
    if request.method == "POST":
        try:
            if request.POST.get("mapping"):
                try:
                    mapping = json.loads(request.POST["mapping"])
                except ValueError:
                    raise Invalid(
                        [Problem("mapping_json", "列映射须为 JSON 对象", "The mapping must be a JSON object")]
                    ) from None
                if not isinstance(mapping, dict):
                    raise Invalid(
                        [Problem("mapping_json", "列映射须为 JSON 对象", "The mapping must be a JSON object")]
                    )
                services.save_mapping(source, mapping)
            upload = request.FILES.get("file")
            if upload is not None:
                data = read_limited(upload)
                result = services.import_workorders(request.user, source, data, upload.name or "")
                problems = [
                    f"第{e['row']}行 / row {e['row']}: {e.get('zh', '')} / {e.get('en', '')}"
                    for e in result["errors"]
                ]
        except Invalid as exc:
            problems = [problem_text(p) for p in exc.problems]
            status = 400
    try:
        key = services.source_by(source)
    except Invalid:
        key = "12345"
    return render(
        request,
        "intake/import.html",
        {
            "problems": problems,
            "result": result,
            "source": key,
            "sources": services.SOURCES,
            "mapping": json.dumps(services.mapping_for(key), ensure_ascii=False),
            "fields": services.WORKORDER_FIELDS,
        },
        status=status,
    )


@login_required
def patrol(request: HttpRequest) -> HttpResponse:
    """/intake/patrol/: the grid worker's patrol report from the phone (photo, GPS, category)."""
    denied = _staff(request, case_services.STAFF_ROLES)
    if denied:
        return denied
    problems: list[str] = []
    got = None
    status = 200
    if request.method == "POST":
        try:
            got = services.patrol_report(
                request.user,
                category=request.POST.get("category", ""),
                description=request.POST.get("description", ""),
                lng=request.POST.get("lng"),
                lat=request.POST.get("lat"),
                photos=_files(request),
            )
            status = 201
        except Invalid as exc:
            problems = [problem_text(p) for p in exc.problems]
            status = 400
    user: Any = request.user
    recent = Case.objects.filter(Q(channel="patrol"), created_by=user).order_by("-id")[:10]
    return render(
        request,
        "intake/patrol.html",
        {"problems": problems, "got": got, "categories": _leaves(), "recent": recent},
        status=status,
    )
