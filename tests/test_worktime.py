"""Working-time arithmetic (zhizhi/cases/worktime.py): properties, holidays, 调休, the holiday table.

Hand cases use the real 2025/2026 national calendar shipped in chinesecalendar 1.11:
2026 春节 rest days 02-15 … 02-23, make-up working Saturdays 02-14 and 02-28;
2025 国庆 rest days 10-01 … 10-08, make-up working Sunday 09-28 and Saturday 10-11.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zhizhi.cases import worktime

TZ = ZoneInfo("Asia/Shanghai")
PERIODS = ((8 * 60 + 30, 12 * 60), (13 * 60 + 30, 17 * 60 + 30))
DAY_MINUTES = 450  # 3.5 h + 4 h


def at(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, tzinfo=TZ)


@pytest.fixture(autouse=True)
def _fresh_calendar() -> Iterator[None]:
    # A rolled-back test transaction fires no signal, so drop what an earlier test may have cached.
    worktime.invalidate()
    yield
    worktime.invalidate()


# --- an independent reference: step minute by minute over the national calendar ---------------


def reference_workday(day: dt.date) -> bool:
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        return day.weekday() < 5


def reference_minutes(start: dt.datetime, end: dt.datetime) -> int:
    """Working minutes in [start, end) for minute-aligned local datetimes, one step per minute."""
    count, t = 0, start
    while t < end:
        minute = t.hour * 60 + t.minute
        if reference_workday(t.date()) and any(a <= minute < b for a, b in PERIODS):
            count += 1
        t += dt.timedelta(minutes=1)
    return count


def in_working_period(moment: dt.datetime) -> bool:
    """Strictly after a period's start and at or before its end: where a deadline may fall."""
    local = moment.astimezone(TZ)
    minute = local.hour * 60 + local.minute + (local.second + local.microsecond / 1e6) / 60
    return reference_workday(local.date()) and any(a < minute <= b for a, b in PERIODS)


starts = st.datetimes(
    min_value=dt.datetime(2025, 1, 1), max_value=dt.datetime(2027, 11, 30), timezones=st.just(TZ)
)
minute_starts = starts.map(lambda d: d.replace(second=0, microsecond=0))
amounts = st.integers(min_value=1, max_value=20 * DAY_MINUTES)  # working minutes, up to 20 days

prop = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# --- properties ------------------------------------------------------------------------------


@pytest.mark.django_db
@prop
@given(start=starts, n=amounts)
def test_adding_n_working_minutes_then_counting_them_back_gives_n(start: dt.datetime, n: int) -> None:
    deadline = worktime.add(start, n / 60, "work_hours")
    assert worktime.elapsed(start, deadline, "work_hours") == pytest.approx(n / 60, abs=1e-6)


@pytest.mark.django_db
@prop
@given(start=starts, n=amounts)
def test_deadline_is_in_working_time_and_the_earliest_such_moment(start: dt.datetime, n: int) -> None:
    deadline = worktime.add(start, n / 60, "work_hours")
    assert deadline.tzinfo is not None and deadline.utcoffset() == dt.timedelta(hours=8)
    assert in_working_period(deadline), deadline
    assert worktime.is_working_time(deadline)
    # One second earlier the amount has not been worked yet.
    assert worktime.elapsed(start, deadline - dt.timedelta(seconds=1), "work_hours") < n / 60


@pytest.mark.django_db
@prop
@given(start=starts, n1=amounts, n2=amounts)
def test_deadline_is_monotonic_in_the_amount(start: dt.datetime, n1: int, n2: int) -> None:
    low, high = sorted((n1, n2))
    assert worktime.add(start, low / 60, "work_hours") <= worktime.add(start, high / 60, "work_hours")


@pytest.mark.django_db
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=minute_starts, span=st.integers(min_value=0, max_value=6 * 24 * 60))
def test_counting_agrees_with_minute_by_minute_reference(start: dt.datetime, span: int) -> None:
    end = start + dt.timedelta(minutes=span)
    assert worktime.elapsed(start, end, "work_hours") * 60 == pytest.approx(
        reference_minutes(start, end), abs=1e-6
    )


