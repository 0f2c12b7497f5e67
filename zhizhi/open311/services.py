"""Open311 GeoReport v2 (+ FixMyStreet's servicerequestupdates) over the case core.

Services are the leaves of the responsibility list (group = the 大类 name); a POSTed request is
registered through `zhizhi.cases.services.register_case` with channel "open311", so routing and
auto-dispatch are those of every other channel. Errors are `Open311Error` (HTTP code + a
bilingual description); the views render them as the spec's error array.

Idempotency: a POST with the same api key, reporter (account_id, else device_id, else email),
service_code, place and description within `REPEAT_WINDOW_SECONDS` answers with the request
already created instead of creating a second case.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from zhizhi import clock, validators
from zhizhi.cases import services as case_services
from zhizhi.cases.models import Case, CaseEvent, Category
from zhizhi.open311.models import IntegratorKey, ServiceAttribute, ServiceRequestToken
from zhizhi.problems import Invalid, invalid

SPEC_URL = "http://wiki.open311.org/GeoReport_v2"
REPEAT_WINDOW_SECONDS = 60
MAX_RANGE_DAYS = 90
MAX_REQUESTS = 1000
MAX_DESCRIPTION = 4000
# Case statuses an Open311 client sees as "closed": the work is done (or the report was
# cancelled). A merged report follows the case it was merged into.
CLOSED_STATUSES = ("finished", "closed", "visited", "cancelled")
# Timeline actions published by servicerequestupdates (internal steps such as urge/escalate and
# extension requests stay internal).
PUBLIC_ACTIONS = (
    "report",
    "register",
    "dispatch",
    "redispatch",
    "sign",
    "finish",
    "verify_pass",
    "verify_fail",
    "reject",
    "merge",
    "visit",
    "reopen",
    "close_with_explanation",
    "open311_update",
)
# Actions whose note is written for the reporter (a result, a reason, a back office's update);
# the notes of the other steps are internal and are published as the step's name only.
PUBLIC_NOTES = ("finish", "reject", "merge", "close_with_explanation", "open311_update")
# Groups of the responsibility list about people (care, disputes, public security …) are not
# published: their cases carry personal circumstances that an open API must not list.
DEFAULT_HIDDEN_GROUPS = ("29", "30", "32", "33", "34", "35", "37", "39", "40", "43", "44", "51", "52")
UNIT_WORDS = {
    "work_hours": ("个工作小时", "working hours"),
    "work_days": ("个工作日", "working days"),
    "calendar_minutes": ("分钟", "minutes"),
}
ATTRIBUTE_PARAM = re.compile(r"^attribute\[([^\[\]]+)\](\[\])?$")
# Phone and ID numbers that people type into a report's text; the open API masks them.
MOBILE_IN_TEXT = re.compile(r"(?<!\d)(1[3-9]\d)\d{4}(\d{4})(?!\d)")
ID_IN_TEXT = re.compile(r"(?<![\dXx])(\d{6})\d{8}(\d{3}[\dXx])(?![\dXx])")

OPEN311_PERMISSIONS: list[dict[str, Any]] = [
    {
        "name": "Open311：管理对接密钥",
        "roles": ["street_leader"],
        "object_types": ["open311.integratorkey"],
        "actions": ["view", "add", "change"],
        "constraints": None,
    }
]


class Open311Error(Exception):
    """An answer of the spec's error array: HTTP status `code` and a bilingual description."""

    def __init__(self, code: int, en: str, zh: str) -> None:
        self.code = code
        self.description = f"{en} / {zh}"
        super().__init__(self.description)


def ensure_open311_permissions(**_: Any) -> None:
    """Create the key-management grant if missing (post_migrate); an admin's edits are kept."""
    from zhizhi.models import ObjectPermission

    for spec in OPEN311_PERMISSIONS:
        ObjectPermission.objects.get_or_create(name=spec["name"], defaults=spec)


def jurisdiction() -> str:
    return str(getattr(settings, "ZHIZHI_OPEN311_JURISDICTION", "zhizhi"))


