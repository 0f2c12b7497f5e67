"""Case services: the responsibility list loader and one function per case action.

Every action runs in ONE transaction that
1. locks the case row (`select_for_update`), so two people acting at once queue up and the later
   one sees the earlier one's result;
2. returns the earlier result when the same `request_id` was already applied (idempotent retry);
3. checks the transition table (illegal → `IllegalAction` with the actions allowed now → 409) and
   the actor (not the right person → `Forbidden` → 403; case outside the actor's area → `NotFound`
   → 404);
4. changes the case, stamps the state's time column and recomputes the current SLA stage;
5. appends one `CaseEvent` and writes the outbox rows (flows.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.http import Http404

from zhizhi import clock, live, validators
from zhizhi.cases import flows, routing, sla, transitions, worktime
from zhizhi.cases.models import Case, CaseEvent, CasePhoto, CaseSequence, CaseTask, Category
from zhizhi.context import acting_as, current_request_id
from zhizhi.geo.models import Region
from zhizhi.geo.services import grid_for_point
from zhizhi.models import ObjectPermission
from zhizhi.orgs.models import OrgUnit, User
from zhizhi.permissions import IN_SCOPE, scope_paths
from zhizhi.problems import Forbidden, Invalid, Problem, invalid

RETURN_REASONS = ("属地不符", "权属不清", "职能交叉")
SATISFACTION_WORDS = {"满意": "satisfied", "基本满意": "basic", "不满意": "unsatisfied"}
SUPERVISOR_ROLES = ("community_worker", "dept_staff", "street_leader")
STAFF_ROLES = ("street_leader", "dispatcher", "dept_staff", "community_worker", "grid_worker")
TIME_COLUMNS = {
    "reported": "reported_at",
    "registered": "registered_at",
    "dispatched": "dispatched_at",
    "returned": "returned_at",
    "handling": "signed_at",
    "deferred": "deferred_at",
    "finished": "finished_at",
    "closed": "closed_at",
    "visited": "visited_at",
    "cancelled": "cancelled_at",
    "merged": "merged_at",
}
PHOTO_TYPES = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG\r\n\x1a\n": "image/png"}

CASE_PERMISSIONS: list[dict[str, Any]] = [
    {
        "name": "案件：领导与坐席辖区案件",
        "roles": ["street_leader", "dispatcher"],
        "object_types": ["cases.case"],
        "actions": ["view", "add", "change", "export", "reveal"],
        "constraints": IN_SCOPE,
    },
    {
        "name": "案件：工作人员辖区案件与本人承办案件",
        "roles": ["dept_staff", "community_worker", "grid_worker"],
        "object_types": ["cases.case"],
        "actions": ["view", "add"],
        "constraints": [IN_SCOPE, {"assignee": "$user"}],
    },
    {
        "name": "案件：居民本人反映的案件",
        "roles": ["resident"],
        "object_types": ["cases.case"],
        "actions": ["view", "add"],
        "constraints": {"reporter_user": "$user"},
    },
]


def ensure_case_permissions(**_: Any) -> None:
    """Create the case grants if missing (post_migrate); an admin's later edits are kept."""
    for spec in CASE_PERMISSIONS:
        ObjectPermission.objects.get_or_create(name=spec["name"], defaults=spec)


# --- errors -----------------------------------------------------------------------------------
class IllegalAction(Exception):
    """The action is not allowed in the case's status; carries what is allowed now (API: 409)."""

    def __init__(self, status: str, action: str, allowed: list[str]) -> None:
        self.status, self.action, self.allowed = status, action, allowed
        label = dict(Case.STATUSES).get(status, status or "新建")
        self.problem = Problem(
            "illegal_action",
            f"案件当前状态「{label}」不能执行「{transitions.LABELS.get(action, action)}」",
            f"Action '{action}' is not allowed while the case is '{status or 'new'}'",
            field="action",
            value=action,
            expected_zh="、".join(transitions.LABELS.get(a, a) for a in allowed) or "无",
            expected_en=", ".join(allowed) or "none",
        )
        super().__init__(self.problem.message)


class NotFound(Http404):
    """No such case, or not in the actor's area (the two are indistinguishable on purpose)."""

    def __init__(self) -> None:
        super().__init__("案件不存在或不在您的辖区内 / No such case in your area")


# --- reading ------------------------------------------------------------------------------------
def cases_visible_to(user: Any) -> QuerySet[Case]:
    """The cases `user` may read: the area grants, plus cases of the user's own unit (an outside
    department has no area) and cases where the unit holds a 联办 task."""
    base = Case.objects.visible_to(user, "view")
    unit_id = getattr(user, "org_unit_id", None)
    if user is None or not getattr(user, "is_authenticated", False) or unit_id is None or user.is_superuser:
        return base
    task_cases = CaseTask.objects.filter(unit_id=unit_id).values("case_id")
    return Case.objects.filter(Q(pk__in=base.values("pk")) | Q(unit_id=unit_id) | Q(pk__in=task_cases))


def get_case(user: Any, case_id: int) -> Case:
    case = cases_visible_to(user).filter(pk=case_id).first()
    if case is None:
        raise NotFound()
    return case


QUEUE_STATUSES = ("reported", "registered", "returned")


def dispatcher_queue(user: Any) -> QuerySet[Case]:
    """The dispatcher's queue: reports to register, cases to dispatch, returns to rule on."""
    return cases_visible_to(user).filter(status__in=QUEUE_STATUSES).order_by("-urgent", "reported_at", "id")


def overdue_board(user: Any) -> QuerySet[Case]:
    """Open cases that are yellow or red, the most overdue first."""
    return (
        cases_visible_to(user)
        .filter(status__in=transitions.OPEN, sla_level__in=("yellow", "red"))
        .order_by("stage_due_at", "id")
    )


HANDLING_STATUSES = ("dispatched", "handling", "extension_pending", "deferred")


def unit_cases(user: Any) -> QuerySet[Case]:
    """A unit's workbench: open cases of the user's unit, assigned to the user, or where the unit
    holds a 联办 task."""
    unit_id = getattr(user, "org_unit_id", None)
    mine = Q(assignee_id=user.pk) | Q(tasks__assignee_id=user.pk)
    if unit_id:
        mine |= Q(unit_id=unit_id) | Q(tasks__unit_id=unit_id)
    ids = Case.objects.filter(mine, status__in=HANDLING_STATUSES).values("pk")
    return cases_visible_to(user).filter(pk__in=ids).order_by("stage_due_at", "id")


