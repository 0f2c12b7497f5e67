"""What the alarm board, the rule editor, the device pages and the alerts API share: who sees which
devices and alarms, who may edit which rule, and the checked saves of a rule and of a per-device
override. Pages and the API are thin wrappers around these functions, so both refuse the same input
with the same bilingual problems and neither half-applies a change.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponseBase

from zhizhi import clock
from zhizhi.alerts import alarms, rules
from zhizhi.alerts.models import Device, Reading
from zhizhi.alerts.rule_models import Alarm, AlertRule, DeviceRuleOverride
from zhizhi.problems import Forbidden, Invalid, Problem
from zhizhi.views import forbidden_page

# Roles that work with alarms (the board, device pages); residents and volunteers do not.
STAFF_ROLES = ("street_leader", "dispatcher", "dept_staff", "community_worker", "grid_worker")
# Roles that may edit every rule, issue device tokens and set overrides anywhere in their area.
EDITOR_ROLES = ("street_leader", "dispatcher")
# Roles that may tune a device's own parameters (one elderly resident's window) in their area.
OVERRIDE_ROLES = (*EDITOR_ROLES, "community_worker", "grid_worker")
# A device not heard from for this long shows as offline (the missing-data rule's default window).
OFFLINE_AFTER = dt.timedelta(seconds=1800)
# The board shows cleared alarms this far back, under the active ones.
RECENTLY_CLEARED = dt.timedelta(hours=24)
NEW_RULE = {"device_kind": "", "params": {}, "category_code": "", "creates_case": False, "enabled": True}
RULE_FIELDS = ("code", "name", "kind", "device_kind", "params", "category_code", "creates_case", "enabled")


# --- who -------------------------------------------------------------------------------------------
def _role(user: Any) -> str:
    return "superuser" if getattr(user, "is_superuser", False) else (getattr(user, "role", "") or "")


def is_staff(user: Any) -> bool:
    return bool(getattr(user, "is_authenticated", False)) and (
        user.is_superuser or _role(user) in STAFF_ROLES
    )


ViewT = TypeVar("ViewT", bound=Callable[..., HttpResponseBase])


def staff_page(zh: str, en: str) -> Callable[[ViewT], ViewT]:
    """View decorator (under `login_required` and any method check): a page for staff of every role;
    anyone else gets the bilingual 403 page saying `zh` / `en`."""

    def wrap(view: ViewT) -> ViewT:
        @functools.wraps(view)
        def inner(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if not is_staff(request.user):
                return forbidden_page(request, zh, en)
            return view(request, *args, **kwargs)

        return cast(ViewT, inner)

    return wrap


def require_staff(user: Any) -> None:
    if not is_staff(user):
        raise Forbidden("您的角色不能查看告警", "Your role cannot see alarms")


def _in_scope(user: Any) -> Q | None:
    """None: everything; else the area-path prefixes the user serves."""
    from zhizhi.permissions import scope_paths

    if user.is_superuser:
        return None
    q = Q(pk__in=[])
    for path in scope_paths(user):
        if path:
            q |= Q(area_path__startswith=path)
    return q


def devices_visible_to(user: Any) -> QuerySet[Device]:
    """Devices under the regions the user serves (as alarms propagate up the region tree)."""
    if not is_staff(user):
        return Device.objects.none()
    q = _in_scope(user)
    return Device.objects.all() if q is None else Device.objects.filter(q)


def alarms_visible_to(user: Any) -> QuerySet[Alarm]:
    if not is_staff(user):
        return Alarm.objects.none()
    return Alarm.objects.visible_to(user)


def rule_department_id(category_code: str) -> int | None:
    from zhizhi.cases.models import Category

    if not category_code:
        return None
    return Category.objects.filter(code=category_code).values_list("department_id", flat=True).first()


def can_edit_rule(user: Any, rule: AlertRule | None, category_code: str | None = None) -> bool:
    """Leaders, dispatchers and admins edit every rule; a department's staff the rules whose
    responsibility-list item their department owns (and only keeping it theirs)."""
    if not getattr(user, "is_authenticated", False):
        return False
    role = _role(user)
    if role in ("superuser", *EDITOR_ROLES):
        return True
    if role != "dept_staff" or not user.org_unit_id:
        return False
    codes = [c for c in (rule.category_code if rule else None, category_code) if c is not None]
    return bool(codes) and all(rule_department_id(c) == user.org_unit_id for c in codes)


def can_issue_token(user: Any) -> bool:
    return _role(user) in ("superuser", *EDITOR_ROLES)


def can_override(user: Any, device: Device) -> bool:
    return (
        _role(user) in ("superuser", *OVERRIDE_ROLES)
        and devices_visible_to(user).filter(pk=device.pk).exists()
    )


# --- reading the board ---------------------------------------------------------------------------
def board_alarms(user: Any, filters: dict[str, str]) -> QuerySet[Alarm]:
    """Active alarms and those cleared in the last 24 h, filtered as the board's form says:
    severity, rule_kind, device_kind, community (region code), ack ("yes"/"no"), status."""
    qs = alarms_visible_to(user).select_related(
        "rule", "device", "enterprise", "person", "case", "acknowledged_by"
    )
    status = filters.get("status", "")
    if status == Alarm.ACTIVE:
        qs = qs.filter(status=Alarm.ACTIVE)
    elif status == Alarm.CLEARED:
        qs = qs.filter(status=Alarm.CLEARED, cleared_at__gte=clock.now() - RECENTLY_CLEARED)
    else:
        qs = qs.filter(Q(status=Alarm.ACTIVE) | Q(cleared_at__gte=clock.now() - RECENTLY_CLEARED))
    if filters.get("severity"):
        qs = qs.filter(severity__in=filters["severity"].split(","))
    if filters.get("rule_kind"):
        qs = qs.filter(rule__kind=filters["rule_kind"])
    if filters.get("device_kind"):
        qs = qs.filter(device__kind=filters["device_kind"])
    if filters.get("rule"):
        qs = qs.filter(rule__code=filters["rule"])
    if filters.get("community"):
        from zhizhi.geo.models import Region

        region = Region.objects.filter(code=filters["community"]).first()
        qs = qs.filter(area_path__startswith=region.path) if region is not None else qs.none()
    if filters.get("ack") == "yes":
        qs = qs.filter(acknowledged_at__isnull=False)
    elif filters.get("ack") == "no":
        qs = qs.filter(acknowledged_at__isnull=True)
    # Active first, the most severe first, then the latest.
    return qs.order_by("status", "-last_seen_at", "-id")


def severity_counts(user: Any) -> dict[str, int]:
    """Active alarms the user sees, by severity (the board's chips)."""
    rows = alarms_visible_to(user).filter(status=Alarm.ACTIVE).values("severity").annotate(n=Count("id"))
    return {r["severity"]: r["n"] for r in rows.order_by()}


def sort_by_severity(rows: list[Alarm]) -> list[Alarm]:
    return sorted(
        rows,
        key=lambda a: (
            a.status != Alarm.ACTIVE,
            -alarms.RANK.get(a.severity, 0),
            -a.last_seen_at.timestamp(),
        ),
    )


def get_alarm(user: Any, pk: int) -> Alarm:
    """The alarm if the user may see it; `Alarm.DoesNotExist` otherwise (never whether it exists)."""
    return (
        alarms_visible_to(user)
        .select_related("rule", "device", "device__grid", "enterprise", "person", "case", "acknowledged_by")
        .get(pk=pk)
    )


def acknowledge(user: Any, pk: int, note: str = "") -> Alarm:
    """Idempotent: a second acknowledge (a double click, a retried request) changes nothing."""
    alarm = get_alarm(user, pk)
    return alarms.acknowledge(alarm, user, note=note[:300])


# --- devices ---------------------------------------------------------------------------------------
def device_state(device: Device, active_alarms: int, now: dt.datetime | None = None) -> str:
    """ "alarm", "online", "offline", "never" (has not reported) or "disabled"."""
    now = now or clock.now()
    if not device.enabled:
        return "disabled"
    if active_alarms:
        return "alarm"
    if device.last_seen_at is None:
        return "never"
    return "online" if now - device.last_seen_at <= OFFLINE_AFTER else "offline"


def devices_with_counts(user: Any) -> QuerySet[Device]:
    return (
        devices_visible_to(user)
        .select_related("grid")
        .annotate(active_alarms=Count("alarms", filter=Q(alarms__status=Alarm.ACTIVE)))
    )


def series_end(device: Device) -> dt.datetime:
    """Where the sparkline's 24 hours end: now, or the last report of a device silent for longer (an
    offline device still shows what it said last)."""
    now = clock.now()
    if device.last_seen_at is not None and now - device.last_seen_at > dt.timedelta(hours=24):
        return device.last_seen_at
    return now


def readings_series(device: Device, hours: int = 24) -> list[tuple[str, float]]:
    """The valid readings of the `hours` up to `series_end` (ISO time, value), oldest first."""
    until = series_end(device)
    rows = (
        Reading.objects.filter(
            device=device,
            status=Reading.OK,
            value__isnull=False,
            at__gte=until - dt.timedelta(hours=hours),
            at__lte=until,
        )
        .order_by("at")
        .values_list("at", "value")
    )
    return [(at.isoformat(), float(v)) for at, v in rows if v is not None]


def rejected_by_reason(device: Device) -> list[dict[str, Any]]:
    rows = (
        Reading.objects.filter(device=device, status=Reading.REJECTED)
        .values("reason")
        .annotate(n=Count("id"))
        .order_by("-n", "reason")
    )
    return [{"reason": r["reason"], "n": r["n"]} for r in rows]


def applicable_rules(device: Device) -> QuerySet[AlertRule]:
    return AlertRule.objects.filter(kind__in=AlertRule.DEVICE_KINDS).filter(
        Q(device_kind="") | Q(device_kind=device.kind)
    )


def save_override(user: Any, device: Device, rule: AlertRule, params: Any) -> DeviceRuleOverride | None:
    """Set (or with empty params remove) the device's own parameters for a rule. The rule's params
    with the override laid over them must still pass the rule's check."""
    if not can_override(user, device):
        raise Forbidden("您不能修改此设备的规则参数", "You may not change this device's rule parameters")
    if not isinstance(params, dict):
        raise Invalid(
            [Problem("params", "参数应为 JSON 对象", "Params must be a JSON object", field="params")]
        )
    if rule.kind not in AlertRule.DEVICE_KINDS or (rule.device_kind and rule.device_kind != device.kind):
        raise Invalid(
            [Problem("rule", "此规则不适用于该设备", "This rule does not apply to this device", field="rule")]
        )
    with transaction.atomic():
        if not params:
            DeviceRuleOverride.objects.filter(device=device, rule=rule).delete()
            return None
        rules.check_params(rule.kind, {**(rule.params or {}), **params})
        override, _ = DeviceRuleOverride.objects.update_or_create(
            device=device, rule=rule, defaults={"params": params}
        )
        return override


# --- rules -------------------------------------------------------------------------------------------
def rule_data(rule: AlertRule) -> dict[str, Any]:
    return {name: getattr(rule, name) for name in RULE_FIELDS}


def check_rule(data: dict[str, Any], rule: AlertRule | None) -> list[Problem]:
    """Every problem of a rule's data at once, each naming its field (params per rung or key)."""
    from zhizhi.cases.models import Category

    problems: list[Problem] = []
    code = str(data.get("code") or "").strip()
    if not code:
        problems.append(Problem("required", "请填写规则编码", "The rule code is required", field="code"))
    elif len(code) > 40:
        problems.append(
            Problem("too_long", "规则编码最多 40 个字符", "The code has at most 40 characters", field="code")
        )
    elif AlertRule.objects.filter(code=code).exclude(pk=rule.pk if rule else 0).exists():
        problems.append(
            Problem(
                "duplicate", f"规则编码 {code} 已存在", f"Rule code {code} is taken", field="code", value=code
            )
        )
    name = str(data.get("name") or "").strip()
    if not name:
        problems.append(Problem("required", "请填写规则名称", "The rule name is required", field="name"))
    elif len(name) > 100:
        problems.append(
            Problem("too_long", "名称最多 100 个字符", "The name has at most 100 characters", field="name")
        )
    device_kind = str(data.get("device_kind") or "")
    if device_kind and device_kind not in dict(Device.KINDS):
        problems.append(
            Problem(
                "device_kind",
                "设备类型无效",
                "Unknown device kind",
                field="device_kind",
                value=device_kind,
                expected_zh="、".join(dict(Device.KINDS)),
                expected_en=", ".join(dict(Device.KINDS)),
            )
        )
    category_code = str(data.get("category_code") or "")
    if category_code and not Category.objects.filter(code=category_code, parent__isnull=False).exists():
        problems.append(
            Problem(
                "category",
                f"权责清单中没有小类 {category_code}",
                f"No responsibility-list item {category_code}",
                field="category_code",
                value=category_code,
            )
        )
    for flag in ("creates_case", "enabled"):
        if not isinstance(data.get(flag), bool):
            problems.append(
                Problem("boolean", f"{flag} 应为 true 或 false", f"{flag} must be true or false", field=flag)
            )
    params = data.get("params")
    try:
        rules.check_params(str(data.get("kind") or ""), params)
    except Invalid as exc:
        problems.extend(exc.problems)
    if isinstance(params, dict) and data.get("kind") == AlertRule.THRESHOLD and "clear" in params:
        problems.extend(_clear_problems(params["clear"]))
    if isinstance(params, dict) and "severity" in params and params["severity"] not in alarms.RANK:
        problems.append(
            Problem(
                "severity",
                "级别无效",
                "Unknown severity",
                field="params.severity",
                value=params["severity"],
                expected_en="info, minor, major, critical",
            )
        )
    return problems


def _is_number(value: Any, minimum: float | None = None) -> bool:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return ok and (minimum is None or value >= minimum)


def _clear_problems(clear: Any) -> list[Problem]:
    """The threshold's clear condition (rules.check_params leaves it to us): one limit, a duration."""
    if not isinstance(clear, dict) or ("above" in clear) == ("below" in clear):
        return [
            Problem(
                "clear",
                "恢复条件需且仅需 above 或 below 之一",
                "The clear condition needs exactly one of above or below",
                field="params.clear",
            )
        ]
    problems = []
    way = "above" if "above" in clear else "below"
    if not _is_number(clear[way]):
        problems.append(
            Problem(
                "param",
                f"恢复条件 {way} 应为数值",
                f"Clear {way} must be a number",
                field="params.clear",
                value=clear[way],
            )
        )
    if "for_seconds" in clear and not _is_number(clear["for_seconds"], 0):
        problems.append(
            Problem(
                "param",
                "恢复条件 for_seconds 应为非负数",
                "Clear for_seconds must be a non-negative number",
                field="params.clear",
                value=clear["for_seconds"],
            )
        )
    return problems


def save_rule(
    user: Any, rule: AlertRule | None, changes: dict[str, Any], version: int | None = None
) -> AlertRule:
    """Create (rule None) or change a rule: checked as a whole, saved in one transaction or not at all.
    A change based on a stale `version` raises `Conflict` (the other person's edit is kept)."""
    data = {**(rule_data(rule) if rule else NEW_RULE), **changes}
    for key in ("code", "name", "device_kind", "category_code"):
        if isinstance(data.get(key), str):
            data[key] = data[key].strip()
    if not can_edit_rule(user, rule, str(data.get("category_code") or "")):
        raise Forbidden("您不能修改此告警规则", "You may not change this alert rule")
    problems = check_rule(data, rule)
    if problems:
        raise Invalid(problems)
    with transaction.atomic():
        target = rule if rule is not None else AlertRule()
        if rule is not None and version is not None:
            target.expect_version(version)
        for key in RULE_FIELDS:
            setattr(target, key, data[key])
        target.save()
    return target
