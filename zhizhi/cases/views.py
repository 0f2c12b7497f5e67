"""The case workbenches (server-rendered, htmx): the dispatcher's desk, a unit's desk, the grid
worker's phone pages, the supervisor's approvals, the case page, and the KPI page with its Excel
report. Thin: every change is one call into zhizhi/cases/services.py (through `services.perform`),
every read goes through `services.cases_visible_to(user)` (= `Case.objects.visible_to(user)` plus the
user's own unit and 联办 tasks), so a case outside the user's area is a 404.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font

from zhizhi import clock
from zhizhi.cases import kpi, routing, services, transitions
from zhizhi.cases.models import Case, CaseEvent, CasePhoto, Category
from zhizhi.exchange import _xlsx_cell
from zhizhi.geo.models import Region
from zhizhi.notify.models import OutboxMessage
from zhizhi.orgs.models import OrgUnit, User
from zhizhi.problems import Forbidden, Invalid, Problem
from zhizhi.views import english, forbidden_page, is_htmx, problem_text

DESK_ROLES = ("dispatcher", "street_leader")
BOARD_ROWS = 200
# The form fields an action may carry (everything else in the POST is ignored).
ACTION_FIELDS = (
    "note",
    "reason",
    "amount",
    "time_unit",
    "result",
    "lng",
    "lat",
    "satisfaction",
    "into",
    "unit",
    "assignee",
    "request_id",
)
TIME_UNIT_CHOICES = [("work_days", "工作日"), ("work_hours", "工作小时"), ("calendar_minutes", "自然分钟")]
SYSTEM_ACTIONS = {"sla_yellow": "时限预警", "sla_red": "超时"}
CHILD_LEVEL = {Region.DISTRICT: Region.STREET, Region.STREET: Region.COMMUNITY, Region.COMMUNITY: Region.GRID}


# --- who may open which page ----------------------------------------------------------------------
def _role(user: Any) -> str:
    return "superuser" if user.is_superuser else (user.role or "")


def _allow(request: HttpRequest, roles: tuple[str, ...]) -> HttpResponse | None:
    """None when the user's role may open the page, else the bilingual 403 page."""
    if request.user.is_superuser or _role(request.user) in roles:
        return None
    return forbidden_page(request, "您的角色不能使用此工作台", "Your role cannot use this workbench")


def _visible(request: HttpRequest) -> QuerySet[Case]:
    return services.cases_visible_to(request.user)


def _case_rows(qs: QuerySet[Case]) -> QuerySet[Case]:
    return qs.select_related("category", "unit", "assignee", "grid", "suggested_unit")


def _forms_context(user: Any, case: Case, only: tuple[str, ...] | None = None) -> dict[str, Any]:
    allowed = services.allowed_now(user, case)
    if only is not None:
        # The page's order: the step a person most likely takes next comes first.
        allowed = [a for a in only if a in allowed]
    return {
        "case": case,
        "allowed": allowed,
        "actions": [(a, transitions.LABELS.get(a, a)) for a in allowed],
        "request_id": uuid.uuid4().hex,
    }


def _common() -> dict[str, Any]:
    return {
        "return_reasons": services.RETURN_REASONS,
        "time_units": TIME_UNIT_CHOICES,
        "satisfactions": list(services.SATISFACTION_WORDS),
        "units": list(OrgUnit.objects.filter(active=True).order_by("kind", "code")),
        "tile_url": getattr(settings, "ZHIZHI_TILE_URL", ""),
    }


# --- index ----------------------------------------------------------------------------------------
@login_required
def index(request: HttpRequest) -> HttpResponse:
    """/cases/: each role's own workbench."""
    role = _role(request.user)
    if role in ("superuser", *DESK_ROLES):
        return redirect("cases_dispatch")
    if role == "grid_worker":
        return redirect("cases_mobile")
    if role in services.SUPERVISOR_ROLES:
        return redirect("cases_unit")
    return forbidden_page(request, "您的角色没有案件工作台", "Your role has no case workbench")