def my_tasks(user: Any) -> QuerySet[Case]:
    """A grid worker's list: open cases assigned to them (or their 联办 task), soonest deadline first."""
    ids = Case.objects.filter(
        Q(assignee_id=user.pk) | Q(tasks__assignee_id=user.pk), status__in=HANDLING_STATUSES
    ).values("pk")
    return cases_visible_to(user).filter(pk__in=ids).order_by("stage_due_at", "id")


def supervised_unit_ids(user: Any) -> list[int]:
    """The units `user` supervises (the inverse of `supervisor_unit_ids`)."""
    unit = getattr(user, "org_unit", None)
    if unit is None or getattr(user, "role", "") not in SUPERVISOR_ROLES:
        return []
    ids = {unit.pk, *OrgUnit.objects.filter(parent=unit).values_list("pk", flat=True)}
    if unit.kind == "community" and unit.region_id:
        ids |= set(
            OrgUnit.objects.filter(kind="grid", region__parent_id=unit.region_id).values_list("pk", flat=True)
        )
    return sorted(ids)


def approvals_for(user: Any) -> QuerySet[Case]:
    """A supervisor's approvals: extension requests and unsatisfied return visits of the units they
    supervise (street leaders: everything in their area)."""
    qs = cases_visible_to(user).filter(status__in=("extension_pending", "unsatisfied"))
    if not (user.is_superuser or getattr(user, "role", "") == "street_leader"):
        qs = qs.filter(unit_id__in=supervised_unit_ids(user))
    return qs.order_by("updated_at", "id")


def case_for_rating(token: str) -> Case:
    """The case behind a rating link (the token is a 24-character secret; unknown → 404)."""
    case = Case.objects.filter(rate_token=token).first() if len(token or "") >= 16 else None
    if case is None:
        raise NotFound()
    return case


def supervisor_unit_ids(unit: OrgUnit | None) -> list[int]:
    """The units whose staff supervise `unit`: itself, its parent, and for a grid the community
    unit serving the grid's community."""
    if unit is None:
        return []
    ids = [unit.pk]
    if unit.parent_id:
        ids.append(unit.parent_id)
    if unit.kind == "grid" and unit.region_id and unit.region is not None and unit.region.parent_id:
        ids += list(
            OrgUnit.objects.filter(kind="community", region_id=unit.region.parent_id).values_list(
                "pk", flat=True
            )
        )
    return ids


def supervisors_of(unit: OrgUnit | None) -> QuerySet[User]:
    """Supervisors: active staff with role community_worker / dept_staff / street_leader in the
    unit, its parent unit, or (for a grid) its community's unit."""
    return User.objects.filter(
        is_active=True, role__in=SUPERVISOR_ROLES, org_unit_id__in=supervisor_unit_ids(unit)
    ).order_by("id")


def relations(actor: Any, case: Case, *, rate_token: str = "") -> set[str]:
    """The "who" names of the transition table that `actor` holds towards `case`."""
    if actor is None:
        if rate_token:
            ok = bool(case.rate_token) and secrets.compare_digest(rate_token, case.rate_token)
            return {"reporter"} if ok else set()
        return {"system"}
    out: set[str] = set()
    role = getattr(actor, "role", "")
    if actor.is_superuser:
        out |= {"dispatcher", "supervisor", "staff"}
    if role in ("dispatcher", "street_leader"):
        out.add("dispatcher")
    if role == "street_leader":
        out.add("supervisor")
    if role in STAFF_ROLES:
        out.add("staff")
    if case.pk is not None:
        if case.assignee_id == actor.pk:
            out.add("assignee")
        unit_id = actor.org_unit_id
        if unit_id and unit_id == case.unit_id:
            out.add("unit_member")
        if case.tasks.filter(role="assist").filter(Q(unit_id=unit_id) | Q(assignee_id=actor.pk)).exists():
            out.add("task_member")
        if role in SUPERVISOR_ROLES and unit_id and unit_id in supervisor_unit_ids(case.unit):
            out.add("supervisor")
    if case.reporter_user_id and case.reporter_user_id == actor.pk:
        out.add("reporter")
    return out


def allowed_now(actor: Any, case: Case) -> list[str]:
    """The actions `actor` may take on `case` now (what the 409 answer and the pages offer)."""
    mine = relations(actor, case)
    return [t.action for t in transitions.TABLE.values() if t.source == case.status and mine & set(t.who)]


# --- the action machinery -----------------------------------------------------------------------
def append_event(
    case: Case,
    actor: Any,
    action: str,
    from_status: str,
    to_status: str,
    *,
    note: str = "",
    photos: Sequence[int] = (),
    lng: float | None = None,
    lat: float | None = None,
    data: dict[str, Any] | None = None,
    request_id: str = "",
) -> CaseEvent:
    event = CaseEvent.objects.create(
        case=case,
        at=clock.now(),
        actor=actor,
        action=action,
        from_status=from_status,
        to_status=to_status,
        note=note,
        photos=list(photos),
        lng=lng,
        lat=lat,
        data=data or {},
        request_id=request_id[:64],
    )
    # Every action, registration and SLA step passes here: announce it to the live screens (cockpit)
    # in the same transaction, so the event exists exactly when the change committed.
    live.publish(
        "case",
        {
            "id": case.pk,
            "number": case.number,
            "title": case.title,
            "status": to_status or case.status,
            "action": action,
            "channel": case.channel,
        },
        area_path=case.area_path,
    )
    return event


def _locked(actor: Any, case_id: int, *, rate_token: str = "") -> Case:
    case = Case.objects.select_for_update().filter(pk=case_id).first()
    if case is None:
        raise NotFound()
    if actor is not None and not cases_visible_to(actor).filter(pk=case_id).exists():
        raise NotFound()
    if actor is None and rate_token and "reporter" not in relations(None, case, rate_token=rate_token):
        raise NotFound()
    return case


def _where(lng: Any, lat: Any) -> tuple[float | None, float | None]:
    if lng in (None, "") and lat in (None, ""):
        return None, None
    return validators.coordinates(lng, lat)


def _photos(case: Case, ids: Iterable[Any]) -> list[int]:
    wanted = []
    for raw in ids or ():
        try:
            wanted.append(int(raw))
        except (TypeError, ValueError):
            raise invalid("photo_id", "照片编号无效", "Invalid photo id", field="photos", value=raw) from None
    found = set(CasePhoto.objects.filter(case=case, pk__in=wanted).values_list("pk", flat=True))
    missing = [p for p in wanted if p not in found]
    if missing:
        raise invalid(
            "photo_unknown",
            "照片不属于此案件，请先上传",
            "The photo does not belong to this case; upload it first",
            field="photos",
            value=missing,
        )
    return wanted


Change = Callable[[Case, transitions.Transition, dict[str, Any]], str | None]


