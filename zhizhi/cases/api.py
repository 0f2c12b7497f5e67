"""Cases under /api/v1/cases/: list, register, read with timeline, actions, photos, the list of
categories. Thin: every change is one call into zhizhi/cases/services.py.

An action the case's status does not allow answers 409 with `allowed_actions` (what the caller
may do now); an action by the wrong person 403; a case outside the caller's area 404.
"""

from typing import Any, Literal

from django.db.models import Q
from django.http import HttpRequest
from ninja import File, Query, Schema
from ninja.files import UploadedFile
from ninja.responses import Status
from pydantic import Field

from zhizhi.api import app_router
from zhizhi.api_common import (
    DEFAULT_LIMIT,
    ERRORS,
    MAX_LIMIT,
    ErrorsOut,
    StrictInput,
    acting,
    page,
    problem_body,
)
from zhizhi.cases import services, transitions, worktime
from zhizhi.cases.models import Case, CaseEvent, CasePhoto, Category
from zhizhi.notify.models import OutboxMessage

router = app_router("cases")


class IllegalActionOut(ErrorsOut):
    allowed_actions: list[str] = Field(..., description="现在允许的操作 the actions allowed now")
    status: str = Field(..., description="案件当前状态 the case's status")


OK = {200: dict[str, Any], **ERRORS}
CREATED = {201: dict[str, Any], **ERRORS}


# --- output -------------------------------------------------------------------------------------
def _ref(obj: Any, key: str = "code") -> dict[str, Any] | None:
    if obj is None:
        return None
    return {"id": obj.pk, "key": getattr(obj, key), "name": str(obj)}


def case_out(case: Case, user: Any) -> dict[str, Any]:
    return {
        "id": case.pk,
        "number": case.number,
        "version": case.version,
        "title": case.title,
        "description": case.description,
        "status": case.status,
        "status_label": case.get_status_display(),
        "category": {"code": case.category.code, "name": case.category.name} if case.category else None,
        "category_certain": case.category_certain,
        "suggested_category": (
            {"code": case.suggested_category.code, "name": case.suggested_category.name}
            if case.suggested_category
            else None
        ),
        "channel": case.channel,
        "external_id": case.external_id,
        "lng": case.lng,
        "lat": case.lat,
        "address": case.address,
        "grid": _ref(case.grid),
        "unit": _ref(case.unit),
        "suggested_unit": _ref(case.suggested_unit),
        "assignee": _ref(case.assignee, "username"),
        "reporter_name": case.reporter_name,
        "reporter_phone_masked": case.reporter_phone_masked,
        "urgent": case.urgent,
        "duplicate_of": case.duplicate_of.number if case.duplicate_of_id and case.duplicate_of else None,
        "result": case.result,
        "satisfaction": case.satisfaction,
        "return_reason": case.return_reason,
        "rework_count": case.rework_count,
        "extension_count": case.extension_count,
        "extension_request": case.extension_request,
        "times": {
            col: getattr(case, col) for col in (*services.TIME_COLUMNS.values(), "onsite_at", "verified_at")
        },
        "sla": {
            "stage": case.stage,
            "warn_at": case.stage_warn_at,
            "due_at": case.stage_due_at,
            "level": case.sla_level,
            "escalation_level": case.escalation_level,
            "handling_due_at": case.due_at,
            "overdue": case.overdue,
        },
    }


def event_out(event: CaseEvent) -> dict[str, Any]:
    return {
        "id": event.pk,
        "at": event.at,
        "actor": _ref(event.actor, "username"),
        "action": event.action,
        "action_label": transitions.LABELS.get(event.action, event.action),
        "from_status": event.from_status,
        "to_status": event.to_status,
        "note": event.note,
        "photos": event.photos,
        "lng": event.lng,
        "lat": event.lat,
        "data": event.data,
    }


def photo_out(photo: CasePhoto) -> dict[str, Any]:
    return {
        "id": photo.pk,
        "url": photo.file.url if photo.file else "",
        "content_type": photo.content_type,
        "size": photo.size,
        "uploaded_at": photo.uploaded_at,
    }


def detail(case: Case, user: Any) -> dict[str, Any]:
    out = case_out(case, user)
    # Only on the detail: it costs a few queries per case (relations to the caller).
    out["allowed_actions"] = services.allowed_now(user, case)
    out["timeline"] = [event_out(e) for e in case.events.select_related("actor").order_by("at", "id")]
    out["tasks"] = [
        {
            "unit": _ref(t.unit),
            "role": t.role,
            "status": t.status,
            "assignee": _ref(t.assignee, "username"),
            "signed_at": t.signed_at,
            "finished_at": t.finished_at,
        }
        for t in case.tasks.select_related("unit", "assignee")
    ]
    out["photos"] = [photo_out(p) for p in case.photos.all()]
    out["deliveries"] = [
        {"channel": m.channel, "status": m.status, "attempts": m.attempts, "created_at": m.created_at}
        for m in OutboxMessage.objects.filter(cause=f"cases.case:{case.pk}").order_by("id")
    ]
    return out