# --- the dispatcher's workbench ---------------------------------------------------------------------
@login_required
def dispatch_bench(request: HttpRequest) -> HttpResponse:
    denied = _allow(request, DESK_ROLES)
    if denied:
        return denied
    user: Any = request.user
    queue = list(_case_rows(services.dispatcher_queue(user))[:200])
    timed = _visible(request).filter(status__in=transitions.OPEN, stage_due_at__isnull=False)
    levels = {r["sla_level"]: r["n"] for r in timed.values("sla_level").annotate(n=Count("id")).order_by()}
    level = request.GET.get("level", "")
    if level in dict(Case.SLA_LEVELS):
        timed = timed.filter(sla_level=level)
    board = list(_case_rows(timed).order_by("stage_due_at", "id")[:BOARD_ROWS])
    to_verify = list(_case_rows(_visible(request).filter(status="finished")).order_by("finished_at")[:100])
    to_visit = list(_case_rows(_visible(request).filter(status="closed")).order_by("closed_at")[:100])
    for case in queue:
        # The unit registration suggested; for older rows without one, ask the routing rules now.
        unit = case.suggested_unit
        if unit is None and case.status != "reported":
            unit = routing.route(case.category, case.grid, category_certain=False).unit
        setattr(case, "pick_unit", unit)  # noqa: B010
    context = {
        "queue": [c for c in queue if c.status != "returned"],
        "returns": [c for c in queue if c.status == "returned"],
        "board": board,
        "board_more": len(board) == BOARD_ROWS,
        "levels": [(code, label, levels.get(code, 0)) for code, label in Case.SLA_LEVELS],
        "level": level,
        "to_verify": to_verify,
        "to_visit": to_visit,
        "now": clock.now(),
        "request_id": uuid.uuid4().hex,
        **_common(),
    }
    return render(request, "cases/dispatch.html", context)


# --- a unit's workbench -----------------------------------------------------------------------------
UNIT_STATUSES = ("dispatched", "handling", "extension_pending", "deferred", "finished")


@login_required
def unit_bench(request: HttpRequest) -> HttpResponse:
    denied = _allow(request, services.STAFF_ROLES)
    if denied:
        return denied
    user: Any = request.user
    mine = Q(assignee=user)
    if user.org_unit_id:
        mine |= Q(unit_id=user.org_unit_id) | Q(tasks__unit_id=user.org_unit_id)
    cases = list(
        _case_rows(_visible(request).filter(mine, status__in=UNIT_STATUSES))
        .distinct()
        .order_by("status", "stage_due_at", "id")[:300]
    )
    rows = [_forms_context(user, c) for c in cases]
    return render(
        request,
        "cases/unit.html",
        {"rows": rows, "unit": user.org_unit, **_common()},
    )


# --- the grid worker's phone pages ----------------------------------------------------------------
@login_required
def mobile_bench(request: HttpRequest) -> HttpResponse:
    denied = _allow(request, services.STAFF_ROLES)
    if denied:
        return denied
    user: Any = request.user
    tasks = list(
        _case_rows(_visible(request).filter(assignee=user, status__in=transitions.OPEN)).order_by(
            "stage_due_at", "reported_at", "id"
        )[:100]
    )
    markers = [
        {
            "number": c.number,
            "title": c.title,
            "lng": c.lng,
            "lat": c.lat,
            "url": reverse("case_detail", args=[c.pk]),
        }
        for c in tasks
        if c.lng is not None and c.lat is not None
    ]
    rows = [_forms_context(user, c, ("sign", "finish", "arrive", "followup", "return")) for c in tasks]
    return render(
        request,
        "cases/mobile.html",
        {"rows": rows, "markers": markers, "today": clock.today(), **_common()},
    )


# --- the supervisor's approvals -----------------------------------------------------------------------
APPROVAL_ACTIONS = (
    "approve_extension",
    "deny_extension",
    "redispatch",
    "reject",
    "reopen",
    "close_with_explanation",
)


@login_required
def approvals(request: HttpRequest) -> HttpResponse:
    denied = _allow(request, services.SUPERVISOR_ROLES)
    if denied:
        return denied
    user: Any = request.user
    candidates = _case_rows(
        _visible(request).filter(status__in=("extension_pending", "returned", "unsatisfied"))
    )
    sections: dict[str, list[dict[str, Any]]] = {"extension_pending": [], "returned": [], "unsatisfied": []}
    for case in candidates.order_by("updated_at")[:300]:
        ctx = _forms_context(user, case, APPROVAL_ACTIONS)
        if ctx["allowed"]:
            sections[case.status].append(ctx)
    return render(request, "cases/approvals.html", {"sections": sections, **_common()})


