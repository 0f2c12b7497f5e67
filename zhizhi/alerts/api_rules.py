"""Alert rules and alarms under /api/v1/alerts/: list/create/update rules (optimistic version: a stale
edit answers 409), list alarms with filters, one alarm with its timeline, and acknowledge (idempotent).
Thin: every check and save is in zhizhi/alerts/desk.py, shared with the pages.
"""

from typing import Any

from django.http import Http404, HttpRequest
from ninja import Query, Schema
from ninja.responses import Status
from pydantic import Field

from zhizhi.alerts import desk
from zhizhi.alerts.rule_models import Alarm, AlarmEvent, AlertRule
from zhizhi.api import app_router
from zhizhi.api_common import DEFAULT_LIMIT, ERRORS, MAX_LIMIT, StrictInput, acting, page, required_version
from zhizhi.problems import Forbidden, Invalid, Problem

router = app_router("alerts")

OK = {200: dict[str, Any], **ERRORS}
CREATED = {201: dict[str, Any], **ERRORS}


# --- output -------------------------------------------------------------------------------------
def rule_out(rule: AlertRule, user: Any) -> dict[str, Any]:
    return {
        "id": rule.pk,
        "version": rule.version,
        "code": rule.code,
        "name": rule.name,
        "kind": rule.kind,
        "kind_label": rule.get_kind_display(),
        "device_kind": rule.device_kind,
        "params": rule.params,
        "category_code": rule.category_code,
        "creates_case": rule.creates_case,
        "enabled": rule.enabled,
        "updated_at": rule.updated_at,
        "editable": desk.can_edit_rule(user, rule),
    }


def alarm_out(alarm: Alarm) -> dict[str, Any]:
    device = alarm.device
    return {
        "id": alarm.pk,
        "rule": {
            "id": alarm.rule_id,
            "code": alarm.rule.code,
            "name": alarm.rule.name,
            "kind": alarm.rule.kind,
        },
        "title": alarm.title or alarm.rule.name,
        "source_key": alarm.source_key,
        "severity": alarm.severity,
        "severity_label": alarm.get_severity_display(),
        "status": alarm.status,
        "value": alarm.value,
        "count": alarm.count,
        "first_seen_at": alarm.first_seen_at,
        "last_seen_at": alarm.last_seen_at,
        "cleared_at": alarm.cleared_at,
        "acknowledged_at": alarm.acknowledged_at,
        "acknowledged_by": alarm.acknowledged_by.username if alarm.acknowledged_by else None,
        "device": {"id": device.pk, "code": device.code, "name": device.name, "kind": device.kind}
        if device is not None
        else None,
        "enterprise": {"id": alarm.enterprise_id, "name": alarm.enterprise.name}
        if alarm.enterprise
        else None,
        "person": {"id": alarm.person_id, "name": alarm.person.name} if alarm.person else None,
        "case": {"id": alarm.case_id, "number": alarm.case.number} if alarm.case else None,
        "evidence": alarm.evidence,
        "area_path": alarm.area_path,
    }


def event_out(event: AlarmEvent) -> dict[str, Any]:
    return {
        "at": event.at,
        "kind": event.kind,
        "kind_label": event.get_kind_display(),
        "severity": event.severity,
        "value": event.value,
        "note": event.note,
        "actor": event.actor.username if event.actor_id and event.actor else None,
    }


def alarm_detail(alarm: Alarm) -> dict[str, Any]:
    out = alarm_out(alarm)
    out["timeline"] = [event_out(e) for e in alarm.events.select_related("actor").order_by("at", "id")]
    return out


def _rule(pk: int) -> AlertRule:
    rule = AlertRule.objects.filter(pk=pk).first()
    if rule is None:
        raise Http404()
    return rule


def _staff(request: HttpRequest) -> Any:
    user = request.auth  # type: ignore[attr-defined]
    desk.require_staff(user)
    return user


# --- rules ----------------------------------------------------------------------------------------
class RuleFilters(Schema):
    kind: str | None = Field(None, description="规则类型 threshold / rate_of_change / missing_data / …")
    device_kind: str | None = Field(None, description="设备类型 water_level / smoke / door / …")
    enabled: bool | None = None
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    offset: int = Field(0, ge=0)


@router.get("/rules", response=OK, operation_id="alerts_rules_list", tags=["alerts"])
def list_rules(request: HttpRequest, filters: Query[RuleFilters]) -> dict[str, Any]:
    """告警规则列表 Alert rules (every staff role may read them)."""
    user = _staff(request)
    qs = AlertRule.objects.order_by("code")
    if filters.kind:
        qs = qs.filter(kind=filters.kind)
    if filters.device_kind:
        qs = qs.filter(device_kind=filters.device_kind)
    if filters.enabled is not None:
        qs = qs.filter(enabled=filters.enabled)
    return page(request, qs, lambda rows: [rule_out(r, user) for r in rows], filters.limit, filters.offset)


class RuleIn(StrictInput):
    code: str = Field(..., description="规则编码 unique code")
    name: str
    kind: str = Field(
        ..., description="threshold / rate_of_change / missing_data / inactivity / registry / list_match"
    )
    device_kind: str = ""
    params: Any = Field(
        default_factory=dict, description="按类型的参数 params of the kind (docs/alert-rules.md)"
    )
    category_code: str = Field("", description="权责清单小类 responsibility-list leaf code")
    creates_case: bool = False
    enabled: bool = True


