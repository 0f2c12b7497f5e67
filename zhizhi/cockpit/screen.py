"""What the big screen and the role dashboards show, on top of the indicator services.

The numbers come from `zhizhi.cockpit.services` (`board`, `trend`, `ranking`); this module adds what a
screen needs around them, always for one user: which region they may open (their scope, nothing above
it), the way back up (breadcrumb), the children to drill into, the feed of recent cases and alarms, and
the few case breakdowns a role dashboard shows next to the indicators.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.http import Http404
from django.utils import timezone

from zhizhi import clock
from zhizhi.cases.models import Case, CaseEvent
from zhizhi.cases.services import cases_visible_to
from zhizhi.cockpit import services
from zhizhi.geo.models import Region
from zhizhi.permissions import scope_paths

FEED_SIZE = 30
# Statuses in which a case is still someone's work (the dispatcher's "open" figure).
OPEN_STATUSES = (
    "reported",
    "registered",
    "dispatched",
    "returned",
    "handling",
    "extension_pending",
    "deferred",
    "finished",
    "unsatisfied",
)
# A department's own work: dispatched to it and not yet finished (registration and verification are the
# command centre's).
UNIT_OPEN_STATUSES = ("dispatched", "returned", "handling", "extension_pending", "deferred", "unsatisfied")
SEVERITY_ZH = {"info": "提示", "minor": "一般", "major": "重要", "critical": "紧急"}
ALARM_KINDS = {
    "raised": "告警",
    "repeated": "再次告警",
    "escalated": "升级",
    "deescalated": "降级",
    "acknowledged": "已确认",
    "cleared": "已恢复",
}


class NotInScope(Http404):
    def __init__(self) -> None:
        super().__init__("区域不存在或不在您的辖区内 / No such region in your area")


def regions_for(user: Any) -> QuerySet[Region]:
    return Region.objects.visible_to(user)


def home_region(user: Any) -> Region | None:
    """The widest region the user serves (a leader: the street; a grid worker: their grid). A superuser
    starts at the first street (the cockpit is a street's screen), else at the top of the tree."""
    if user.is_superuser:
        return (
            Region.objects.filter(level=Region.STREET).order_by("path").first()
            or Region.objects.filter(parent__isnull=True).order_by("path").first()
        )
    paths = sorted((p for p in scope_paths(user) if p), key=lambda p: (p.count("/"), p))
    for path in paths:
        region = regions_for(user).filter(path=path).first()
        if region is not None:
            return region
    return None


def region_for(user: Any, region_id: Any = None) -> Region:
    """The region to show: `region_id` when the user may open it, their home region when none is given;
    404 otherwise (a region outside the scope does not exist for this user)."""
    if region_id in (None, ""):
        region = home_region(user)
    else:
        try:
            pk = int(region_id)
        except (TypeError, ValueError):
            raise NotInScope() from None
        region = regions_for(user).filter(pk=pk).first()
    if region is None:
        raise NotInScope()
    return region


def breadcrumb(user: Any, region: Region) -> list[dict[str, Any]]:
    """The way back up: the region's ancestors the user may open, top first, then the region."""
    codes = [c for c in region.path.strip("/").split("/") if c]
    found = {r.code: r for r in regions_for(user).filter(code__in=codes)}
    return [
        {"id": r.pk, "code": r.code, "name": r.name, "level": r.level} for c in codes if (r := found.get(c))
    ]


def screen_board(
    user: Any, region: Region, scene: str | None = None, day: dt.date | None = None, *, fresh: bool = False
) -> dict:
    """`services.board` for the screen: the children limited to those the user may open (all of them
    inside a region in scope, but a restricted grant must still win), plus the breadcrumb.

    `fresh`: the screen re-reads after a live event and must see that change. Today's figures are
    shared between readers for a few seconds (`services.LIVE_CACHE_SECONDS`) except inside a
    transaction, so a fresh read runs in one (read-only) and computes today from the rows."""
    if fresh:
        with transaction.atomic():
            data = services.board(region, scene=scene or None, day=day)
    else:
        data = services.board(region, scene=scene or None, day=day)
    allowed = set(regions_for(user).filter(parent=region).values_list("pk", flat=True))
    data["children"] = [c for c in data.get("children", []) if c.get("id") in allowed]
    data["breadcrumb"] = breadcrumb(user, region)
    data["scene"] = scene or ""
    return data


def scenes() -> list[dict[str, Any]]:
    return services.scenes()


def indicator_codes() -> set[str]:
    return {code for s in services.scenes() for code in s.get("indicators", [])}


def trend(code: str, region: Region, days: int = 30) -> list[dict[str, Any]]:
    return [
        {"day": day.isoformat(), "value": value}
        for day, value in services.trend(code, region, days=max(1, min(days, 366)))
    ]


def ranking(user: Any, code: str, region: Region) -> list[dict[str, Any]]:
    """The children ranked by the indicator, limited (like the board) to regions the user may open."""
    allowed = set(regions_for(user).filter(parent=region).values_list("pk", flat=True))
    return [row for row in services.ranking(code, region) if row.get("id") in allowed]


def children_geojson(user: Any, region: Region) -> dict[str, Any]:
    """The shapes to colour on the screen's map: the region's children (communities of a street, grids
    of a community), or the region itself at the bottom of the tree."""
    qs = regions_for(user).filter(parent=region, boundary__isnull=False).order_by("code")
    shapes = list(qs) or ([region] if region.boundary else [])
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": r.boundary,
                "properties": {"id": r.pk, "code": r.code, "name": r.name, "level": r.level},
            }
            for r in shapes
        ],
    }