def _required_reason(reason: str, note: str, zh: str, en: str) -> str:
    """The reason an action must carry (延期, 缓办, 注销 …), taken from `reason` or else `note`."""
    why = (reason or note or "").strip()
    if not why:
        raise invalid("reason_required", zh, en, field="reason")
    return why


def _act(
    actor: Any,
    case_id: int,
    action: str,
    change: Change | None = None,
    *,
    note: str = "",
    photos: Iterable[Any] = (),
    lng: Any = None,
    lat: Any = None,
    request_id: str = "",
    rate_token: str = "",
    data: dict[str, Any] | None = None,
) -> Case:
    """Run one table action on one case (see the module docstring for the steps)."""
    x, y = _where(lng, lat)
    note = (note or "").strip()
    with acting_as(actor, current_request_id() or None), transaction.atomic():
        case = _locked(actor, case_id, rate_token=rate_token)
        if request_id:
            prior = CaseEvent.objects.filter(case=case, request_id=request_id[:64]).first()
            if prior is not None:
                if prior.action != action:
                    raise invalid(
                        "request_id_reused",
                        "该请求编号已用于其他操作",
                        "This request_id was already used for another action",
                        field="request_id",
                        value=request_id,
                    )
                return case
        row = transitions.find(case.status, action)
        if row is None:
            raise IllegalAction(case.status, action, allowed_now(actor, case))
        if not relations(actor, case, rate_token=rate_token) & set(row.who):
            raise Forbidden(
                f"您不能对此案件执行「{row.zh}」（需要：{'、'.join(row.who)}）",
                f"You may not '{action}' this case (needs: {', '.join(row.who)})",
            )
        from_status = case.status
        info: dict[str, Any] = dict(data or {})
        target = change(case, row, info) if change else None
        target = target or row.targets[0]
        assert target in row.targets, (action, target)
        now = clock.now()
        case.status = target
        column = TIME_COLUMNS.get(target)
        if target != from_status and column and getattr(case, column) is None:
            setattr(case, column, now)
        sla.refresh(case)
        case.save()
        event = append_event(
            case,
            actor,
            action,
            from_status,
            target,
            note=note,
            photos=_photos(case, photos),
            lng=x,
            lat=y,
            data=info,
            request_id=request_id,
        )
        flows.after(case, event)
    return case


# --- numbers and intake -------------------------------------------------------------------------
def next_number(when: dt.datetime | None = None) -> str:
    """ZZ + date + 4-digit daily sequence, e.g. ZZ202611230001 (a locked counter row per day)."""
    day = clock.today() if when is None else when.date()
    key = day.strftime("%Y%m%d")
    with transaction.atomic():
        try:
            with transaction.atomic():
                CaseSequence.objects.get_or_create(day=key)
        except IntegrityError:  # created by a concurrent request a moment ago
            pass
        seq = CaseSequence.objects.select_for_update().get(day=key)
        seq.last += 1
        seq.save(update_fields=["last"])
    return f"ZZ{key}{seq.last:04d}"


def category_by(value: Any) -> Category | None:
    if value in (None, ""):
        return None
    if isinstance(value, Category):
        return value
    found = Category.objects.filter(Q(code=str(value)) | Q(name=str(value)), parent__isnull=False).first()
    if found is None and str(value).isdigit():
        found = Category.objects.filter(pk=int(value), parent__isnull=False).first()
    if found is None:
        raise invalid(
            "category_unknown",
            "权责清单中没有这个小类",
            "No such item in the responsibility list",
            field="category",
            value=value,
            expected_zh="小类编码，如 0102",
            expected_en="a leaf code such as 0102",
        )
    return found


def register_case(
    actor: Any,
    *,
    title: str,
    description: str = "",
    category: Any = None,
    category_certain: bool = True,
    lng: Any = None,
    lat: Any = None,
    address: str = "",
    channel: str = "dispatcher",
    external_id: str = "",
    reporter_name: str = "",
    reporter_phone: str = "",
    reporter_user: Any = None,
    urgent: bool | None = None,
    register: bool = True,
    request_id: str = "",
    note: str = "",
) -> Case:
    """立案 (or 受理 when `register` is False): create the case, route it, and dispatch it at once
    when the category is certain and the place resolves to a grid and a unit."""
    problems: list[Problem] = []
    title = (title or "").strip()
    description = (description or "").strip()
    if not title:
        problems.append(Problem("required", "请填写标题", "A title is required", field="title"))
    elif len(title) > 200:
        problems.append(
            Problem("too_long", "标题不超过200字", "Title: at most 200 characters", field="title")
        )
    if len(description) > 4000:
        problems.append(
            Problem(
                "too_long", "描述不超过4000字", "Description: at most 4000 characters", field="description"
            )
        )
    if channel not in dict(Case.CHANNELS):
        problems.append(
            Problem(
                "channel",
                "来源渠道无效",
                "Unknown channel",
                field="channel",
                value=channel,
                expected_en=", ".join(dict(Case.CHANNELS)),
                expected_zh="、".join(dict(Case.CHANNELS).values()),
            )
        )
    cat: Category | None = None
    x: float | None = None
    y: float | None = None
    phone = ""
    try:
        cat = category_by(category)
    except Invalid as exc:
        problems += exc.problems
    try:
        x, y = _where(lng, lat)
    except Invalid as exc:
        problems += exc.problems
    if reporter_phone:
        try:
            phone = validators.phone(reporter_phone, "reporter_phone")
        except Invalid as exc:
            problems += exc.problems
    if problems:
        raise Invalid(problems)
    action = "register" if register else "report"
    with acting_as(actor, current_request_id() or None), transaction.atomic():
        if external_id:
            existing = Case.objects.filter(channel=channel, external_id=external_id).first()
            if existing is not None:
                return existing
        if request_id:
            prior = (
                CaseEvent.objects.filter(action=action, request_id=request_id[:64], actor=actor)
                .select_related("case")
                .first()
            )
            if prior is not None:
                return prior.case
        row = transitions.find("", action)
        assert row is not None
        probe = Case(reporter_user=reporter_user)
        mine = relations(actor, probe)
        if actor is not None and reporter_user is None and getattr(actor, "role", "") == "resident":
            mine.add("reporter")
        if not mine & set(row.who):
            raise Forbidden("您不能立案", "You may not register cases")
        grid: Region | None = grid_for_point(x, y) if x is not None and y is not None else None
        suggested = None if cat else routing.suggest_category(f"{title} {description}")
        if cat:
            route = routing.route(cat, grid, category_certain=category_certain)
        else:
            route = routing.route(suggested, grid, category_certain=False)
        now = clock.now()
        case = Case(
            number=next_number(),
            title=title,
            description=description,
            category=cat,
            category_certain=bool(cat) and category_certain,
            status=row.targets[0],
            channel=channel,
            external_id=external_id or "",
            lng=x,
            lat=y,
            address=(address or "")[:200],
            grid=grid,
            suggested_unit=route.unit,
            suggested_category=suggested,
            reporter_name=(reporter_name or "")[:50],
            reporter_user=reporter_user,
            rate_token=secrets.token_urlsafe(18),
            urgent=bool(cat.urgent if urgent is None and cat else urgent),
            reported_at=now,
            registered_at=now if register else None,
        )
        if not case.grid_id and route.unit is not None:
            # No grid: the case lives where its suggested unit serves (so the unit can see it).
            case.area_path = route.unit.region.path if route.unit.region_id and route.unit.region else ""
        if not case.grid_id and not case.area_path and actor is not None:
            paths = scope_paths(actor)
            case.area_path = paths[0] if paths else ""
        if phone:
            case.set_sensitive("reporter_phone", phone)
        try:
            with transaction.atomic():
                case.save()
        except IntegrityError:
            # The same channel ticket registered by a concurrent request a moment ago.
            existing = (
                Case.objects.filter(channel=channel, external_id=external_id).first() if external_id else None
            )
            if existing is None:
                raise
            return existing
        event = append_event(
            case,
            actor,
            action,
            "",
            case.status,
            note=note,
            lng=x,
            lat=y,
            data={
                "suggested_unit": route.unit.code if route.unit else None,
                "suggested_category": suggested.code if suggested else None,
                "why": route.why_en,
            },
            request_id=request_id,
        )
        flows.after(case, event)
        if case.status == "registered" and route.certain and route.unit is not None:
            _dispatch_locked(case, None, route.unit, route.assignee, route.assisting, "dispatch", auto=True)
    return case


