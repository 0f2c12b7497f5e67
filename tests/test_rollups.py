"""Daily rollups: what was live at the end of a day is what the rollup keeps for it; today is
yesterday's rollup plus today's changes; the queries do not grow with the number of days."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.factories import Street, tag
from zhizhi import clock
from zhizhi.alerts.models import Device
from zhizhi.alerts.rule_models import Alarm, AlertRule
from zhizhi.cases.models import Case
from zhizhi.cockpit import rollup, services
from zhizhi.cockpit.models import Indicator, IndicatorValue, RollupRun
from zhizhi.enterprises.models import Enterprise, TaxRecord

pytestmark = pytest.mark.django_db
TZ = timezone.get_current_timezone()
_numbers = itertools.count(1)


def at(day: int, hour: int = 10, minute: int = 0, month: int = 3) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, tzinfo=TZ)


def end_of_day(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(23, 59, 59), tzinfo=TZ)


DEFINITIONS: list[dict[str, Any]] = [
    {"code": "hotline_day", "source": "cases.reported", "params": {"channel": ["hotline"]}, "window": "day"},
    {"code": "cases_month", "source": "cases.reported", "window": "month"},
    {"code": "cases_30d", "source": "cases.reported", "window": "days30", "breakdown_level": "community"},
    {"code": "open", "source": "cases.open", "window": "now"},
    {"code": "overdue", "source": "cases.overdue", "window": "now"},
    {"code": "closed_month", "source": "cases.closed", "window": "month"},
    {
        "code": "on_time", "source": "cases.finished", "params": {"on_time": True}, "window": "month",
        "aggregation": "ratio", "denominator_source": "cases.finished",
        "denominator_params": {"with_deadline": True},
    },
    {"code": "hours", "source": "cases.finished", "window": "month", "aggregation": "avg",
     "measure": "handling_hours"},
    {"code": "alarms", "source": "alarms.active", "window": "now"},
    {"code": "raised_month", "source": "alarms.raised", "window": "month"},
    {"code": "elderly", "source": "residents", "params": {"min_age": 60}, "window": "now"},
    {"code": "elderly_rate", "source": "residents", "params": {"min_age": 60}, "window": "now",
     "aggregation": "ratio", "denominator_source": "residents"},
    {"code": "care", "source": "care.people", "window": "now"},
    {"code": "firms", "source": "enterprises", "window": "now"},
    {"code": "tax_year", "source": "tax", "window": "year", "aggregation": "sum", "measure": "tax_paid",
     "breakdown_level": "street"},
]  # fmt: skip


def define() -> list[Indicator]:
    out = []
    for d in DEFINITIONS:
        ind = Indicator(name=d["code"], **d)
        ind.full_clean()
        ind.save()
        out.append(ind)
    return out


def case(street: Street, grid: str, **kwargs: Any) -> Case:
    c = Case(number=f"R{next(_numbers):08d}", title="测试", grid=street.grids[grid], **kwargs)
    c.save()
    return c


def history(street: Street) -> None:
    """A fortnight of life in the small street (1–14 March 2026)."""
    rule = AlertRule.objects.create(code="SM", name="烟感", kind="threshold", device_kind="smoke")
    for day in range(1, 15):
        for k, grid in enumerate(("A1", "A2", "B1", "B2")):
            if (day + k) % 3 == 0:
                continue
            channel = ("hotline", "patrol", "mailbox")[(day + k) % 3]
            due = at(day, 9) + dt.timedelta(days=2)
            finished = at(day, 9) + dt.timedelta(days=1 + (day + k) % 4) if (day + k) % 5 else None
            case(
                street, grid, channel=channel, reported_at=at(day, 8 + k), dispatched_at=at(day, 9 + k),
                due_at=due, finished_at=finished, closed_at=finished,
            )  # fmt: skip
        if day % 4 == 0:
            grid = ("A1", "B2")[day % 2]
            Alarm.objects.create(
                rule=rule, source_key=f"S-{day}", severity="major", first_seen_at=at(day, 3),
                cleared_at=at(day + 2, 3) if day % 8 else None, status="cleared" if day % 8 else "active",
                area_path=street.grids[grid].path,
            )  # fmt: skip
    street.person("p1", grid="A1", house="A1-1-101", birth="19660307")  # turns 60 on 7 March
    street.person("p2", grid="B1", house="B1-1-101", birth="19400101")
    street.person("p3", grid="A2", house="A2-1-101", birth="19900101")
    tag(street.people["p2"], "living_alone", verified_on=dt.date(2026, 3, 5))
    firm = Enterprise.objects.create(
        name="企业", credit_code="91330105MA00000001", legal_representative="张三", registered_address="地址",
        grid=street.grids["B2"], industry="C", established_on=dt.date(2026, 3, 4),
    )  # fmt: skip
    TaxRecord.objects.create(enterprise=firm, period=dt.date(2026, 3, 1), revenue=50, tax_paid=7)


def all_regions(street: Street) -> list[Any]:
    return [street.district, street.street, *street.communities.values(), *street.grids.values()]


def test_a_rollup_keeps_what_was_live_at_the_end_of_the_day(street: Street) -> None:
    history(street)
    indicators = define()
    days = [dt.date(2026, 3, d) for d in (3, 7, 8, 10)]
    seen: dict[tuple[str, int, dt.date], float | None] = {}
    for day in days:
        with clock.frozen_at(end_of_day(day)):
            for ind in indicators:
                for region in all_regions(street):
                    seen[(ind.code, region.pk, day)] = services.value(ind.code, region)
    with clock.frozen_at(at(15, 0, 30)):
        rollup.backfill(dt.date(2026, 3, 1), dt.date(2026, 3, 14))
        assert not Indicator.objects.filter(stale_since__isnull=False).exists()
        for (code, region_pk, day), live in seen.items():
            region = next(r for r in all_regions(street) if r.pk == region_pk)
            assert services.value(code, region, day) == pytest.approx(live), (code, region.code, day)
    # the check is not empty: the fixture gives non-zero figures
    assert seen[("open", street.street.pk, dt.date(2026, 3, 8))] > 0
    assert seen[("elderly", street.grids["A1"].pk, dt.date(2026, 3, 7))] == 1
    assert seen[("elderly", street.grids["A1"].pk, dt.date(2026, 3, 3))] == 0


def test_day_by_day_builds_equal_one_backfill(street: Street) -> None:
    history(street)
    define()
    with clock.frozen_at(at(15, 0, 30)):
        for day in range(1, 15):
            rollup.build(dt.date(2026, 3, day))
        one_by_one = set(IndicatorValue.objects.values_list("indicator__code", "region_id", "day", "value"))
        IndicatorValue.objects.all().delete()
        rollup.backfill(dt.date(2026, 3, 1), dt.date(2026, 3, 14))
        at_once = set(IndicatorValue.objects.values_list("indicator__code", "region_id", "day", "value"))
    assert one_by_one == at_once
    assert len(at_once) > 500


def test_today_is_yesterdays_rollup_plus_todays_changes(street: Street) -> None:
    history(street)
    # reported 30 days before the 14th: in yesterday's 30 days, out of today's
    case(street, "A2", channel="hotline", reported_at=at(12, 10, month=2))
    indicators = define()
    now = at(14, 15)
    with clock.frozen_at(at(14, 0, 30)):
        rollup.backfill(dt.date(2026, 2, 1), dt.date(2026, 3, 13))
    # changes during the 14th: a case reported and finished, an alarm cleared, a resident moving in
    case(street, "B2", channel="hotline", reported_at=at(14, 11), dispatched_at=at(14, 11),
         due_at=at(14, 17), finished_at=at(14, 13), closed_at=at(14, 13))  # fmt: skip
    Alarm.objects.filter(status="active").update(status="cleared", cleared_at=at(14, 12))
    street.person("new", grid="B1", house="B1-1-101", birth="19500101")
    indicators = list(Indicator.objects.all())
    with clock.frozen_at(now):
        tree = services.Tree.load()
        deltable = [i for i in indicators if services._deltable(i)]
        assert {i.code for i in deltable} == {
            "hotline_day", "cases_month", "cases_30d", "open", "overdue", "closed_month", "on_time", "hours",
            "alarms", "raised_month",
        }  # fmt: skip
        from_rollup = services._live_from_yesterday(deltable, tree)
        assert set(from_rollup) == {i.pk for i in deltable}
        raw = services.compute_many(indicators, now.date())
        for ind in deltable:
            for path, triple in from_rollup[ind.pk].items():
                assert triple[0] == pytest.approx(raw[ind.pk][path][0][0]), (ind.code, path)
        board = services.board(street.street)
    values = {r["code"]: r["value"] for r in board["indicators"]}
    assert values["alarms"] == 0 and values["elderly"] == 3


def test_on_the_first_of_the_month_the_month_starts_again(street: Street) -> None:
    case(street, "A1", channel="hotline", reported_at=at(28, 10, month=2))
    case(street, "A1", channel="hotline", reported_at=at(1, 9, month=3))
    define()
    with clock.frozen_at(at(1, 0, 30)):
        rollup.build(dt.date(2026, 2, 28))
    with clock.frozen_at(at(1, 12)):
        assert services.value("cases_month", street.street) == 1
        assert services.value("cases_month", street.street, dt.date(2026, 2, 28)) == 1
        assert services.value("open", street.street) == 2


def test_all_zero_rows_are_left_out_below_the_top(street: Street) -> None:
    case(street, "A1", channel="hotline", reported_at=at(5))
    define()
    with clock.frozen_at(at(6, 1)):
        rollup.build(dt.date(2026, 3, 5))
        rows = IndicatorValue.objects.filter(indicator__code="hotline_day")
        assert {r.region_id for r in rows} == {
            street.district.pk, street.street.pk, street.communities["A"].pk, street.grids["A1"].pk,
        }  # fmt: skip
        assert services.value("hotline_day", street.grids["B2"], dt.date(2026, 3, 5)) == 0
        assert services.value("on_time", street.grids["B2"], dt.date(2026, 3, 5)) is None
        # the top row of a day with nothing at all is still written: it marks the day as rolled up
        assert IndicatorValue.objects.filter(indicator__code="alarms", region=street.district).exists()


def test_backfill_queries_do_not_grow_with_the_days(street: Street) -> None:
    history(street)
    define()
    with clock.frozen_at(at(15, 0, 30)):
        rollup.backfill(dt.date(2026, 3, 1), dt.date(2026, 3, 1))  # new indicators become fresh
        with CaptureQueriesContext(connection) as short:
            rollup.backfill(dt.date(2026, 3, 13), dt.date(2026, 3, 14), list(Indicator.objects.all()))
        with CaptureQueriesContext(connection) as long:
            rollup.backfill(dt.date(2026, 1, 1), dt.date(2026, 3, 14), list(Indicator.objects.all()))
    assert len(long) == len(short)


def test_trend_and_ranking_are_reads_of_the_rollups(
    street: Street, django_assert_max_num_queries: Any
) -> None:
    history(street)
    define()
    with clock.frozen_at(at(15, 0, 30)):
        rollup.backfill(dt.date(2026, 1, 1), dt.date(2026, 3, 14))
    Case.objects.all().delete()  # the raw rows are gone: only the rollups can answer for past days
    with clock.frozen_at(at(15, 0, 30)):
        with django_assert_max_num_queries(12):
            series = services.trend("open", street.street, days=60)
        with django_assert_max_num_queries(8):
            ranking = services.ranking("cases_month", street.street, day=dt.date(2026, 3, 14))
    assert series[-2][1] > 0  # the 14th, from the rollup
    assert [r["code"] for r in ranking] == [street.communities["A"].code, street.communities["B"].code] or (
        ranking[0]["value"] >= ranking[1]["value"]
    )
    assert sum(r["value"] for r in ranking) == services.value(
        "cases_month", street.street, dt.date(2026, 3, 14)
    )


def test_catch_up_nightly_and_rebuild_of_a_changed_indicator(street: Street) -> None:
    history(street)
    define()
    with clock.frozen_at(at(10, 0, 10)):
        assert rollup.catch_up() == [dt.date(2026, 3, 9)]
    with clock.frozen_at(at(13, 0, 10)):  # three nights missed
        result = rollup.nightly()
    assert result["days"] == ["2026-03-10", "2026-03-11", "2026-03-12"]
    assert list(RollupRun.objects.order_by("day").values_list("day", flat=True)) == [
        dt.date(2026, 3, d) for d in (9, 10, 11, 12)
    ]
    ind = Indicator.objects.get(code="hotline_day")
    before = services.value("hotline_day", street.street, dt.date(2026, 3, 10))
    ind.params = {"channel": ["patrol"]}
    ind.save()
    assert Indicator.objects.get(pk=ind.pk).stale_since is not None
    with clock.frozen_at(at(13, 0, 20)):
        # while stale, reads compute from raw rows: already the new definition
        patrol = services.value("hotline_day", street.street, dt.date(2026, 3, 10))
        assert rollup.rebuild_stale() == ["hotline_day"]
    expected = Case.objects.filter(
        channel="patrol", reported_at__gte=at(10, 0), reported_at__lt=at(11, 0)
    ).count()
    assert patrol == expected != before
    row = IndicatorValue.objects.get(indicator=ind, region=street.street, day=dt.date(2026, 3, 10))
    assert row.value == expected
    assert Indicator.objects.get(pk=ind.pk).stale_since is None


def test_a_snapshot_is_kept_only_for_the_night_just_ended(street: Street) -> None:
    Device.objects.create(
        code="S1", name="烟感", kind="smoke", grid=street.grids["A1"], last_seen_at=at(9, 23)
    )
    Device.objects.create(code="S2", name="烟感", kind="smoke", grid=street.grids["B1"], last_seen_at=at(1))
    ind = Indicator(code="online", name="在线", source="devices", params={"online": True}, window="now")
    ind.full_clean()
    ind.save()
    with clock.frozen_at(at(10, 0, 10)):
        rollup.backfill(dt.date(2026, 3, 5), dt.date(2026, 3, 9))
        assert services.value("online", street.street) == 0  # nobody heard from in the last hour now
    days = set(IndicatorValue.objects.filter(indicator=ind).values_list("day", flat=True))
    assert days == {dt.date(2026, 3, 9)}
    assert IndicatorValue.objects.get(indicator=ind, region=street.street).value == 1
    with clock.frozen_at(at(10, 0, 10)):
        trend = dict(services.trend("online", street.street, days=3))
    assert trend[dt.date(2026, 3, 8)] is None and trend[dt.date(2026, 3, 9)] == 1


def test_the_demo_loader_is_idempotent(street: Street) -> None:
    import json

    from zhizhi.cases.models import Category
    from zhizhi.cockpit import demo
    from zhizhi.demo import extras

    assert ("indicators", "zhizhi.cockpit.demo:load") in extras.LOADERS
    rows = json.loads(services.DATA_FILE.read_text(encoding="utf-8"))
    classes = {c for r in rows for c in r.get("params", {}).get("category_class", [])}
    Category.objects.bulk_create([Category(code=c, name=f"大类{c}") for c in sorted(classes)])
    history(street)
    with clock.frozen_at(at(15, 0, 30)):
        first = demo.load(street.street)
        again = demo.load(street.street)
        board = services.board(street.street, day=dt.date(2026, 3, 14))
    assert first["created"] == len(rows) and first["rollup_rows"] > 0
    assert again == {"created": 0, "updated": 0, "unchanged": len(rows), "rollup_rows": 0}
    assert RollupRun.objects.filter(day=dt.date(2026, 3, 1)).exists()  # the whole case history
    values = {r["code"]: r["value"] for r in board["indicators"]}
    assert values["cases_month"] == Case.objects.filter(reported_at__lt=at(15, 0)).count()