# --- the case page --------------------------------------------------------------------------------
def _case_or_404(request: HttpRequest, pk: int) -> Case:
    return services.get_case(request.user, pk)


@login_required
def case_detail(request: HttpRequest, pk: int) -> HttpResponse:
    case = _case_or_404(request, pk)
    events = list(CaseEvent.objects.filter(case=case).select_related("actor").order_by("at", "id"))
    labels = dict(Case.STATUSES)
    for event in events:
        # Display-only attributes for the template (the event itself is append-only).
        label = transitions.LABELS.get(event.action, SYSTEM_ACTIONS.get(event.action, event.action))
        setattr(event, "action_label", label)  # noqa: B010
        setattr(event, "from_label", labels.get(event.from_status, ""))  # noqa: B010
        setattr(event, "to_label", labels.get(event.to_status, ""))  # noqa: B010
    photos = list(CasePhoto.objects.filter(case=case))
    deliveries = list(
        OutboxMessage.objects.filter(cause=f"cases.case:{case.pk}")
        .select_related("user")
        .order_by("created_at", "id")
    )
    shape = json.dumps({"type": "Point", "coordinates": [case.lng, case.lat]}) if case.lng is not None else ""
    return render(
        request,
        "cases/detail.html",
        {
            **_forms_context(request.user, case),
            "events": events,
            "photos": photos,
            "deliveries": deliveries,
            "shape": shape,
            "statuses": dict(Case.STATUSES),
            # A resident following their own report sees the steps, not staff names or deliveries.
            "staff_view": request.user.is_superuser or _role(request.user) in services.STAFF_ROLES,
            **_common(),
        },
    )


@login_required
def case_by_number(request: HttpRequest, number: str) -> HttpResponse:
    case = _visible(request).filter(number=number).first()
    if case is None:
        raise services.NotFound()
    return redirect("case_detail", pk=case.pk)


@login_required
def case_photo(request: HttpRequest, pk: int, photo_id: int) -> FileResponse:
    """A case photo, only for someone who can see the case (photos are not public media)."""
    case = _case_or_404(request, pk)
    photo = CasePhoto.objects.filter(case=case, pk=photo_id).first()
    if photo is None:
        raise Http404("no such photo")
    return FileResponse(photo.file.open("rb"), content_type=photo.content_type)


# --- actions ------------------------------------------------------------------------------------------
def _problem_response(
    request: HttpRequest, problems: list[Problem], status: int, allowed: list[str] | None = None
) -> HttpResponse:
    context = {
        "messages_text": [problem_text(p) for p in problems],
        "allowed": [(a, transitions.LABELS.get(a, a)) for a in (allowed or [])],
        "show_allowed": allowed is not None,
        "fragment": request.POST.get("fragment", ""),
        "back": request.POST.get("next") or "",
    }
    template = "cases/_problem.html" if is_htmx(request) else "cases/problem.html"
    return render(request, template, context, status=status)


def _next_url(request: HttpRequest, case: Case) -> str:
    target = request.POST.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return target
    return reverse("case_detail", args=[case.pk])


@login_required
@require_POST
def case_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """Run one action of the transition table on one case (POST, htmx or a plain form with photos).

    409 (not allowed in this status) shows what is allowed now, 403 the wrong person, 400 bad input,
    404 a case outside the user's area."""
    user: Any = request.user
    case = _case_or_404(request, pk)
    payload: dict[str, Any] = {k: request.POST[k] for k in ACTION_FIELDS if k in request.POST}
    uploads = request.FILES.getlist("photos")
    request_id = str(payload.get("request_id", ""))[:64]
    if request_id and CaseEvent.objects.filter(case=case, request_id=request_id).exists():
        uploads = []  # a repeated submit: the action ran once already, so its photos are stored
    try:
        with transaction.atomic():
            ids: list[int] = []
            for upload in uploads:
                if not upload.size:
                    continue  # an empty file input on a phone
                services.check_photo_size(upload.size)
                data = upload.read(services.photo_limit() + 1)
                ids.append(services.add_photo(user, case.pk, name=upload.name or "", data=data).pk)
            if ids:
                payload["photos"] = ids
            case = services.perform(user, case.pk, action, **payload)
    except services.IllegalAction as exc:
        return _problem_response(request, [exc.problem], 409, exc.allowed)
    except Forbidden as exc:
        return _problem_response(request, [Problem("forbidden", exc.zh, exc.en)], 403)
    except Invalid as exc:
        return _problem_response(request, exc.problems, 400)
    case.refresh_from_db()
    label = transitions.LABELS.get(action, action)
    if is_htmx(request):
        return render(
            request,
            "cases/_done.html",
            {"case": case, "label": label, "fragment": request.POST.get("fragment", "")},
        )
    messages.success(request, f"{case.number}：{label}（{case.get_status_display()}）")
    return redirect(_next_url(request, case))