def check_jurisdiction(value: str | None) -> None:
    """The endpoint serves one jurisdiction: absent is fine, another one is not found (404)."""
    if value and value != jurisdiction():
        raise Open311Error(404, f"jurisdiction_id '{value}' not found", f"辖区标识 {value} 不存在")


# --- keys -------------------------------------------------------------------------------------------
def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def issue_key(actor: Any, *, name: str, jurisdiction_id: str = "") -> tuple[str, IntegratorKey]:
    """Issue an integrator key; the raw key is returned once and only its hash is kept."""
    name = (name or "").strip()
    if not name:
        raise invalid("required", "请填写对接方名称", "Name the integrator", field="name")
    raw = "o311_" + secrets.token_urlsafe(30)
    key = IntegratorKey.objects.create(
        name=name[:100],
        prefix=raw[:10],
        key_hash=_hash(raw),
        jurisdiction_id=(jurisdiction_id or "").strip()[:100],
        created_by=actor if getattr(actor, "is_authenticated", False) else None,
        created_at=clock.now(),
    )
    return raw, key


def revoke_key(actor: Any, key_id: int) -> IntegratorKey:
    key = IntegratorKey.objects.get(pk=key_id)
    if key.enabled:
        key.enabled = False
        key.revoked_at = clock.now()
        key.save(update_fields=["enabled", "revoked_at"])
    return key


def key_for(raw: str | None, jurisdiction_id: str | None = None) -> IntegratorKey:
    """The enabled key behind `raw`, or 403 (missing, unknown, revoked, other jurisdiction)."""
    if not raw:
        raise Open311Error(403, "api_key is required", "缺少 api_key")
    key = IntegratorKey.objects.filter(key_hash=_hash(raw), enabled=True).first()
    if key is None:
        raise Open311Error(403, "Invalid api_key", "api_key 无效或已吊销")
    if key.jurisdiction_id and jurisdiction_id and key.jurisdiction_id != jurisdiction_id:
        raise Open311Error(403, "api_key not valid for this jurisdiction_id", "api_key 不适用于该辖区")
    IntegratorKey.objects.filter(pk=key.pk).update(last_used_at=clock.now())
    return key


# --- services -------------------------------------------------------------------------------------
def hidden_groups() -> tuple[str, ...]:
    return tuple(getattr(settings, "ZHIZHI_OPEN311_HIDDEN_GROUPS", DEFAULT_HIDDEN_GROUPS))


def published_categories() -> QuerySet[Category]:
    return (
        Category.objects.filter(parent__isnull=False, active=True, parent__active=True)
        .exclude(parent__code__in=hidden_groups())
        .select_related("parent")
        .order_by("code")
    )


def category_for(code: str) -> Category:
    cat = published_categories().filter(code=code).first()
    if cat is None:
        raise Open311Error(404, f"service_code '{code}' not found", f"服务编码 {code} 不存在")
    return cat


def service_notice(cat: Category | None) -> str:
    limit = cat.handle_limit if cat is not None else None
    if not limit:
        return ""
    amount, unit = limit[0], limit[1]
    zh, en = UNIT_WORDS.get(unit, ("", unit))
    return f"Handled within {amount} {en} of dispatch / 派遣后{amount}{zh}内办理"


def service_list() -> list[dict[str, Any]]:
    with_attrs = set(ServiceAttribute.objects.values_list("category_id", flat=True))
    return [
        {
            "service_code": cat.code,
            "service_name": cat.name,
            "description": cat.register_criteria or cat.name,
            "metadata": cat.pk in with_attrs,
            "type": "realtime",
            "keywords": ", ".join(cat.keywords or []),
            "group": cat.parent.name if cat.parent else "",
        }
        for cat in published_categories()
    ]


def service_definition(code: str) -> dict[str, Any]:
    cat = category_for(code)
    return {
        "service_code": cat.code,
        "attributes": [
            {
                "variable": a.variable,
                "code": a.code,
                "datatype": a.datatype,
                "required": a.required,
                "datatype_description": a.datatype_description or None,
                "order": a.order,
                "description": a.description,
                "values": [{"key": v["key"], "name": v["name"]} for v in a.values or []],
            }
            for a in cat.open311_attributes.all()
        ],
    }


