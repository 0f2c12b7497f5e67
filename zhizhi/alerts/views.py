"""Alert pages under /alerts/: the live alarm board (server-sent events), an alarm's page with its
timeline and the acknowledge button, the rule editor, the device pages, and the GeoJSON layers of the
map. Thin: reads and checked saves are in zhizhi/alerts/desk.py; everything is area-scoped (an alarm
or a device outside the user's area is a 404).
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from zhizhi import clock, live
from zhizhi.alerts import desk, forms, services
from zhizhi.alerts.models import Device, Reading
from zhizhi.alerts.rule_models import Alarm, AlarmEvent, AlertRule, DeviceRuleOverride
from zhizhi.problems import Conflict, Forbidden, Invalid, Problem
from zhizhi.views import forbidden_page, is_htmx, problem_text

BOARD_ROWS = 300
FILTER_KEYS = ("severity", "rule_kind", "device_kind", "community", "ack", "status")


_staff = desk.staff_page("您的角色不能查看告警", "Your role cannot see alarms")


def _filters(request: HttpRequest) -> dict[str, str]:
    return {k: request.GET.get(k, "").strip() for k in FILTER_KEYS}


def _board_rows(request: HttpRequest) -> list[Alarm]:
    return desk.sort_by_severity(list(desk.board_alarms(request.user, _filters(request))[:BOARD_ROWS]))


# --- the board -------------------------------------------------------------------------------------
@login_required
@_staff
def board(request: HttpRequest) -> HttpResponse:
    """/alerts/: active alarms (and those cleared in the last day), live."""
    from zhizhi.geo.models import Region

    rows = _board_rows(request)
    counts = desk.severity_counts(request.user)
    return render(
        request,
        "alerts/board.html",
        {
            "rows": rows,
            "filters": _filters(request),
            "severities": Alarm.SEVERITIES,
            "severity_counts": [(code, label, counts.get(code, 0)) for code, label in Alarm.SEVERITIES],
            "rule_kinds": AlertRule.KINDS,
            "device_kinds": Device.KINDS,
            "communities": Region.objects.visible_to(request.user)
            .filter(level=Region.COMMUNITY)
            .order_by("code"),
            # The stream starts after the newest event the rendered rows already include.
            "after": live.latest_id(),
        },
    )


@login_required
@_staff
def board_rows(request: HttpRequest) -> HttpResponse:
    """The board's table body with the page's filters; with `ids`, only those alarms' rows (what a live
    event changed), so an event costs the board a few rows, not the whole table."""
    ids = [int(n) for n in request.GET.get("ids", "").split(",") if n.strip().isdigit()][:100]
    if ids:
        # A live event names the alarms that changed: only their rows (absent = no longer matches).
        qs = desk.board_alarms(request.user, _filters(request)).filter(pk__in=ids)
        rows = desk.sort_by_severity(list(qs))
    else:
        rows = _board_rows(request)
    response = render(request, "alerts/_rows.html", {"rows": rows})
    response["X-Severity-Counts"] = json.dumps(desk.severity_counts(request.user))
    return response


@login_required
@_staff
def stream(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    """Server-sent events of channel "alarm", filtered by the reader's area (zhizhi.live)."""
    return live.stream(request, ["alarm"])


# --- one alarm -------------------------------------------------------------------------------------
def _alarm_or_404(request: HttpRequest, pk: int) -> Alarm:
    try:
        return desk.get_alarm(request.user, pk)
    except Alarm.DoesNotExist:
        raise Http404("no such alarm") from None


def evidence_rows(evidence: Any) -> list[dict[str, Any]]:
    """The alarm's evidence for the page: plain values as text, a list of records as a small table
    (e.g. the matched risk-area entries), anything else as JSON."""
    if not isinstance(evidence, dict):
        return [{"key": "", "text": json.dumps(evidence, ensure_ascii=False)}] if evidence else []
    rows: list[dict[str, Any]] = []
    for key, value in sorted(evidence.items()):
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            columns = list(dict.fromkeys(k for v in value for k in v))
            table = [[v.get(c, "") for c in columns] for v in value]
            rows.append({"key": key, "columns": columns, "table": table})
        elif isinstance(value, dict | list):
            rows.append({"key": key, "text": json.dumps(value, ensure_ascii=False)})
        else:
            rows.append({"key": key, "text": value})
    return rows