# --- the reporter's rating page (the SMS link) ----------------------------------------------------------
def rate_page(request: HttpRequest, token: str) -> HttpResponse:
    """回访评价 by the reporter, with the secret from the SMS link (no login)."""
    case = services.case_for_rating(token)
    done = ""
    problems: list[str] = []
    if request.method == "POST":
        try:
            case = services.visit_case(
                None,
                case.pk,
                satisfaction=request.POST.get("satisfaction", ""),
                note=request.POST.get("note", "")[:500],
                rate_token=token,
            )
            done = case.get_satisfaction_display()
        except services.IllegalAction as exc:
            problems = [problem_text(exc.problem)]
        except Invalid as exc:
            problems = [problem_text(p) for p in exc.problems]
    return render(
        request,
        "cases/rate.html",
        {
            "case": case,
            "done": done,
            "problems": problems,
            "satisfactions": list(services.SATISFACTION_WORDS),
        },
        status=409 if problems and case.status != "closed" else 400 if problems else 200,
    )


# --- KPIs -----------------------------------------------------------------------------------------------
def _period(request: HttpRequest) -> tuple[kpi.Period, str]:
    """The period of the KPI page and the query string that keeps it: a date range (`start`,
    `end`, both days included) or a month (`month=YYYY-MM`, default this month)."""
    start, end = request.GET.get("start", ""), request.GET.get("end", "")
    if start and end:
        try:
            first, last = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
        except ValueError:
            first = last = None  # type: ignore[assignment]
        if first and last and first <= last and (last - first).days <= 366:
            return kpi.Period.days(first, last), f"start={first.isoformat()}&end={last.isoformat()}"
    raw = request.GET.get("month", "")
    try:
        year, month = (int(x) for x in raw.split("-", 1))
        if 2000 <= year <= 2100 and 1 <= month <= 12:
            period = kpi.Period.month(year, month)
            return period, f"month={period.label}"
    except ValueError:
        pass
    today = clock.today()
    period = kpi.Period.month(today.year, today.month)
    return period, f"month={period.label}"


def _top_region(request: HttpRequest) -> Region | None:
    wanted = request.GET.get("region", "")
    regions = Region.objects.visible_to(request.user)
    if wanted.isdigit():
        found = regions.filter(pk=int(wanted)).first()
        if found is None:
            raise Http404("no such region in your area")
        return found
    return regions.order_by("path").first()


def _region_rows(cases: QuerySet[Case], region: Region, period: kpi.Period, keep: str) -> list[kpi.KpiRow]:
    child = CHILD_LEVEL.get(region.level)
    if child is None:
        return []
    width = len(region.path) + Region.CODE_LENGTHS[child] + 1
    rows = kpi.breakdown(cases, period, f"prefix:{width}")
    known = {r.path: r for r in Region.objects.filter(path__in=[row.key for row in rows])}
    for row in rows:
        found = known.get(row.key)
        row.label = found.name if found else "（区域外）"
        row.url = f"?region={found.pk}&{keep}" if found else ""
    return rows


def _labelled(rows: list[kpi.KpiRow], model: Any, attr: str = "name") -> list[kpi.KpiRow]:
    objs = {o.pk: o for o in model.objects.filter(pk__in=[r.key for r in rows if r.key is not None])}
    for row in rows:
        obj = objs.get(row.key)
        if obj is None:
            row.label = "（未指定）"
        elif model is User:
            row.label = obj.full_name or obj.username
        else:
            row.label = str(getattr(obj, attr))
    return rows