# --- dispatch -----------------------------------------------------------------------------------
def _unit_by(value: Any) -> OrgUnit:
    if isinstance(value, OrgUnit):
        return value
    unit = OrgUnit.objects.filter(
        Q(code=str(value)) | Q(pk=int(value) if str(value).isdigit() else None)
    ).first()
    if unit is None or not unit.active:
        raise invalid(
            "unit_unknown", "承办单位不存在或已停用", "No such active unit", field="unit", value=value
        )
    return unit


def _user_by(value: Any, unit: OrgUnit) -> Any:
    if value in (None, ""):
        return None
    user: Any = (
        value
        if isinstance(value, User)
        else User.objects.filter(
            Q(username=str(value)) | Q(pk=int(value) if str(value).isdigit() else None)
        ).first()
    )
    if user is None or not user.is_active:
        raise invalid(
            "assignee_unknown", "承办人不存在", "No such active user", field="assignee", value=value
        )
    serves_region = unit.region_id is not None and user.regions.filter(pk=unit.region_id).exists()
    if user.org_unit_id != unit.pk and not serves_region:
        raise invalid(
            "assignee_not_in_unit",
            f"{user}不属于{unit}",
            f"{user.username} is not a member of {unit.code}",
            field="assignee",
            value=value,
        )
    return user


def _dispatch_locked(
    case: Case,
    actor: Any,
    unit: OrgUnit,
    assignee: Any,
    assisting: list[OrgUnit],
    action: str,
    *,
    auto: bool = False,
    note: str = "",
    request_id: str = "",
) -> CaseEvent:
    """Give the (locked) case to `unit`: tasks for 联办, SLA clock from now, event, messages."""
    row = transitions.find(case.status, action)
    if row is None:
        raise IllegalAction(case.status, action, allowed_now(actor, case))
    from_status = case.status
    now = clock.now()
    case.unit, case.assignee = unit, assignee
    case.status = row.targets[0]
    case.dispatched_at = now
    case.sla_start_at = now
    case.limits = sla.limits_for(case.category)
    case.paused_seconds = 0
    case.paused_work_minutes = 0
    case.signed_at = case.onsite_at = case.reinforced_at = case.followed_up_at = None
    case.return_reason = ""
    CaseTask.objects.filter(case=case).delete()
    if assisting:
        CaseTask.objects.create(case=case, unit=unit, role="lead", assignee=assignee)
        for other in assisting:
            CaseTask.objects.create(
                case=case,
                unit=other,
                role="assist",
                assignee=routing.pick_assignee("on_duty", other, case.grid),
            )
    sla.refresh(case)
    case.save()
    event = append_event(
        case,
        actor,
        action,
        from_status,
        case.status,
        note=note,
        data={
            "unit": unit.code,
            "assignee": assignee.username if assignee else None,
            "assisting": [u.code for u in assisting],
            "auto": auto,
        },
        request_id=request_id,
    )
    flows.after(case, event)
    return event


def dispatch_case(
    actor: Any,
    case_id: int,
    *,
    unit: Any = None,
    assignee: Any = None,
    category: Any = None,
    note: str = "",
    request_id: str = "",
    action: str = "dispatch",
    **_: Any,
) -> Case:
    """派遣 (from 待派遣; `action` "redispatch" = 改派/重新派遣 from 待签收/已退单): to `unit`, else
    the routed or suggested unit."""
    with acting_as(actor, current_request_id() or None), transaction.atomic():
        case = _locked(actor, case_id)
        if request_id and CaseEvent.objects.filter(case=case, request_id=request_id[:64]).exists():
            return case
        row = transitions.find(case.status, action)
        if row is None:
            raise IllegalAction(case.status, action, allowed_now(actor, case))
        if not relations(actor, case) & set(row.who):
            raise Forbidden("只有指挥中心可以派遣", "Only the command centre dispatches")
        # The dispatcher confirms the category: the one named, else the case's, else the suggestion.
        cat = (
            category_by(category)
            if category not in (None, "")
            else (case.category or case.suggested_category)
        )
        if cat is not None and (cat != case.category or not case.category_certain):
            case.category, case.category_certain = cat, True
        route = routing.route(cat, case.grid)
        target = _unit_by(unit) if unit not in (None, "") else (route.unit or case.suggested_unit)
        if target is None:
            raise invalid("unit_required", "请选择承办单位", "Choose the handling unit", field="unit")
        person = _user_by(assignee, target) if assignee not in (None, "") else None
        if person is None:
            person = (
                route.assignee
                if route.unit == target
                else routing.pick_assignee(cat.assign_rule if cat else "least_loaded", target, case.grid)
            )
        assisting = (
            [u for u in route.assisting if u.pk != target.pk] if cat and cat.responsibility == "joint" else []
        )
        _dispatch_locked(
            case, actor, target, person, assisting, action, note=(note or "").strip(), request_id=request_id
        )
    return case