# --- the feed of recent cases and alarms -----------------------------------------------------------
def action_names() -> dict[str, str]:
    from zhizhi.cases.transitions import LABELS

    return {**LABELS, "sla_yellow": "临近超时", "sla_red": "已超时"}


def labels() -> dict[str, Any]:
    """Chinese names of case actions, statuses and channels and of alarm severities and events, so the
    screen words a live event the way the server words the feed it rendered."""
    return {
        "actions": action_names(),
        "statuses": dict(Case.STATUSES),
        "channels": dict(Case.CHANNELS),
        "severities": SEVERITY_ZH,
        "alarm_kinds": ALARM_KINDS,
        "alarm_url": alarm_url(0),
    }


def case_item(payload: dict[str, Any], at: str, names: dict[str, str]) -> dict[str, Any]:
    action = payload.get("action", "")
    return {
        "kind": "case",
        "id": payload.get("id"),
        "at": at,
        "title": payload.get("title", ""),
        "label": payload.get("number", ""),
        "status": payload.get("status", ""),
        "action": action,
        "channel": payload.get("channel", ""),
        "note": names.get(action, action),
        "url": f"/cases/{payload.get('id')}/",
    }


def feed(user: Any, region: Region, limit: int = FEED_SIZE) -> list[dict[str, Any]]:
    """The newest case events and alarms under `region` that the user may read, newest first (what the
    screen shows on load; the SSE stream appends to it afterwards)."""
    from zhizhi.alerts.rule_models import Alarm

    events = (
        CaseEvent.objects.filter(
            case__in=cases_visible_to(user).filter(area_path__startswith=region.path).values("pk")
        )
        .select_related("case")
        .order_by("-at", "-pk")[:limit]
    )
    names = action_names()
    items = [
        case_item(
            {
                "id": e.case_id,
                "number": e.case.number,
                "title": e.case.title,
                "status": e.to_status,
                "action": e.action,
                "channel": e.case.channel,
            },
            e.at.isoformat(),
            names,
        )
        for e in events
    ]
    alarms = (
        Alarm.objects.visible_to(user)
        .filter(area_path__startswith=region.path)
        .select_related("rule")
        .order_by("-last_seen_at", "-pk")[:limit]
    )
    items += [
        {
            "kind": "alarm",
            "id": a.pk,
            "at": (a.cleared_at or a.last_seen_at).isoformat(),
            "title": a.title or a.rule.name,
            "label": SEVERITY_ZH.get(a.severity, a.severity),
            "severity": a.severity,
            "status": a.status,
            "note": ALARM_KINDS["cleared"] if a.status == Alarm.CLEARED else ALARM_KINDS["raised"],
            "url": alarm_url(a.pk),
        }
        for a in alarms
    ]
    items.sort(key=lambda item: item["at"], reverse=True)
    for item in items[:limit]:
        item["time"] = timezone.localtime(dt.datetime.fromisoformat(item["at"])).strftime("%m-%d %H:%M")
    return items[:limit]


# --- the role dashboards -------------------------------------------------------------------------
def dashboard_role(user: Any) -> str:
    """Which dashboard a user gets: leader, dispatcher or department (everyone else with a scope)."""
    if user.is_superuser or user.role == "street_leader":
        return "leader"
    if user.role == "dispatcher":
        return "dispatcher"
    return "department"