def kpi_data(request: HttpRequest, *, trend_times: bool = True) -> dict[str, Any]:
    period, keep = _period(request)
    month = period.label
    region = _top_region(request)
    cases = _visible(request)
    if region is not None:
        cases = cases.filter(area_path__startswith=region.path)
    totals = kpi.total(cases, period)
    if region is not None and region.level != Region.GRID:
        drill = _region_rows(cases, region, period, keep)
        drill_kind = dict(Region.LEVELS)[CHILD_LEVEL[region.level]]
    else:
        drill = _labelled(kpi.breakdown(cases, period, "person"), User)
        drill_kind = "人员"
    by_unit = sorted(
        _labelled(kpi.breakdown(cases, period, "unit"), OrgUnit), key=lambda r: (-r.accepted, r.label)
    )
    by_category = sorted(
        _labelled(kpi.breakdown(cases, period, "category"), Category, "name"),
        key=lambda r: (-r.accepted, r.label),
    )
    work = kpi.workload(cases, period)
    people = {u.pk: u for u in User.objects.filter(pk__in=[r["actor_id"] for r in work])}
    workload = [
        {
            **r,
            "name": (people[r["actor_id"]].full_name or people[r["actor_id"]].username)
            if r["actor_id"] in people
            else "",
            "actions_text": "、".join(
                f"{transitions.LABELS.get(a, a)}{n}" for a, n in sorted(r["actions"].items())
            ),
        }
        for r in work
    ]
    # The trend chart shows counts and rates only; the Excel report carries the times too.
    trend = kpi.trend(cases, period, 6, times=trend_times)
    crumbs = []
    if region is not None:
        top = Region.objects.visible_to(request.user).order_by("path").first()
        node: Region | None = region
        while node is not None:
            crumbs.append(node)
            if top is not None and node.pk == top.pk:
                break
            node = node.parent
        crumbs.reverse()
    return {
        "period": period,
        "month": month,
        "keep": keep,
        "month_value": month if keep.startswith("month=") else "",
        "region": region,
        "crumbs": crumbs,
        "totals": totals,
        "drill": drill,
        "drill_kind": drill_kind,
        "by_unit": by_unit,
        "by_category": by_category,
        "workload": workload,
        "trend": trend,
    }


def _fmt(key: str, value: Any) -> str:
    if value is None:
        return "—"
    if key in kpi.RATES:
        return f"{value * 100:.1f}%"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _percent(rate: float | None) -> float | None:
    # None stays None: ECharts leaves a gap instead of drawing a false 0 %.
    return None if rate is None else round(rate * 100, 1)


def _table(rows: list[kpi.KpiRow]) -> list[dict[str, Any]]:
    return [{"row": r, "cells": [_fmt(k, r.value(k)) for k, _, _ in kpi.COLUMNS]} for r in rows]


@login_required
def kpi_page(request: HttpRequest) -> HttpResponse:
    denied = _allow(request, services.STAFF_ROLES)
    if denied:
        return denied
    data = kpi_data(request, trend_times=False)
    en = english()
    charts = {
        "units": {
            "names": [r.label for r in data["by_unit"][:15]],
            "accepted": [r.accepted for r in data["by_unit"][:15]],
            "closed": [r.closed for r in data["by_unit"][:15]],
            "on_time": [_percent(r.on_time_rate) for r in data["by_unit"][:15]],
        },
        "trend": {
            "months": [r.label for r in data["trend"]],
            "accepted": [r.accepted for r in data["trend"]],
            "closed": [r.closed for r in data["trend"]],
            "close_rate": [_percent(r.close_rate) for r in data["trend"]],
            "on_time_rate": [_percent(r.on_time_rate) for r in data["trend"]],
        },
    }
    return render(
        request,
        "cases/kpi.html",
        {
            **data,
            "headers": [en_ if en else zh for _, zh, en_ in kpi.COLUMNS],
            "total_cells": [(zh, _fmt(k, data["totals"].value(k))) for k, zh, _ in kpi.COLUMNS],
            "drill_table": _table(data["drill"]),
            "unit_table": _table(data["by_unit"]),
            "category_table": _table(data["by_category"][:30]),
            "charts": charts,
        },
    )