def redispatch_case(actor: Any, case_id: int, **kwargs: Any) -> Case:
    kwargs.pop("action", None)
    return dispatch_case(actor, case_id, action="redispatch", **kwargs)


# --- handling -----------------------------------------------------------------------------------
def sign_for(actor: Any, case_id: int, *, note: str = "", request_id: str = "", **kw: Any) -> Case:
    """签收: the handling unit takes the case; an unassigned case is assigned to whoever signs."""

    def change(case: Case, row: transitions.Transition, info: dict[str, Any]) -> None:
        if case.assignee_id is None and actor is not None:
            case.assignee = actor
        case.signed_at = clock.now()
        CaseTask.objects.filter(case=case, role="lead").update(
            status="signed", signed_at=case.signed_at, assignee=case.assignee
        )

    return _act(
        actor, case_id, "sign", change, note=note, request_id=request_id, lng=kw.get("lng"), lat=kw.get("lat")
    )


def return_case(
    actor: Any, case_id: int, *, reason: str = "", note: str = "", request_id: str = "", **kw: Any
) -> Case:
    """退单: back to the dispatcher with one of 属地不符/权属不清/职能交叉."""
    if reason not in RETURN_REASONS:
        raise invalid(
            "return_reason",
            "请选择退单原因",
            "Choose why the case is returned",
            field="reason",
            value=reason,
            expected_zh="、".join(RETURN_REASONS),
            expected_en="属地不符 (wrong area), 权属不清 (unclear ownership), 职能交叉 (overlapping duties)",
        )

    def change(case: Case, row: transitions.Transition, info: dict[str, Any]) -> None:
        case.return_reason = reason
        case.returned_at = clock.now()
        info["reason"] = reason
        info["unit"] = case.unit.code if case.unit_id and case.unit else None
        CaseTask.objects.filter(case=case).delete()

    return _act(
        actor,
        case_id,
        "return",
        change,
        note=note,
        request_id=request_id,
        lng=kw.get("lng"),
        lat=kw.get("lat"),
    )


def _amount(value: Any, unit: str) -> tuple[float, str]:
    """An extension length; `unit` is one of worktime.UNITS (field name `time_unit`)."""
    try:
        amount = float(value)
    except (TypeError, ValueError):
        amount = 0.0
    if amount <= 0 or amount > 365:
        raise invalid("amount", "延期时长无效", "Invalid extension length", field="amount", value=value)
    if unit not in worktime.UNITS:
        raise invalid(
            "time_unit",
            "时间单位无效",
            "Invalid time unit",
            field="time_unit",
            value=unit,
            expected_en=", ".join(worktime.UNITS),
        )
    return amount, unit


def request_extension(
    actor: Any,
    case_id: int,
    *,
    amount: Any = None,
    time_unit: str = "work_days",
    note: str = "",
    reason: str = "",
    request_id: str = "",
    **_: Any,
) -> Case:
    """申请延期. Asking after the handling deadline is allowed but flagged `late` (the case is
    already counted overdue; the supervisor sees the flag)."""
    value, time_unit = _amount(amount, time_unit)
    why = _required_reason(reason, note, "请说明延期原因", "State why you need more time")

    def change(case: Case, row: transitions.Transition, info: dict[str, Any]) -> None:
        late = bool(case.due_at and clock.now() >= case.due_at)
        case.extension_request = {
            "amount": value,
            "unit": time_unit,
            "reason": why,
            "by": actor.pk if actor else None,
            "late": late,
        }
        info.update(case.extension_request)

    return _act(actor, case_id, "request_extension", change, note=why, request_id=request_id)


def approve_extension(actor: Any, case_id: int, *, note: str = "", request_id: str = "", **_: Any) -> Case:
    """同意延期: the handling deadline moves by the requested time (never approved by the asker)."""

    def change(case: Case, row: transitions.Transition, info: dict[str, Any]) -> None:
        ask = case.extension_request or {}
        if actor is not None and ask.get("by") == actor.pk:
            raise Forbidden("不能审批自己的延期申请", "You cannot approve your own extension request")
        case.extensions = [*(case.extensions or []), [ask.get("amount"), ask.get("unit")]]
        case.extension_count += 1
        case.extension_request = None
        info.update({"amount": ask.get("amount"), "unit": ask.get("unit"), "late": ask.get("late", False)})

    return _act(actor, case_id, "approve_extension", change, note=note, request_id=request_id)


def deny_extension(actor: Any, case_id: int, *, note: str = "", request_id: str = "", **_: Any) -> Case:
    def change(case: Case, row: transitions.Transition, info: dict[str, Any]) -> None:
        info["request"] = case.extension_request
        case.extension_request = None

    return _act(actor, case_id, "deny_extension", change, note=note, request_id=request_id)


def defer_case(
    actor: Any, case_id: int, *, note: str = "", reason: str = "", request_id: str = "", **_: Any
) -> Case:
    """缓办: the clock stops until `resume_case` (the paused time is added to every deadline)."""
    why = _required_reason(reason, note, "请说明缓办原因", "State why the case is deferred")

    def change(case: Case, row: transitions.Transition, info: dict[str, Any]) -> None:
        case.deferred_at = clock.now()

    return _act(actor, case_id, "defer", change, note=why, request_id=request_id)


def resume_case(actor: Any, case_id: int, *, note: str = "", request_id: str = "", **_: Any) -> Case:
    def change(case: Case, row: transitions.Transition, info: dict[str, Any]) -> None:
        since = case.deferred_at or clock.now()
        paused = int((clock.now() - since).total_seconds())
        case.paused_seconds += max(paused, 0)
        case.paused_work_minutes += worktime.elapsed(since, clock.now(), "work_hours") * 60
        case.deferred_at = None
        info["paused_seconds"] = paused

    return _act(actor, case_id, "resume", change, note=note, request_id=request_id)


def arrive(
    actor: Any,
    case_id: int,
    *,
    note: str = "",
    lng: Any = None,
    lat: Any = None,
    photos: Any = (),
    request_id: str = "",
    **_: Any,
) -> Case:
    """到场: the handler is on site (with GPS); an assisting unit's arrival is its reinforcement."""

    def change(case: Case, row: transitions.Transition, info: dict[str, Any]) -> None:
        now = clock.now()
        mine = relations(actor, case)
        if mine & {"assignee", "unit_member"}:
            case.onsite_at = case.onsite_at or now
            info["role"] = "lead"
        else:
            task = case.tasks.filter(role="assist", unit_id=getattr(actor, "org_unit_id", None)).first()
            task = task or case.tasks.filter(role="assist", assignee_id=getattr(actor, "pk", None)).first()
            if task is not None and task.signed_at is None:
                CaseTask.objects.filter(pk=task.pk).update(status="signed", signed_at=now, assignee=actor)
            info["role"] = "assist"
            info["unit"] = task.unit.code if task else None
        if (
            not case.tasks.filter(role="assist", signed_at__isnull=True).exists()
            and case.tasks.filter(role="assist").exists()
        ):
            case.reinforced_at = case.reinforced_at or now

    return _act(
        actor, case_id, "arrive", change, note=note, lng=lng, lat=lat, photos=photos, request_id=request_id
    )


