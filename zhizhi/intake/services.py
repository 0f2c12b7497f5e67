"""Intake from every channel: one function per channel, all ending in `cases.services.register_case`.

Every channel message carries (channel, external id) and is stored once as a ChannelMessage;
receiving it again changes nothing and returns the case it made. Hotline work orders are keyed
"<source>:<order id>" so two upstream systems in one channel never collide.

Out-of-order work orders (documented in docs/integrations/hotline.md): an `update` for an order we
have not seen is kept on a waiting ChannelMessage (no case); the order's creation (or an update
that carries the content) then registers the case and replays the waiting updates onto its
timeline. Each update is applied once per (order, seq).

Feedback: when a case finishes or closes, every ChannelMessage of the case and of the reports
merged into it gets the result once (`fed_back_at`): a callback POST through the outbox for
hotline/mailbox sources with a callback URL, an SMS to each merged reporter, and the export rows
of `results_since`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import math
import secrets
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F

from zhizhi import clock, crypto, validators
from zhizhi.cases import services as case_services
from zhizhi.cases import transitions
from zhizhi.cases.models import Case, Category
from zhizhi.geo.services import locate
from zhizhi.intake.models import (
    Camera,
    CameraEventType,
    ChannelMessage,
    PhoneCode,
    RateCounter,
    SourceEndpoint,
)
from zhizhi.notify.services import enqueue
from zhizhi.problems import Invalid, Problem, invalid

log = logging.getLogger(__name__)

MAX_TEXT = 4000
# Upstream systems of work orders: source key → (case channel, name). Chinese names are aliases.
SOURCES: dict[str, tuple[str, str]] = {
    "12345": ("hotline", "12345热线"),
    "mayor_mailbox": ("mailbox", "市长信箱"),
    "resident_mailbox": ("mailbox", "居民信箱"),
    "petition": ("mailbox", "信访"),
}
WORKORDER_CHANNELS = ("hotline", "mailbox")
# The statuses in which a case's result is final enough to feed back.
FEEDBACK_STATUSES = ("finished", "closed", "visited", "unsatisfied")
# Work-order fields a column mapping may fill.
WORKORDER_FIELDS = (
    "order_id",
    "title",
    "content",
    "category",
    "address",
    "lng",
    "lat",
    "reporter_name",
    "reporter_phone",
    "kind",
    "seq",
)


class RateLimited(Exception):
    """Too many reports from one phone or address (the caller answers 429)."""

    zh = "提交过于频繁，请稍后再试"
    en = "Too many reports; please try again later"

    def __init__(self, retry_after: int) -> None:
        super().__init__(self.en)
        self.retry_after = retry_after


# --- small helpers ------------------------------------------------------------------------------
def source_by(value: Any) -> str:
    raw = str(value or "").strip()
    if raw in SOURCES:
        return raw
    for key, (_, name) in SOURCES.items():
        if raw == name:
            return key
    raise invalid(
        "source_unknown",
        "未知的来源系统",
        "Unknown source system",
        field="source",
        value=raw,
        expected_zh="、".join(f"{k}（{n}）" for k, (_, n) in SOURCES.items()),
        expected_en=", ".join(SOURCES),
    )


def check_text(text: str, name: str = "description") -> str:
    """Free text as typed (HTML is kept as text; templates escape it), at most 4,000 characters."""
    text = (text or "").strip()
    if len(text) > MAX_TEXT:
        raise invalid(
            "too_long",
            f"内容不超过{MAX_TEXT}字（现有{len(text)}字）",
            f"At most {MAX_TEXT} characters (got {len(text)})",
            field=name,
            value=len(text),
        )
    return text


def title_from(text: str, limit: int = 30) -> str:
    first = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return first[:limit] or "群众反映"


def _distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat = math.radians((a[1] + b[1]) / 2)
    dx = (a[0] - b[0]) * 111_320 * math.cos(lat)
    dy = (a[1] - b[1]) * 110_540
    return math.hypot(dx, dy)


def resolve_location(
    lng: Any, lat: Any, gps_lng: Any = None, gps_lat: Any = None, *, required: bool = True
) -> tuple[float | None, float | None, Any]:
    """The report's point (map tap or GPS) inside the street: (lng, lat, grid).

    Missing, half-given, contradictory (the tapped point far from the browser's GPS) or outside
    the street's grids → Invalid with both languages."""

    def empty(v: Any) -> bool:
        return v in (None, "")

    if empty(lng) and empty(lat) and not (empty(gps_lng) or empty(gps_lat)):
        lng, lat, gps_lng, gps_lat = gps_lng, gps_lat, None, None
    if empty(lng) and empty(lat):
        if required:
            raise invalid(
                "location_required",
                "请定位或在地图上点选问题位置",
                "Give the location: use GPS or tap the map",
                field="location",
            )
        return None, None, None
    if empty(lng) or empty(lat):
        raise invalid(
            "location_incomplete",
            "位置不完整：经度和纬度须同时提供",
            "Incomplete location: give both longitude and latitude",
            field="location",
        )
    where = locate(lng, lat)
    if not (empty(gps_lng) or empty(gps_lat)):
        gx, gy = validators.coordinates(gps_lng, gps_lat, "gps")
        gap = _distance_m((where.lng, where.lat), (gx, gy))
        limit = float(getattr(settings, "ZHIZHI_INTAKE_MAX_GPS_GAP_M", 1000))
        if gap > limit:
            raise invalid(
                "location_contradictory",
                f"地图选点与手机定位相距{gap:.0f}米，请确认问题位置",
                f"The tapped point is {gap:.0f} m from your GPS position; confirm the location",
                field="location",
                expected_zh=f"相距不超过{limit:.0f}米",
                expected_en=f"at most {limit:.0f} m apart",
            )
    if where.grid is None:
        raise invalid(
            "location_outside",
            "该位置不在本街道范围内",
            "This location is outside the street",
            field="location",
            value=[where.lng, where.lat],
        )
    return where.lng, where.lat, where.grid


def check_photos(files: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """JPEG/PNG/WebP by their bytes and within the case photo size limit (the core's rules)."""
    limit = int(getattr(settings, "ZHIZHI_INTAKE_MAX_PHOTOS", 6))
    if len(files) > limit:
        raise invalid(
            "too_many_photos",
            f"照片最多{limit}张",
            f"At most {limit} photos",
            field="photos",
            value=len(files),
        )
    problems: list[Problem] = []
    for name, data in files:
        try:
            case_services.check_photo_size(len(data))
        except Invalid as exc:
            problems += exc.problems
            continue
        if not data or case_services.photo_type(data) is None:
            problems.append(
                Problem(
                    "photo_type",
                    f"「{name}」不是图片",
                    f"'{name}' is not an image",
                    field="photos",
                    value=name,
                    expected_zh="JPEG、PNG 或 WebP 图片",
                    expected_en="a JPEG, PNG or WebP image",
                )
            )
    if problems:
        raise Invalid(problems)
    return files


def _phone(raw: str, name: str = "reporter_phone") -> str:
    return validators.phone(raw, name) if (raw or "").strip() else ""


def phone_hash(phone: str) -> str:
    return Case.hash_for("reporter_phone", phone)


# --- rate limit ---------------------------------------------------------------------------------
def _rate(kind: str) -> tuple[int, int]:
    """(hits, seconds) for "phone" or "ip": ZHIZHI_INTAKE_RATE_PHONE / _IP as "hits/seconds"."""
    default = {"phone": "5/3600", "ip": "20/3600"}[kind]
    raw = str(getattr(settings, f"ZHIZHI_INTAKE_RATE_{kind.upper()}", default))
    hits, seconds = raw.split("/")
    return int(hits), int(seconds)


def hit_rate(kind: str, key: str) -> None:
    """Count one report for `key` in the current fixed window; over the limit → RateLimited."""
    if not key:
        return
    limit, seconds = _rate(kind)
    now = clock.now()
    epoch = int(now.timestamp())
    start = dt.datetime.fromtimestamp(epoch - epoch % seconds, tz=dt.UTC)
    full = f"{kind}:{key}"[:100]
    with transaction.atomic():
        try:
            with transaction.atomic():
                RateCounter.objects.get_or_create(key=full, window_start=start)
        except IntegrityError:  # a concurrent first hit
            pass
        RateCounter.objects.filter(key=full, window_start=start).update(hits=F("hits") + 1)
        hits = RateCounter.objects.get(key=full, window_start=start).hits
    if hits > limit:
        raise RateLimited(int((start + dt.timedelta(seconds=seconds) - now).total_seconds()) + 1)


def purge_rate_counters() -> int:
    cutoff = clock.now() - dt.timedelta(days=1)
    return RateCounter.objects.filter(window_start__lt=cutoff).delete()[0]


# --- phone verification code -------------------------------------------------------------------
CODE_TTL = dt.timedelta(minutes=10)
CODE_ATTEMPTS = 5


def _code_hash(phone_h: str, code: str) -> str:
    return hmac.new(settings.SECRET_KEY.encode(), f"{phone_h}:{code}".encode(), hashlib.sha256).hexdigest()


def send_code(raw_phone: str, ip: str = "") -> PhoneCode:
    """Text a 6-digit code to the phone through the outbox (SMS adapter); valid 10 minutes,
    at most 5 tries. Counted against the same per-phone and per-IP limits as reports."""
    phone = _phone(raw_phone)
    if not phone:
        raise invalid("required", "请填写手机号码", "Enter the phone number", field="reporter_phone")
    hit_rate("ip", ip)
    hit_rate("phone", phone_hash(phone))
    code = f"{secrets.randbelow(1_000_000):06d}"
    now = clock.now()
    with transaction.atomic():
        row = PhoneCode.objects.create(
            phone_hash=phone_hash(phone),
            phone_enc=crypto.encrypt(phone),
            code_hash=_code_hash(phone_hash(phone), code),
            created_at=now,
            expires_at=now + CODE_TTL,
        )
        enqueue(
            "sms",
            f"intakecode:{row.pk}",
            f"【智治】您的验证码是{code}，10分钟内有效。",
            key=f"intake:code:{row.pk}",
        )
    return row


def check_code(phone: str, code: str) -> None:
    """The latest unexpired code of this phone must match; wrong tries are counted."""
    wrong = invalid("code_wrong", "验证码错误或已过期", "The code is wrong or has expired", field="code")
    with transaction.atomic():
        row = (
            PhoneCode.objects.select_for_update()
            .filter(phone_hash=phone_hash(phone), used=False, expires_at__gt=clock.now())
            .order_by("-created_at", "-id")
            .first()
        )
        if row is None:
            raise wrong
        if row.attempts >= CODE_ATTEMPTS:
            raise invalid(
                "code_attempts",
                "验证码尝试次数过多，请重新获取",
                "Too many wrong codes; request a new one",
                field="code",
            )
        if not hmac.compare_digest(row.code_hash, _code_hash(row.phone_hash, (code or "").strip())):
            PhoneCode.objects.filter(pk=row.pk).update(attempts=F("attempts") + 1)
            ok = False
        else:
            PhoneCode.objects.filter(pk=row.pk).update(used=True, phone_enc="")
            ok = True
    if not ok:
        raise wrong


def code_phone_for(message: Any) -> str:
    """Outbox resolver for "intakecode:<id>": the phone, decrypted for the gateway only."""
    from zhizhi.notify.adapters import DeliveryError

    try:
        pk = int(message.recipient.split(":")[1])
    except (IndexError, ValueError):
        raise DeliveryError(f"bad recipient {message.recipient!r}") from None
    row = PhoneCode.objects.filter(pk=pk).first()
    if row is None or not row.phone_enc:
        raise DeliveryError(f"code {pk} has no phone")
    return crypto.decrypt(row.phone_enc)


def verification_required() -> bool:
    return bool(getattr(settings, "ZHIZHI_INTAKE_VERIFY_PHONE", False))


# --- the common tail ----------------------------------------------------------------------------
@dataclass
class Received:
    case: Case | None
    message: ChannelMessage
    created: bool
    info: dict[str, Any] = field(default_factory=dict)


def _existing(channel: str, external_id: str) -> ChannelMessage | None:
    return (
        ChannelMessage.objects.select_related("case").filter(channel=channel, external_id=external_id).first()
    )


def _seen_again(message: ChannelMessage) -> None:
    ChannelMessage.objects.filter(pk=message.pk).update(count=F("count") + 1, last_seen=clock.now())


def _add_photos(case: Case, photos: list[tuple[str, bytes]]) -> None:
    for name, data in photos:
        case_services.add_photo(None, case.pk, name=name, data=data)


def _register(actor: Any, **kwargs: Any) -> Case:
    """Register through suggest → dedup → register → auto-merge of a sure duplicate
    (`intake.suggest.classify_and_register`), or the plain core path when
    ZHIZHI_INTAKE_DEDUP is off."""
    if not getattr(settings, "ZHIZHI_INTAKE_DEDUP", True):
        return case_services.register_case(actor, **kwargs)
    from zhizhi.intake import suggest

    return suggest.classify_and_register(actor, **kwargs).case


# --- resident report ----------------------------------------------------------------------------
def resident_report(
    *,
    description: str,
    category: Any = None,
    lng: Any = None,
    lat: Any = None,
    gps_lng: Any = None,
    gps_lat: Any = None,
    address: str = "",
    reporter_name: str = "",
    reporter_phone: str = "",
    photos: list[tuple[str, bytes]] | None = None,
    ip: str = "",
    code: str = "",
) -> Received:
    """A resident's report from the public page: validated, rate-limited, registered; the
    ChannelMessage carries the follow link's secret."""
    problems: list[Problem] = []
    text = ""
    x = y = None
    phone = ""
    cat: Category | None = None
    try:
        text = check_text(description)
    except Invalid as exc:
        problems += exc.problems
    try:
        cat = case_services.category_by(category)
    except Invalid as exc:
        problems += exc.problems
    if not text and cat is None:
        problems.append(
            Problem(
                "required",
                "请描述问题或选择问题类别",
                "Describe the problem or pick a category",
                field="description",
            )
        )
    try:
        x, y, _grid = resolve_location(lng, lat, gps_lng, gps_lat)
    except Invalid as exc:
        problems += exc.problems
    try:
        phone = _phone(reporter_phone)
    except Invalid as exc:
        problems += exc.problems
    if not phone:
        problems.append(
            Problem("required", "请留下联系电话", "A contact phone is required", field="reporter_phone")
        )
    try:
        files = check_photos(list(photos or []))
    except Invalid as exc:
        problems += exc.problems
        files = []
    if problems:
        raise Invalid(problems)
    if code or verification_required():
        check_code(phone, code)
    # Counted only for well-formed reports, so a resident fixing a typo is not locked out.
    hit_rate("ip", ip)
    hit_rate("phone", phone_hash(phone))
    token = secrets.token_urlsafe(24)
    with transaction.atomic():
        case = _register(
            None,
            title=title_from(text) if text else (cat.name if cat else "群众反映"),
            description=text,
            category=cat,
            lng=x,
            lat=y,
            address=address,
            channel="web",
            reporter_name=reporter_name,
            reporter_phone=phone,
            # Without a category, the suggestion decides: sure → dispatched, else the dispatcher's queue.
            register=True,
        )
        message = ChannelMessage.objects.create(
            channel="web",
            external_id=f"web-{token[:20]}",
            case=case,
            payload={
                "ip_hash": hashlib.sha256(ip.encode()).hexdigest()[:16] if ip else "",
                "photos": len(files),
            },
            follow_token=token,
        )
        _add_photos(case, files)
    return Received(case, message, True)


def message_for_follow(token: str) -> ChannelMessage | None:
    if len(token or "") < 24:
        return None
    return ChannelMessage.objects.select_related("case").filter(follow_token=token, channel="web").first()


# --- hotline / mailbox work orders --------------------------------------------------------------
def receive_workorder(actor: Any, source: Any, data: dict[str, Any]) -> Received:
    """One work order (or an update of one) from an upstream system; idempotent per order and seq."""
    key = source_by(source)
    channel = SOURCES[key][0]
    order_id = str(data.get("order_id") or "").strip()
    if not order_id or len(order_id) > 48:
        raise invalid(
            "order_id_required",
            "缺少工单编号（不超过48字）",
            "The work order id is required (at most 48 characters)",
            field="order_id",
            value=order_id[:60],
        )
    kind = str(data.get("kind") or "create").strip() or "create"
    if kind not in ("create", "update"):
        raise invalid(
            "kind", "kind 只能是 create 或 update", "kind must be create or update", field="kind", value=kind
        )
    seq = str(data.get("seq") or "").strip()[:20]
    content = check_text(str(data.get("content") or ""), "content")
    title = str(data.get("title") or "").strip()[:200]
    external_id = f"{key}:{order_id}"
    clean = {k: data.get(k) for k in WORKORDER_FIELDS if data.get(k) not in (None, "")}
    clean.pop("reporter_phone", None)  # kept encrypted on the case, never in the payload
    with transaction.atomic():
        message = _existing(channel, external_id)
        if message is not None:
            message = ChannelMessage.objects.select_for_update().get(pk=message.pk)
        has_content = bool(content or title)
        if message is not None and message.case is not None:
            _seen_again(message)
            if kind == "update" and (content or title):
                _apply_update(message, message.case, seq, clean)
            return Received(message.case, message, False)
        if kind == "create" and not has_content:
            raise invalid(
                "content_required", "工单缺少内容", "The work order has no content", field="content"
            )
        if kind == "update":
            # An update before its order: keep it until the order arrives.
            if message is None:
                try:
                    with transaction.atomic():
                        message = ChannelMessage.objects.create(
                            channel=channel, source=key, external_id=external_id, payload={"waiting": [clean]}
                        )
                except IntegrityError:
                    message = ChannelMessage.objects.select_for_update().get(
                        channel=channel, external_id=external_id
                    )
                    _wait(message, clean)
            else:
                _wait(message, clean)
            return Received(None, message, False, {"status": "waiting"})
        # A point outside the street is kept: the order waits in the dispatcher's queue.
        case = _register(
            actor,
            title=title or title_from(content),
            description=content,
            category=data.get("category") or None,
            lng=data.get("lng"),
            lat=data.get("lat"),
            address=str(data.get("address") or ""),
            channel=channel,
            external_id=external_id,
            reporter_name=str(data.get("reporter_name") or ""),
            reporter_phone=_phone(str(data.get("reporter_phone") or "")),
            note=f"{SOURCES[key][1]}工单 {order_id}",
        )
        waiting: list[dict[str, Any]] = []
        if message is None:
            try:
                with transaction.atomic():
                    message = ChannelMessage.objects.create(
                        channel=channel, source=key, external_id=external_id, case=case, payload=clean
                    )
            except IntegrityError:
                # The same order delivered by a concurrent request a moment ago (same case).
                message = ChannelMessage.objects.select_for_update().get(
                    channel=channel, external_id=external_id
                )
                if message.case_id is None:
                    message.case = case
                    message.save(update_fields=["case"])
                _seen_again(message)
                return Received(case, message, False)
        else:
            waiting = list(message.payload.get("waiting", []))
            message.case = case
            message.payload = clean
            message.count += 1
            message.last_seen = clock.now()
            message.save()
        for update in waiting:
            if update.get("content") or update.get("title"):
                _apply_update(message, case, str(update.get("seq") or ""), update)
        return Received(case, message, True)


def _wait(message: ChannelMessage, update: dict[str, Any]) -> None:
    waiting = list(message.payload.get("waiting", []))
    if update not in waiting:
        waiting.append(update)
    message.payload = {**message.payload, "waiting": waiting}
    message.count += 1
    message.last_seen = clock.now()
    message.save()


def _apply_update(message: ChannelMessage, case: Case, seq: str, update: dict[str, Any]) -> None:
    """An upstream 补充/催办 on the case's timeline, once per (order, seq or content)."""
    marker = seq or hashlib.sha256(json.dumps(update, sort_keys=True, default=str).encode()).hexdigest()[:16]
    request_id = f"intake:{message.pk}:{marker}"[:64]
    if case.events.filter(request_id=request_id).exists():
        return
    note = str(update.get("content") or update.get("title") or "")
    case_services.append_event(
        case, None, "channel_update", case.status, case.status, note=note, data=update, request_id=request_id
    )


def mapping_for(source: str) -> dict[str, str]:
    from zhizhi.intake.models import ColumnMapping

    row = ColumnMapping.objects.filter(source=source).first()
    return dict(row.mapping) if row else {}


def save_mapping(source: Any, mapping: dict[str, str]) -> dict[str, str]:
    """Header → work-order field, saved per source (unknown fields refused)."""
    from zhizhi.intake.models import ColumnMapping

    key = source_by(source)
    clean = {str(h).strip(): f for h, f in mapping.items() if f}
    bad = [f for f in clean.values() if f not in WORKORDER_FIELDS]
    if bad:
        raise invalid(
            "mapping_field",
            "列映射中有未知字段",
            "The column mapping names unknown fields",
            field="mapping",
            value=bad,
            expected_en=", ".join(WORKORDER_FIELDS),
            expected_zh="、".join(WORKORDER_FIELDS),
        )
    if "order_id" not in clean.values():
        raise invalid("mapping_order_id", "须映射工单编号列", "Map a column to order_id", field="mapping")
    ColumnMapping.objects.update_or_create(source=key, defaults={"mapping": clean, "updated_at": clock.now()})
    return clean


def import_workorders(actor: Any, source: Any, data: bytes, filename: str) -> dict[str, Any]:
    """A batch of work orders from the upstream export (xlsx/csv) with the source's saved mapping.
    Each row is one `receive_workorder`; bad rows are reported with their row numbers."""
    from zhizhi.exchange import clean_cell, open_table

    key = source_by(source)
    mapping = mapping_for(key)
    if not mapping:
        raise invalid(
            "mapping_missing",
            "请先为该来源保存列映射",
            "Save a column mapping for this source first",
            field="mapping",
        )
    table = open_table(data, filename)
    headers = [str(h or "").strip() for h in table.headers]
    index = {field: headers.index(h) for h, field in mapping.items() if h in headers}
    if "order_id" not in index:
        raise invalid(
            "mapping_header",
            "文件中没有映射的工单编号列",
            "The file lacks the mapped order id column",
            field="file",
        )
    counts = {"created": 0, "existing": 0, "waiting": 0}
    errors: list[dict[str, Any]] = []
    for row_no, cells, _formulas in table.rows:
        values = {f: clean_cell(cells[i]) if i < len(cells) else None for f, i in index.items()}
        if not any(v not in (None, "") for v in values.values()):
            continue
        try:
            got = receive_workorder(actor, key, {k: v for k, v in values.items() if v is not None})
        except Invalid as exc:
            errors += [{**p.as_dict(), "row": row_no} for p in exc.problems]
            continue
        counts["waiting" if got.case is None else "created" if got.created else "existing"] += 1
    return {**counts, "errors": errors}


# --- camera events and patrols ------------------------------------------------------------------
def _window() -> dt.timedelta:
    return dt.timedelta(minutes=float(getattr(settings, "ZHIZHI_CAMERA_WINDOW_MINUTES", 30)))


def receive_camera_event(actor: Any, data: dict[str, Any]) -> Received:
    """One AI event; the same type at the same camera within the window joins the open case."""
    code = str(data.get("camera") or data.get("camera_id") or "").strip()
    camera = Camera.objects.filter(code=code, enabled=True).first() if code else None
    if camera is None:
        raise invalid(
            "camera_unknown",
            "未登记或已停用的摄像头",
            "Unknown or disabled camera",
            field="camera",
            value=code,
        )
    name = str(data.get("event_type") or "").strip()
    etype = CameraEventType.objects.select_related("category").filter(name=name).first()
    if etype is None:
        raise invalid(
            "event_type_unknown",
            "未配置的事件类型",
            "Unknown event type",
            field="event_type",
            value=name,
            expected_zh="、".join(CameraEventType.objects.values_list("name", flat=True)),
        )
    event_id = str(data.get("event_id") or "").strip()[:48]
    snapshot = str(data.get("snapshot_url") or "")[:300]
    image = _snapshot_bytes(data.get("snapshot_base64"))
    now = clock.now()
    with transaction.atomic():
        Camera.objects.select_for_update().get(pk=camera.pk)  # one event per camera at a time
        if event_id:
            # A redelivered event is already counted on one of the camera's recent messages.
            seen = next(
                (
                    m
                    for m in ChannelMessage.objects.filter(channel="camera", source=camera.code).order_by(
                        "-id"
                    )[:50]
                    if event_id in m.payload.get("event_ids", [])
                ),
                None,
            )
            if seen is not None:
                return Received(seen.case, seen, False)
        recent = (
            ChannelMessage.objects.select_for_update()
            .filter(
                channel="camera", source=camera.code, payload__event_type=name, last_seen__gte=now - _window()
            )
            .order_by("-last_seen")
            .first()
        )
        # Joins only a case still being worked (through a merge, its parent): once finished or
        # cancelled, a new sighting is a new problem.
        open_case = root_of(recent.case) if recent is not None and recent.case is not None else None
        if recent is not None and open_case is not None and open_case.status in transitions.ACTIVE:
            ids = list(recent.payload.get("event_ids", []))
            if event_id:
                ids = [*ids, event_id][-200:]
            recent.payload = {**recent.payload, "event_ids": ids, "last_snapshot": snapshot}
            recent.count += 1
            recent.last_seen = now
            recent.save()
            return Received(open_case, recent, False, {"count": recent.count})
        case = _register(
            actor,
            title=f"{name}（{camera.name}）",
            description=f"视频AI识别：{name}；摄像头 {camera.code} {camera.name}"
            + (f"；抓拍 {snapshot}" if snapshot else ""),
            category=etype.category,
            lng=camera.lng,
            lat=camera.lat,
            address=camera.name,
            channel="camera",
            note=f"摄像头 {camera.code}",
        )
        message = ChannelMessage.objects.create(
            channel="camera",
            source=camera.code,
            external_id=f"{camera.code}:{event_id or secrets.token_hex(8)}",
            case=case,
            payload={
                "event_type": name,
                "event_ids": [event_id] if event_id else [],
                "last_snapshot": snapshot,
            },
        )
        if image:
            _add_photos(case, [("snapshot", image)])
    return Received(case, message, True)


def _snapshot_bytes(raw: Any) -> bytes:
    if not raw:
        return b""
    import base64
    import binascii

    text = str(raw)
    if text.startswith("data:") and "," in text:
        text = text.split(",", 1)[1]
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise invalid(
            "snapshot_base64",
            "抓拍图片不是有效的 base64",
            "The snapshot is not valid base64",
            field="snapshot_base64",
        ) from None
    check_photos([("snapshot", data)])
    return data


def patrol_report(
    actor: Any,
    *,
    category: Any,
    description: str = "",
    lng: Any = None,
    lat: Any = None,
    photos: list[tuple[str, bytes]] | None = None,
) -> Received:
    """A grid worker's patrol finding (巡查上报): registered on channel patrol."""
    problems: list[Problem] = []
    text = ""
    x = y = None
    try:
        text = check_text(description)
    except Invalid as exc:
        problems += exc.problems
    try:
        x, y, _ = resolve_location(lng, lat)
    except Invalid as exc:
        problems += exc.problems
    try:
        files = check_photos(list(photos or []))
    except Invalid as exc:
        problems += exc.problems
        files = []
    if problems:
        raise Invalid(problems)
    with transaction.atomic():
        cat = case_services.category_by(category)
        case = _register(
            actor,
            title=title_from(text) if text else (cat.name if cat else "巡查上报"),
            description=text,
            category=cat,
            lng=x,
            lat=y,
            channel="patrol",
        )
        message = ChannelMessage.objects.create(
            channel="patrol",
            source=getattr(actor, "username", ""),
            external_id=f"patrol-{case.number}",
            case=case,
        )
        _add_photos(case, files)
    return Received(case, message, True)


def operator_workorder(actor: Any, source: Any, data: dict[str, Any]) -> Received:
    """A call taken by an operator (坐席录入): a work order with an id of its own when none is given."""
    data = dict(data)
    if not str(data.get("order_id") or "").strip():
        data["order_id"] = f"T{clock.now():%Y%m%d%H%M%S}{secrets.token_hex(3)}"
    return receive_workorder(actor, source, data)


# --- feedback to every channel ------------------------------------------------------------------
def family(case: Case) -> list[Case]:
    """The case and every report merged into it (directly or through other merged reports)."""
    out = [case]
    frontier = [case.pk]
    seen = {case.pk}
    while frontier:
        children = [c for c in Case.objects.filter(duplicate_of_id__in=frontier) if c.pk not in seen]
        seen |= {c.pk for c in children}
        out += children
        frontier = [c.pk for c in children]
    return out


def root_of(case: Case) -> Case:
    seen = set()
    while case.duplicate_of_id and case.pk not in seen:
        seen.add(case.pk)
        case = Case.objects.get(pk=case.duplicate_of_id)
    return case


def result_text(case: Case) -> str:
    return f"【智治】您反映的问题已办结（编号{case.number}）：{case.result[:80]}"


def feed_back(case: Case) -> dict[str, int]:
    """Hand the result of a finished `case` to every channel of it and its merged reports, once."""
    counts = {"callbacks": 0, "sms": 0, "messages": 0}
    if case.status not in FEEDBACK_STATUSES:
        return counts
    members = family(case)
    now = clock.now()
    with transaction.atomic():
        # SMS to every merged reporter (the parent's own reporter is told by the core's flows).
        for child in members[1:]:
            if child.reporter_phone_enc:
                enqueue(
                    "sms",
                    f"case:{child.pk}:reporter",
                    result_text(case),
                    key=f"intake:result:case{case.pk}:reporter{child.pk}",
                    cause=f"cases.case:{child.pk}",
                )
                counts["sms"] += 1
        pending = ChannelMessage.objects.select_for_update().filter(
            case__in=members, fed_back_at__isnull=True
        )
        endpoints = {e.source: e for e in SourceEndpoint.objects.all()}
        for message in pending:
            if message.channel in WORKORDER_CHANNELS:
                endpoint = endpoints.get(message.source)
                if endpoint is not None and endpoint.callback_url:
                    enqueue(
                        "webhook",
                        f"intake:{message.pk}",
                        json.dumps(callback_body(message, case), ensure_ascii=False),
                        key=f"intake:callback:{message.pk}",
                        cause=f"cases.case:{case.pk}",
                    )
                    counts["callbacks"] += 1
            message.fed_back_at = now
            message.save(update_fields=["fed_back_at"])
            counts["messages"] += 1
    return counts


def callback_body(message: ChannelMessage, case: Case) -> dict[str, Any]:
    return {
        "source": message.source,
        "order_id": message.external_id.split(":", 1)[-1],
        "case_number": case.number,
        "status": case.status,
        "result": case.result,
        "finished_at": case.finished_at.isoformat() if case.finished_at else None,
    }


def callback_url_for(message: Any) -> str:
    """Outbox resolver for "intake:<message id>": the source's callback URL at delivery time."""
    from zhizhi.notify.adapters import DeliveryError

    try:
        pk = int(message.recipient.split(":")[1])
    except (IndexError, ValueError):
        raise DeliveryError(f"bad intake recipient {message.recipient!r}") from None
    row = ChannelMessage.objects.filter(pk=pk).first()
    endpoint = SourceEndpoint.objects.filter(source=row.source).first() if row else None
    if endpoint is None or not endpoint.callback_url:
        raise DeliveryError(f"no callback URL for {message.recipient}")
    return endpoint.callback_url


def sweep_feedback(limit: int = 500) -> int:
    """Feed back every finished case whose channel messages (or merged reports') were not yet told.
    The backstop of the on-save hook; idempotent."""
    done = 0
    ids = list(
        ChannelMessage.objects.filter(fed_back_at__isnull=True, case__isnull=False)
        .values_list("case_id", flat=True)
        .distinct()[:limit]
    )
    roots: dict[int, Case] = {}
    for case in Case.objects.filter(pk__in=ids):
        root = root_of(case)
        roots[root.pk] = root
    for root in roots.values():
        if root.status in FEEDBACK_STATUSES:
            done += feed_back(root)["messages"]
    return done


def on_case_saved(sender: Any, instance: Case, created: bool, **_: Any) -> None:
    """post_save of Case: a case that has just reached a result is fed back inside the same
    transaction (a rolled-back finish tells nobody)."""
    if created:
        return
    target: Case | None = instance if instance.status in FEEDBACK_STATUSES else None
    if instance.status == "merged" and instance.duplicate_of_id:
        # A report merged into a case that already has its result is told at once.
        root = root_of(instance)
        target = root if root.status in FEEDBACK_STATUSES else None
    if target is None:
        return
    try:
        with transaction.atomic():
            feed_back(target)
    except Exception:  # the sweep retries; the core's action must not fail because of us
        log.exception("intake feedback for case %s failed", instance.pk)


def results_since(since: dt.datetime | None, limit: int = 1000) -> list[dict[str, Any]]:
    """Export rows for the hotline systems: work orders whose result was fed back since `since`."""
    qs = ChannelMessage.objects.select_related("case").filter(
        channel__in=WORKORDER_CHANNELS, fed_back_at__isnull=False
    )
    if since is not None:
        qs = qs.filter(fed_back_at__gte=since)
    out = []
    for message in qs.order_by("fed_back_at", "id")[:limit]:
        case = message.case
        root = root_of(case) if case else None
        if root is None or message.fed_back_at is None:
            continue
        out.append({**callback_body(message, root), "fed_back_at": message.fed_back_at.isoformat()})
    return out