# Realistic extra questions for a few services (loaded by `load_attributes`, used by the demo).
DEFAULT_ATTRIBUTES: dict[str, list[dict[str, Any]]] = {
    "0103": [
        {
            "code": "bin_type",
            "datatype": "singlevaluelist",
            "required": True,
            "description": "满溢的是哪种垃圾桶？ Which bin overflows?",
            "values": [
                {"key": "kitchen", "name": "厨余垃圾 Kitchen waste"},
                {"key": "recyclable", "name": "可回收物 Recyclables"},
                {"key": "other", "name": "其他垃圾 Other waste"},
                {"key": "hazardous", "name": "有害垃圾 Hazardous waste"},
            ],
        },
        {
            "code": "bin_count",
            "datatype": "number",
            "required": False,
            "description": "满溢的桶数 How many bins?",
        },
    ],
    "1201": [
        {
            "code": "pole_number",
            "datatype": "string",
            "required": False,
            "description": "路灯杆上的编号 Number on the lamp post",
            "datatype_description": "如 LD-0123 e.g. LD-0123",
        },
        {
            "code": "since",
            "datatype": "datetime",
            "required": False,
            "description": "从什么时候开始不亮？ Dark since when?",
            "datatype_description": "W3C 日期时间，如 2026-11-20T19:00:00+08:00",
        },
    ],
    "1301": [
        {
            "code": "hazard",
            "datatype": "multivaluelist",
            "required": True,
            "description": "现场有哪些危险？ What hazards are there?",
            "values": [
                {"key": "open_hole", "name": "井口敞开 Open hole"},
                {"key": "traffic", "name": "位于车行道 In the carriageway"},
                {"key": "pedestrians", "name": "位于人行道 On the footway"},
                {"key": "night", "name": "夜间无照明 Unlit at night"},
            ],
        },
        {
            "code": "note",
            "datatype": "text",
            "required": False,
            "description": "其他情况 Anything else",
        },
    ],
    "0501": [
        {
            "code": "plate",
            "datatype": "string",
            "required": False,
            "description": "车牌号 Number plate",
        },
        {
            "code": "blocking",
            "datatype": "singlevaluelist",
            "required": True,
            "description": "是否堵塞通道？ Is it blocking a way?",
            "values": [
                {"key": "fire_lane", "name": "消防通道 Fire lane"},
                {"key": "footway", "name": "人行道 Footway"},
                {"key": "no", "name": "未堵塞 Not blocking"},
            ],
        },
    ],
}


def load_attributes(spec: Mapping[str, list[dict[str, Any]]] | None = None) -> int:
    """Create or update the extra questions by (service code, question code); codes without a
    category are skipped. Returns how many questions were written."""
    written = 0
    for cat_code, items in (DEFAULT_ATTRIBUTES if spec is None else spec).items():
        cat = Category.objects.filter(code=cat_code, parent__isnull=False).first()
        if cat is None:
            continue
        for order, item in enumerate(items, start=1):
            ServiceAttribute.objects.update_or_create(
                category=cat,
                code=item["code"],
                defaults={
                    "datatype": item.get("datatype", "string"),
                    "required": bool(item.get("required", False)),
                    "variable": bool(item.get("variable", True)),
                    "order": item.get("order", order),
                    "description": item["description"],
                    "datatype_description": item.get("datatype_description", ""),
                    "values": item.get("values", []),
                },
            )
            written += 1
    return written


# --- parameters -------------------------------------------------------------------------------------
def param(data: Mapping[str, Any], name: str) -> str | None:
    """A parameter's value, with empty (or blank) values treated as absent, as the spec asks."""
    value = data.get(name)
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def attribute_params(data: Any) -> dict[str, list[str]]:
    """`attribute[code]=v` and `attribute[code][]=v1&attribute[code][]=v2` → {code: [values]}."""
    out: dict[str, list[str]] = {}
    for name in data:
        match = ATTRIBUTE_PARAM.match(name)
        if not match:
            continue
        values = [str(v).strip() for v in data.getlist(name) if str(v).strip()]
        if values:
            out.setdefault(match.group(1), []).extend(values)
    return out


