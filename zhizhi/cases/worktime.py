"""Deadlines in Chinese working time (工作时间): adding and counting work hours, work days and minutes.

Which days are working days:
  1. the admin-editable holiday table (`HolidayOverride`) wins for the dates it lists;
  2. otherwise the `chinese_calendar` package (statutory holidays and 调休 make-up working days);
  3. for a year the package does not know (2027 with chinesecalendar 1.11), Monday–Friday.
     `is_covered(year)` is False for such a year so the UI can ask the admin to fill it in.

Working hours come from `settings.ZHIZHI_WORK_HOURS` (default 08:30–12:00 and 13:30–17:30) in
`settings.TIME_ZONE`. Every working day has the same periods, so one working day is a fixed number of
working minutes (450 by default) and `work_days` is defined through it:

  * `work_hours`: only minutes inside the periods of working days count. `add` returns the *earliest*
    moment at which the amount has been worked, so a deadline that uses up a period exactly is that
    period's end (17:30), never the start of the next one (08:30 the next working day).
  * `work_days`: N working days = N × (working minutes of one day), counted like `work_hours`. A start
    inside working time gives the same clock time N working days later; a start before, between or
    after the periods gives the end of the Nth working period-run (e.g. Friday 19:00 + 1 → Monday
    17:30; Monday 07:00 + 1 → Monday 17:30; Monday 12:30 + 1 → Tuesday 12:00). Fractions (the 80 %
    warning of a 3-day limit) are fractions of a working day.
  * `calendar_minutes`: plain elapsed minutes (urgent kinds; 0.5 = 30 seconds).

The override table is read lazily and kept per process. A save or delete in this process clears it
at once (model signals connected below); changes made by another process are seen after at most
`ZHIZHI_HOLIDAY_CACHE_SECONDS` (default 5), when the (small) table is read again. See
docs/working-time.md.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import chinese_calendar
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models.signals import post_delete, post_save
from django.test.signals import setting_changed

logger = logging.getLogger(__name__)

UNITS = ("work_hours", "work_days", "calendar_minutes")
DEFAULT_WORK_HOURS = (("08:30", "12:00"), ("13:30", "17:30"))
# A year the library does not know counts as filled in by the admin once the holiday table holds at
# least this many rest days in it: one per statutory festival (元旦 春节 清明 劳动 端午 中秋 国庆).
OVERRIDE_HOLIDAYS_FOR_COVERAGE = 7

_ONE_DAY = dt.timedelta(days=1)
_MIDNIGHT = dt.time()
_DAY_MINUTES = 24 * 60


@dataclass(frozen=True)
class _Hours:
    periods: tuple[tuple[float, float], ...]  # minutes after local midnight, sorted, disjoint
    first: float  # start of the first period
    last: float  # end of the last period
    total: float  # working minutes in one working day


def _minute_of(text: str) -> float:
    try:
        hour, minute = str(text).split(":")
        value = int(hour) * 60 + int(minute)
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(f"ZHIZHI_WORK_HOURS: {text!r} is not HH:MM") from exc
    if not 0 <= value <= _DAY_MINUTES:
        raise ImproperlyConfigured(f"ZHIZHI_WORK_HOURS: {text!r} is not a time of day")
    return float(value)


def _parse_hours(raw: Iterable[Iterable[str]]) -> _Hours:
    periods = sorted((_minute_of(a), _minute_of(b)) for a, b in raw)
    if not periods:
        raise ImproperlyConfigured("ZHIZHI_WORK_HOURS is empty: a working day needs working hours")
    for (a, b), nxt in zip(periods, [*periods[1:], None], strict=True):
        if b <= a:
            raise ImproperlyConfigured(f"ZHIZHI_WORK_HOURS: a period ends before it starts ({a}–{b})")
        if nxt is not None and nxt[0] < b:
            raise ImproperlyConfigured("ZHIZHI_WORK_HOURS: periods overlap")
    return _Hours(tuple(periods), periods[0][0], periods[-1][1], sum(b - a for a, b in periods))


@dataclass(frozen=True)
class _Config:
    hours: _Hours
    tz: dt.tzinfo
    ttl: float  # seconds a read of the holiday table is trusted


_config: _Config | None = None
_CONFIG_SETTINGS = {"ZHIZHI_WORK_HOURS", "TIME_ZONE", "ZHIZHI_HOLIDAY_CACHE_SECONDS"}


def _cfg() -> _Config:
    """The settings this module uses, read once (Django settings lookups cost a few µs each)."""
    global _config
    config = _config
    if config is None:
        raw = getattr(settings, "ZHIZHI_WORK_HOURS", DEFAULT_WORK_HOURS)
        config = _Config(
            hours=_parse_hours(tuple(tuple(p) for p in raw)),
            tz=ZoneInfo(settings.TIME_ZONE or "Asia/Shanghai"),
            ttl=float(getattr(settings, "ZHIZHI_HOLIDAY_CACHE_SECONDS", 5)),
        )
        _config = config
    return config


def _settings_changed(*, setting: str, **_: Any) -> None:
    # override_settings in tests; production settings never change while running.
    global _config
    if setting in _CONFIG_SETTINGS:
        _config = None


setting_changed.connect(_settings_changed, dispatch_uid="worktime-settings")


def _hours() -> _Hours:
    return _cfg().hours


def _tz() -> dt.tzinfo:
    return _cfg().tz


# --- which days are working days ---------------------------------------------------------------

_lock = threading.Lock()
# (overrides, memo of the answer per date, monotonic time of the read) — one tuple, swapped whole, so
# a reader never pairs a memo with the overrides of another generation.
_Snapshot = tuple[dict[dt.date, bool], dict[dt.date, bool], float]
_snapshot: _Snapshot | None = None
_library_years: dict[int, bool] = {}
_warned = False


def invalidate(**_: Any) -> None:
    """Forget the holiday table; the next question reads it again (also a post_save/post_delete hook)."""
    global _snapshot
    with _lock:
        _snapshot = None


post_save.connect(invalidate, sender="cases.HolidayOverride", dispatch_uid="worktime-override-save")
post_delete.connect(invalidate, sender="cases.HolidayOverride", dispatch_uid="worktime-override-delete")


def _load_overrides() -> dict[dt.date, bool] | None:
    """The whole table (a few dozen rows a year), or None when it cannot be read."""
    global _warned
    from django.db import transaction

    try:
        from zhizhi.cases.models import HolidayOverride

        # A savepoint, so a missing table (before migrate) cannot poison the caller's transaction.
        with transaction.atomic():
            return dict(HolidayOverride._default_manager.values_list("date", "is_workday"))
    except Exception as exc:  # deadlines must still work without the table
        if not _warned:
            logger.warning("holiday table unreadable, using chinese_calendar only: %s", exc)
            _warned = True
        return None


def _state() -> tuple[dict[dt.date, bool], dict[dt.date, bool]]:
    """(overrides, per-date memo) — fresh enough: re-read after ZHIZHI_HOLIDAY_CACHE_SECONDS."""
    global _snapshot
    snap, now = _snapshot, time.monotonic()
    if snap is None or now - snap[2] > _cfg().ttl:
        with _lock:
            snap = _snapshot
            if snap is None or now - snap[2] > _cfg().ttl:
                fresh = _load_overrides()
                if fresh is None:  # keep the last good table through a database hiccup
                    fresh = snap[0] if snap is not None else {}
                memo = snap[1] if snap is not None and snap[0] == fresh else {}
                snap = _snapshot = (fresh, memo, now)
    return snap[0], snap[1]


def _library_covers(year: int) -> bool:
    known = _library_years.get(year)
    if known is None:
        try:
            chinese_calendar.is_workday(dt.date(year, 6, 1))
            known = True
        except NotImplementedError:
            known = False
        _library_years[year] = known
    return known


def _workday(day: dt.date, overrides: dict[dt.date, bool], memo: dict[dt.date, bool]) -> bool:
    answer = memo.get(day)
    if answer is None:
        answer = overrides.get(day)
        if answer is None:
            if _library_covers(day.year):
                answer = bool(chinese_calendar.is_workday(day))
            else:
                answer = day.weekday() < 5
        memo[day] = answer
    return answer


def is_workday(day: dt.date) -> bool:
    """Is this (local) date a working day? A datetime is first turned into its local date."""
    if isinstance(day, dt.datetime):
        day = _local(day)[0]
    overrides, memo = _state()
    return _workday(day, overrides, memo)


def is_covered(year: int) -> bool:
    """Does chinese_calendar know this year, or has the admin filled it in in the holiday table?"""
    if _library_covers(year):
        return True
    overrides, _ = _state()
    rest_days = sum(1 for day, work in overrides.items() if day.year == year and not work)
    return rest_days >= OVERRIDE_HOLIDAYS_FOR_COVERAGE


def uncovered_years(years: Iterable[int]) -> list[int]:
    """The years among `years` that fall back to weekends-only (for the admin's warning banner)."""
    return [year for year in sorted(set(years)) if not is_covered(year)]


# --- arithmetic -----------------------------------------------------------------------------------


def _aware(moment: dt.datetime) -> dt.datetime:
    """`moment` in the local zone. A naive datetime is read as local wall time (Django's make_aware)."""
    tz = _tz()
    return moment.replace(tzinfo=tz) if moment.tzinfo is None else moment.astimezone(tz)


def _local(moment: dt.datetime) -> tuple[dt.date, float]:
    """(local date, minutes after local midnight)."""
    moment = _aware(moment)
    minute = moment.hour * 60 + moment.minute + (moment.second + moment.microsecond / 1_000_000) / 60
    return moment.date(), minute


def _at(day: dt.date, minute: float) -> dt.datetime:
    # Aware + timedelta keeps wall-clock arithmetic in the same zone, which is what a clock time means.
    return dt.datetime.combine(day, _MIDNIGHT, _tz()) + dt.timedelta(minutes=minute)


def is_working_time(moment: dt.datetime) -> bool:
    """Is `moment` inside a working period of a working day (period ends included)?"""
    day, minute = _local(moment)
    if not is_workday(day):
        return False
    return any(a <= minute <= b for a, b in _hours().periods)


def _add_working_minutes(start: dt.datetime, minutes: float) -> dt.datetime:
    hours = _hours()
    overrides, memo = _state()
    day, t = _local(start)
    remaining = minutes
    # One step per calendar day; a whole working day is taken in one subtraction.
    while True:
        if _workday(day, overrides, memo):
            if t <= hours.first and remaining > hours.total:
                remaining -= hours.total
            else:
                for a, b in hours.periods:
                    if t >= b:
                        continue
                    s = a if t < a else t
                    if remaining <= b - s:
                        return _at(day, s + remaining)
                    remaining -= b - s
        day += _ONE_DAY
        t = -1.0


def _working_minutes_between(start: dt.datetime, end: dt.datetime) -> float:
    hours = _hours()
    overrides, memo = _state()
    d1, t1 = _local(start)
    d2, t2 = _local(end)
    total = 0.0
    day = d1
    while day <= d2:
        if _workday(day, overrides, memo):
            lo = t1 if day == d1 else 0.0
            hi = t2 if day == d2 else float(_DAY_MINUTES)
            if lo <= hours.first and hi >= hours.last:
                total += hours.total
            else:
                for a, b in hours.periods:
                    overlap = (b if b < hi else hi) - (a if a > lo else lo)
                    if overlap > 0:
                        total += overlap
        day += _ONE_DAY
    return total


def _check(amount: float, unit: str) -> None:
    if unit not in UNITS:
        raise ValueError(f"unknown time unit {unit!r}; expected one of {UNITS}")
    if amount < 0:
        raise ValueError(f"a time limit cannot be negative: {amount}")


def add(start: dt.datetime, amount: float, unit: str) -> dt.datetime:
    """The deadline `amount` `unit`s after `start` (aware, in the local time zone)."""
    _check(amount, unit)
    start = _aware(start)
    if unit == "calendar_minutes":
        return start + dt.timedelta(minutes=amount)
    if amount == 0:
        return start
    minutes = amount * 60 if unit == "work_hours" else amount * _hours().total
    return _add_working_minutes(start, minutes)


def elapsed(start: dt.datetime, end: dt.datetime, unit: str) -> float:
    """How many `unit`s lie between `start` and `end` (negative when `end` is before `start`)."""
    _check(0, unit)
    start, end = _aware(start), _aware(end)
    if end < start:
        return -elapsed(end, start, unit)
    if unit == "calendar_minutes":
        return (end - start).total_seconds() / 60
    minutes = _working_minutes_between(start, end)
    return minutes / 60 if unit == "work_hours" else minutes / _hours().total