def follow_up(actor: Any, case_id: int, *, note: str = "", request_id: str = "", **kw: Any) -> Case:
    """跟进: a progress note (the Yingfeng 24-hour follow-up)."""
    if not (note or "").strip():
        raise invalid("note_required", "请填写跟进情况", "Describe the follow-up", field="note")

    def change(case: Case, row: transitions.Transition, info: dict[str, Any]) -> None:
        case.followed_up_at = case.followed_up_at or clock.now()

    return _act(
        actor, case_id, "followup", change, note=note, request_id=request_id, photos=kw.get("photos", ())
    )


def finish_task(
    actor: Any, case_id: int, *, result: str = "", note: str = "", request_id: str = "", **kw: Any
) -> Case:
    """协办完成: an assisting unit reports its part done."""
    text = (result or note or "").strip()
    if not text:
        raise invalid("result_required", "请填写协办结果", "Describe what your unit did", field="result")

    def change(case: Case, row: transitions.Transition, info: dict[str, Any]) -> None:
        unit_id = getattr(actor, "org_unit_id", None)
        task = case.tasks.filter(role="assist").filter(Q(unit_id=unit_id) | Q(assignee_id=actor.pk)).first()
        assert task is not None  # relations() found it
        now = clock.now()
        CaseTask.objects.filter(pk=task.pk).update(
            status="done", finished_at=now, result=text, signed_at=task.signed_at or now
        )
        info["unit"] = task.unit.code

    return _act(
        actor, case_id, "finish_task", change, note=text, request_id=request_id, photos=kw.get("photos", ())
    )


def finish_case(
    actor: Any,
    case_id: int,
    *,
    result: str = "",
    note: str = "",
    photos: Any = (),
    lng: Any = None,
    lat: Any = None,
    request_id: str = "",
    **_: Any,
) -> Case:
    """办结: result text (and photos when the category requires them); a 联办 case only once every
    assisting task is done."""
    text = (result or "").strip()
    if not text:
        raise invalid("result_required", "请填写办理结果", "Describe the result", field="result")

    def change(case: Case, row: transitions.Transition, info: dict[str, Any]) -> None:
        if case.category_id and case.category and case.category.photo_required and not list(photos or []):
            raise invalid(
                "photo_required",
                "此类案件办结须附现场照片",
                "This kind of case needs a photo to be finished",
                field="photos",
            )
        open_tasks = list(case.tasks.filter(role="assist").exclude(status="done").select_related("unit"))
        if open_tasks:
            names = "、".join(t.unit.name for t in open_tasks)
            raise invalid(
                "assist_open",
                f"协办单位尚未完成：{names}",
                f"Assisting units have not finished: {', '.join(t.unit.code for t in open_tasks)}",
                field="tasks",
            )
        now = clock.now()
        case.result = text
        case.finished_at = now
        case.extension_request = None
        case.overdue = case.overdue or bool(case.due_at and now > case.due_at)
        CaseTask.objects.filter(case=case, role="lead").update(status="done", finished_at=now)
        info["overdue"] = case.overdue

    return _act(
        actor,
        case_id,
        "finish",
        change,
        note=note or text,
        photos=photos,
        lng=lng,
        lat=lat,
        request_id=request_id,
    )


def _rework(case: Case) -> None:
    """Back to handling with a fresh handling clock (返工/重办 are counted by KPIs)."""
    case.rework_count += 1
    case.finished_at = None
    case.verified_at = None
    case.closed_at = None
    case.sla_start_at = clock.now()
    case.paused_seconds = 0
    case.paused_work_minutes = 0
    case.extensions = []
    case.signed_at = case.signed_at or clock.now()
    case.followed_up_at = None
    CaseTask.objects.filter(case=case, role="lead").update(status="signed", finished_at=None)


def verify_case(
    actor: Any,
    case_id: int,
    *,
    passed: Any = True,
    note: str = "",
    photos: Any = (),
    request_id: str = "",
    **_: Any,
) -> Case:
    """核查: pass → 结案 (and the reporter is invited to rate), fail → 返工."""
    ok = passed if isinstance(passed, bool) else str(passed).lower() in ("1", "true", "yes", "pass", "通过")
    action = "verify_pass" if ok else "verify_fail"
    if not ok and not (note or "").strip():
        raise invalid(
            "note_required", "请说明核查不通过的原因", "Say why the verification failed", field="note"
        )

    def change(case: Case, row: transitions.Transition, info: dict[str, Any]) -> None:
        case.verified_at = clock.now()
        if ok:
            case.closed_at = clock.now()
        else:
            _rework(case)

    return _act(actor, case_id, action, change, note=note, photos=photos, request_id=request_id)


def visit_case(
    actor: Any,
    case_id: int,
    *,
    satisfaction: str = "",
    note: str = "",
    rate_token: str = "",
    request_id: str = "",
    **_: Any,
) -> Case:
    """回访: 满意/基本满意 → 已回访; 不满意 → waits for a supervisor (重办 or 说明后结案)."""
    code = SATISFACTION_WORDS.get(satisfaction, satisfaction)
    if code not in dict(Case.SATISFACTION):
        raise invalid(
            "satisfaction",
            "请选择满意度",
            "Choose a satisfaction rating",
            field="satisfaction",
            value=satisfaction,
            expected_zh="满意、基本满意、不满意",
            expected_en="satisfied, basic, unsatisfied",
        )

    def change(case: Case, row: transitions.Transition, info: dict[str, Any]) -> str:
        case.satisfaction = code
        case.visited_at = clock.now()
        info["satisfaction"] = code
        info["by"] = "reporter" if actor is None else "staff"
        return "unsatisfied" if code == "unsatisfied" else "visited"

    return _act(actor, case_id, "visit", change, note=note, rate_token=rate_token, request_id=request_id)


def reopen_case(actor: Any, case_id: int, *, note: str = "", request_id: str = "", **_: Any) -> Case:
    """重办 after an unsatisfied visit: back to the same handler with a fresh clock."""

    def change(case: Case, row: transitions.Transition, info: dict[str, Any]) -> None:
        _rework(case)
        case.visited_at = None

    return _act(actor, case_id, "reopen", change, note=note, request_id=request_id)