@pytest.mark.django_db
@prop
@given(start=starts, days=st.integers(min_value=1, max_value=15))
def test_work_days_are_days_of_working_minutes(start: dt.datetime, days: int) -> None:
    deadline = worktime.add(start, days, "work_days")
    assert deadline == worktime.add(start, days * DAY_MINUTES / 60, "work_hours")
    assert worktime.elapsed(start, deadline, "work_days") == pytest.approx(days, abs=1e-9)
    local = start.astimezone(TZ)
    minute = local.hour * 60 + local.minute + (local.second + local.microsecond / 1e6) / 60
    if reference_workday(local.date()) and any(a < minute < b for a, b in PERIODS):
        # Started inside working time: the same clock time on a working day.
        assert deadline.astimezone(TZ).time() == local.time()
        assert reference_workday(deadline.date())


@pytest.mark.django_db
@prop
@given(a=starts, b=starts, c=starts)
def test_elapsed_is_additive_and_antisymmetric(a: dt.datetime, b: dt.datetime, c: dt.datetime) -> None:
    a, b, c = sorted((a, b, c))
    whole = worktime.elapsed(a, c, "work_hours")
    assert whole == pytest.approx(worktime.elapsed(a, b, "work_hours") + worktime.elapsed(b, c, "work_hours"))
    assert worktime.elapsed(c, a, "work_hours") == -whole


# --- hand cases --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_across_the_2026_spring_festival_with_its_make_up_saturdays() -> None:
    assert worktime.is_workday(dt.date(2026, 2, 14))  # Saturday, 调休 working day
    assert not worktime.is_workday(dt.date(2026, 2, 16))  # Monday, 春节
    assert not worktime.is_workday(dt.date(2026, 2, 23))  # Monday, last day off
    assert worktime.is_workday(dt.date(2026, 2, 28))  # Saturday, 调休 working day
    # Friday 16:00 + 2 h: 1.5 h on Friday, the rest on the make-up Saturday.
    assert worktime.add(at(2026, 2, 13, 16), 2, "work_hours") == at(2026, 2, 14, 9)
    # Saturday 16:00 + 2 h jumps the nine days off to Tuesday 02-24.
    assert worktime.add(at(2026, 2, 14, 16), 2, "work_hours") == at(2026, 2, 24, 9)
    # 3 working days from Friday 16:00: Saturday 14th, Tuesday 24th, Wednesday 25th.
    assert worktime.add(at(2026, 2, 13, 16), 3, "work_days") == at(2026, 2, 25, 16)
    # The whole holiday counts nothing.
    assert worktime.elapsed(at(2026, 2, 14, 17, 30), at(2026, 2, 24, 8, 30), "work_hours") == 0
    # Friday 27th 17:00 + 1 h lands on the make-up Saturday 28th, not on Monday.
    assert worktime.add(at(2026, 2, 27, 17), 1, "work_hours") == at(2026, 2, 28, 9)


@pytest.mark.django_db
def test_across_the_2025_national_day_make_up_sunday_and_saturday() -> None:
    assert worktime.is_workday(dt.date(2025, 9, 28))  # Sunday, 调休 working day
    assert worktime.add(at(2025, 9, 26, 17), 1, "work_hours") == at(2025, 9, 28, 9)
    assert worktime.add(at(2025, 9, 30, 17), 1, "work_hours") == at(2025, 10, 9, 9)
    # Friday 10-10 evening + 1 working day: the make-up Saturday 10-11 ends at 17:30.
    assert worktime.add(at(2025, 10, 10, 19), 1, "work_days") == at(2025, 10, 11, 17, 30)


@pytest.mark.django_db
def test_lunch_break_does_not_count() -> None:
    monday = (2026, 11, 23)
    assert worktime.add(at(*monday, 11, 30), 1, "work_hours") == at(*monday, 14)
    assert worktime.add(at(*monday, 12, 45), 1, "work_hours") == at(*monday, 14, 30)
    assert worktime.elapsed(at(*monday, 11), at(*monday, 14), "work_hours") == pytest.approx(1.5)
    assert not worktime.is_working_time(at(*monday, 12, 30))


