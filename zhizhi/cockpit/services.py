"""Indicator values per region and day: the contract the big screen codes against.

    scenes()                         the scenes and their indicator codes
    board(region, scene, day)        every indicator of a scene for a region, with its children
    trend(code, region, days)        a daily series (rollups for past days, live for today)
    ranking(code, region)            the region's children by value
    value(code, region, day)         one figure (today: live)

How a figure is computed (`compute`): each part of an indicator (the numerator, and for a ratio the
denominator) asks its source for daily buckets per `area_path` in ONE grouped query; the buckets are
added up the region tree (grid → community → street → district) and the window is applied with
prefix sums, so a span of days for every region costs the same queries as one day for one region.
Past days are read from the rollups (`IndicatorValue`, written by `rollup.build`); what is missing
or stale there is computed from raw rows the same way.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections import defaultdict
from dataclasses import dataclass, replace
from itertools import accumulate
from pathlib import Path
from typing import Any

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import connection, transaction

from zhizhi import clock
from zhizhi.cockpit import sources
from zhizhi.cockpit.models import Indicator, IndicatorValue
from zhizhi.geo.models import Region
from zhizhi.problems import Forbidden, Invalid, Problem

log = logging.getLogger(__name__)
LEVEL_ORDER = [Region.DISTRICT, Region.STREET, Region.COMMUNITY, Region.GRID]
LIVE_CACHE_SECONDS = 5
# A snapshot source (no history in the tables) is only trusted for a day's end within this long.
SNAPSHOT_GRACE = dt.timedelta(hours=6)

Triple = tuple[float | None, float | None, float | None]  # value, numerator, denominator


# --- windows -------------------------------------------------------------------------------------


def _years_back(day: dt.date, years: int = 1) -> dt.date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def window_bounds(window: str, day: dt.date) -> tuple[dt.date | None, dt.date]:
    """The first and last day a window covers on `day` (first None: since the beginning)."""
    if window == "now":
        return None, day
    if window == "day":
        return day, day
    if window == "month":
        return day.replace(day=1), day
    if window == "days30":
        return day - dt.timedelta(days=29), day
    if window == "year":
        return day.replace(month=1, day=1), day
    if window == "month_last_year":
        return _years_back(day.replace(day=1)), _years_back(day)
    if window == "year_last_year":
        return _years_back(day.replace(month=1, day=1)), _years_back(day)
    raise ValueError(window)


def end_of(day: dt.date) -> dt.datetime:
    return sources.local_midnight(day + dt.timedelta(days=1))


# --- the region tree -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Tree:
    """Every region (small: a district has a few thousand at most), looked up by path."""

    by_path: dict[str, dict[str, Any]]

    @classmethod
    def load(cls) -> Tree:
        rows = Region.objects.order_by("path").values("id", "code", "name", "level", "path", "parent_id")
        return cls({r["path"]: dict(r) for r in rows})

    def ancestors(self, path: str, deepest: str) -> list[str]:
        """The region paths `path` lies in, from the top down to the level `deepest`."""
        codes = [c for c in path.split("/") if c]
        limit = LEVEL_ORDER.index(deepest) + 1
        out = []
        for depth in range(1, min(len(codes), limit) + 1):
            prefix = "/" + "/".join(codes[:depth]) + "/"
            if prefix in self.by_path:
                out.append(prefix)
        return out

    def roots(self) -> set[int]:
        return {r["id"] for r in self.by_path.values() if r["parent_id"] is None}

    def within(self, deepest: str) -> list[str]:
        limit = LEVEL_ORDER.index(deepest)
        return [p for p, r in self.by_path.items() if LEVEL_ORDER.index(r["level"]) <= limit]


def _tree() -> Tree:
    return Tree.load()


# --- computing from raw rows ---------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """One side of an indicator (its figure, or a ratio's denominator) as a source query."""

    source: sources.Source
    params: dict[str, Any]
    window: str
    measure: str
    deepest: str
    # Only what changed on the day: a stock's ins minus outs, a flow's bucket (see live_many).
    delta: bool = False
    # In delta mode, the events of the day this many days back leave the window (30 for days30).
    expire_days: int = 0

    @property
    def kind(self) -> str:
        return sources.FLOW if self.delta else self.source.kind

    def batch_key(self) -> tuple[Any, ...]:
        shared, _ = self.source.split(self.source.effective(self.params))
        kind = "grouped" if self.source.groupable else id(self)
        params = json.dumps(shared, sort_keys=True, default=str)
        return (self.source.name, self.measure, params, kind, self.delta)


def _parts(ind: Indicator) -> tuple[Part, Part | None]:
    sources.ensure_filters()
    uses_measure = ind.aggregation in (Indicator.SUM, Indicator.AVG) or (
        ind.aggregation in (Indicator.RATIO, Indicator.GROWTH) and bool(ind.measure)
    )
    measure = ind.measure if uses_measure else ""
    num = Part(sources.get(ind.source), ind.params, ind.window, measure, ind.breakdown_level)
    den = None
    if ind.aggregation in (Indicator.RATIO, Indicator.GROWTH) and ind.denominator_source:
        den = Part(
            sources.get(ind.denominator_source),
            ind.denominator_params,
            ind.denominator_window or ind.window,
            measure,
            ind.breakdown_level,
        )
    return num, den


Series = list[tuple[float, float] | None]


def _batch_series(
    tree: Tree, parts: list[Part], first: dt.date, last: dt.date, cutoff: dt.datetime
) -> dict[int, dict[str, Series]]:
    """Parts of one source that differ only in grouped filters: one query, then each part takes
    its rows. Returns, per part (by index), per region path, per day first..last, the (count,
    measure total) over the part's window, or None where the source cannot know (a snapshot of a
    day long past)."""
    source = parts[0].source
    if parts[0].kind == sources.FLOW:
        span_first = min(min(window_bounds(p.window, first)[0] or first, first) for p in parts)
        span = sources.Span(span_first, last, cutoff)
    else:
        span = sources.Span(first, last, cutoff, fold=True)
    splits = [source.split(source.effective(p.params)) for p in parts]
    group = tuple(sorted({lookup for _, grouped in splits for lookup in grouped}))
    # Rows indexed by their grouped values and by region once; each part then picks the keys it
    # matches (a few hundred checks) instead of testing every row.
    width = (last - span.first).days + 1
    ancestors: dict[str, list[str]] = {}
    by_dims: dict[tuple[Any, ...], list[tuple[list[str], int, float, float]]] = defaultdict(list)
    for path, day, n, total, dims in source.buckets(splits[0][0], parts[0].measure, span, group):
        regions = ancestors.get(path)
        if regions is None:
            regions = ancestors[path] = tree.ancestors(path, Region.GRID)
        by_dims[dims].append((regions, (day - span.first).days, n, total))
    out: dict[int, dict[str, Series]] = {}
    for index, part in enumerate(parts):
        grouped = splits[index][1]
        checks = [(group.index(lookup), allowed) for lookup, allowed in grouped.items()]
        counts: dict[str, list[float]] = defaultdict(lambda: [0.0] * width)
        totals: dict[str, list[float]] = defaultdict(lambda: [0.0] * width)
        matching = [
            rows for dims, rows in by_dims.items() if all(dims[i] in allowed for i, allowed in checks)
        ]
        for regions, k, n, s in (row for rows in matching for row in rows):
            if k < 0 or k >= width:
                continue
            for region_path in regions:
                counts[region_path][k] += n
                totals[region_path][k] += s
        out[index] = _windowed(tree, part, counts, totals, span, first, last, cutoff)
    return out


def _one_scan(
    tree: Tree, model: str, parts: list[Part], day: dt.date, cutoff: dt.datetime
) -> dict[int, dict[str, Series]]:
    """One day's changes of every part over one table, in ONE scan: each part's events become
    conditional counts (and sums) of a single query grouped by area_path and the grouped filters.
    What a day-by-day bucket query per part would give, at the cost of one pass over the table."""
    from django.apps import apps
    from django.db.models import Count, Q, Sum

    start = sources.local_midnight(day)
    splits = [p.source.split(p.source.effective(p.params)) for p in parts]
    group = tuple(sorted({lookup for _, grouped in splits for lookup in grouped}))
    columns: dict[str, str] = {}
    annotations: dict[str, Any] = {}
    aggregates: dict[str, Any] = {}
    plan: list[list[tuple[str, str | None, int]]] = []
    ranges: set[tuple[str, dt.datetime, dt.datetime]] = set()
    for index, part in enumerate(parts):
        shared, _ = splits[index]
        base = sources.filters_q(part.source.filters, shared)
        steps = []
        for k, event in enumerate(sources.EVENTS[model](part.source.name, shared, part.measure)):
            key = str(event.column)
            alias = columns.get(key)
            if alias is None:
                alias = columns[key] = f"_c{len(columns)}"
                annotations[alias] = event.column
            windows = [(start, cutoff, event.sign)]
            if part.expire_days:
                gone = day - dt.timedelta(days=part.expire_days)
                windows.append((sources.local_midnight(gone), end_of(gone), -event.sign))
            for w, (lo, hi, sign) in enumerate(windows):
                within = base & event.q & Q(**{f"{alias}__gte": lo, f"{alias}__lt": hi})
                count_name = f"n{index}_{k}_{w}"
                aggregates[count_name] = Count("pk", filter=within)
                sum_name = None
                if event.measure is not None:
                    sum_name = f"s{index}_{k}_{w}"
                    aggregates[sum_name] = Sum(event.measure, filter=within)
                steps.append((count_name, sum_name, sign))
                ranges.add((alias, lo, hi))
        plan.append(steps)
    touched = Q(pk__in=[])
    for alias, lo, hi in sorted(ranges, key=str):
        touched |= Q(**{f"{alias}__gte": lo, f"{alias}__lt": hi})
    rows = list(
        apps.get_model(model)
        .objects.annotate(**annotations)
        .filter(touched)
        .order_by()
        .values("area_path", *group)
        .annotate(**aggregates)
    )
    by_dims: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["area_path"]:
            by_dims[tuple(row[g] for g in group)].append(row)
    ancestors: dict[str, list[str]] = {}
    out: dict[int, dict[str, Series]] = {}
    for index, part in enumerate(parts):
        checks = [(group.index(lookup), allowed) for lookup, allowed in splits[index][1].items()]
        steps = plan[index]
        per_path: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
        for dims, matching in by_dims.items():
            if not all(dims[i] in allowed for i, allowed in checks):
                continue
            for row in matching:
                here = per_path[row["area_path"]]
                for count_name, sum_name, sign in steps:
                    here[0] += sign * (row[count_name] or 0)
                    if sum_name is not None:
                        here[1] += sign * sources.number(row[sum_name])
        counts: dict[str, float] = defaultdict(float)
        totals: dict[str, float] = defaultdict(float)
        for path, (n, t) in per_path.items():
            regions = ancestors.get(path)
            if regions is None:
                regions = ancestors[path] = tree.ancestors(path, Region.GRID)
            for region_path in regions:
                counts[region_path] += n
                totals[region_path] += t
        out[index] = {p: [(counts.get(p, 0.0), totals.get(p, 0.0))] for p in tree.within(part.deepest)}
    return out


def _windowed(
    tree: Tree,
    part: Part,
    counts: dict[str, list[float]],
    totals: dict[str, list[float]],
    span: sources.Span,
    first: dt.date,
    last: dt.date,
    cutoff: dt.datetime,
) -> dict[str, Series]:
    """Daily buckets → the window's figure per day, with prefix sums (one pass per region)."""
    n_days = (last - first).days + 1
    width = (last - span.first).days + 1
    kind = part.kind
    bounds = []
    for k in range(n_days):
        day = first + dt.timedelta(days=k)
        if kind == sources.SNAPSHOT:
            known = day == span.last and clock.now() - end_of(day) <= SNAPSHOT_GRACE
            bounds.append((width - 1, width - 1) if known else None)
            continue
        if kind == sources.STOCK:
            lo, hi = span.first, day
        else:
            start, stop = window_bounds(part.window, day)
            lo, hi = max(start or span.first, span.first), stop
        bounds.append(((lo - span.first).days, (hi - span.first).days))
    # Prefix sums with a leading zero: the window (i..j) of day k is P[j + 1] − P[i].
    spans: list[tuple[int, int] | None] = []
    for bound in bounds:
        if bound is None:
            spans.append(None)
        elif kind == sources.SNAPSHOT:
            spans.append((0, bound[1] + 1))
        else:
            i, j = bound
            j = min(j, width - 1)
            spans.append((i, j + 1) if j >= i else (0, 0))
    zeros: Series = [None if sp is None else (0.0, 0.0) for sp in spans]
    out: dict[str, Series] = {}
    for region_path in tree.within(part.deepest):
        counts_here = counts.get(region_path)
        if counts_here is None:
            out[region_path] = list(zeros)
            continue
        c = list(accumulate(counts_here, initial=0.0))
        t = list(accumulate(totals[region_path], initial=0.0))
        out[region_path] = [
            None if sp is None else (c[sp[1]] - c[sp[0]], t[sp[1]] - t[sp[0]]) for sp in spans
        ]
    return out


def _combine(ind: Indicator, num: tuple[float, float] | None, den: tuple[float, float] | None) -> Triple:
    if num is None:
        return None, None, None
    n, s = num
    agg = ind.aggregation
    if agg == Indicator.COUNT:
        return n, n, None
    if agg == Indicator.SUM:
        return _round(s), s, None
    if agg == Indicator.AVG:
        return (_round(s / n) if n else None), s, n
    if den is None:
        return None, None, None
    top = s if ind.measure else n
    bottom = den[1] if ind.measure else den[0]
    if not bottom:
        return None, top, bottom
    if agg == Indicator.RATIO:
        return _round(top / bottom * 100), top, bottom
    return _round((top / bottom - 1) * 100), top, bottom


def _round(value: float) -> float:
    return round(value, 4)


def _as_delta(part: Part) -> Part:
    return replace(part, window="day", delta=True, expire_days=30 if part.window == "days30" else 0)


def _part_series(
    indicators: list[Indicator],
    first: dt.date,
    last: dt.date,
    cutoff: dt.datetime,
    tree: Tree,
    *,
    delta: bool = False,
) -> dict[int, tuple[dict[str, Series], dict[str, Series] | None]]:
    """Per indicator id: the series of its numerator part and of its denominator part (if any).
    Parts of one source that differ only in plain column filters share one grouped query."""
    parts: list[Part] = []
    owners: list[tuple[Indicator, int, int | None]] = []
    for ind in indicators:
        try:
            num, den = _parts(ind)
        except KeyError:
            # A source no longer registered (a code change after the definition was saved): this
            # indicator shows no value; the others are not held up by it.
            log.warning("indicator %s names an unknown source", ind.code)
            continue
        if delta:
            num = _as_delta(num)
            den = _as_delta(den) if den is not None else None
        parts.append(num)
        owners.append((ind, len(parts) - 1, len(parts) if den is not None else None))
        if den is not None:
            parts.append(den)
    batches: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    tables: dict[str, list[int]] = defaultdict(list)
    for index, part in enumerate(parts):
        if delta and part.source.model and first == last:
            tables[part.source.model].append(index)
        else:
            batches[part.batch_key()].append(index)
    series: dict[int, dict[str, Series]] = {}
    with sources.one_pass():  # sources share what they read within this pass (the residents rows)
        for model, members in tables.items():
            result = _one_scan(tree, model, [parts[i] for i in members], first, cutoff)
            for position, index in enumerate(members):
                series[index] = result[position]
        for members in batches.values():
            result = _batch_series(tree, [parts[i] for i in members], first, last, cutoff)
            for position, index in enumerate(members):
                series[index] = result[position]
    return {
        ind.pk: (series[num_index], series[den_index] if den_index is not None else None)
        for ind, num_index, den_index in owners
    }


def compute_many(
    indicators: list[Indicator],
    first: dt.date,
    last: dt.date | None = None,
    *,
    cutoff: dt.datetime | None = None,
    tree: Tree | None = None,
) -> dict[int, dict[str, list[Triple]]]:
    """Indicators from raw rows for days first..last: per indicator id, per region path (levels
    down to its breakdown level), a (value, numerator, denominator) per day. Each day ends at
    midnight, or at `cutoff` (default: now) if that is earlier."""
    last = last or first
    tree = tree or _tree()
    cutoff = min(cutoff or clock.now(), end_of(last))
    out: dict[int, dict[str, list[Triple]]] = {}
    by_pk = {i.pk: i for i in indicators}
    for ind in indicators:
        out[ind.pk] = {}
    for pk, (nums, dens) in _part_series(indicators, first, last, cutoff, tree).items():
        ind = by_pk[pk]
        out[pk] = {
            path: [
                _combine(ind, n, d)
                for n, d in zip(values, (dens or {}).get(path) or [None] * len(values), strict=True)
            ]
            for path, values in nums.items()
        }
    return out


def compute(
    ind: Indicator,
    first: dt.date,
    last: dt.date | None = None,
    *,
    cutoff: dt.datetime | None = None,
    tree: Tree | None = None,
) -> dict[str, list[Triple]]:
    """One indicator from raw rows (see compute_many)."""
    return compute_many([ind], first, last, cutoff=cutoff, tree=tree)[ind.pk]


def _live_key(ind: Indicator, today: dt.date) -> str:
    return f"zhizhi:cockpit:live:{ind.pk}:{ind.version}:{today.isoformat()}"


# Windows whose figure today is yesterday's plus what changed today (month and year restart on
# their first day); the others are computed from raw rows.
DELTA_WINDOWS = ("now", "day", "month", "year", "days30")


def _carries(window: str, today: dt.date) -> bool:
    """Whether today's window still holds yesterday's figure."""
    if window == "now":
        return True
    if window == "month":
        return today.day != 1
    if window == "year":
        return (today.month, today.day) != (1, 1)
    return window == "days30"  # minus the day that drops out (Part.expire_days)


def _base(
    ind: Indicator, num: float, den: float, today: dt.date
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Yesterday's rollup numerator/denominator back as the (count, total) of the two parts."""
    top = 1.0 if _carries(ind.window, today) else 0.0
    bottom = 1.0 if _carries(ind.denominator_window or ind.window, today) else 0.0
    agg = ind.aggregation
    if agg == Indicator.COUNT:
        return (num * top, 0.0), (0.0, 0.0)
    if agg == Indicator.SUM:
        return (0.0, num * top), (0.0, 0.0)
    if agg == Indicator.AVG:
        return (den * top, num * top), (0.0, 0.0)
    if ind.measure:
        return (0.0, num * top), (0.0, den * bottom)
    return (num * top, 0.0), (den * bottom, 0.0)


def _known(ind: Indicator) -> bool:
    names = [ind.source] + ([ind.denominator_source] if ind.denominator_source else [])
    return all(name in sources.REGISTRY for name in names)


def _deltable(ind: Indicator) -> bool:
    """Whether today's figure may be taken from yesterday's rollup: not for snapshots, nor for
    registers whose rows are routinely entered with a past date (a resident living there since
    2010, last month's tax), which yesterday's rollup could not have counted."""
    if ind.stale_since is not None or not _known(ind):
        return False
    num, den = _parts(ind)
    return all(
        p.source.kind != sources.SNAPSHOT
        and not p.source.backdated
        and p.window in DELTA_WINDOWS
        and (p.window != "days30" or bool(p.source.model))
        for p in (num, den)
        if p is not None
    )


def _live_from_yesterday(indicators: list[Indicator], tree: Tree) -> dict[int, dict[str, Triple]]:
    """Today = yesterday's rollup + today's changes, for indicators rolled up yesterday: the queries
    read one day of rows instead of the whole history (stocks) or the month/year (flows)."""
    today = clock.today()
    yesterday = today - dt.timedelta(days=1)
    roots = tree.roots()
    base: dict[int, dict[int, tuple[float, float]]] = defaultdict(dict)
    rolled: set[int] = set()
    rows = IndicatorValue.objects.filter(indicator__in=indicators, day=yesterday).values_list(
        "indicator_id", "region_id", "numerator", "denominator"
    )
    for ind_id, region_id, num, den in rows:
        base[ind_id][region_id] = (num or 0.0, den or 0.0)
        if region_id in roots:
            rolled.add(ind_id)
    chosen = [i for i in indicators if i.pk in rolled]
    if not chosen:
        return {}
    start = sources.local_midnight(today)
    cutoff = min(clock.now(), end_of(today))
    deltas = _part_series(chosen, today, today, max(cutoff, start), tree, delta=True)
    out: dict[int, dict[str, Triple]] = {}
    for ind in chosen:
        nums, dens = deltas[ind.pk]
        figures: dict[str, Triple] = {}
        for path, values in nums.items():
            region_id = tree.by_path[path]["id"]
            top, bottom = _base(ind, *base[ind.pk].get(region_id, (0.0, 0.0)), today)
            dn = values[0] or (0.0, 0.0)
            dd = ((dens or {}).get(path) or [None])[0] or (0.0, 0.0)
            figures[path] = _combine(
                ind,
                (top[0] + dn[0], top[1] + dn[1]),
                (bottom[0] + dd[0], bottom[1] + dd[1]) if dens is not None else None,
            )
        out[ind.pk] = figures
    return out


def live_many(indicators: list[Indicator], tree: Tree | None = None) -> dict[int, dict[str, Triple]]:
    """Today's figures of every region, up to now; shared for a few seconds between readers.

    Not cached inside a transaction: a value seen there may include rows that are rolled back."""
    today = clock.today()
    use_cache = not connection.in_atomic_block
    out: dict[int, dict[str, Triple]] = {}
    if use_cache:
        hits = cache.get_many([_live_key(i, today) for i in indicators])
        for ind in indicators:
            hit = hits.get(_live_key(ind, today))
            if hit is not None:
                out[ind.pk] = hit
    todo = [i for i in indicators if i.pk not in out]
    if todo:
        tree = tree or _tree()
        fresh = _live_from_yesterday([i for i in todo if _deltable(i)], tree)
        rest = [i for i in todo if i.pk not in fresh]
        if rest:
            computed = compute_many(rest, today, tree=tree)
            fresh.update({i.pk: {path: s[0] for path, s in computed[i.pk].items()} for i in rest})
        out.update(fresh)
        if use_cache:
            cache.set_many({_live_key(i, today): fresh[i.pk] for i in todo}, LIVE_CACHE_SECONDS)
    return out


# --- reading ---------------------------------------------------------------------------------------


def _indicator(code: str) -> Indicator:
    return Indicator.objects.get(code=code)


def _region_dict(r: Region | dict[str, Any]) -> dict[str, Any]:
    if isinstance(r, Region):
        return {"id": r.pk, "code": r.code, "name": r.name, "level": r.level, "path": r.path}
    return {k: r[k] for k in ("id", "code", "name", "level", "path")}


def _allows(ind: Indicator, level: str) -> bool:
    return LEVEL_ORDER.index(level) <= LEVEL_ORDER.index(ind.breakdown_level)


def empty_value(ind: Indicator) -> float | None:
    """What a region without a rollup row holds on a rolled-up day: rollups leave out the rows
    whose parts are all zero, which is 0 for a count or sum and "no value" for a ratio or average."""
    return 0.0 if ind.aggregation in (Indicator.COUNT, Indicator.SUM) else None


def _values_on(
    indicators: list[Indicator], regions: list[dict[str, Any]], days: list[dt.date], tree: Tree
) -> dict[tuple[int, int, dt.date], float | None]:
    """(indicator id, region id, day) → value: today live, past days from the rollups (one query),
    the rest (days not rolled up, or stale rollups) computed from raw rows.

    A day counts as rolled up for an indicator when its row for the top region(s) exists: the
    rollup always writes those, and leaves out the all-zero rows below them."""
    today = clock.today()
    out: dict[tuple[int, int, dt.date], float | None] = {}
    past = [d for d in days if d < today]
    fresh = [i for i in indicators if i.stale_since is None]
    roots = tree.roots()
    found: set[tuple[int, dt.date]] = set()
    if past and fresh:
        wanted = {r["id"] for r in regions} | set(roots)
        rows = IndicatorValue.objects.filter(
            indicator__in=fresh, region_id__in=wanted, day__in=past
        ).values_list("indicator_id", "region_id", "day", "value")
        for ind_id, region_id, day, v in rows:
            out[(ind_id, region_id, day)] = v
            if region_id in roots:
                found.add((ind_id, day))
    now_values = live_many(indicators, tree) if today in days else {}
    missing: dict[int, list[dt.date]] = {
        ind.pk: sorted(d for d in past if (ind.pk, d) not in found) for ind in indicators
    }
    computed: dict[int, dict[str, list[Triple]]] = {}
    todo = [ind for ind in indicators if missing[ind.pk]]
    if todo:
        first = min(missing[i.pk][0] for i in todo)
        last = max(missing[i.pk][-1] for i in todo)
        computed = compute_many(todo, first, last, tree=tree)
    for ind in indicators:
        usable = [r for r in regions if _allows(ind, r["level"])]
        for r in usable:
            if today in days:
                out[(ind.pk, r["id"], today)] = (now_values[ind.pk].get(r["path"]) or (None, None, None))[0]
            for d in past:
                if (ind.pk, d) in found:
                    out.setdefault((ind.pk, r["id"], d), empty_value(ind))
            series = computed.get(ind.pk, {}).get(r["path"])
            if series is not None:
                for d in missing[ind.pk]:
                    out[(ind.pk, r["id"], d)] = series[(d - first).days][0]
    return out


def status_of(ind: Indicator, v: float | None) -> str:
    """green / yellow / red against the indicator's lines; "" without lines or value."""
    if v is None or (ind.threshold_green is None and ind.threshold_red is None):
        return ""

    def at_least_as_good(a: float, b: float) -> bool:
        return a >= b if ind.higher_is_better else a <= b

    if ind.threshold_green is not None and at_least_as_good(v, ind.threshold_green):
        return "green"
    if ind.threshold_red is not None and at_least_as_good(ind.threshold_red, v):
        return "red"
    return "yellow" if ind.threshold_green is not None else "green"


def _direction(v: float | None, previous: float | None) -> str:
    if v is None or previous is None or abs(v - previous) < 1e-9:
        return "flat"
    return "up" if v > previous else "down"


def scenes() -> list[dict[str, Any]]:
    codes: dict[str, list[str]] = defaultdict(list)
    for scene, code in Indicator.objects.filter(enabled=True).values_list("scene", "code"):
        codes[scene].append(code)
    return [{"code": c, "name": str(n), "indicators": codes.get(c, [])} for c, n in Indicator.SCENES]


def board(region: Region, scene: str | None = None, day: dt.date | None = None) -> dict[str, Any]:
    day = day or clock.today()
    previous_day = day - dt.timedelta(days=1)
    chosen = Indicator.objects.filter(enabled=True)
    if scene:
        chosen = chosen.filter(scene=scene)
    indicators = list(chosen.order_by("scene", "order", "code"))
    tree = _tree()
    children = [r for r in tree.by_path.values() if r["parent_id"] == region.pk]
    here = _region_dict(region)
    values = _values_on(indicators, [here, *children], [previous_day, day], tree)
    rows = []
    for ind in indicators:
        v = values.get((ind.pk, region.pk, day))
        prev = values.get((ind.pk, region.pk, previous_day))
        rows.append(
            {
                "code": ind.code,
                "name": ind.name,
                "unit": ind.unit,
                "scene": ind.scene,
                "value": v,
                "previous": prev,
                "trend": _direction(v, prev),
                "status": status_of(ind, v),
                "target": ind.target,
                "higher_is_better": ind.higher_is_better,
            }
        )
    kids = [
        {
            **{k: c[k] for k in ("id", "code", "name", "level")},
            "values": {
                ind.code: values.get((ind.pk, c["id"], day)) for ind in indicators if _allows(ind, c["level"])
            },
        }
        for c in sorted(children, key=lambda c: c["code"])
    ]
    return {"region": here, "day": day.isoformat(), "indicators": rows, "children": kids}


def value(indicator_code: str, region: Region, day: dt.date | None = None) -> float | None:
    ind = _indicator(indicator_code)
    day = day or clock.today()
    if not _allows(ind, region.level):
        return None
    return _values_on([ind], [_region_dict(region)], [day], _tree()).get((ind.pk, region.pk, day))


def trend(indicator_code: str, region: Region, days: int = 30) -> list[tuple[dt.date, float | None]]:
    ind = _indicator(indicator_code)
    last = clock.today()
    span = [last - dt.timedelta(days=k) for k in range(days - 1, -1, -1)]
    if not _allows(ind, region.level):
        return [(d, None) for d in span]
    values = _values_on([ind], [_region_dict(region)], span, _tree())
    return [(d, values.get((ind.pk, region.pk, d))) for d in span]


def ranking(indicator_code: str, region: Region, day: dt.date | None = None) -> list[dict[str, Any]]:
    """The region's children by value, best first (None last); `rank` counts from 1."""
    ind = _indicator(indicator_code)
    day = day or clock.today()
    tree = _tree()
    children = [r for r in tree.by_path.values() if r["parent_id"] == region.pk and _allows(ind, r["level"])]
    values = _values_on([ind], children, [day], tree)
    rows = [{**_region_dict(c), "value": values.get((ind.pk, c["id"], day))} for c in children]
    sign = -1 if ind.higher_is_better else 1
    rows.sort(key=lambda r: (r["value"] is None, sign * (r["value"] or 0), r["code"]))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
        row["status"] = status_of(ind, row["value"])
    return rows


# --- importing definitions -----------------------------------------------------------------------

IMPORT_FIELDS = (
    "name",
    "unit",
    "scene",
    "description",
    "source",
    "params",
    "window",
    "aggregation",
    "measure",
    "denominator_source",
    "denominator_params",
    "denominator_window",
    "breakdown_level",
    "threshold_green",
    "threshold_red",
    "target",
    "higher_is_better",
    "order",
    "enabled",
)
DATA_FILE = Path(__file__).resolve().parent / "data" / "indicators.json"


def definition_problems(ind: Indicator) -> list[Problem]:
    """Every problem of a definition, each on its field (zh + en): the field types and choices
    first, then what the sources can compute."""
    try:
        ind.clean_fields(exclude=["code"] if ind.pk else None)
    except ValidationError as exc:
        return [
            Problem(
                "invalid_value",
                f"取值不正确：{message}",
                f"invalid value: {message}",
                field=field_name,
                value=getattr(ind, field_name, None),
            )
            for field_name, messages in exc.message_dict.items()
            for message in messages
        ]
    try:
        sources.check_indicator(ind)
    except Invalid as exc:
        return list(exc.problems)
    return []


EDITOR_ROLES = ("street_leader", "dispatcher")
READER_ROLES = (*EDITOR_ROLES, "dept_staff", "community_worker")


def can_edit_indicators(user: Any) -> bool:
    """Street leaders and dispatchers (and anyone granted `change` on indicators) define indicators."""
    from zhizhi.permissions import can

    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    return bool(
        user.is_superuser or getattr(user, "role", "") in EDITOR_ROLES or can(user, "change", Indicator)
    )


def can_read_indicators(user: Any) -> bool:
    from zhizhi.permissions import can

    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    return (
        can_edit_indicators(user) or getattr(user, "role", "") in READER_ROLES or can(user, "view", Indicator)
    )


def save_indicator(
    user: Any, data: dict[str, Any], instance: Indicator | None = None, version: int | None = None
) -> Indicator:
    """Create (instance None) or change an indicator from API data: unknown keys, bad values and
    definitions the sources cannot compute are refused with every problem on its field; a change
    based on an old `version` raises Conflict. All or nothing."""
    if not can_edit_indicators(user):
        raise Forbidden("您不能新增或修改指标", "You may not add or change indicators")
    problems: list[Problem] = []
    for key in sorted(set(data) - {"code", *IMPORT_FIELDS}):
        problems.append(
            Problem("unknown_field", f"未知的字段「{key}」", f"unknown field '{key}'", field=key, value=key)
        )
    ind = instance or Indicator()
    if instance is None:
        code = str(data.get("code") or "")
        if not code:
            problems.append(Problem("code_required", "请填写指标编码", "the code is required", field="code"))
        elif Indicator.objects.filter(code=code).exists():
            problems.append(
                Problem(
                    "code_taken",
                    f"指标编码「{code}」已存在",
                    f"code '{code}' exists",
                    field="code",
                    value=code,
                )
            )
        ind.code = code
    elif "code" in data and data["code"] != instance.code:
        problems.append(
            Problem(
                "code_fixed",
                "指标编码保存后不能修改",
                "the code cannot change",
                field="code",
                value=data["code"],
            )
        )
    for name in IMPORT_FIELDS:
        if name in data:
            setattr(ind, name, data[name])
    if not problems:
        problems = definition_problems(ind)
    if problems:
        raise Invalid(problems)
    with transaction.atomic():
        if instance is not None and version is not None:
            ind.expect_version(version)
        ind.save()
    return ind


def indicator_out(ind: Indicator) -> dict[str, Any]:
    return {
        "id": ind.pk,
        "version": ind.version,
        "code": ind.code,
        **{name: getattr(ind, name) for name in IMPORT_FIELDS},
        "stale": ind.stale_since is not None,
    }


def import_indicators(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Create or update indicators by code from a list of definitions (the JSON file's rows).

    Every row is checked first; one bad row refuses the whole file with every problem located by
    row (1-based) and field, zh + en. A changed definition marks the indicator's rollups stale."""
    problems: list[Problem] = []
    existing = {i.code: i for i in Indicator.objects.all()}
    planned: list[tuple[Indicator, bool, bool]] = []
    for row_number, row in enumerate(rows, 1):
        if not isinstance(row, dict) or not row.get("code"):
            problems.append(
                Problem(
                    "row_without_code", "缺少指标编码", "the row has no code", row=row_number, column="code"
                )
            )
            continue
        unknown = sorted(set(row) - {"code", *IMPORT_FIELDS})
        for name in unknown:
            problems.append(
                Problem(
                    "unknown_column",
                    f"未知的列「{name}」",
                    f"unknown column '{name}'",
                    row=row_number,
                    column=name,
                    expected_zh="、".join(IMPORT_FIELDS),
                    expected_en=", ".join(IMPORT_FIELDS),
                )
            )
        ind = existing.get(row["code"])
        adding = ind is None
        if ind is None:
            ind = Indicator(code=row["code"])
        before = None if adding else {f: getattr(ind, f) for f in IMPORT_FIELDS}
        fresh = Indicator()
        defaults = {f: getattr(fresh, f) for f in IMPORT_FIELDS}
        for name in IMPORT_FIELDS:
            setattr(ind, name, row.get(name, defaults[name]))
        found = definition_problems(ind)
        if found:
            for p in found:
                p.row, p.column = row_number, p.field
            problems.extend(found)
            continue
        changed = adding or before != {f: getattr(ind, f) for f in IMPORT_FIELDS}
        planned.append((ind, adding, changed))
    seen: dict[str, int] = {}
    for row_number, row in enumerate(rows, 1):
        code = row.get("code") if isinstance(row, dict) else None
        if code in seen:
            problems.append(
                Problem(
                    "duplicate_code",
                    f"指标编码「{code}」重复（第{seen[code]}行）",
                    f"code '{code}' repeats row {seen[code]}",
                    row=row_number,
                    column="code",
                    value=code,
                )
            )
        elif code:
            seen[code] = row_number
    if problems:
        raise Invalid(problems)
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    with transaction.atomic():
        for ind, adding, changed in planned:
            if changed:
                ind.save()
            counts["created" if adding else "updated" if changed else "unchanged"] += 1
    return counts


def load_indicator_file(path: Path | None = None) -> dict[str, int]:
    with open(path or DATA_FILE, encoding="utf-8") as fh:
        rows = json.load(fh)
    if not isinstance(rows, list):
        raise Invalid(
            [Problem("not_a_list", "文件须为指标定义的列表", "the file must hold a list of definitions")]
        )
    return import_indicators(rows)