def _load(user: Any, case_id: int) -> Case:
    services.get_case(user, case_id)
    return Case.objects.select_related(
        "category", "suggested_category", "grid", "unit", "suggested_unit", "assignee", "duplicate_of"
    ).get(pk=case_id)


# --- endpoints ----------------------------------------------------------------------------------
class CaseFilters(Schema):
    status: str | None = None
    category: str | None = Field(None, description="小类编码 leaf code, or a 大类 code for all its items")
    unit: str | None = Field(None, description="承办单位编码 unit code")
    grid: str | None = Field(None, description="网格编码 grid code")
    sla_level: str | None = Field(None, description="green / yellow / red")
    channel: str | None = None
    q: str | None = Field(None, description="编号或标题 number or title contains")
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    offset: int = Field(0, ge=0)


@router.get("/", response=OK, operation_id="cases_list")
def list_cases(request: HttpRequest, filters: Query[CaseFilters]) -> dict[str, Any]:
    """案件列表 Cases in the caller's area (filters: status, category, unit, grid, sla_level, channel)."""
    user = request.auth  # type: ignore[attr-defined]
    qs = services.cases_visible_to(user).select_related(
        "category", "suggested_category", "grid", "unit", "suggested_unit", "assignee", "duplicate_of"
    )
    if filters.status:
        qs = qs.filter(status__in=filters.status.split(","))
    if filters.category:
        qs = qs.filter(Q(category__code=filters.category) | Q(category__parent__code=filters.category))
    if filters.unit:
        qs = qs.filter(unit__code=filters.unit)
    if filters.grid:
        qs = qs.filter(grid__code=filters.grid)
    if filters.sla_level:
        qs = qs.filter(sla_level=filters.sla_level)
    if filters.channel:
        qs = qs.filter(channel=filters.channel)
    if filters.q:
        qs = qs.filter(Q(number__icontains=filters.q) | Q(title__icontains=filters.q))
    qs = qs.order_by("-reported_at", "-id")
    return page(request, qs, lambda rows: [case_out(c, user) for c in rows], filters.limit, filters.offset)


class CaseIn(StrictInput):
    title: str
    description: str = ""
    category: str | None = Field(None, description="小类编码 leaf code, e.g. 0102")
    category_certain: bool = True
    lng: Any = None
    lat: Any = None
    address: str = ""
    channel: str = "dispatcher"
    external_id: str = ""
    reporter_name: str = ""
    reporter_phone: str = Field("", description="明文，加密保存 plaintext, stored encrypted")
    urgent: bool | None = None
    register_now: bool = Field(True, description="立即立案；false = 受理待立案 / false: wait in the queue")
    request_id: str = Field("", description="幂等键 idempotency key")
    note: str = ""


@router.post("/", response=CREATED, operation_id="cases_create")
def create_case(request: HttpRequest, payload: CaseIn) -> Any:
    """立案 Register a case; auto-dispatched when the category and the grid are certain."""
    user = request.auth  # type: ignore[attr-defined]
    raw = payload.model_dump()
    raw["register"] = raw.pop("register_now")
    if getattr(user, "role", "") == "resident":
        # A resident's report waits for a dispatcher to register it (受理 → 立案).
        raw["reporter_user"] = user
        raw["register"] = False
    with acting(request):
        case = services.register_case(user, **raw)
    return Status(201, detail(_load(user, case.pk), user))


@router.get("/categories/", response=OK, operation_id="cases_categories")
def categories(request: HttpRequest) -> dict[str, Any]:
    """权责清单 The responsibility list as a tree, and years whose holidays are not filled in."""
    tops = Category.objects.filter(parent__isnull=True, active=True).order_by("code")
    leaves: dict[int, list[Category]] = {}
    for leaf in (
        Category.objects.filter(parent__isnull=False, active=True)
        .select_related("department")
        .prefetch_related("assisting")
    ):
        assert leaf.parent_id is not None
        leaves.setdefault(leaf.parent_id, []).append(leaf)
    from zhizhi import clock

    year = clock.today().year
    return {
        "uncovered_years": [y for y in (year, year + 1) if not worktime.is_covered(y)],
        "categories": [
            {
                "code": top.code,
                "name": top.name,
                "kind": top.kind,
                "children": [
                    {
                        "code": leaf.code,
                        "name": leaf.name,
                        "keywords": leaf.keywords,
                        "responsibility": leaf.responsibility,
                        "department": leaf.department.code if leaf.department else None,
                        "assisting": [u.code for u in leaf.assisting.all()],
                        "assign_rule": leaf.assign_rule,
                        "sign_limit": leaf.sign_limit,
                        "onsite_limit": leaf.onsite_limit,
                        "reinforce_limit": leaf.reinforce_limit,
                        "followup_limit": leaf.followup_limit,
                        "handle_limit": leaf.handle_limit,
                        "urgent": leaf.urgent,
                        "photo_required": leaf.photo_required,
                        "register_criteria": leaf.register_criteria,
                        "close_criteria": leaf.close_criteria,
                    }
                    for leaf in sorted(leaves.get(top.pk, []), key=lambda c: c.code)
                ],
            }
            for top in tops
        ],
    }