@pytest.mark.django_db
def test_a_deadline_that_uses_up_a_period_is_its_end_not_the_next_start() -> None:
    monday = (2026, 11, 23)
    assert worktime.add(at(*monday, 11, 30), 0.5, "work_hours") == at(*monday, 12)
    assert worktime.add(at(*monday, 10), 6, "work_hours") == at(*monday, 17, 30)
    assert worktime.add(at(*monday, 8, 30), 7.5, "work_hours") == at(*monday, 17, 30)
    assert worktime.add(at(*monday, 7), 1, "work_days") == at(*monday, 17, 30)
    assert worktime.add(at(*monday, 12, 30), 1, "work_days") == at(2026, 11, 24, 12)
    assert worktime.add(at(*monday, 10), 1, "work_days") == at(2026, 11, 24, 10)


@pytest.mark.django_db
def test_friday_evening_to_monday() -> None:
    friday_evening = at(2026, 11, 20, 19)
    assert worktime.add(friday_evening, 2, "work_hours") == at(2026, 11, 23, 10, 30)
    assert worktime.add(friday_evening, 1, "work_days") == at(2026, 11, 23, 17, 30)
    assert worktime.elapsed(friday_evening, at(2026, 11, 23, 8, 30), "work_hours") == 0
    # The 80 % warning of a 3-working-day limit: 2.4 days = 2 days + 3 h.
    assert worktime.add(at(2026, 11, 20, 10), 2.4, "work_days") == at(2026, 11, 24, 14, 30)


@pytest.mark.django_db
def test_2027_falls_back_to_weekends_only_and_is_flagged() -> None:
    assert worktime.is_covered(2026)
    assert not worktime.is_covered(2027)
    assert worktime.uncovered_years([2027, 2026, 2027, 2025]) == [2027]
    # 2027-01-01 is a Friday; without the admin's table it is an ordinary working day.
    assert worktime.is_workday(dt.date(2027, 1, 1))
    assert not worktime.is_workday(dt.date(2027, 1, 2))
    assert worktime.add(at(2026, 12, 31, 17), 1, "work_hours") == at(2027, 1, 1, 9)
    assert worktime.add(at(2027, 1, 8, 17), 1, "work_hours") == at(2027, 1, 11, 9)
    assert worktime.add(at(2026, 12, 30, 10), 3, "work_days") == at(2027, 1, 4, 10)
    assert worktime.elapsed(at(2027, 3, 1), at(2027, 3, 8), "work_days") == pytest.approx(5)


@pytest.mark.django_db
def test_the_holiday_table_makes_a_holiday_and_a_working_saturday() -> None:
    from zhizhi.cases.models import HolidayOverride

    assert worktime.add(at(2026, 11, 23, 17), 1, "work_hours") == at(2026, 11, 24, 9)  # cached now
    day_off = HolidayOverride.objects.create(date=dt.date(2026, 11, 24), is_workday=False, name="台风停工")
    assert not worktime.is_workday(dt.date(2026, 11, 24))  # the save cleared the cache at once
    assert worktime.add(at(2026, 11, 23, 17), 1, "work_hours") == at(2026, 11, 25, 9)

    HolidayOverride.objects.create(date=dt.date(2026, 11, 28), is_workday=True, name="补班")
    assert worktime.is_workday(dt.date(2026, 11, 28))
    assert worktime.add(at(2026, 11, 27, 17), 1, "work_hours") == at(2026, 11, 28, 9)

    # The table wins over the national calendar too: a 春节 Monday made a working day.
    HolidayOverride.objects.create(date=dt.date(2026, 2, 16), is_workday=True, name="值守")
    assert worktime.add(at(2026, 2, 14, 17), 1, "work_hours") == at(2026, 2, 16, 9)

    day_off.is_workday = True
    day_off.save()
    assert worktime.is_workday(dt.date(2026, 11, 24))
    day_off.delete()
    assert worktime.is_workday(dt.date(2026, 11, 24))
    assert worktime.add(at(2026, 11, 23, 17), 1, "work_hours") == at(2026, 11, 24, 9)


