"""Care and risk-area pages under /alerts/: the watched elderly residents of the user's area and one
person's care page (sensors, last activity, window, alarms, visits); the risk-area list with its import;
the matched-residents list that the pushed inbox message links to; a resident's returns.

Thin: rules are in alerts/care.py and alerts/risk.py. Residents are read through
`Person.objects.visible_to(user)`, so someone outside the person's area gets a 404; phone and ID number
are shown masked, and revealing one goes through the registry's reveal endpoint (purpose required,
logged).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Max, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from zhizhi.alerts import care, desk, risk
from zhizhi.alerts.models import Reading
from zhizhi.alerts.risk_models import RiskArea, TravelRecord
from zhizhi.alerts.rule_models import Alarm, AlertRule
from zhizhi.people.models import Person
from zhizhi.permissions import can
from zhizhi.problems import Forbidden, Invalid, Problem
from zhizhi.views import forbidden_page, problem_text

PAGE_SIZE = 50


_staff = desk.staff_page("您的角色不能查看关爱监测", "Your role cannot see care monitoring")


def _person_or_404(request: HttpRequest, pk: int, action: str = "view") -> Person:
    return get_object_or_404(Person.objects.visible_to(request.user, action).select_related("grid"), pk=pk)


def _errors(exc: Invalid) -> list[dict[str, Any]]:
    return [
        {"field": p.field, "text": problem_text(p), "row": p.row, "column": p.column} for p in exc.problems
    ]


# --- care ------------------------------------------------------------------------------------------
@login_required
@_staff
def care_list(request: HttpRequest) -> HttpResponse:
    """/alerts/care/: the watched residents of the user's area, those with an active alarm first."""
    rule = care.inactivity_rule()
    qs = care.watched_people(request.user).annotate(
        sensors=Count("watching_devices", filter=Q(watching_devices__enabled=True), distinct=True),
        last=Max("watching_devices__last_seen_at", filter=Q(watching_devices__enabled=True)),
        alarmed=Count("alarms", filter=Q(alarms__status=Alarm.ACTIVE), distinct=True),
    )
    q = request.GET.get("q", "").strip()
    if q:
        qs = qs.filter(name__contains=q)
    if request.GET.get("alarm") == "1":
        qs = qs.filter(alarmed__gt=0)
    page = Paginator(qs.order_by("-alarmed", "last", "pk"), PAGE_SIZE).get_page(request.GET.get("page"))
    now = timezone.now()
    rows = []
    people = list(page)
    every = care.params_for_people(rule, [p.pk for p in people]) if rule is not None else {}
    for person in people:
        params = every.get(person.pk, {})
        last = person.last  # type: ignore[attr-defined]
        rows.append(
            {
                "person": person,
                "window_hours": care.window_seconds(params) / 3600 if rule is not None else None,
                "silent_hours": round((now - last).total_seconds() / 3600, 1) if last else None,
            }
        )
    return render(
        request,
        "alerts/care_list.html",
        {"rows": rows, "page": page, "q": q, "alarm_only": request.GET.get("alarm") == "1", "rule": rule},
    )


@login_required
@_staff
def care_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """/alerts/care/<person>/: one watched resident; POST changes their own window and quiet hours."""
    person = _person_or_404(request, pk)
    errors: list[dict[str, Any]] = []
    status = 200
    if request.method == "POST":
        if not Person.objects.visible_to(request.user, "change").filter(pk=person.pk).exists():
            return forbidden_page(
                request, "无权修改该居民的关爱设置", "You may not change this resident's care settings"
            )
        from zhizhi.orgs.models import User

        responsible = None
        if request.POST.get("responsible"):
            responsible = User.objects.filter(pk=request.POST["responsible"], is_active=True).first()
        try:
            care.save_watch(
                request.user,
                person,
                silent_hours=request.POST.get("silent_hours", ""),
                quiet_from=request.POST.get("quiet_from", ""),
                quiet_to=request.POST.get("quiet_to", ""),
                no_quiet_hours=request.POST.get("no_quiet_hours") == "1",
                responsible=responsible,
                note=request.POST.get("note", ""),
            )
        except Invalid as exc:
            errors, status = _errors(exc), 400
        else:
            messages.success(request, "关爱监测设置已保存")
            return redirect("alerts_care_detail", pk=person.pk)
    info = care.summary(person)
    rule = care.inactivity_rule()
    # Activity is what the inactivity rule watches (door events), not a smoke detector's series.
    watched = [
        d for d in info["devices"] if rule is None or not rule.device_kind or d.kind == rule.device_kind
    ]
    readings = list(
        Reading.objects.filter(device__in=watched, status=Reading.OK)
        .select_related("device")
        .order_by("-at")[:20]
    )
    return render(
        request,
        "alerts/care_detail.html",
        {
            "person": person,
            "info": info,
            "readings": readings,
            "home": care.home_building(person),
            "no_quiet": info["watch"] is not None and info["watch"].quiet_hours == [],
            "can_change": Person.objects.visible_to(request.user, "change").filter(pk=person.pk).exists(),
            "can_reveal": can(request.user, "reveal", Person),
            "staff": _area_staff(person),
            "errors": errors,
            "form": request.POST if request.method == "POST" else None,
        },
        status=status,
    )