def close_with_explanation(
    actor: Any, case_id: int, *, note: str = "", request_id: str = "", **_: Any
) -> Case:
    """A supervisor closes an unsatisfied case with a written explanation (说明后结案)."""
    if not (note or "").strip():
        raise invalid("note_required", "请填写情况说明", "Write the explanation", field="note")
    return _act(actor, case_id, "close_with_explanation", None, note=note, request_id=request_id)


def urge_case(actor: Any, case_id: int, *, note: str = "", request_id: str = "", **_: Any) -> Case:
    """督办/催办: a reminder to the handler; the status does not change."""

    def change(case: Case, row: transitions.Transition, info: dict[str, Any]) -> None:
        info["assignee"] = case.assignee.username if case.assignee_id and case.assignee else None

    return _act(actor, case_id, "urge", change, note=note, request_id=request_id)


def escalate_case(actor: Any, case_id: int, *, note: str = "", request_id: str = "", **_: Any) -> Case:
    """升级: grid → community → street command centre → district (levels 0–3)."""

    def change(case: Case, row: transitions.Transition, info: dict[str, Any]) -> None:
        if case.escalation_level >= sla.MAX_ESCALATION:
            raise invalid(
                "escalation_top", "已升级到区级，不能再升级", "Already at district level", field="action"
            )
        case.escalation_level += 1
        info["level"] = case.escalation_level
        if actor is None and case.escalation_level < sla.MAX_ESCALATION:
            case.escalate_at = clock.now() + sla.grace()
        elif actor is None:
            case.escalate_at = None

    return _act(actor, case_id, "escalate", change, note=note, request_id=request_id)


def auto_escalate(case_id: int) -> bool:
    """The sweep's escalation of a case that stayed red past the grace; False if nothing to do."""
    try:
        with transaction.atomic():
            case = Case.objects.select_for_update().get(pk=case_id)
            if case.escalate_at is None or case.escalate_at > clock.now():
                return False
            if case.escalation_level >= sla.MAX_ESCALATION:
                case.escalate_at = None
                case.save()
                return False
            escalate_case(None, case_id, note="超时未处置，系统自动升级")
    except (IllegalAction, Invalid):
        return False
    return True


def merge_case(
    actor: Any, case_id: int, *, into: Any = None, note: str = "", request_id: str = "", **_: Any
) -> Case:
    """合并: this case duplicates `into` (id or number) and stops; the other goes on."""

    def change(case: Case, row: transitions.Transition, info: dict[str, Any]) -> None:
        target = (
            cases_visible_to(actor)
            .filter(Q(number=str(into)) | Q(pk=int(into) if str(into).isdigit() else None))
            .first()
            if into not in (None, "")
            else None
        )
        if target is None:
            raise invalid(
                "merge_target",
                "请指定要合并到的案件",
                "Name the case to merge into",
                field="into",
                value=into,
            )
        seen: set[int] = set()
        cursor: Case | None = target
        while cursor is not None:
            if cursor.pk == case.pk:
                raise invalid(
                    "merge_self",
                    "不能合并到自身",
                    "A case cannot be merged into itself",
                    field="into",
                    value=into,
                )
            if cursor.pk in seen:
                break
            seen.add(cursor.pk)
            cursor = cursor.duplicate_of
        if target.status in ("cancelled", "merged"):
            raise invalid(
                "merge_target_closed",
                "目标案件已注销或已合并",
                "The target case was cancelled or merged",
                field="into",
                value=into,
            )
        case.duplicate_of = target
        info["into"] = target.number
        CaseTask.objects.filter(case=case).exclude(status="done").delete()

    return _act(actor, case_id, "merge", change, note=note, request_id=request_id)


def reject_case(
    actor: Any, case_id: int, *, reason: str = "", note: str = "", request_id: str = "", **_: Any
) -> Case:
    """注销: not a case (does not meet 立案标准, out of jurisdiction …), with the reason."""
    why = _required_reason(reason, note, "请填写注销原因", "State why the case is rejected")

    def change(case: Case, row: transitions.Transition, info: dict[str, Any]) -> None:
        info["reason"] = why

    return _act(actor, case_id, "reject", change, note=why, request_id=request_id)


def register_reported(actor: Any, case_id: int, *, note: str = "", request_id: str = "", **_: Any) -> Case:
    """立案 of a report waiting in the queue; dispatches at once when the route is certain."""
    with acting_as(actor, current_request_id() or None), transaction.atomic():
        case = _act(actor, case_id, "register", None, note=note, request_id=request_id)
        case.refresh_from_db()
        if case.status == "registered":
            route = routing.route(case.category, case.grid, category_certain=case.category_certain)
            if route.certain and route.unit is not None:
                _dispatch_locked(
                    case, None, route.unit, route.assignee, route.assisting, "dispatch", auto=True
                )
    return case


# The API's action name → service function.
ACTION_FUNCTIONS: dict[str, Callable[..., Case]] = {
    "register": register_reported,
    "reject": reject_case,
    "dispatch": dispatch_case,
    "redispatch": redispatch_case,
    "sign": sign_for,
    "return": return_case,
    "arrive": arrive,
    "followup": follow_up,
    "finish_task": finish_task,
    "request_extension": request_extension,
    "approve_extension": approve_extension,
    "deny_extension": deny_extension,
    "defer": defer_case,
    "resume": resume_case,
    "finish": finish_case,
    "verify_pass": lambda actor, case_id, **kw: verify_case(actor, case_id, passed=True, **kw),
    "verify_fail": lambda actor, case_id, **kw: verify_case(actor, case_id, passed=False, **kw),
    "visit": visit_case,
    "reopen": reopen_case,
    "close_with_explanation": close_with_explanation,
    "urge": urge_case,
    "escalate": escalate_case,
    "merge": merge_case,
}


def perform(actor: Any, case_id: int, action: str, **payload: Any) -> Case:
    """Run the named action (the API's /actions/{action}); unknown names list the known ones."""
    fn = ACTION_FUNCTIONS.get(action)
    if fn is None:
        raise invalid(
            "unknown_action",
            "未知的操作",
            "Unknown action",
            field="action",
            value=action,
            expected_en=", ".join(ACTION_FUNCTIONS),
        )
    return fn(actor, case_id, **payload)


# --- photos -------------------------------------------------------------------------------------
def photo_type(data: bytes) -> str | None:
    """JPEG, PNG or WebP by the file's first bytes (Pillow is not a dependency)."""
    for magic, kind in PHOTO_TYPES.items():
        if data.startswith(magic):
            return kind
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def photo_limit() -> int:
    return int(getattr(settings, "ZHIZHI_PHOTO_MAX_BYTES", 10 * 1024 * 1024))