@pytest.mark.django_db
def test_changes_by_another_process_are_seen_after_the_cache_time() -> None:
    from zhizhi.cases.models import HolidayOverride

    assert worktime.is_workday(dt.date(2026, 12, 1))
    # A queryset write sends no signal, like a write made by another process.
    HolidayOverride.objects.bulk_create([HolidayOverride(date=dt.date(2026, 12, 1), is_workday=False)])
    assert worktime.is_workday(dt.date(2026, 12, 1))  # still the cached answer
    with override_settings(ZHIZHI_HOLIDAY_CACHE_SECONDS=0):
        assert not worktime.is_workday(dt.date(2026, 12, 1))


@pytest.mark.django_db
def test_an_admin_filled_in_year_counts_as_covered() -> None:
    from zhizhi.cases.models import HolidayOverride

    rest_days = [dt.date(2027, 1, 1), *(dt.date(2027, 2, d) for d in range(6, 12)), dt.date(2027, 10, 1)]
    HolidayOverride.objects.bulk_create(
        [HolidayOverride(date=d, is_workday=False, name="2027 节假日") for d in rest_days[:6]]
    )
    worktime.invalidate()
    assert not worktime.is_covered(2027)  # six rest days are not a year's calendar yet
    HolidayOverride.objects.bulk_create(
        [HolidayOverride(date=d, is_workday=False, name="2027 节假日") for d in rest_days[6:]]
    )
    worktime.invalidate()
    assert worktime.is_covered(2027)
    assert worktime.uncovered_years([2026, 2027]) == []
    assert worktime.add(at(2026, 12, 31, 17), 1, "work_hours") == at(2027, 1, 4, 9)


def test_without_a_database_it_still_answers_from_the_national_calendar() -> None:
    # No django_db mark: reading the holiday table is refused, deadlines must not be.
    assert worktime.add(at(2026, 2, 13, 16), 2, "work_hours") == at(2026, 2, 14, 9)
    assert not worktime.is_covered(2027)


@pytest.mark.django_db
def test_calendar_minutes_time_zones_and_naive_input() -> None:
    assert worktime.add(at(2026, 2, 17, 3), 0.5, "calendar_minutes") == at(2026, 2, 17, 3, 0) + dt.timedelta(
        seconds=30
    )
    assert worktime.elapsed(at(2026, 2, 17), at(2026, 2, 18), "calendar_minutes") == 1440
    utc = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai
    deadline = worktime.add(utc, 2, "work_hours")
    assert deadline == at(2026, 11, 23, 12) and deadline.tzinfo == TZ
    assert worktime.add(dt.datetime(2026, 11, 23, 10), 2, "work_hours") == at(2026, 11, 23, 12)
    assert worktime.add(at(2026, 11, 21, 10), 0, "work_hours") == at(2026, 11, 21, 10)


@pytest.mark.django_db
def test_bad_units_and_amounts_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown time unit"):
        worktime.add(at(2026, 11, 23, 10), 1, "fortnights")
    with pytest.raises(ValueError, match="negative"):
        worktime.add(at(2026, 11, 23, 10), -1, "work_hours")
    with pytest.raises(ValueError, match="unknown time unit"):
        worktime.elapsed(at(2026, 11, 23, 10), at(2026, 11, 24, 10), "hours")


@pytest.mark.django_db
def test_working_hours_come_from_settings() -> None:
    with override_settings(ZHIZHI_WORK_HOURS=[("09:00", "18:00")]):
        assert worktime.add(at(2026, 11, 23, 10), 8, "work_hours") == at(2026, 11, 23, 18)
        assert worktime.add(at(2026, 11, 23, 10), 1, "work_days") == at(2026, 11, 24, 10)
        assert worktime.elapsed(at(2026, 11, 23), at(2026, 11, 24), "work_hours") == 9
    for bad in ([], [("18:00", "09:00")], [("08:00", "12:00"), ("11:00", "14:00")], [("8h", "12:00")]):
        with override_settings(ZHIZHI_WORK_HOURS=bad), pytest.raises(ImproperlyConfigured):
            worktime.add(at(2026, 11, 23, 10), 1, "work_hours")
    assert worktime.add(at(2026, 11, 23, 10), 2, "work_hours") == at(2026, 11, 23, 12)