class RulePatch(StrictInput):
    version: int | None = Field(None, description="读到的版本 the version you read (or If-Match)")
    code: str | None = None
    name: str | None = None
    kind: str | None = None
    device_kind: str | None = None
    params: Any = None
    category_code: str | None = None
    creates_case: bool | None = None
    enabled: bool | None = None


@router.post("/rules", response=CREATED, operation_id="alerts_rules_create", tags=["alerts"])
def create_rule(request: HttpRequest, payload: RuleIn) -> Any:
    """新建规则 Create a rule; every problem is reported at its field (`params.ladder[1]` …), bilingual."""
    user = _staff(request)
    with acting(request):
        rule = desk.save_rule(user, None, payload.model_dump())
    return Status(201, rule_out(rule, user))


@router.get("/rules/{int:rule_id}", response=OK, operation_id="alerts_rules_get", tags=["alerts"])
def get_rule(request: HttpRequest, rule_id: int) -> dict[str, Any]:
    """一条规则 One rule."""
    return rule_out(_rule(rule_id), _staff(request))


@router.patch("/rules/{int:rule_id}", response=OK, operation_id="alerts_rules_update", tags=["alerts"])
def update_rule(request: HttpRequest, rule_id: int, payload: RulePatch) -> dict[str, Any]:
    """修改规则 Change some fields. Send the `version` you read (body or If-Match): stale → 409."""
    user = _staff(request)
    rule = _rule(rule_id)
    raw = payload.model_dump(exclude_unset=True)
    version = required_version(request, raw)
    if not desk.can_edit_rule(user, rule):
        raise Forbidden("您不能修改此告警规则", "You may not change this alert rule")
    with acting(request):
        saved = desk.save_rule(user, rule, raw, version)
    return rule_out(saved, user)


# --- alarms ---------------------------------------------------------------------------------------
class AlarmFilters(Schema):
    status: str | None = Field(None, description="active / cleared (默认 default: 活动及近24小时恢复)")
    severity: str | None = Field(None, description="info,minor,major,critical (逗号分隔 comma-separated)")
    rule: str | None = Field(None, description="规则编码 rule code")
    rule_kind: str | None = None
    device_kind: str | None = None
    community: str | None = Field(None, description="社区编码 community (region) code")
    ack: str | None = Field(None, description="yes / no")
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    offset: int = Field(0, ge=0)


@router.get("/alarms", response=OK, operation_id="alerts_alarms_list", tags=["alerts"])
def list_alarms(request: HttpRequest, filters: Query[AlarmFilters]) -> dict[str, Any]:
    """告警列表 Alarms in the caller's area, newest first (filters as on the board)."""
    user = _staff(request)
    problems = []
    if filters.status and filters.status not in (Alarm.ACTIVE, Alarm.CLEARED):
        problems.append(
            Problem(
                "status",
                "状态应为 active 或 cleared",
                "status must be active or cleared",
                field="status",
                value=filters.status,
            )
        )
    bad = [s for s in (filters.severity or "").split(",") if s and s not in dict(Alarm.SEVERITIES)]
    if bad:
        problems.append(
            Problem(
                "severity",
                "级别无效",
                "Unknown severity",
                field="severity",
                value=",".join(bad),
                expected_en="info, minor, major, critical",
            )
        )
    if filters.ack and filters.ack not in ("yes", "no"):
        problems.append(
            Problem("ack", "ack 应为 yes 或 no", "ack must be yes or no", field="ack", value=filters.ack)
        )
    if problems:
        raise Invalid(problems)
    wanted = {k: v for k, v in filters.model_dump().items() if isinstance(v, str) and v}
    qs = desk.board_alarms(user, wanted).select_related("acknowledged_by")
    return page(request, qs, lambda rows: [alarm_out(a) for a in rows], filters.limit, filters.offset)


def _alarm(user: Any, alarm_id: int) -> Alarm:
    try:
        return desk.get_alarm(user, alarm_id)
    except Alarm.DoesNotExist:
        raise Http404() from None


@router.get("/alarms/{int:alarm_id}", response=OK, operation_id="alerts_alarms_get", tags=["alerts"])
def get_alarm(request: HttpRequest, alarm_id: int) -> dict[str, Any]:
    """一条告警及其时间线 One alarm with its timeline (404 outside your area)."""
    return alarm_detail(_alarm(_staff(request), alarm_id))


class AckIn(StrictInput):
    note: str = Field("", max_length=300)


@router.post(
    "/alarms/{int:alarm_id}/acknowledge",
    response=OK,
    operation_id="alerts_alarms_acknowledge",
    tags=["alerts"],
)
def acknowledge(request: HttpRequest, alarm_id: int, payload: AckIn | None = None) -> dict[str, Any]:
    """确认告警 Acknowledge (idempotent: a repeat keeps the first time and person, and answers 200)."""
    user = _staff(request)
    _alarm(user, alarm_id)
    with acting(request):
        desk.acknowledge(user, alarm_id, payload.note if payload else "")
    return alarm_detail(_alarm(user, alarm_id))