def check_photo_size(size: int) -> None:
    limit = photo_limit()
    if size > limit:
        raise invalid(
            "photo_too_large",
            f"照片过大（{size // 1024} KB），上限 {limit // 1024} KB",
            f"The photo is too large ({size // 1024} KB); the limit is {limit // 1024} KB",
            field="file",
            expected_zh=f"不超过 {limit // 1024} KB",
            expected_en=f"at most {limit // 1024} KB",
        )


def add_photo(actor: Any, case_id: int, *, name: str, data: bytes) -> CasePhoto:
    """Attach one photo to a case the actor can see; the bytes must be JPEG/PNG/WebP within
    ZHIZHI_PHOTO_MAX_BYTES (default 10 MB)."""
    check_photo_size(len(data))
    kind = photo_type(data)
    if kind is None or not data:
        raise invalid(
            "photo_type",
            "文件不是图片",
            "The file is not an image",
            field="file",
            value=name,
            expected_zh="JPEG、PNG 或 WebP 图片",
            expected_en="a JPEG, PNG or WebP image",
        )
    if actor is not None:
        get_case(actor, case_id)
    digest = hashlib.sha256(data).hexdigest()
    photo = CasePhoto(
        case_id=case_id,
        content_type=kind,
        size=len(data),
        sha256=digest,
        original_name=(name or "")[:200],
        uploaded_by=actor,
    )
    photo.file.save(f"{digest}{photo.extension}", ContentFile(data), save=False)
    photo.save()
    return photo


# --- the responsibility list -------------------------------------------------------------------
LIMIT_KEYS = ("sign_limit", "onsite_limit", "reinforce_limit", "followup_limit", "handle_limit")


def _limit(raw: Any, where: str, problems: list[Problem]) -> list[Any] | None:
    if raw in (None, "", []):
        return None
    ok = (
        isinstance(raw, list | tuple)
        and len(raw) == 2
        and isinstance(raw[0], int | float)
        and raw[1] in worktime.UNITS
    )
    if not ok or float(raw[0]) <= 0:
        problems.append(
            Problem(
                "limit",
                f"{where}：时限格式错误",
                f"{where}: bad time limit",
                value=str(raw),
                expected_zh="[数量, 单位]，单位为 work_hours/work_days/calendar_minutes",
                expected_en="[amount, unit] with unit work_hours/work_days/calendar_minutes",
            )
        )
        return None
    return [raw[0], raw[1]]


def load_responsibility_list(data: list[dict[str, Any]], actor: Any = None) -> dict[str, Any]:
    """Create or update categories by code (idempotent). Unknown unit codes are reported (both
    languages) and nothing is written when there is any problem."""
    problems: list[Problem] = []
    units = {u.code: u for u in OrgUnit.objects.all()}
    counts = {"created": 0, "updated": 0, "unchanged": 0}

    def unit_for(code: Any, where: str) -> OrgUnit | None:
        if not code:
            return None
        unit = units.get(str(code))
        if unit is None:
            problems.append(
                Problem(
                    "unit_missing",
                    f"{where}：组织单位「{code}」不存在，请先在组织机构中建立",
                    f"{where}: org unit '{code}' does not exist; create it first",
                    value=str(code),
                )
            )
        return unit

    plan: list[tuple[dict[str, Any], dict[str, Any] | None, list[OrgUnit]]] = []
    for big in data or []:
        code = str(big.get("code", "")).strip()
        if not code or not big.get("name"):
            problems.append(
                Problem(
                    "category", "大类缺少编码或名称", "A category lacks a code or name", value=str(big)[:80]
                )
            )
            continue
        top = {"code": code, "name": big["name"], "kind": big.get("kind", "event")}
        plan.append((top, None, []))
        for leaf in big.get("children", []):
            lcode = str(leaf.get("code", "")).strip()
            where = f"{lcode} {leaf.get('name', '')}"
            if not lcode or not leaf.get("name"):
                problems.append(
                    Problem(
                        "category",
                        f"{code}下的小类缺少编码或名称",
                        f"An item under {code} lacks a code or name",
                    )
                )
                continue
            resp = leaf.get("responsibility", "territorial")
            if resp not in dict(Category.RESPONSIBILITY):
                problems.append(
                    Problem(
                        "responsibility", f"{where}：责任方式无效", f"{where}: bad responsibility", value=resp
                    )
                )
            fields: dict[str, Any] = {
                "code": lcode,
                "name": leaf["name"],
                "kind": leaf.get("kind", top["kind"]),
                "keywords": list(leaf.get("keywords", [])),
                "register_criteria": leaf.get("register_criteria", "") or "",
                "close_criteria": leaf.get("close_criteria", "") or "",
                "responsibility": resp,
                "department": unit_for(leaf.get("department"), where),
                "assign_rule": leaf.get("assign_rule")
                or ("grid_worker" if resp == "territorial" else "least_loaded"),
                "urgent": bool(leaf.get("urgent", False)),
                "photo_required": bool(leaf.get("photo_required", False)),
                "dedup_distance_m": int(leaf.get("dedup_distance_m", 50) or 50),
            }
            for key in LIMIT_KEYS:
                fields[key] = _limit(leaf.get(key), where, problems)
            if resp == "department" and fields["department"] is None and not leaf.get("department"):
                problems.append(
                    Problem(
                        "department",
                        f"{where}：部门事项须指定责任部门",
                        f"{where}: a department item needs a department",
                    )
                )
            assisting = [
                u for u in (unit_for(c, where) for c in leaf.get("assisting", []) or []) if u is not None
            ]
            plan.append((fields, top, assisting))
    if problems:
        raise Invalid(problems)
    with acting_as(actor, current_request_id() or None), transaction.atomic():
        parents: dict[str, Category] = {}
        for spec, parent_spec, assisting in plan:
            values = dict(spec)
            if parent_spec is not None:
                values["parent"] = parents[parent_spec["code"]]
            code = values.pop("code")
            obj = Category.objects.filter(code=code).first()
            if obj is None:
                obj = Category.objects.create(code=code, **values)
                counts["created"] += 1
            else:
                changed = [k for k, v in values.items() if getattr(obj, k) != v]
                if changed:
                    for k in changed:
                        setattr(obj, k, values[k])
                    obj.save()
                    counts["updated"] += 1
                else:
                    counts["unchanged"] += 1
            if parent_spec is None:
                parents[code] = obj
            else:
                current = set(obj.assisting.values_list("pk", flat=True))
                if current != {u.pk for u in assisting}:
                    obj.assisting.set(assisting)
    return counts