@login_required
@_staff
def alarm_detail(request: HttpRequest, pk: int) -> HttpResponse:
    alarm = _alarm_or_404(request, pk)
    events = list(AlarmEvent.objects.filter(alarm=alarm).select_related("actor").order_by("at", "id"))
    labels = dict(Alarm.SEVERITIES)
    for event in events:
        setattr(event, "severity_label", labels.get(event.severity, event.severity))  # noqa: B010
    return render(
        request,
        "alerts/alarm.html",
        {
            "alarm": alarm,
            "events": events,
            "evidence": evidence_rows(alarm.evidence),
        },
    )


@login_required
@require_POST
@_staff
def alarm_acknowledge(request: HttpRequest, pk: int) -> HttpResponse:
    """确认 (POST). Idempotent: acknowledging twice keeps the first time and person."""
    try:
        alarm = desk.acknowledge(request.user, pk, request.POST.get("note", ""))
    except Alarm.DoesNotExist:
        raise Http404("no such alarm") from None
    if is_htmx(request):
        return render(request, "alerts/_ack.html", {"alarm": alarm})
    messages.success(request, f"已确认告警 #{alarm.pk} / Alarm #{alarm.pk} acknowledged")
    target = request.POST.get("next") or ""
    if target.startswith("/alerts/"):
        return redirect(target)
    return redirect("alerts_alarm", pk=alarm.pk)


# --- rules ---------------------------------------------------------------------------------------
def _categories() -> list[Any]:
    from zhizhi.cases.models import Category

    return list(
        Category.objects.filter(parent__isnull=False, active=True)
        .select_related("parent", "department")
        .order_by("code")
    )


def _may_create(request: HttpRequest) -> bool:
    # A department's staff may create rules for their own department's items (checked on save).
    return desk.can_edit_rule(request.user, None) or getattr(request.user, "role", "") == "dept_staff"


@login_required
@_staff
def rule_list(request: HttpRequest) -> HttpResponse:
    active = Count("alarms", filter=Q(alarms__status=Alarm.ACTIVE))
    rules = list(AlertRule.objects.annotate(active=active).order_by("code"))
    for rule in rules:
        setattr(rule, "editable", desk.can_edit_rule(request.user, rule))  # noqa: B010
        setattr(rule, "device_kind_label", dict(Device.KINDS).get(rule.device_kind, "全部"))  # noqa: B010
    return render(
        request,
        "alerts/rules.html",
        {"rules": rules, "can_create": _may_create(request)},
    )


def _render_rule_form(
    request: HttpRequest, form: forms.RuleForm, rule: AlertRule | None, status: int = 200
) -> HttpResponse:
    return render(
        request,
        "alerts/rule_form.html",
        {
            "form": form,
            "rule": rule,
            "kinds": AlertRule.KINDS,
            "device_kinds": forms.device_kind_choices(),
            "severities": forms.SEVERITIES,
            "directions": forms.DIRECTIONS,
            "categories": _categories(),
            "readonly": not desk.can_edit_rule(request.user, rule) and rule is not None,
        },
        status=status,
    )


def _save_rule(request: HttpRequest, rule: AlertRule | None) -> HttpResponse:
    form, data, problems = forms.parse(request.POST)
    if problems:
        data["params"] = {}  # the JSON did not parse: still check the other fields, all at once
    version_raw = str(form.values.get("version") or "")
    version = int(version_raw) if version_raw.isdigit() else None
    try:
        if problems:
            raise Invalid(problems + desk.check_rule(data, rule))
        saved = desk.save_rule(request.user, rule, data, version)
    except Invalid as exc:
        form.place(exc.problems)
        return _render_rule_form(request, form, rule, status=400)
    except Forbidden as exc:
        return forbidden_page(request, exc.zh, exc.en)
    except Conflict as exc:
        form.general.append(
            problem_text(
                Problem(
                    "conflict",
                    "此规则已被他人修改，请重新打开后再改（您的修改未保存）",
                    "This rule was changed by someone else; reopen it and retry (your edit was not saved)",
                    field="version",
                    value=exc.current_version,
                )
            )
        )
        return _render_rule_form(request, form, rule, status=409)
    messages.success(request, f"已保存规则 {saved.code} / Rule {saved.code} saved")
    return redirect("alerts_rules")


