"""Pages of the 八必访 enterprise triggers under /alerts/enterprises/: the enterprises with active
triggers (for 区域发展办 and the leader; every member of staff sees those of their own area), and one
enterprise's triggers past and present with their numbers, its revenue and tax over the months, and the
visits (cases) its alarms became. Thin and area-scoped: an enterprise outside the user's area is a 404.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from django.contrib.auth.decorators import login_required
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from zhizhi.alerts.enterprise_triggers import TRIGGERS
from zhizhi.alerts.rule_models import Alarm, AlertRule
from zhizhi.enterprises.models import Enterprise, TaxRecord
from zhizhi.geo.models import Region
from zhizhi.permissions import can
from zhizhi.views import forbidden_page

LIST_ROWS = 500
# Evidence keys → what the page calls them.
EVIDENCE_LABELS = {
    "tax_paid_here": "本街道纳税(万元)",
    "months_paid": "纳税月数",
    "last_period": "最近纳税月份",
    "registered_address": "注册地址",
    "business_building": "实际经营楼幢",
    "status": "企业状态",
    "tax_region_code": "税务登记地",
    "street_code": "本街道代码",
    "months_paid_elsewhere": "外地缴税月数",
    "tax_paid_elsewhere": "外地缴税(万元)",
    "changes": "变动",
    "old_address": "原地址",
    "new_address": "新地址",
    "old_building": "原楼幢",
    "new_building": "新楼幢",
    "changed_on": "变更日期",
    "building": "楼幢",
    "month": "月份",
    "tax_now": "本月税收(万元)",
    "tax_last_year": "去年同期税收(万元)",
    "change_pct": "同比变动(%)",
    "revenue_now": "本月营收(万元)",
    "revenue_last_year": "去年同期营收(万元)",
    "established_on": "成立日期",
    "industry": "行业",
    "policies": "匹配政策",
}
MATCHED_LABELS = {
    "industry": "行业",
    "revenue_growth_pct": "营收同比(%)",
    "registered_capital": "注册资本(万元)",
    "employees": "从业人数",
}


def _text(key: str, value: Any) -> str:
    if value is None or value == "":
        return "—"
    if key == "changes":
        return "；".join(f"{c.get('position')} {c.get('old') or '—'} → {c.get('new') or '—'}（{c.get('on')}）"
                         for c in value)  # fmt: skip
    if key == "policies":
        parts = []
        for p in value:
            met = "，".join(f"{MATCHED_LABELS.get(k, k)} {v}" for k, v in (p.get("matched") or {}).items())
            parts.append(f"《{p.get('policy')}》{p.get('issued_by') or ''}（{met}）")
        return "；".join(parts)
    if key == "status":
        return dict(Enterprise.STATUSES).get(value, value)
    return str(value)


def evidence_rows(evidence: dict[str, Any]) -> list[tuple[str, str]]:
    return [(EVIDENCE_LABELS.get(k, k), _text(k, v)) for k, v in (evidence or {}).items()]


def _trigger_of(rule: AlertRule) -> str:
    return str((rule.params or {}).get("trigger", ""))


def _registry_alarms() -> QuerySet[Alarm]:
    return Alarm.objects.filter(rule__kind=AlertRule.REGISTRY).select_related("rule", "case")


def _allowed(request: HttpRequest) -> HttpResponse | None:
    if can(request.user, "view", Enterprise):
        return None
    return forbidden_page(request, "您的角色不能查看企业预警", "Your role cannot see enterprise triggers")


@login_required
def enterprise_list(request: HttpRequest) -> HttpResponse:
    """/alerts/enterprises/: enterprises with active triggers, filtered by trigger and community."""
    denied = _allowed(request)
    if denied:
        return denied
    user = request.user
    trigger = request.GET.get("trigger", "").strip()
    community_id = request.GET.get("community", "").strip()
    communities = list(Region.objects.visible_to(user).filter(level=Region.COMMUNITY).order_by("code"))
    community = next((c for c in communities if str(c.pk) == community_id), None)
    active = _registry_alarms().filter(status=Alarm.ACTIVE)
    if community is not None:
        active = active.filter(area_path__startswith=community.path)
    by_trigger: dict[str, int] = {}
    rows: OrderedDict[int, dict[str, Any]] = OrderedDict()
    visible = Enterprise.objects.visible_to(user)
    found = (
        active.filter(enterprise__in=visible)
        .select_related("enterprise", "enterprise__grid__parent", "enterprise__building")
        .order_by("enterprise__name", "rule__code")
    )
    for alarm in found:
        name = _trigger_of(alarm.rule)
        by_trigger[name] = by_trigger.get(name, 0) + 1
        if trigger and name != trigger:
            continue
        e = alarm.enterprise
        assert e is not None
        row = rows.setdefault(e.pk, {"enterprise": e, "alarms": [], "since": alarm.first_seen_at})
        row["alarms"].append(
            {"alarm": alarm, "label": TRIGGERS[name].zh if name in TRIGGERS else alarm.rule.name}
        )
        row["since"] = min(row["since"], alarm.first_seen_at)
    buildings = []
    for alarm in (
        Alarm.objects.visible_to(user)
        .filter(Q(pk__in=active.filter(source_key__startswith="building:").values("pk")))
        .select_related("rule", "case")
    ):
        by_trigger["building_tax_change"] = by_trigger.get("building_tax_change", 0) + 1
        if not trigger or trigger == "building_tax_change":
            buildings.append(alarm)
    ordered = sorted(rows.values(), key=lambda r: (-len(r["alarms"]), r["enterprise"].name))[:LIST_ROWS]
    return render(
        request,
        "alerts/enterprises.html",
        {
            "rows": ordered,
            "total": len(rows),
            "buildings": buildings,
            "triggers": [(t.name, t.zh, by_trigger.get(t.name, 0)) for t in TRIGGERS.values()],
            "trigger": trigger,
            "communities": communities,
            "community": community,
        },
    )


@login_required
def enterprise_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """/alerts/enterprises/<id>/: one enterprise's triggers, figures and visits."""
    denied = _allowed(request)
    if denied:
        return denied
    e = (
        Enterprise.objects.visible_to(request.user)
        .select_related("building", "grid", "grid__parent")
        .filter(pk=pk)
        .first()
    )
    if e is None:
        raise Http404("no such enterprise")
    mine = Q(enterprise=e)
    if e.building_id and e.building is not None:
        mine |= Q(source_key=f"building:{e.building.code}")
    alarms = list(_registry_alarms().filter(mine).order_by("status", "-first_seen_at"))
    triggers = [
        {
            "alarm": a,
            "label": TRIGGERS[_trigger_of(a.rule)].zh if _trigger_of(a.rule) in TRIGGERS else a.rule.name,
            "evidence": evidence_rows(a.evidence),
        }
        for a in alarms
    ]
    visits = [a for a in alarms if a.case is not None]
    records = list(
        TaxRecord.objects.filter(enterprise=e)
        .order_by("-period")
        .values("period", "revenue", "tax_paid", "tax_paid_here")[:24]
    )[::-1]
    series = {
        "months": [f"{r['period']:%Y-%m}" for r in records],
        "revenue": [float(r["revenue"]) for r in records],
        "tax": [float(r["tax_paid"]) for r in records],
        "here": [bool(r["tax_paid_here"]) for r in records],
    }
    return render(
        request,
        "alerts/enterprise_detail.html",
        {
            "e": e,
            "triggers": triggers,
            "active_count": sum(1 for a in alarms if a.status == Alarm.ACTIVE),
            "visits": visits,
            "series": series,
            "executives": e.executives.order_by("-start_date")[:10],
        },
    )
