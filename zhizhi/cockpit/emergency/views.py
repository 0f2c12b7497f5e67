"""Emergency pages under /emergency/: the list, declaring an incident on a map, the live board (SSE),
the list of people of special care with logged phone reveals, instructions with read receipts, the
worker's phone page, and the after-action report (print and Excel). Staff read instructions in the
platform inbox (/inbox/), which records the read receipts.
Thin: every rule is in zhizhi/cockpit/emergency/services.py."""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST
from openpyxl import Workbook
from openpyxl.styles import Font

from zhizhi import live
from zhizhi.cockpit.emergency import services
from zhizhi.cockpit.emergency.models import EvacuationTask, Incident
from zhizhi.orgs.models import OrgUnit
from zhizhi.permissions import ROLES
from zhizhi.problems import Forbidden, Invalid, Problem
from zhizhi.views import forbidden_page, is_htmx, problem_text


def _ip(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR")


def _problems(exc: Invalid) -> list[str]:
    return [problem_text(p) for p in exc.problems]


def _refused(request: HttpRequest, exc: Forbidden) -> HttpResponse:
    if is_htmx(request):
        return render(request, "emergency/_problems.html", {"errors": [f"{exc.zh} / {exc.en}"]}, status=403)
    return forbidden_page(request, exc.zh, exc.en)


def _commander_page(request: HttpRequest, incident: Incident) -> HttpResponse | None:
    """None when the user commands this incident; a worker is sent to their own tasks."""
    try:
        services.require_commander(request.user, incident)
    except Forbidden as exc:
        if services.tasks_for(request.user, incident).exists():
            return redirect("emergency_mine", pk=incident.pk)
        return _refused(request, exc)
    return None


# --- list and declare ------------------------------------------------------------------------------
@login_required
def index(request: HttpRequest) -> HttpResponse:
    incidents = list(
        services.incidents_for(request.user)
        .select_related("declared_by")
        .order_by("status", "-declared_at")[:100]
    )
    mine = set(
        EvacuationTask.objects.filter(assignee=request.user, incident__in=incidents).values_list(
            "incident_id", flat=True
        )
    )
    return render(
        request,
        "emergency/index.html",
        {
            "incidents": incidents,
            "mine": mine,
            "commander": services.is_commander(request.user),
            "title": "应急指挥",
        },
    )


def _declare_form(request: HttpRequest) -> dict[str, Any]:
    post = request.POST
    return {
        "kind": post.get("kind", ""),
        "area_mode": post.get("area_mode", ""),
        "title": post.get("title", ""),
        "occurred_at": post.get("occurred_at", ""),
        "location": post.get("location", ""),
        "note": post.get("note", ""),
        "polygon": post.get("polygon", "") or None,
        "center_lng": post.get("center_lng", ""),
        "center_lat": post.get("center_lat", ""),
        "radius_m": post.get("radius_m", ""),
        "building_ids": [b for b in post.get("building_ids", "").replace("，", ",").split(",") if b.strip()],
        "request_id": post.get("request_id", ""),
    }


@login_required
def declare(request: HttpRequest) -> HttpResponse:
    if not services.is_commander(request.user):
        return forbidden_page(
            request,
            "只有街道领导、指挥中心坐席或管理员可以启动应急",
            "Only the street leader, the command centre or an administrator may declare an incident",
        )
    ctx: dict[str, Any] = {
        "kinds": Incident.KINDS,
        "modes": Incident.AREA_MODES,
        "form": {"area_mode": "buildings", "radius_m": "200", "kind": "collapse"},
        "request_id": uuid.uuid4().hex,
        "tile_url": getattr(settings, "ZHIZHI_TILE_URL", ""),
        "title": "启动应急",
    }
    if request.method == "POST":
        form = _declare_form(request)
        try:
            result = services.declare_incident(request.user, **form)
        except Invalid as exc:
            by_field: dict[str, list[str]] = {}
            for p in exc.problems:
                by_field.setdefault(p.field or "__all__", []).append(problem_text(p))
            ctx.update(form=form, errors=_problems(exc), field_errors=by_field, request_id=form["request_id"])
            return render(request, "emergency/declare.html", ctx, status=400)
        for w in result.warnings:
            messages.warning(request, problem_text(w))
        return redirect("emergency_board", pk=result.incident.pk)
    return render(request, "emergency/declare.html", ctx)


# --- the board ---------------------------------------------------------------------------------------
def _board_context(request: HttpRequest, incident: Incident) -> dict[str, Any]:
    broadcasts = list(services.broadcasts_of(incident).select_related("sender"))
    buildings = services.affected_buildings(incident)
    return {
        "incident": incident,
        "counts": services.board_counts(incident),
        "buildings": buildings,
        "help": list(services.open_help(incident)),
        "broadcasts": [(b, services.receipt_counts(b)) for b in broadcasts],
        "overlapping": services.overlapping(incident),
        "cameras": services.cameras_for(incident),
        "map_data": json.dumps(
            {
                "area": incident.area,
                "buildings": [
                    {k: b[k] for k in ("id", "name", "lng", "lat", "households", "done")} for b in buildings
                ],
                "cameras": services.cameras_for(incident),
            },
            ensure_ascii=False,
        ),
        "golden_seconds": services.GOLDEN_MINUTES * 60,
        "elapsed_seconds": int(services.elapsed(incident).total_seconds()),
        "last_event": live.latest_id(),
        "units": OrgUnit.objects.filter(active=True).order_by("kind", "code"),
        "roles": [r for r in ROLES if r[0] in services.STAFF_ROLES],
        "request_id": uuid.uuid4().hex,
        "unassigned": list(
            EvacuationTask.objects.filter(incident=incident, assignee__isnull=True)
            .select_related("house__building", "grid")
            .order_by("seq")[:50]
        ),
        "workers": services.reassign_choices(incident),
        "title": incident.number,
    }


@login_required
def board(request: HttpRequest, pk: int) -> HttpResponse:
    incident = services.get_incident(request.user, pk)
    refused = _commander_page(request, incident)
    if refused is not None:
        return refused
    return render(request, "emergency/board.html", _board_context(request, incident))


@login_required
def events(request: HttpRequest, pk: int) -> HttpResponse:
    incident = services.get_incident(request.user, pk)
    # "broadcast" carries the read receipts of the incident's instructions (zhizhi/notify/broadcast.py).
    return live.stream(request, [services.CHANNEL, "broadcast"], area=incident.area_path)


@login_required
def help_list(request: HttpRequest, pk: int) -> HttpResponse:
    incident = services.get_incident(request.user, pk)
    refused = _commander_page(request, incident)
    if refused is not None:
        return refused
    return render(
        request, "emergency/_help.html", {"incident": incident, "help": services.open_help(incident)}
    )


@login_required
@require_POST
def resolve_help(request: HttpRequest, pk: int, help_id: int) -> HttpResponse:
    incident = services.get_incident(request.user, pk)
    try:
        services.resolve_help(request.user, incident, help_id)
    except Forbidden as exc:
        return _refused(request, exc)
    if is_htmx(request):
        return render(
            request, "emergency/_help.html", {"incident": incident, "help": services.open_help(incident)}
        )
    return redirect("emergency_board", pk=pk)


@login_required
@require_POST
def close(request: HttpRequest, pk: int) -> HttpResponse:
    incident = services.get_incident(request.user, pk)
    try:
        services.close_incident(request.user, incident)
    except Forbidden as exc:
        return _refused(request, exc)
    return redirect("emergency_report", pk=pk)


@login_required
@require_POST
def assign(request: HttpRequest, pk: int, task_id: int) -> HttpResponse:
    incident = services.get_incident(request.user, pk)
    try:
        services.assign_task(request.user, incident, task_id, request.POST.get("assignee"))
    except Forbidden as exc:
        return _refused(request, exc)
    except Invalid as exc:
        for text in _problems(exc):
            messages.error(request, text)
    return redirect("emergency_board", pk=pk)


# --- people of special care -------------------------------------------------------------------
@login_required
def care(request: HttpRequest, pk: int) -> HttpResponse:
    incident = services.get_incident(request.user, pk) if services.is_commander(request.user) else None
    if incident is None:
        # A worker may open the list of an incident touching their area even without a task in it.
        incident = Incident.objects.filter(pk=pk).first()
        if incident is None:
            raise Http404("no such incident")
    try:
        rows = services.care_list(request.user, incident)
    except Forbidden as exc:
        return _refused(request, exc)
    return render(
        request,
        "emergency/care.html",
        {
            "incident": incident,
            "rows": rows,
            "commander": services.is_commander(request.user),
            "title": "重点人群",
        },
    )


@login_required
@require_POST
def reveal(request: HttpRequest, pk: int) -> HttpResponse:
    """Phones in clear for one person (person=<id>) or the whole list (all=1), every reveal logged."""
    incident = Incident.objects.filter(pk=pk).first()
    if incident is None:
        raise Http404("no such incident")
    try:
        if request.POST.get("all") == "1":
            ids = [c.person_id for c in services.care_list(request.user, incident)]
        else:
            ids = [int(request.POST.get("person", "0") or 0)]
        phones = services.reveal_phones(request.user, incident, ids, ip=_ip(request))
    except Forbidden as exc:
        return _refused(request, exc)
    except ValueError:
        return render(
            request,
            "emergency/_problems.html",
            {"errors": [problem_text(Problem("person", "居民编号无效", "Not a resident id", "person"))]},
            status=400,
        )
    return render(
        request,
        "emergency/_phones.html",
        {"phones": phones, "asked": len(ids), "incident": incident},
        status=200 if phones else 403,
    )


# --- instructions ----------------------------------------------------------------------------------
@login_required
@require_POST
def broadcast(request: HttpRequest, pk: int) -> HttpResponse:
    incident = services.get_incident(request.user, pk)
    post = request.POST
    audience = post.get("audience", "all")
    try:
        item = services.broadcast(
            request.user,
            incident,
            subject=post.get("subject", ""),
            body=post.get("body", ""),
            to_all=audience == "all",
            unit_ids=post.getlist("units") if audience != "all" else [],
            roles=post.getlist("roles") if audience != "all" else [],
            channels=post.getlist("channels"),
            request_id=post.get("request_id", ""),
        )
    except Forbidden as exc:
        return _refused(request, exc)
    except Invalid as exc:
        if is_htmx(request):
            return render(request, "emergency/_problems.html", {"errors": _problems(exc)}, status=400)
        for text in _problems(exc):
            messages.error(request, text)
        return redirect("emergency_board", pk=pk)
    messages.success(request, f"指令已发送给{item.total}人 / Instruction sent to {item.total} people")
    return redirect("emergency_board", pk=pk)


@login_required
def receipts(request: HttpRequest, pk: int, broadcast_id: int) -> HttpResponse:
    incident = services.get_incident(request.user, pk)
    refused = _commander_page(request, incident)
    if refused is not None:
        return refused
    item = services.broadcasts_of(incident).filter(pk=broadcast_id).first()
    if item is None:
        raise Http404("no such instruction")
    return render(
        request,
        "emergency/_receipts.html",
        {"item": item, "rows": services.receipts(item), "counts": services.receipt_counts(item)},
    )


# --- the worker's phone page --------------------------------------------------------------------------
@login_required
def mine(request: HttpRequest, pk: int) -> HttpResponse:
    incident = services.get_incident(request.user, pk)
    tasks = list(
        services.tasks_for(request.user, incident)
        .select_related("incident", "house__building", "grid")
        .order_by("seq")
    )
    people = services.household_people(tasks)
    return render(
        request,
        "emergency/mine.html",
        {
            "incident": incident,
            "tasks": [(t, people.get(t.pk, [])) for t in tasks],
            "outcomes": EvacuationTask.OUTCOMES,
            "done": sum(1 for t in tasks if t.done),
            "title": "我的撤离任务",
        },
    )


@login_required
@require_POST
def mark(request: HttpRequest, task_id: int) -> HttpResponse:
    try:
        task = services.mark_task(
            request.user,
            task_id,
            request.POST.get("status", ""),
            note=request.POST.get("note", ""),
            request_id=request.POST.get("request_id", ""),
        )
    except Forbidden as exc:
        return _refused(request, exc)
    except Invalid as exc:
        return render(request, "emergency/_problems.html", {"errors": _problems(exc)}, status=400)
    if not is_htmx(request):
        return redirect("emergency_mine", pk=task.incident_id)
    task = EvacuationTask.objects.select_related("incident", "house__building", "grid").get(pk=task.pk)
    return render(
        request,
        "emergency/_task.html",
        {
            "t": task,
            "people": services.household_people([task]).get(task.pk, []),
            "outcomes": EvacuationTask.OUTCOMES,
            # The phone page's "n / total done" follows the mark (out of band).
            "mine_done": services.tasks_for(request.user, task.incident)
            .filter(status__in=EvacuationTask.DONE)
            .count(),
        },
    )


# --- after-action report -------------------------------------------------------------------------------
def _report_context(request: HttpRequest, pk: int) -> tuple[Incident | None, Any]:
    incident = services.get_incident(request.user, pk)
    refused = _commander_page(request, incident)
    if refused is not None:
        return None, refused
    return incident, {
        "incident": incident,
        "counts": services.board_counts(incident),
        "elapsed": services.elapsed(incident),
        "elapsed_minutes": round(services.elapsed(incident).total_seconds() / 60, 1),
        "timeline": services.timeline(incident),
        "tasks": services.task_rows(incident),
        "help": services.help_rows(incident),
        "broadcasts": [(b, services.receipt_counts(b)) for b in services.broadcasts_of(incident)],
        "buildings": services.affected_buildings(incident),
        "title": f"{incident.number} 复盘报告",
    }


@login_required
def report(request: HttpRequest, pk: int) -> HttpResponse:
    incident, ctx = _report_context(request, pk)
    if incident is None:
        return ctx
    return render(request, "emergency/report.html", ctx)


def _local(value: Any) -> Any:
    """Excel has no time zones: datetimes are written in local time, naive."""
    if isinstance(value, dt.datetime):
        return timezone.localtime(value).replace(tzinfo=None)
    return value


def _sheet(wb: Workbook, title: str, header: list[str], rows: list[list[Any]]) -> None:
    ws = wb.create_sheet(title)
    ws.append(header)
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for row in rows:
        ws.append([_local(v) for v in row])
    for i, _ in enumerate(header, start=1):
        ws.column_dimensions[ws.cell(1, i).column_letter].width = 18


@login_required
def report_xlsx(request: HttpRequest, pk: int) -> HttpResponse:
    incident, ctx = _report_context(request, pk)
    if incident is None:
        return ctx
    wb = Workbook()
    summary = wb.active
    summary.title = "概况"
    counts = ctx["counts"]
    for label, value in [
        ("事件编号", incident.number),
        ("标题", incident.title),
        ("类型", incident.get_kind_display()),
        ("地点", incident.location),
        ("发生时间", _local(incident.occurred_at)),
        ("启动时间", _local(incident.declared_at)),
        ("启动人", str(incident.declared_by)),
        ("范围方式", incident.get_area_mode_display()),
        ("楼幢", incident.buildings_total),
        ("住户（已完成/总数）", f"{counts['households_done']}/{counts['households_total']}"),
        ("重点人群（已完成/总数）", f"{counts['vulnerable_done']}/{counts['vulnerable_total']}"),
        ("用时（分钟）", round(ctx["elapsed"].total_seconds() / 60, 1)),
    ]:
        summary.append([label, value])
    summary.column_dimensions["A"].width = 22
    summary.column_dimensions["B"].width = 40
    _sheet(
        wb,
        "时间线",
        ["时间", "类别", "人员", "内容"],
        [[r["at"], r["kind"], r["actor"], r["text"]] for r in ctx["timeline"]],
    )
    _sheet(
        wb,
        "住户任务",
        [
            "序号",
            "楼幢",
            "单元",
            "楼层",
            "房号",
            "网格",
            "居民",
            "重点人群",
            "负责人",
            "分派时间",
            "结果",
            "标记时间",
            "标记人",
            "用时(分)",
            "备注",
        ],
        [
            [
                r["seq"],
                r["building"],
                r["unit"],
                r["floor"],
                r["room"],
                r["grid"],
                r["residents"],
                r["vulnerable"],
                r["assignee"],
                r["assigned_at"],
                r["status"],
                r["marked_at"],
                r["marked_by"],
                r["minutes"],
                r["note"],
            ]
            for r in ctx["tasks"]
        ],
    )
    _sheet(
        wb,
        "协助请求",
        ["提出时间", "住户", "提出人", "说明", "处理时间", "处理人"],
        [
            [r["raised_at"], r["where"], r["by"], r["note"], r["resolved_at"], r["resolved_by"]]
            for r in ctx["help"]
        ],
    )
    _sheet(
        wb,
        "指令",
        ["发送时间", "标题", "内容", "接收人数", "已送达", "已读"],
        [
            [b.created_at, b.subject, b.body, c["recipients"], c["delivered"], c["read"]]
            for b, c in ctx["broadcasts"]
        ],
    )
    out = io.BytesIO()
    wb.save(out)
    out.seek(0)
    return FileResponse(out, as_attachment=True, filename=f"{incident.number}-复盘报告.xlsx")
