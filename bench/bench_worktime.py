"""Working-time arithmetic: µs per `worktime.add` / `worktime.elapsed` for typical limits, against a
naive implementation that steps minute by minute (written here), measured in the same run.

Typical limits are those of the demo responsibility list: sign 2 working hours, handle 1/3/5/15
working days, urgent 30 calendar minutes; starts are random minutes of 2025–2027 (2027 exercises
the weekends-only fallback). The naive side gets a pre-filled dict of working days, so the ratio
measures the arithmetic, not the calendar lookups.

Standalone, no database: the holiday table is empty (reading it is tried once and fails quietly).
Run: .venv/bin/python bench/bench_worktime.py   (prints figures; never asserts timings)
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from django.conf import settings

settings.configure(
    TIME_ZONE="Asia/Shanghai",
    USE_TZ=True,
    ZHIZHI_WORK_HOURS=[("08:30", "12:00"), ("13:30", "17:30")],
    ZHIZHI_HOLIDAY_CACHE_SECONDS=3600,
)
logging.getLogger("zhizhi.cases.worktime").setLevel(logging.ERROR)

from zhizhi.cases import worktime  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")
PERIODS = ((8 * 60 + 30, 12 * 60), (13 * 60 + 30, 17 * 60 + 30))
DAY = 450
MINUTE = dt.timedelta(minutes=1)
WORKDAYS = {
    dt.date(2025, 1, 1) + dt.timedelta(days=i): worktime.is_workday(
        dt.date(2025, 1, 1) + dt.timedelta(days=i)
    )
    for i in range(4 * 366)
}


def working_minute(t: dt.datetime) -> bool:
    minute = t.hour * 60 + t.minute
    return WORKDAYS[t.date()] and any(a <= minute < b for a, b in PERIODS)


def naive_add(start: dt.datetime, minutes: int) -> dt.datetime:
    t, done = start, 0
    while done < minutes:
        if working_minute(t):
            done += 1
        t += MINUTE
    return t


def naive_elapsed(start: dt.datetime, end: dt.datetime) -> float:
    t, done = start, 0
    while t < end:
        done += working_minute(t)
        t += MINUTE
    return done / 60


def per_call(fn: Callable[[], object], calls: int) -> float:
    """µs per call, best of three rounds (the machine is shared)."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - started) / calls)
    return best * 1e6


def main() -> None:
    rng = random.Random(7)
    base = dt.datetime(2025, 1, 1, tzinfo=TZ)
    starts = [base + dt.timedelta(minutes=rng.randrange(0, 3 * 365 * 1440 - 40 * 1440)) for _ in range(400)]
    cases = [
        ("2 work_hours", 2, "work_hours"),
        ("1 work_days", 1, "work_days"),
        ("3 work_days", 3, "work_days"),
        ("5 work_days", 5, "work_days"),
        ("15 work_days", 15, "work_days"),
        ("30 calendar_minutes", 30, "calendar_minutes"),
    ]
    print("worktime.add: µs per call, fast (per day/period) vs naive (minute stepping), same run")
    print(f"{'limit':<22} {'fast µs':>9} {'naive µs':>10} {'ratio':>8}  agree")
    for label, amount, unit in cases:
        minutes = amount * (60 if unit == "work_hours" else DAY)
        it = iter(starts * 1000)
        fast = per_call(lambda: worktime.add(next(it), amount, unit), 4000)  # noqa: B023
        if unit == "calendar_minutes":
            print(f"{label:<22} {fast:>9.2f} {'—':>10} {'—':>8}  —")
            continue
        it2 = iter(starts * 10)
        slow = per_call(lambda: naive_add(next(it2), minutes), 40 if minutes > 3000 else 200)  # noqa: B023
        agree = all(worktime.add(s, amount, unit) == naive_add(s, minutes) for s in starts[:100])
        print(f"{label:<22} {fast:>9.2f} {slow:>10.1f} {slow / fast:>7.0f}×  {agree}")

    print("\nworktime.elapsed (work_hours) over a span of up to N calendar days")
    print(f"{'span':<22} {'fast µs':>9} {'naive µs':>10} {'ratio':>8}  agree")
    for days in (1, 7, 30):
        pairs = [(s, s + dt.timedelta(minutes=rng.randrange(0, days * 1440))) for s in starts]
        it = iter(pairs * 1000)
        fast = per_call(lambda: worktime.elapsed(*next(it), "work_hours"), 4000)  # noqa: B023
        it2 = iter(pairs * 10)
        slow = per_call(lambda: naive_elapsed(*next(it2)), 40 if days > 7 else 200)  # noqa: B023
        agree = all(
            abs(worktime.elapsed(a, b, "work_hours") - naive_elapsed(a, b)) < 1e-9 for a, b in pairs[:50]
        )
        print(f"{f'≤ {days} days':<22} {fast:>9.2f} {slow:>10.1f} {slow / fast:>7.0f}×  {agree}")


if __name__ == "__main__":
    main()