def _area_staff(person: Person) -> list[Any]:
    from zhizhi.orgs.models import User

    grid = person.grid
    if grid is None:
        return []
    regions = [grid.pk] + ([grid.parent_id] if grid.parent_id else [])
    return list(
        User.objects.filter(
            is_active=True, role__in=("grid_worker", "community_worker"), regions__in=regions
        ).distinct()
    )


@login_required
@require_POST
def care_visit(request: HttpRequest, pk: int) -> HttpResponse:
    """安排探视: a 3201 visit case for the person (one per day)."""
    person = _person_or_404(request, pk)
    try:
        case = care.request_visit(request.user, person, note=request.POST.get("note", ""))
    except (Invalid, Forbidden) as exc:
        problems = exc.problems if isinstance(exc, Invalid) else [Problem("forbidden", exc.zh, exc.en)]
        messages.error(request, "; ".join(problem_text(p) for p in problems))
    else:
        messages.success(request, f"已安排探视：{case.number}")
    return redirect("alerts_care_detail", pk=person.pk)


# --- the risk-area list ------------------------------------------------------------------------------
@login_required
@_staff
def risk_list(request: HttpRequest) -> HttpResponse:
    """/alerts/risk/: the list (in force first); maintainers add entries here and import a sheet."""
    errors: list[dict[str, Any]] = []
    status = 200
    if request.method == "POST":
        try:
            risk.save_area(request.user, request.POST.dict())
        except Forbidden as exc:
            return forbidden_page(request, exc.zh, exc.en)
        except Invalid as exc:
            errors, status = _errors(exc), 400
        else:
            messages.success(request, "已保存风险区")
            return redirect("alerts_risk")
    return _risk_page(request, errors=errors, status=status)


def _risk_page(request: HttpRequest, *, errors: list[dict[str, Any]] | None = None, status: int = 200,
               import_errors: list[dict[str, Any]] | None = None) -> HttpResponse:  # fmt: skip
    today = timezone.localdate()
    show_all = request.GET.get("all") == "1"
    qs = RiskArea.objects.all()
    if not show_all:
        qs = qs.filter(Q(valid_to__isnull=True) | Q(valid_to__gte=today))
    areas = list(qs.order_by("-valid_from", "region_name")[:500])
    matched = risk.matched_alarms(request.user).count()
    return render(
        request,
        "alerts/risk_list.html",
        {
            "areas": areas,
            "today": today,
            "show_all": show_all,
            "can_maintain": risk.can_maintain(request.user),
            "levels": RiskArea.LEVELS,
            "errors": errors or [],
            "import_errors": import_errors or [],
            "form": request.POST if request.method == "POST" and errors else None,
            "matched": matched,
            "rule": AlertRule.objects.filter(kind=AlertRule.LIST_MATCH).order_by("code").first(),
        },
        status=status,
    )