def parse_w3(value: str, name: str) -> dt.datetime:
    """A W3C datetime (`2010-01-01T00:00:00Z`, an offset, or a plain date in local time)."""
    try:
        parsed = dt.datetime.fromisoformat(value.replace(" ", "+") if "T" in value else value)
    except ValueError:
        raise Open311Error(
            400,
            f"{name} must be a W3C datetime such as 2010-01-01T00:00:00Z",
            f"{name} 应为 W3C 日期时间，如 2010-01-01T00:00:00Z",
        ) from None
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed)
    return parsed


def w3(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return timezone.localtime(value).isoformat(timespec="seconds")


def validate_attributes(cat: Category, given: dict[str, list[str]]) -> dict[str, Any]:
    """Check the answers against the service definition: required ones present, each of its
    datatype, list values among the keys. Unknown codes are refused (a client typo otherwise
    loses the answer silently)."""
    wanted = {a.code: a for a in cat.open311_attributes.all()}
    problems: list[tuple[str, str]] = []
    for code in given:
        if code not in wanted:
            problems.append((f"attribute[{code}] is not defined for this service", f"此服务没有问题 {code}"))
    answers: dict[str, Any] = {}
    for code, attr in wanted.items():
        values = given.get(code, [])
        if not values:
            if attr.required and attr.variable:
                problems.append(
                    (
                        f"attribute[{code}] is required",
                        f"缺少必填问题 attribute[{code}]（{attr.description}）",
                    )
                )
            continue
        keys = {str(v["key"]) for v in attr.values or []}
        if attr.datatype == "multivaluelist":
            bad = [v for v in values if v not in keys]
            if bad:
                problems.append(
                    (
                        f"attribute[{code}]: {', '.join(bad)} not among {', '.join(sorted(keys))}",
                        f"attribute[{code}] 的取值 {'、'.join(bad)} 不在选项中",
                    )
                )
            answers[code] = values
            continue
        if len(values) > 1:
            problems.append((f"attribute[{code}] takes one value", f"attribute[{code}] 只能有一个值"))
            continue
        value = values[0]
        if attr.datatype == "singlevaluelist" and value not in keys:
            problems.append(
                (
                    f"attribute[{code}]: '{value}' not among {', '.join(sorted(keys))}",
                    f"attribute[{code}] 的取值 {value} 不在选项中",
                )
            )
        elif attr.datatype == "number":
            try:
                number = float(value)
                if number != number or number in (float("inf"), float("-inf")):
                    raise ValueError(value)
            except ValueError:
                problems.append((f"attribute[{code}] must be a number", f"attribute[{code}] 应为数字"))
        elif attr.datatype == "datetime":
            try:
                parse_w3(value, f"attribute[{code}]")
            except Open311Error:
                problems.append(
                    (
                        f"attribute[{code}] must be a W3C datetime",
                        f"attribute[{code}] 应为 W3C 日期时间",
                    )
                )
        elif attr.datatype == "string" and len(value) > 255:
            problems.append((f"attribute[{code}]: at most 255 characters", f"attribute[{code}] 不超过255字"))
        answers[code] = value
    if problems:
        raise Open311Error(400, "; ".join(p[0] for p in problems), "；".join(p[1] for p in problems))
    return answers


# --- requests ---------------------------------------------------------------------------------------
@dataclass
class Created:
    request: ServiceRequestToken
    repeated: bool


def _fingerprint(key: IntegratorKey, data: Mapping[str, Any], code: str) -> str:
    who = param(data, "account_id") or param(data, "device_id") or param(data, "email") or ""
    where = "|".join(param(data, n) or "" for n in ("lat", "long", "address_string", "address_id"))
    text = param(data, "description") or ""
    raw = "\x1f".join([str(key.pk), who, code, where, text])
    return hashlib.sha256(raw.encode()).hexdigest()


def _invalid_400(exc: Invalid) -> Open311Error:
    return Open311Error(400, "; ".join(p.en for p in exc.problems), "；".join(p.zh for p in exc.problems))


def _summary(cat: Category, answers: dict[str, Any]) -> str:
    labels = {a.code: a for a in cat.open311_attributes.all()}
    lines = []
    for code, value in answers.items():
        attr = labels[code]
        names = {str(v["key"]): v["name"] for v in attr.values or []}
        shown = [str(names.get(v, v)) for v in (value if isinstance(value, list) else [value])]
        lines.append(f"{attr.description}：{'、'.join(shown)}")
    return "\n".join(lines)


def create_request(key: IntegratorKey, data: Any) -> Created:
    """POST requests: validate as the spec says, then register one case (or return the same
    request when this POST repeats one within the idempotency window)."""
    code = param(data, "service_code")
    if code is None:
        raise Open311Error(400, "service_code is required", "缺少 service_code")
    cat = category_for(code)
    lat, lng = param(data, "lat"), param(data, "long")
    address = param(data, "address_string") or ""
    address_id = param(data, "address_id")
    if (lat is None) != (lng is None):
        raise Open311Error(400, "lat and long must be given together", "lat 与 long 须同时提供")
    if lat is None and not address and address_id is None:
        raise Open311Error(
            400,
            "A location is required: lat & long, address_string or address_id",
            "须提供位置：lat 与 long、address_string 或 address_id",
        )
    if lat is not None:
        try:
            validators.coordinates(lng, lat, field="lat/long")
        except Invalid as exc:
            raise _invalid_400(exc) from None
    description = param(data, "description") or ""
    if len(description) > MAX_DESCRIPTION:
        raise Open311Error(400, "description: at most 4000 characters", "description 不超过4000字")
    media_url = param(data, "media_url") or ""
    if media_url and (not re.match(r"^https?://", media_url) or len(media_url) > 500):
        raise Open311Error(400, "media_url must be an http(s) URL", "media_url 应为 http(s) 网址")
    answers = validate_attributes(cat, attribute_params(data))
    name = " ".join(p for p in (param(data, "first_name"), param(data, "last_name")) if p)
    fingerprint = _fingerprint(key, data, cat.code)
    with transaction.atomic():
        # One POST of a key at a time: the repeat check below must see a concurrent twin.
        IntegratorKey.objects.select_for_update().filter(pk=key.pk).first()
        since = clock.now() - dt.timedelta(seconds=REPEAT_WINDOW_SECONDS)
        twin = (
            ServiceRequestToken.objects.filter(key=key, fingerprint=fingerprint, created_at__gte=since)
            .select_related("case")
            .first()
        )
        if twin is not None:
            return Created(twin, True)
        token = secrets.token_hex(16)
        note = _summary(cat, answers)
        if address_id and not address:
            address = f"address_id {address_id}"
        try:
            case = case_services.register_case(
                None,
                title=f"{cat.name}：{description[:40]}" if description else cat.name,
                description=description,
                category=cat,
                lng=lng,
                lat=lat,
                address=address,
                channel="open311",
                external_id=token,
                reporter_name=name,
                reporter_phone=param(data, "phone") or "",
                note=f"Open311 · {key.name}" + (f"\n{note}" if note else ""),
            )
        except Invalid as exc:
            raise _invalid_400(exc) from None
        request = ServiceRequestToken.objects.create(
            token=token,
            key=key,
            case=case,
            service_code=cat.code,
            account_id=(param(data, "account_id") or "")[:100],
            device_id=(param(data, "device_id") or "")[:100],
            media_url=media_url,
            attributes=answers,
            fingerprint=fingerprint,
            created_at=clock.now(),
        )
    return Created(request, False)


def public_cases() -> QuerySet[Case]:
    return Case.objects.filter(category__in=published_categories()).select_related(
        "category", "category__parent", "unit", "duplicate_of", "duplicate_of__unit", "open311_request"
    )


NOTE_ACTIONS = ("finish", "return", "reject", "merge", "verify_fail", "close_with_explanation", "reopen")


def public_text(text: str | None) -> str | None:
    """Text as the open API shows it: mobile and ID numbers typed into it are masked."""
    if not text:
        return None
    text = ID_IN_TEXT.sub(lambda m: m.group(1) + "*" * 8 + m.group(2), text)
    return MOBILE_IN_TEXT.sub(lambda m: m.group(1) + "****" + m.group(2), text)


def status_of(case: Case) -> str:
    return "closed" if case.status in CLOSED_STATUSES else "open"


def _latest_notes(cases: Iterable[Case]) -> dict[int, str]:
    """The latest reporter-facing note per case (one query for a whole list)."""
    ids = {c.pk for c in cases} | {c.duplicate_of_id for c in cases if c.duplicate_of_id}
    rows = (
        CaseEvent.objects.filter(case_id__in=ids, action__in=NOTE_ACTIONS)
        .exclude(note="")
        .order_by("at", "id")
        .values_list("case_id", "note")
    )
    return dict(rows)  # ordered by time: the last note of each case wins


def request_views(cases: list[Case]) -> list[dict[str, Any]]:
    notes = _latest_notes(cases)
    return [request_view(case, notes) for case in cases]


def request_view(case: Case, notes: dict[int, str] | None = None) -> dict[str, Any]:
    """One case as a GeoReport v2 `request`. A merged report shows the case it was merged into
    (the one being handled), so every channel of a problem sees the same progress."""
    live = case.duplicate_of if case.status == "merged" and case.duplicate_of is not None else case
    extra: ServiceRequestToken | None = getattr(case, "open311_request", None)
    if notes is None:
        notes = _latest_notes([case])
    return {
        "service_request_id": case.number,
        "status": status_of(live),
        "status_notes": public_text(live.result or notes.get(live.pk)),
        "service_name": case.category.name if case.category else None,
        "service_code": case.category.code if case.category else None,
        "description": public_text(case.description),
        "agency_responsible": live.unit.name if live.unit else None,
        "service_notice": service_notice(case.category) or None,
        "requested_datetime": w3(case.reported_at),
        "updated_datetime": w3(max(case.updated_at, live.updated_at)),
        "expected_datetime": w3(live.due_at),
        "address": case.address or None,
        "address_id": None,
        "zipcode": None,
        "lat": case.lat,
        "long": case.lng,
        "media_url": extra.media_url or None if extra else None,
    }


def case_for_id(service_request_id: str) -> Case:
    case = public_cases().filter(number=service_request_id).first()
    if case is None:
        raise Open311Error(
            404,
            f"service_request_id '{service_request_id}' not found",
            f"服务请求 {service_request_id} 不存在",
        )
    return case


def _date_range(data: Mapping[str, Any]) -> tuple[dt.datetime, dt.datetime]:
    start_raw, end_raw = param(data, "start_date"), param(data, "end_date")
    start = parse_w3(start_raw, "start_date") if start_raw else None
    end = parse_w3(end_raw, "end_date") if end_raw else None
    span = dt.timedelta(days=MAX_RANGE_DAYS)
    if start and end:
        if end < start:
            raise Open311Error(400, "end_date is before start_date", "end_date 早于 start_date")
        if end - start > span:
            raise Open311Error(
                400,
                "start_date to end_date may not span more than 90 days",
                "start_date 至 end_date 不能超过90天",
            )
    elif start:
        end = start + span
    elif end:
        start = end - span
    else:
        end = clock.now()
        start = end - span
    assert start is not None and end is not None
    return start, end


def find_requests(data: Mapping[str, Any]) -> list[Case]:
    """GET requests: service_request_id (a comma list) overrides every other filter; otherwise
    service_code, status (comma lists) and requested_datetime within the date range (default:
    the last 90 days), newest first, at most 1,000."""
    ids = param(data, "service_request_id")
    if ids:
        wanted = [i.strip() for i in ids.split(",") if i.strip()]
        return list(public_cases().filter(number__in=wanted).order_by("-reported_at", "-id")[:MAX_REQUESTS])
    start, end = _date_range(data)
    cases = public_cases().filter(reported_at__gte=start, reported_at__lte=end)
    codes = param(data, "service_code")
    if codes:
        cases = cases.filter(category__code__in=[c.strip() for c in codes.split(",") if c.strip()])
    statuses = param(data, "status")
    if statuses:
        wanted_status = {s.strip().lower() for s in statuses.split(",") if s.strip()}
        if not wanted_status <= {"open", "closed"}:
            raise Open311Error(400, "status must be open or closed", "status 只能是 open 或 closed")
        # A merged report's status is that of its parent; the filter keeps it simple and counts it
        # by its own row only when its parent agrees.
        closed = Q(status__in=CLOSED_STATUSES) | Q(status="merged", duplicate_of__status__in=CLOSED_STATUSES)
        if wanted_status == {"open"}:
            cases = cases.exclude(closed)
        elif wanted_status == {"closed"}:
            cases = cases.filter(closed)
    return list(cases.order_by("-reported_at", "-id")[:MAX_REQUESTS])


def request_for_token(token: str) -> ServiceRequestToken:
    found = ServiceRequestToken.objects.filter(token=token).select_related("case").first()
    if found is None:
        raise Open311Error(404, f"token '{token}' not found", f"令牌 {token} 不存在")
    return found


# --- servicerequestupdates (FixMyStreet) ---------------------------------------------------------------
def update_view(event: CaseEvent) -> dict[str, Any]:
    case = event.case
    after = event.to_status or case.status
    return {
        "update_id": str(event.pk),
        "service_request_id": case.number,
        "status": "CLOSED" if after in CLOSED_STATUSES else "OPEN",
        "updated_datetime": w3(event.at),
        "description": public_text(event.note if event.action in PUBLIC_NOTES else "")
        or case_services.transitions.LABELS.get(event.action, "更新"),
        "media_url": (event.data or {}).get("media_url") or None,
    }


def find_updates(data: Mapping[str, Any]) -> list[CaseEvent]:
    start, end = _date_range(data)
    return list(
        CaseEvent.objects.filter(
            case__in=public_cases(), action__in=PUBLIC_ACTIONS, at__gte=start, at__lte=end
        )
        .select_related("case")
        .order_by("at", "id")[:MAX_REQUESTS]
    )


def post_update(key: IntegratorKey, data: Mapping[str, Any]) -> CaseEvent:
    """A back office posts an update: it is appended to the case's timeline as a note (the
    status it reports is recorded, not applied — a case changes status only by its own
    actions). Repeating the same update_id returns the first one."""
    number = param(data, "service_request_id")
    if number is None:
        raise Open311Error(400, "service_request_id is required", "缺少 service_request_id")
    case = case_for_id(number)
    description = param(data, "description") or ""
    if not description:
        raise Open311Error(400, "description is required", "缺少 description")
    if len(description) > MAX_DESCRIPTION:
        raise Open311Error(400, "description: at most 4000 characters", "description 不超过4000字")
    status = (param(data, "status") or "").upper()
    if status and not re.match(r"^[A-Z_ ]{1,40}$", status):
        raise Open311Error(400, "status must be a word such as OPEN or CLOSED", "status 应为 OPEN、CLOSED 等")
    when = param(data, "updated_datetime")
    reported_at = w3(parse_w3(when, "updated_datetime")) if when else None
    update_id = param(data, "update_id")
    request_id = f"o311:{key.pk}:{update_id}"[:64] if update_id else ""
    if request_id:
        prior = CaseEvent.objects.filter(case=case, request_id=request_id).first()
        if prior is not None:
            return prior
    info = {
        "integrator": key.name,
        "update_id": update_id,
        "status": status or None,
        "updated_datetime": reported_at,
        "media_url": param(data, "media_url"),
    }
    try:
        with transaction.atomic():
            return case_services.append_event(
                case,
                None,
                "open311_update",
                case.status,
                case.status,
                note=description,
                data=info,
                request_id=request_id,
            )
    except IntegrityError:
        # The same update_id delivered concurrently a moment ago.
        return CaseEvent.objects.get(case=case, request_id=request_id)


def keys_in_use() -> Iterable[IntegratorKey]:
    return IntegratorKey.objects.select_related("created_by").all()
