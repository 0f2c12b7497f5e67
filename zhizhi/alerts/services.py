"""Telemetry ingestion: the one door through which device readings enter (HTTP and MQTT alike).

`ingest(device_code, token, readings, source)` checks the device and its token, then looks at every
reading on its own: a bad one never spoils the batch. What happens to each kind of bad input:

- unknown device, disabled device, bad token → `DeviceRefused`; nothing stored, counted per day in
  `IngestCounter` (so an operator sees a misconfigured or hostile sender without a table full of junk);
- no usable time (`at` missing or not a time), time > 5 minutes ahead of our clock, time older than
  the retention period → reported, not stored (the time is the reading's identity and not trustworthy);
- value not a number, or outside the plausible range of the device's kind → stored with status
  "rejected" and the reason (the rules only ever read status "ok");
- the same (device, at) again, in the batch or already stored → a duplicate: ignored and counted;
  readings arriving out of order are normal and simply stored;
- more than ZHIZHI_DEVICE_RATE_PER_MINUTE stored readings of one device in the last minute →
  "rate_limited", not stored. The counter is the stored rows themselves (index on device and
  arrival time), so it holds across the HTTP workers and the MQTT bridge, and a flooding device costs
  nobody else anything.

`ingest_many` takes the batches of many devices received together (the MQTT bridge's bursts) and gives
each the outcome `ingest` would, storing them in one transaction with a fixed number of queries: the
cost of a burst grows with its readings, hardly with its devices.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F
from django.db.models.constants import OnConflict
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from zhizhi import clock
from zhizhi.alerts import rules
from zhizhi.alerts.models import Device, IngestCounter, Reading
from zhizhi.problems import Invalid, Problem, invalid

log = logging.getLogger(__name__)

# Plausible value range per device kind (inclusive). Outside it the sensor is broken or lying.
PLAUSIBLE: dict[str, tuple[float, float]] = {
    "water_level": (-1.0, 20.0),  # m
    "smoke": (0.0, 100.0),  # obscuration %/m (or 0/1 alarm)
    "door": (0.0, 1.0),  # 0 closed, 1 open
    "fume": (0.0, 2000.0),  # mg/m³ oil fume or µg/m³ PM
    "noise": (0.0, 200.0),  # dB(A)
    "gas": (0.0, 100.0),  # %LEL
    "power": (0.0, 1000.0),  # kW
}
FUTURE_TOLERANCE = dt.timedelta(minutes=5)
MAX_BATCH = 1000
# Sources the counters and logs know about.
SOURCES = ("http", "mqtt")


class DeviceRefused(Exception):
    """The sender is not a known, enabled device with the right token; nothing was stored."""

    def __init__(self, reason: str, zh: str, en: str) -> None:
        self.reason, self.zh, self.en = reason, zh, en
        super().__init__(f"{zh} / {en}")

    @property
    def problem(self) -> Problem:
        return Problem(self.reason, self.zh, self.en)


@dataclass
class Rejection:
    index: int
    code: str
    zh: str
    en: str
    stored: bool  # True: kept as a "rejected" row for the record; False: dropped

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "code": self.code,
            "zh": self.zh,
            "en": self.en,
            "stored": self.stored,
            "message": f"第{self.index + 1}条读数 reading {self.index + 1}: {self.zh} / {self.en}",
        }


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": [r.as_dict() for r in self.rejected],
        }


# --- tokens --------------------------------------------------------------------------------------
def _token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def issue_token(device: Device) -> str:
    """Give `device` a new token (the old one stops working). The raw token is returned once only."""
    raw = "zd_" + secrets.token_urlsafe(24)
    Device.objects.filter(pk=device.pk).update(token_hash=_token_hash(raw), token_prefix=raw[:8])
    device.token_hash, device.token_prefix = _token_hash(raw), raw[:8]
    return raw


def count_refused(reason: str, n: int = 1) -> None:
    day = clock.today()
    counter, _ = IngestCounter.objects.get_or_create(day=day, reason=reason)
    IngestCounter.objects.filter(pk=counter.pk).update(count=F("count") + max(n, 1))


def authenticate(device_code: str, token: str, n: int = 1) -> Device:
    """The enabled device `device_code` if `token` is its token; else count the refusal and raise."""
    device = Device.objects.filter(code=str(device_code or "")[:40]).first()
    refused = _refusal(device, token)
    if refused is not None or device is None:
        assert refused is not None
        count_refused(refused.reason, n)
        raise refused
    return device


# --- one reading -----------------------------------------------------------------------------------
def parse_at(raw: Any) -> dt.datetime | None:
    """An ISO 8601 time (naive = local time zone) or epoch seconds; None when it is neither."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        if not math.isfinite(raw):
            return None
        try:
            return dt.datetime.fromtimestamp(raw, tz=dt.UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(raw, str):
        return None
    try:
        moment = parse_datetime(raw.strip())
    except ValueError:
        return None
    if moment is None:
        return None
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


def parse_value(raw: Any) -> float | None:
    """A finite number (JSON number or numeric text); None for anything else (booleans included)."""
    if isinstance(raw, bool) or raw is None:
        return None
    if isinstance(raw, int | float):
        value = float(raw)
    elif isinstance(raw, str):
        try:
            value = float(raw.strip())
        except ValueError:
            return None
    else:
        return None
    return value if math.isfinite(value) else None


def _reason(zh: str, en: str) -> str:
    return f"{zh} / {en}"[:100]


@dataclass(slots=True)
class Row:
    """A reading on its way into the store: the columns of `Reading`, without a model instance (which
    cost more than the rest of the checks of a reading)."""

    device_id: int
    at: dt.datetime
    value: float | None
    received_at: dt.datetime
    status: str = Reading.OK
    reason: str = ""


# --- the batch -------------------------------------------------------------------------------------
Outcome = IngestResult | DeviceRefused | Invalid


def ingest(device_code: str, token: str, readings: Sequence[Any], source: str = "http") -> IngestResult:
    """Store a batch of readings of one device; see the module docstring for every bad input.

    Raises `DeviceRefused` (unknown/disabled device, bad token) and `Invalid` (readings not a list, or
    over MAX_BATCH). Everything of one batch is written in one transaction. After storing, the
    accepted ("ok") readings go to `zhizhi.alerts.rules.evaluate_devices`; an error inside it is logged
    and rolled back to a savepoint, so a rule bug never loses the readings themselves.
    """
    outcome = ingest_many([(device_code, token, readings)], source)[0]
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def _shape_problem(readings: Any) -> Invalid | None:
    if not isinstance(readings, list | tuple):
        return invalid(
            "readings", "readings 应为读数列表", "readings must be a list of readings", field="readings"
        )
    if len(readings) > MAX_BATCH:
        return invalid(
            "batch_too_large",
            f"一次最多上报 {MAX_BATCH} 条读数",
            f"At most {MAX_BATCH} readings per batch",
            field="readings",
        )
    return None


def _refusal(device: Device | None, token: str) -> DeviceRefused | None:
    if device is None or not device.enabled:
        return DeviceRefused("unknown_device", "设备不存在或已停用", "Unknown or disabled device")
    if not device.token_hash or not hmac.compare_digest(device.token_hash, _token_hash(str(token or ""))):
        return DeviceRefused("bad_token", "设备令牌不正确", "Wrong device token")
    return None


def ingest_many(batches: Sequence[tuple[str, str, Any]], source: str = "http") -> list[Outcome]:
    """`ingest` for several batches (device code, token, readings) received together — the MQTT bridge
    drains a burst of many devices at once. Each batch gets the outcome `ingest` would return or raise,
    in order; a bad batch spoils no other. The lot is stored in one transaction holding the devices'
    row locks (taken in primary-key order), with a fixed number of queries rather than a few per batch:
    one to authenticate, one to lock, one for duplicates, one for the rate counts, one insert, one
    device update and one rule evaluation of every device that got valid readings."""
    outcomes: list[Outcome | None] = [None] * len(batches)
    codes = {str(code or "")[:40] for code, _, readings in batches if _shape_problem(readings) is None}
    found = {d.code: d for d in Device.objects.filter(code__in=codes)} if codes else {}
    now = clock.now()
    oldest = now - dt.timedelta(days=settings.ZHIZHI_READING_RETENTION_DAYS)
    work: list[tuple[int, Device, IngestResult, list[tuple[int, Row]]]] = []
    for i, (code, token, readings) in enumerate(batches):
        problem = _shape_problem(readings)
        if problem is not None:
            outcomes[i] = problem
            continue
        device = found.get(str(code or "")[:40])
        refused = _refusal(device, token)
        if refused is not None or device is None:
            assert refused is not None
            count_refused(refused.reason, len(readings))
            outcomes[i] = refused
            continue
        result = IngestResult()
        work.append((i, device, result, _check(device, readings, now, oldest, result)))
        outcomes[i] = result
    for i in _store(work, now, source) if work else set():
        count_refused("unknown_device", len(batches[i][2]))
        outcomes[i] = DeviceRefused("unknown_device", "设备不存在或已停用", "Unknown or disabled device")
    return [o for o in outcomes if o is not None]


def _check(
    device: Device, readings: Sequence[Any], now: dt.datetime, oldest: dt.datetime, result: IngestResult
) -> list[tuple[int, Row]]:
    """Pass 1: each reading on its own (no database); the rejections go to `result`."""
    low, high = PLAUSIBLE.get(device.kind, (-math.inf, math.inf))
    candidates: list[tuple[int, Row]] = []
    for index, item in enumerate(readings):
        if not isinstance(item, dict):
            result.rejected.append(
                Rejection(
                    index,
                    "not_an_object",
                    "读数应为 {at, value} 对象",
                    "A reading must be {at, value}",
                    False,
                )
            )
            continue
        at = parse_at(item.get("at"))
        if at is None:
            result.rejected.append(
                Rejection(
                    index,
                    "bad_time",
                    "缺少测量时间或时间格式不对(应为 ISO 8601)",
                    "Missing or malformed time (ISO 8601 expected)",
                    False,
                )
            )
            continue
        if at > now + FUTURE_TOLERANCE:
            result.rejected.append(
                Rejection(
                    index,
                    "future_time",
                    "测量时间超前于服务器时间5分钟以上，请校准设备时钟",
                    "Time is more than 5 minutes ahead of the server; fix the device clock",
                    False,
                )
            )
            continue
        if at < oldest:
            result.rejected.append(
                Rejection(
                    index, "too_old", "测量时间早于保留期限", "Time is older than the retention period", False
                )
            )
            continue
        value = parse_value(item.get("value"))
        reading = Row(device.pk, at, value, now)
        if value is None:
            zh, en = "读数不是数字", "Value is not a number"
            reading.value, reading.status, reading.reason = None, Reading.REJECTED, _reason(zh, en)
            result.rejected.append(Rejection(index, "not_a_number", zh, en, True))
        elif not low <= value <= high:
            unit = device.unit or ""
            zh = f"读数 {value:g} 超出合理范围 {low:g}~{high:g}{unit}"
            en = f"Value {value:g} outside the plausible range {low:g}..{high:g}{unit}"
            reading.status, reading.reason = Reading.REJECTED, _reason(zh, en)
            result.rejected.append(Rejection(index, "implausible", zh, en, True))
        candidates.append((index, reading))
    return candidates


def _store(
    work: list[tuple[int, Device, IngestResult, list[tuple[int, Row]]]], now: dt.datetime, source: str
) -> set[int]:
    """Pass 2, in one transaction: duplicates, the rate limit, the insert, the devices, the rules.
    Returns the indexes of the batches whose device was deleted meanwhile (nothing stored)."""
    limit = settings.ZHIZHI_DEVICE_RATE_PER_MINUTE
    vanished: set[int] = set()
    with transaction.atomic():
        # The device row locks queue concurrent batches of one device (HTTP + MQTT), so the duplicate
        # check, the rate count and last_value are consistent; other devices are not held up. Locked
        # in primary-key order, as the care sweep does, so two lockers of many devices queue.
        ids = sorted({device.pk for _, device, _, _ in work})
        locked = {d.pk: d for d in Device.objects.select_for_update().filter(pk__in=ids).order_by("pk")}
        ats = sorted({r.at for _, _, _, candidates in work for _, r in candidates})
        known: set[tuple[int, dt.datetime]] = set()
        for start in range(0, len(ats), 500):
            known.update(
                Reading.objects.filter(device_id__in=ids, at__in=ats[start : start + 500]).values_list(
                    "device_id", "at"
                )
            )
        # The rate counter is the stored rows (index on device, received_at); counting stops at the limit.
        recent = dict(
            Reading.objects.filter(device_id__in=ids, received_at__gt=now - dt.timedelta(minutes=1))
            .order_by()
            .values_list("device_id")
            .annotate(n=Count("pk"))
            .values_list("device_id", "n")
        )
        budget = {pk: max(limit - recent.get(pk, 0), 0) for pk in ids}
        fresh: list[Row] = []
        accepted: dict[int, list[Row]] = {}
        for index_, device, result, candidates in work:
            if device.pk not in locked:
                vanished.add(index_)  # deleted between the look-up and the lock
                continue
            ok = _admit(device.pk, candidates, result, known, budget, limit)
            fresh += ok
            good = [r for r in ok if r.status == Reading.OK]
            result.accepted = len(good)
            accepted.setdefault(device.pk, []).extend(good)
        # Ignoring conflicts: a batch racing past the lock on another database connection cannot fail.
        _insert_readings(fresh)
        moved: list[Device] = []
        evaluate: list[Device] = []
        for pk, good in accepted.items():
            if not good:
                continue
            device = locked[pk]
            newest = max(good, key=lambda r: r.at)
            if device.last_seen_at is None or newest.at >= device.last_seen_at:
                device.last_value, device.last_seen_at = newest.value, newest.at
                moved.append(device)
            evaluate.append(device)
        if moved:
            # Not save(): a reading is not an edit of the device (no change log, no version bump that
            # would make a person's edit of the device conflict).
            Device.objects.bulk_update(moved, ["last_value", "last_seen_at"])
        _call_rules(evaluate)
    for index_, device, result, _ in work:
        if index_ in vanished:
            continue
        result.rejected.sort(key=lambda r: r.index)
        if result.rejected:
            log.info(
                "telemetry %s from %s: %d accepted, %d duplicates, %d rejected",
                source,
                device.code,
                result.accepted,
                result.duplicates,
                len(result.rejected),
            )
    return vanished


def _admit(
    device_id: int,
    candidates: list[tuple[int, Row]],
    result: IngestResult,
    known: set[tuple[int, dt.datetime]],
    budget: dict[int, int],
    limit: int,
) -> list[Row]:
    """The candidates of one batch that are neither duplicates nor over the device's rate budget."""
    fresh: list[Row] = []
    for index, reading in candidates:
        if (device_id, reading.at) in known:
            result.duplicates += 1
            # A duplicate of a rejected reading was already reported with it; say nothing twice.
            result.rejected = [r for r in result.rejected if not (r.index == index and r.stored)]
            continue
        if budget[device_id] <= 0:
            result.rejected = [r for r in result.rejected if r.index != index]
            result.rejected.append(
                Rejection(
                    index,
                    "rate_limited",
                    f"上报过于频繁(每分钟最多 {limit} 条)，此条未保存",
                    f"Too many readings (at most {limit} a minute); not stored",
                    False,
                )
            )
            continue
        known.add((device_id, reading.at))
        budget[device_id] -= 1
        fresh.append(reading)
    return fresh


_READING_COLUMNS = ("device_id", "at", "value", "status", "reason", "received_at")


def _insert_readings(readings: list[Row], chunk: int = 500) -> None:
    """`bulk_create(readings, ignore_conflicts=True)` without the ORM's per-field preparation, which
    was a quarter of the cost of a large batch: one multi-row INSERT … ON CONFLICT DO NOTHING (INSERT OR
    IGNORE on SQLite) per `chunk` rows, values adapted by the backend as the ORM would; on PostgreSQL
    one INSERT … SELECT FROM unnest(one array per column) for the lot."""
    if not readings:
        return
    ops = connection.ops
    qn = ops.quote_name
    suffix = ops.on_conflict_suffix_sql([], OnConflict.IGNORE, None, None)
    head = (
        f"{ops.insert_statement(on_conflict=OnConflict.IGNORE)} {qn(Reading._meta.db_table)} "
        f"({', '.join(qn(c) for c in _READING_COLUMNS)}) VALUES "
    )
    if connection.vendor == "postgresql":
        # One array per column instead of six placeholders per row: the driver's client-side query
        # building was most of the cost of a large INSERT.
        arrays = (
            "unnest(%s::bigint[], %s::timestamptz[], %s::float8[], %s::varchar[], %s::varchar[], "
            "%s::timestamptz[])"
        )
        columns = ", ".join(qn(c) for c in _READING_COLUMNS)
        with connection.cursor() as cursor:
            cursor.execute(
                # Identifiers from the model, values as parameters.
                f"{head.removesuffix(' VALUES ')} SELECT {columns} FROM {arrays} AS r({columns}) {suffix}",  # noqa: S608
                [
                    list(column)
                    for column in zip(
                        *((r.device_id, r.at, r.value, r.status, r.reason, r.received_at) for r in readings),
                        strict=True,
                    )
                ],
            )
        return
    row = "(" + ", ".join(["%s"] * len(_READING_COLUMNS)) + ")"
    with connection.cursor() as cursor:
        for start in range(0, len(readings), chunk):
            part = readings[start : start + chunk]
            params: list[Any] = []
            for r in part:
                params += [
                    r.device_id,
                    ops.adapt_datetimefield_value(r.at),
                    r.value,
                    r.status,
                    r.reason,
                    ops.adapt_datetimefield_value(r.received_at),
                ]
            cursor.execute(f"{head}{', '.join([row] * len(part))} {suffix}", params)


def _call_rules(devices: list[Device]) -> None:
    """Evaluate the rules of `devices` (locked by the caller) in a savepoint; when that fails, device
    by device, so one device's rule error neither loses readings nor stops the other devices' alarms."""
    if not devices:
        return
    evaluate = rules.evaluate_devices
    try:
        with transaction.atomic():
            evaluate(devices)
        return
    except Exception:
        if len(devices) == 1:
            log.exception("alert rules failed for device %s; readings kept", devices[0].code)
            return
    for device in devices:
        try:
            with transaction.atomic():
                evaluate([device])
        except Exception:
            log.exception("alert rules failed for device %s; readings kept", device.code)


def purge_old_readings(days: int | None = None) -> int:
    """Delete readings older than the retention period; returns how many were deleted."""
    keep = settings.ZHIZHI_READING_RETENTION_DAYS if days is None else days
    deleted, _ = Reading.objects.filter(at__lt=clock.now() - dt.timedelta(days=keep)).delete()
    return deleted