@router.get("/{int:case_id}", response=OK, operation_id="cases_get")
def get_case(request: HttpRequest, case_id: int) -> dict[str, Any]:
    """案件详情 One case with its timeline, tasks, photos and notification deliveries."""
    user = request.auth  # type: ignore[attr-defined]
    return detail(_load(user, case_id), user)


class ActionIn(StrictInput):
    note: str = ""
    reason: str = Field("", description="退单/注销/缓办原因 reason")
    result: str = Field("", description="办理结果 result (finish)")
    photos: list[int] = Field(default_factory=list, description="已上传照片的编号 ids of uploaded photos")
    lng: Any = None
    lat: Any = None
    request_id: str = Field("", description="幂等键：重复提交只执行一次 / idempotency key")
    unit: str | None = Field(None, description="派遣到的单位编码 unit code (dispatch)")
    assignee: str | None = Field(None, description="承办人用户名 username (dispatch)")
    category: str | None = Field(None, description="确认的小类编码 confirmed leaf code (dispatch)")
    amount: float | None = Field(None, description="延期时长 extension length")
    time_unit: str = Field("work_days", description="work_hours / work_days / calendar_minutes")
    satisfaction: str = Field("", description="满意/基本满意/不满意 (visit)")
    into: str | None = Field(None, description="合并到的案件编号 target case number (merge)")


ACTION_FIELDS = {
    "dispatch": ("unit", "assignee", "category"),
    "redispatch": ("unit", "assignee", "category"),
    "return": ("reason",),
    "reject": ("reason",),
    "defer": ("reason",),
    "request_extension": ("reason", "amount", "time_unit"),
    "finish": ("result", "photos", "lng", "lat"),
    "finish_task": ("result", "photos"),
    "arrive": ("photos", "lng", "lat"),
    "followup": ("photos",),
    "verify_pass": ("photos",),
    "verify_fail": ("photos",),
    "visit": ("satisfaction",),
    "merge": ("into",),
}


# The path's action names, listed in the OpenAPI document.
ActionName = Literal.__getitem__(tuple(services.ACTION_FUNCTIONS))


@router.post(
    "/{int:case_id}/actions/{action}",
    response={**OK, 409: IllegalActionOut},
    operation_id="cases_action",
)
def act(request: HttpRequest, case_id: int, action: ActionName, payload: ActionIn) -> Any:  # type: ignore[valid-type]
    """案件操作 Run one action of the transition table (see docs/cases.md). 409 lists what is allowed."""
    user = request.auth  # type: ignore[attr-defined]
    raw = payload.model_dump()
    kwargs: dict[str, Any] = {"note": raw["note"], "request_id": raw["request_id"]}
    for name in ACTION_FIELDS.get(action, ()):
        kwargs[name] = raw[name]
    try:
        with acting(request):
            services.perform(user, case_id, action, **kwargs)
    except services.IllegalAction as exc:
        return Status(409, problem_body(exc.problem, allowed_actions=exc.allowed, status=exc.status))
    return detail(_load(user, case_id), user)


@router.post("/{int:case_id}/photos", response=CREATED, operation_id="cases_photo_upload")
def upload_photo(request: HttpRequest, case_id: int, file: File[UploadedFile]) -> Any:
    """上传照片 Upload a JPEG/PNG/WebP photo; use its id in an action's `photos`."""
    user = request.auth  # type: ignore[attr-defined]
    services.get_case(user, case_id)
    # A too-large upload is refused by its size before it is read into memory.
    services.check_photo_size(file.size or 0)
    data = file.read(services.photo_limit() + 1)
    with acting(request):
        photo = services.add_photo(user, case_id, name=file.name or "", data=data)
    return Status(201, photo_out(photo))


class RateIn(StrictInput):
    satisfaction: str = Field(..., description="满意/基本满意/不满意")
    note: str = Field("", max_length=500)


@router.get("/rate/{token}", auth=None, response=OK, operation_id="cases_rate_get")
def rate_get(request: HttpRequest, token: str) -> dict[str, Any]:
    """回访评价（居民，凭短信链接）The reporter's view of the case to rate, by the link's token."""
    case = services.case_for_rating(token)
    return {
        "number": case.number,
        "title": case.title,
        "status": case.status,
        "result": case.result,
        "finished_at": case.finished_at,
        "can_rate": case.status == "closed",
    }


@router.post("/rate/{token}", auth=None, response={**OK, 409: IllegalActionOut}, operation_id="cases_rate")
def rate(request: HttpRequest, token: str, payload: RateIn) -> Any:
    """提交评价 The reporter rates the result (once: a second rating answers 409)."""
    case = services.case_for_rating(token)
    try:
        case = services.visit_case(
            None, case.pk, satisfaction=payload.satisfaction, note=payload.note, rate_token=token
        )
    except services.IllegalAction as exc:
        return Status(409, problem_body(exc.problem, allowed_actions=[], status=exc.status))
    return {"number": case.number, "status": case.status, "satisfaction": case.satisfaction}