@login_required
def risk_edit(request: HttpRequest, pk: int) -> HttpResponse:
    if not risk.can_maintain(request.user):
        return forbidden_page(request, "无权维护风险区名单", "You may not maintain the risk-area list")
    area = get_object_or_404(RiskArea, pk=pk)
    errors: list[dict[str, Any]] = []
    status = 200
    if request.method == "POST":
        if request.POST.get("delete") == "1":
            risk.delete_area(request.user, area)
            messages.success(request, "已删除风险区")
            return redirect("alerts_risk")
        try:
            risk.save_area(request.user, request.POST.dict(), area)
        except Invalid as exc:
            errors, status = _errors(exc), 400
        else:
            messages.success(request, "已保存风险区")
            return redirect("alerts_risk")
    return render(
        request,
        "alerts/risk_edit.html",
        {"area": area, "levels": RiskArea.LEVELS, "errors": errors, "form": request.POST if errors else None},
        status=status,
    )


@login_required
@require_POST
def risk_import(request: HttpRequest) -> HttpResponse:
    upload = request.FILES.get("file")
    if upload is None:
        exc = Invalid([Problem("file", "请选择文件", "Choose a file", field="file")])
        return _risk_page(request, import_errors=_errors(exc), status=400)
    try:
        counts = risk.import_areas(request.user, upload, upload.name or "")
    except Forbidden as exc:
        return forbidden_page(request, exc.zh, exc.en)
    except Invalid as exc:
        return _risk_page(request, import_errors=_errors(exc), status=400)
    messages.success(
        request,
        f"导入完成：新增 {counts['created']}，更新 {counts['updated']}，未变 {counts['unchanged']}；"
        f"新匹配 {counts.get('alarms_raised', 0)} 人，解除 {counts.get('alarms_cleared', 0)} 人",
    )
    return redirect("alerts_risk")


@login_required
def risk_template(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(risk.template_csv(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="risk-areas.csv"'
    return response


# --- matched residents and their returns ---------------------------------------------------------------
@login_required
@_staff
def risk_matches(request: HttpRequest) -> HttpResponse:
    """/alerts/risk/matches/: residents of the user's area matching the list (the pushed list's link)."""
    since = None
    raw = request.GET.get("since", "")
    if raw:
        try:
            since = dt.datetime.fromisoformat(raw)
            if timezone.is_naive(since):
                since = timezone.make_aware(since)
        except ValueError:
            since = None
    show_all = request.GET.get("all") == "1"
    rows = list(risk.matched_alarms(request.user, since=since, active_only=not show_all)[:500])
    return render(
        request,
        "alerts/risk_matches.html",
        {
            "rows": rows,
            "since": since,
            "show_all": show_all,
            "can_reveal": can(request.user, "reveal", Person),
        },
    )


@login_required
@_staff
def risk_person(request: HttpRequest, pk: int) -> HttpResponse:
    """/alerts/risk/people/<person>/: a resident's returns; POST records one (and matches at once)."""
    person = _person_or_404(request, pk)
    errors: list[dict[str, Any]] = []
    status = 200
    if request.method == "POST":
        try:
            if request.POST.get("delete"):
                record = get_object_or_404(TravelRecord, pk=request.POST["delete"], person=person)
                risk.delete_travel(request.user, record)
            else:
                risk.record_travel(
                    request.user,
                    person,
                    arrived_on=request.POST.get("arrived_on", ""),
                    origin=request.POST.get("origin", ""),
                    origin_code=request.POST.get("origin_code", "").strip(),
                    source=request.POST.get("source", "grid_visit"),
                    note=request.POST.get("note", ""),
                )
        except Forbidden:
            raise Http404("no such resident") from None
        except Invalid as exc:
            errors, status = _errors(exc), 400
        else:
            messages.success(request, "已保存返回信息")
            return redirect(reverse("alerts_risk_person", args=[person.pk]))
    return render(
        request,
        "alerts/risk_person.html",
        {
            "person": person,
            "records": list(TravelRecord.objects.filter(person=person).order_by("-arrived_on", "-pk")),
            "alarms": list(
                Alarm.objects.filter(person=person, rule__kind=AlertRule.LIST_MATCH).order_by(
                    "-first_seen_at"
                )[:20]
            ),
            "sources": TravelRecord.SOURCES,
            "can_change": Person.objects.visible_to(request.user, "change").filter(pk=person.pk).exists(),
            "can_reveal": can(request.user, "reveal", Person),
            "errors": errors,
            "form": request.POST if errors else None,
            "today": timezone.localdate(),
        },
        status=status,
    )