@login_required
@_staff
def rule_create(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return _save_rule(request, None)
    if not _may_create(request):
        return forbidden_page(request, "您不能新建告警规则", "You may not create alert rules")
    return _render_rule_form(request, forms.blank_form(), None)


@login_required
@_staff
def rule_edit(request: HttpRequest, pk: int) -> HttpResponse:
    rule = get_object_or_404(AlertRule, pk=pk)
    if request.method == "POST":
        return _save_rule(request, rule)
    return _render_rule_form(request, forms.form_for(rule), rule)


@login_required
@require_POST
@_staff
def rule_toggle(request: HttpRequest, pk: int) -> HttpResponse:
    """启用/停用 one rule (POST, with the version the list showed)."""
    rule = get_object_or_404(AlertRule, pk=pk)
    raw = request.POST.get("version", "")
    try:
        desk.save_rule(request.user, rule, {"enabled": not rule.enabled}, int(raw) if raw.isdigit() else None)
    except Forbidden as exc:
        return forbidden_page(request, exc.zh, exc.en)
    except Conflict:
        messages.error(request, "此规则已被他人修改，请重试 / This rule was changed by someone else; retry")
    except Invalid as exc:
        for p in exc.problems:
            messages.error(request, problem_text(p))
    return redirect("alerts_rules")


# --- devices -------------------------------------------------------------------------------------
def _device_or_404(request: HttpRequest, pk: int) -> Device:
    visible = desk.devices_visible_to(request.user)
    device = visible.select_related("grid", "building", "watched_person").filter(pk=pk).first()
    if device is None:
        raise Http404("no such device")
    return device


@login_required
@_staff
def device_list(request: HttpRequest) -> HttpResponse:
    qs = desk.devices_with_counts(request.user)
    kind = request.GET.get("kind", "")
    if kind:
        qs = qs.filter(kind=kind)
    state = request.GET.get("state", "")
    now = clock.now()
    devices: list[Any] = list(qs.order_by("code")[:1000])
    labels = dict(STATES)
    for d in devices:
        d.state = desk.device_state(d, d.active_alarms, now)
        d.state_label = labels.get(d.state, d.state)
    if state:
        devices = [d for d in devices if d.state == state]
    return render(
        request,
        "alerts/devices.html",
        {"devices": devices, "kinds": Device.KINDS, "kind": kind, "state": state, "states": STATES},
    )


STATES = [
    ("alarm", "告警"),
    ("online", "在线"),
    ("offline", "离线"),
    ("never", "未上报"),
    ("disabled", "停用"),
]


def _device_page(
    request: HttpRequest,
    device: Device,
    *,
    token: str = "",
    problems: dict[int, list[str]] | None = None,
    status: int = 200,
) -> HttpResponse:
    active = device.alarms.filter(status=Alarm.ACTIVE).select_related("rule").order_by("-last_seen_at")
    past = device.alarms.filter(status=Alarm.CLEARED).select_related("rule").order_by("-cleared_at")[:20]
    state = desk.device_state(device, active.count())
    end = desk.series_end(device)
    overrides = {o.rule_id: o for o in DeviceRuleOverride.objects.filter(device=device)}
    applicable = []
    for rule in desk.applicable_rules(device).order_by("code"):
        override = overrides.get(rule.pk)
        applicable.append(
            {
                "rule": rule,
                "override": json.dumps(override.params, ensure_ascii=False) if override else "",
                "rule_params": json.dumps(rule.params, ensure_ascii=False),
                "errors": (problems or {}).get(rule.pk, []),
            }
        )
    return render(
        request,
        "alerts/device.html",
        {
            "device": device,
            "state": state,
            "state_label": dict(STATES).get(state, state),
            "series": json.dumps(desk.readings_series(device)),
            "series_end": end,
            "series_now": end != device.last_seen_at,
            "recent": Reading.objects.filter(device=device).order_by("-at")[:20],
            "rejected": desk.rejected_by_reason(device),
            "active": active,
            "past": past,
            "applicable": applicable,
            "token": token,
            "can_issue": desk.can_issue_token(request.user),
            "can_override": desk.can_override(request.user, device),
        },
        status=status,
    )


@login_required
@_staff
def device_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _device_page(request, _device_or_404(request, pk))


@login_required
@require_POST
@_staff
def device_token(request: HttpRequest, pk: int) -> HttpResponse:
    """签发/轮换设备令牌: the new token is shown in this one answer only; the old one stops working."""
    device = _device_or_404(request, pk)
    if not desk.can_issue_token(request.user):
        return forbidden_page(request, "您不能签发设备令牌", "You may not issue device tokens")
    raw = services.issue_token(device)
    response = _device_page(request, device, token=raw)
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
@_staff
def device_override(request: HttpRequest, pk: int, rule_id: int) -> HttpResponse:
    """A device's own parameters for one rule (JSON object merged over the rule's; empty = remove)."""
    device = _device_or_404(request, pk)
    rule = AlertRule.objects.filter(pk=rule_id).first()
    if rule is None:
        raise Http404("no such rule")
    raw = request.POST.get("params", "").strip()
    try:
        try:
            params = json.loads(raw) if raw else {}
        except ValueError:
            raise Invalid(
                [Problem("bad_json", "参数不是合法的 JSON", "Params are not valid JSON", field="params")]
            ) from None
        desk.save_override(request.user, device, rule, params)
    except Forbidden as exc:
        return forbidden_page(request, exc.zh, exc.en)
    except Invalid as exc:
        placed = {rule.pk: [p.message for p in exc.problems]}
        return _device_page(request, device, problems=placed, status=400)
    messages.success(request, f"已保存 {rule.code} 的设备参数 / Device parameters for {rule.code} saved")
    return redirect("alerts_device", pk=device.pk)


# --- map layers ------------------------------------------------------------------------------------
def _feature(lng: float | None, lat: float | None, props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lng, lat]}, "properties": props}


