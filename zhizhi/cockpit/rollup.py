"""Daily rollups: every enabled indicator for every region (down to its breakdown level) per day.

Rows whose parts are all zero are left out below the top region (most grids see no petition on
most days); the top region's row is always written and marks the day as rolled up.

`build(day)` writes one day, `backfill(first, last)` a span — each indicator with the same few
grouped queries whatever the span, then one bulk upsert. `catch_up()` finds the days missed since
the last run; `rebuild_stale()` recomputes indicators whose definition changed (see
docs/indicators.md).
"""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from django.db import connection, transaction

from zhizhi import clock
from zhizhi.cockpit.models import Indicator, IndicatorValue, RollupRun
from zhizhi.cockpit.services import Tree, compute_many


def _write(indicators: list[Indicator], tree: Tree, first: dt.date, last: dt.date) -> dict[str, int]:
    """Compute (one batch of shared queries) and replace the rollups of `indicators` for the span."""
    computed = compute_many(indicators, first, last, tree=tree)
    roots = tree.roots()
    rows: list[tuple[Any, ...]] = []
    written: dict[str, int] = {}
    for ind in indicators:
        before = len(rows)
        for path, series in computed[ind.pk].items():
            region_id = tree.by_path[path]["id"]
            for k, (v, num, den) in enumerate(series):
                if v is None and num is None:
                    continue  # a snapshot source cannot know that day: no row, not even the top one
                if region_id not in roots and not num and not den:
                    continue  # all zero: reads give services.empty_value (the top row marks the day)
                rows.append((ind.pk, region_id, first + dt.timedelta(days=k), v, num, den))
        written[ind.code] = len(rows) - before
    with transaction.atomic():
        IndicatorValue.objects.filter(indicator__in=indicators, day__gte=first, day__lte=last).delete()
        _insert(rows)
    return written


def _insert(rows: list[tuple[Any, ...]]) -> None:
    """Plain multi-row inserts: the ORM's per-object work costs more than the database here."""
    table = IndicatorValue._meta.db_table
    columns = "indicator_id, region_id, day, value, numerator, denominator"
    if connection.vendor == "postgresql":
        statement = f"COPY {table} ({columns}) FROM STDIN"
        with connection.cursor() as cursor, cursor.cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
        return
    connection.ensure_connection()
    sql = f"INSERT INTO {table} ({columns}) VALUES (?, ?, ?, ?, ?, ?)"  # noqa: S608 (our own names)
    # The driver's own executemany: Django's wrapper would rewrite and adapt every row again.
    connection.connection.executemany(sql, [(a, b, d.isoformat(), v, n, m) for a, b, d, v, n, m in rows])


def backfill(first: dt.date, last: dt.date, indicators: Iterable[Indicator] | None = None) -> dict[str, int]:
    """Roll up the days first..last (past days only; today is live) for the given (default: all
    enabled) indicators. Returns rows written per indicator code."""
    last = min(last, clock.today() - dt.timedelta(days=1))
    if last < first:
        return {}
    tree = Tree.load()
    chosen = list(indicators) if indicators is not None else list(Indicator.objects.filter(enabled=True))
    started = time.perf_counter()
    by_source: dict[str, list[Indicator]] = defaultdict(list)
    for ind in chosen:
        by_source[ind.source].append(ind)
    written: dict[str, int] = {}
    for group in by_source.values():
        written.update(_write(group, tree, first, last))
    _clear_stale(chosen, first, last)
    if indicators is None:
        now = clock.now()
        seconds = time.perf_counter() - started
        day = first
        while day <= last:
            RollupRun.objects.update_or_create(
                day=day,
                defaults={
                    "finished_at": now,
                    "indicators": len(chosen),
                    "rows": sum(written.values()) // ((last - first).days + 1),
                    "seconds": seconds / ((last - first).days + 1),
                },
            )
            day += dt.timedelta(days=1)
    return written


def _clear_stale(indicators: list[Indicator], first: dt.date, last: dt.date) -> None:
    """An indicator whose rollups on record all lie in the span just rebuilt is fresh again."""
    for ind in indicators:
        if ind.stale_since is None:
            continue
        outside = IndicatorValue.objects.filter(indicator=ind).exclude(day__gte=first, day__lte=last)
        if not outside.exists():
            Indicator.objects.filter(pk=ind.pk, stale_since=ind.stale_since).update(stale_since=None)
            ind.stale_since = None


def build(day: dt.date) -> dict[str, int]:
    """Roll up one past day for every enabled indicator."""
    return backfill(day, day)


def catch_up(max_days: int = 60) -> list[dt.date]:
    """Roll up yesterday and any day missed since the last run (at most `max_days` back)."""
    yesterday = clock.today() - dt.timedelta(days=1)
    last_run = (
        RollupRun.objects.filter(day__lte=yesterday).order_by("-day").values_list("day", flat=True).first()
    )
    first = yesterday if last_run is None else last_run + dt.timedelta(days=1)
    first = max(first, yesterday - dt.timedelta(days=max_days - 1))
    if first > yesterday:
        return []
    backfill(first, yesterday)
    return [first + dt.timedelta(days=k) for k in range((yesterday - first).days + 1)]


# Days before yesterday recomputed every night, for rows that arrive late (an imported 110 feed,
# a case registered the next morning with the time it was reported).
REDO_DAYS = 2


def nightly() -> dict[str, object]:
    """What the 00:10 task does: catch up to yesterday, redo the days before, rebuild the changed."""
    started = time.perf_counter()
    days = catch_up()
    yesterday = clock.today() - dt.timedelta(days=1)
    first_redo = yesterday - dt.timedelta(days=REDO_DAYS)
    if RollupRun.objects.filter(day=first_redo).exists():
        backfill(first_redo, min(days) - dt.timedelta(days=1) if days else yesterday)
    rebuilt = rebuild_stale()
    return {
        "days": [d.isoformat() for d in days],
        "rebuilt": rebuilt,
        "seconds": round(time.perf_counter() - started, 2),
    }


def rebuild_stale() -> list[str]:
    """Recompute the rollups of indicators whose definition changed, over the days on record."""
    done = []
    yesterday = clock.today() - dt.timedelta(days=1)
    for ind in Indicator.objects.filter(stale_since__isnull=False):
        on_record = IndicatorValue.objects.filter(indicator=ind).order_by("day").values_list("day", flat=True)
        first_run = RollupRun.objects.order_by("day").values_list("day", flat=True).first()
        known = [d for d in (on_record.first(), first_run) if d is not None]
        first = min(known) if known else None
        if first is not None and ind.enabled:
            backfill(first, yesterday, [ind])
        elif not ind.enabled:
            IndicatorValue.objects.filter(indicator=ind).delete()
        Indicator.objects.filter(pk=ind.pk, stale_since=ind.stale_since).update(stale_since=None)
        done.append(ind.code)
    return done