def _sheet(book: Workbook, title: str, first: str, rows: list[kpi.KpiRow]) -> None:
    sheet = book.create_sheet(title)
    bold = Font(bold=True)
    head = []
    for name in [first, *[zh for _, zh, _ in kpi.COLUMNS]]:
        cell = WriteOnlyCell(sheet, value=name)
        cell.font = bold
        head.append(cell)
    sheet.append(head)
    for row in rows:
        values: list[Any] = [_xlsx_cell(sheet, row.label)]
        for key, _, _ in kpi.COLUMNS:
            value = row.value(key)
            if key in kpi.RATES and value is not None:
                cell = WriteOnlyCell(sheet, value=round(value, 4))
                cell.number_format = "0.0%"
                values.append(cell)
            elif isinstance(value, float):
                values.append(round(value, 2))
            else:
                values.append(value)
        sheet.append(values)


@login_required
def kpi_export(request: HttpRequest) -> HttpResponse:
    """The monthly report as .xlsx: totals and trend, by region, unit, category, and workload."""
    denied = _allow(request, services.STAFF_ROLES)
    if denied:
        return denied
    data = kpi_data(request)
    book = Workbook(write_only=True)
    totals = data["totals"]
    totals.label = f"合计 {data['month']}"
    _sheet(book, "汇总", "期间", [totals, *data["trend"]])
    _sheet(book, f"按{data['drill_kind']}", data["drill_kind"], data["drill"])
    _sheet(book, "按单位", "承办单位", data["by_unit"])
    _sheet(book, "按类别", "类别", data["by_category"])
    sheet = book.create_sheet("工作量")
    sheet.append(["人员", "操作数", "涉及案件数", "操作明细"])
    for r in data["workload"]:
        sheet.append(
            [_xlsx_cell(sheet, r["name"]), r["events"], r["cases"], _xlsx_cell(sheet, r["actions_text"])]
        )
    out = io.BytesIO()
    book.save(out)
    where = data["region"].name if data["region"] is not None else "全部"
    name = f"案件考核月报-{where}-{data['month']}.xlsx"
    response = HttpResponse(
        out.getvalue(), content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    response["Content-Disposition"] = f"attachment; filename*=UTF-8''{_quote(name)}"
    return response


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name)


# --- the responsibility list (权责清单) and its Excel exchange -------------------------------------
def _rlist_denied(request: HttpRequest) -> HttpResponse | None:
    from zhizhi.cases import rlist_excel

    if rlist_excel.can_manage(request.user):
        return None
    return forbidden_page(
        request, "只有街道领导或管理员可以维护权责清单", "Only street leaders or admins may maintain the list"
    )


@login_required
def rlist_page(request: HttpRequest) -> HttpResponse:
    """/cases/rlist/: the list grouped by 大类, its Excel export, and an upload form for import."""
    from zhizhi.cases import rlist_excel

    denied = _rlist_denied(request)
    if denied is not None:
        return denied
    problems: list[dict[str, Any]] = []
    counts: dict[str, Any] | None = None
    status = 200
    if request.method == "POST":
        upload = request.FILES.get("file")
        try:
            if upload is None:
                raise Invalid(
                    [Problem("file", "请选择要导入的文件", "Choose a file to import", field="file")]
                )
            counts = rlist_excel.import_rlist(upload, upload.name or "", request.user)
        except Invalid as exc:
            status = 400
            problems = [
                {"row": p.row, "column": p.column, "value": p.value, "text": problem_text(p)}
                for p in exc.problems
            ]
    groups: list[dict[str, Any]] = []
    by_code: dict[str, dict[str, Any]] = {}
    for leaf in rlist_excel._leaves():
        parent = leaf.parent
        assert parent is not None
        group = by_code.get(parent.code)
        if group is None:
            group = by_code[parent.code] = {"category": parent, "rows": []}
            groups.append(group)
        # The sheet's own row minus the 大类 cells, so the page shows exactly what export writes.
        group["rows"].append(rlist_excel.leaf_row(leaf)[3:])
    context = {"groups": groups, "headers": rlist_excel.HEADERS[3:], "problems": problems, "counts": counts}
    return render(request, "cases/rlist.html", context, status=status)


@login_required
def rlist_export(request: HttpRequest) -> HttpResponse:
    from zhizhi.cases import rlist_excel

    denied = _rlist_denied(request)
    if denied is not None:
        return denied
    name = f"权责清单-{clock.now().strftime('%Y%m%d-%H%M')}.xlsx"
    response = HttpResponse(
        rlist_excel.export_rlist(),
        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )
    response["Content-Disposition"] = f"attachment; filename*=UTF-8''{_quote(name)}"
    return response