@login_required
def devices_geojson(request: HttpRequest) -> JsonResponse:
    if not desk.is_staff(request.user):
        return JsonResponse({"type": "FeatureCollection", "features": []}, status=403)
    now = clock.now()
    kinds = dict(Device.KINDS)
    devices: list[Any] = list(
        desk.devices_with_counts(request.user).filter(lng__isnull=False, lat__isnull=False).order_by("code")
    )
    features = [
        _feature(
            d.lng,
            d.lat,
            {
                "id": d.pk,
                "code": d.code,
                "name": d.name,
                "kind": d.kind,
                "kind_label": kinds.get(d.kind, d.kind),
                "state": desk.device_state(d, d.active_alarms, now),
                "last_value": d.last_value,
                "unit": d.unit,
                "url": reverse("alerts_device", args=[d.pk]),
            },
        )
        for d in devices
    ]
    return JsonResponse({"type": "FeatureCollection", "features": features})


def alarm_point(alarm: Alarm) -> tuple[float, float] | None:
    """Where an alarm is on the map: its device, else its enterprise's building."""
    if alarm.device is not None and alarm.device.lng is not None and alarm.device.lat is not None:
        return alarm.device.lng, alarm.device.lat
    enterprise = alarm.enterprise
    building = getattr(enterprise, "building", None) if enterprise is not None else None
    if building is not None and building.lng is not None and building.lat is not None:
        return building.lng, building.lat
    return None


@login_required
def alarms_geojson(request: HttpRequest) -> JsonResponse:
    if not desk.is_staff(request.user):
        return JsonResponse({"type": "FeatureCollection", "features": []}, status=403)
    qs = (
        desk.alarms_visible_to(request.user)
        .filter(status=Alarm.ACTIVE)
        .select_related("rule", "device", "enterprise__building")
        .order_by("-last_seen_at")[:2000]
    )
    labels = dict(Alarm.SEVERITIES)
    features = []
    for a in qs:
        point = alarm_point(a)
        if point is None:
            continue
        features.append(
            _feature(
                point[0],
                point[1],
                {
                    "id": a.pk,
                    "title": a.title or a.rule.name,
                    "severity": a.severity,
                    "severity_label": labels.get(a.severity, a.severity),
                    "acknowledged": a.acknowledged_at is not None,
                    "url": reverse("alerts_alarm", args=[a.pk]),
                },
            )
        )
    return JsonResponse({"type": "FeatureCollection", "features": features})