def _in_region(qs: QuerySet[Case], region: Region) -> QuerySet[Case]:
    return qs.filter(area_path__startswith=region.path)


def intake_by_channel(user: Any, region: Region, days: int = 30) -> list[dict[str, Any]]:
    """Cases received per channel over the last `days` days (the dispatcher's intake volume)."""
    since = clock.now() - dt.timedelta(days=days)
    labels = dict(Case.CHANNELS)
    rows = (
        _in_region(cases_visible_to(user), region)
        .filter(reported_at__gte=since)
        .values("channel")
        .annotate(n=Count("pk"))
        .order_by("-n", "channel")
    )
    return [
        {"channel": r["channel"], "name": labels.get(r["channel"], r["channel"]), "n": r["n"]} for r in rows
    ]


def case_counts(qs: QuerySet[Case], open_statuses: tuple[str, ...] = OPEN_STATUSES) -> dict[str, int]:
    start = timezone.localtime(clock.now()).replace(hour=0, minute=0, second=0, microsecond=0)
    return qs.aggregate(
        open=Count("pk", filter=Q(status__in=open_statuses)),
        overdue=Count("pk", filter=Q(status__in=open_statuses, overdue=True)),
        yellow=Count("pk", filter=Q(status__in=open_statuses, sla_level="yellow")),
        today=Count("pk", filter=Q(reported_at__gte=start)),
        waiting=Count("pk", filter=Q(status__in=("reported", "registered", "returned"))),
    )


def dispatcher_figures(user: Any, region: Region) -> dict[str, Any]:
    from zhizhi.alerts.rule_models import Alarm

    alarms = Alarm.objects.visible_to(user).filter(area_path__startswith=region.path, status=Alarm.ACTIVE)
    alarm_counts = alarms.aggregate(
        total=Count("pk"), unacknowledged=Count("pk", filter=Q(acknowledged_at__isnull=True))
    )
    return {
        "counts": case_counts(_in_region(cases_visible_to(user), region)),
        "channels": intake_by_channel(user, region),
        "alarms": list(alarms.select_related("rule").order_by("-last_seen_at")[:10]),
        "alarm_count": alarm_counts["total"],
        "unacknowledged": alarm_counts["unacknowledged"],
    }


def department_figures(user: Any) -> dict[str, Any]:
    """The user's own department: its cases by status, open and overdue, the newest open ones."""
    if not user.org_unit_id:
        return {"unit": None, "counts": {}, "by_status": [], "cases": []}
    qs = Case.objects.filter(Q(unit_id=user.org_unit_id) | Q(tasks__unit_id=user.org_unit_id)).distinct()
    qs = qs.filter(pk__in=cases_visible_to(user).values("pk"))
    labels = dict(Case.STATUSES)
    by_status = (
        Case.objects.filter(pk__in=qs.values("pk"))
        .values("status")
        .annotate(n=Count("pk"))
        .order_by("-n", "status")
    )
    return {
        "unit": user.org_unit,
        "counts": case_counts(Case.objects.filter(pk__in=qs.values("pk")), UNIT_OPEN_STATUSES),
        "by_status": [
            {"status": r["status"], "name": labels.get(r["status"], ""), "n": r["n"]} for r in by_status
        ],
        "cases": list(
            Case.objects.filter(pk__in=qs.values("pk"), status__in=UNIT_OPEN_STATUSES)
            .select_related("category")
            .order_by("-overdue", "stage_due_at", "-pk")[:15]
        ),
    }


# The scene a role's dashboard shows next to its own figures (when the indicator catalogue has it).
DISPATCH_SCENE = "safety"
ENTERPRISE_SCENE = "industry"
ENTERPRISE_UNITS = ("QYFZB",)  # 区域发展办: the enterprise indicators are its work


def scene_or_all(code: str) -> str:
    return code if any(s["code"] == code for s in services.scenes()) else ""


def department_board(user: Any, region: Region) -> dict[str, Any] | None:
    """区域发展办 sees the enterprise (industry) indicators; other departments only their cases."""
    unit = user.org_unit
    if unit is None or unit.code not in ENTERPRISE_UNITS:
        return None
    scene = scene_or_all(ENTERPRISE_SCENE)
    return screen_board(user, region, scene) if scene else None


def alarm_url(pk: int) -> str:
    """The alarm's page (the alerts app's board), when that page is installed."""
    from django.urls import NoReverseMatch, reverse

    try:
        return reverse("alerts_alarm", args=[pk])
    except NoReverseMatch:
        return ""
