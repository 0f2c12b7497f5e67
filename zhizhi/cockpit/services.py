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
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import connection, transaction

from zhizhi import clock
from zhizhi.cockpit import sources
from zhizhi.cockpit.models import Indicator, IndicatorValue
from zhizhi.geo.models import Region
from zhizhi.problems import Invalid, Problem

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


def _part_series(
    tree: Tree,
    source_name: str,
    params: dict[str, Any],
    window: str,
    measure: str,
    first: dt.date,
    last: dt.date,
    cutoff: dt.datetime,
    deepest: str,
) -> dict[str, list[tuple[float, float] | None]]:
    """Per region path, per day first..last: (count, measure total) over the window, or None where
    the source cannot know (a snapshot of a day long past)."""
    sources.ensure_filters()
    source = sources.get(source_name)
    n_days = (last - first).days + 1
    if source.kind == sources.FLOW:
        span_first = window_bounds(window, first)[0] or first
        span_first = min(span_first, first)
        span = sources.Span(span_first, last, cutoff)
    else:
        span = sources.Span(first, last, cutoff, fold=True)
    width = (last - span.first).days + 1
    counts: dict[str, list[float]] = defaultdict(lambda: [0.0] * width)
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0] * width)
    ancestors: dict[str, list[str]] = {}
    for path, day, n, s in source.buckets(params, measure, span):
        index = (day - span.first).days
        if index < 0 or index >= width:
            continue
        regions = ancestors.get(path)
        if regions is None:
            regions = ancestors[path] = tree.ancestors(path, deepest)
        for region_path in regions:
            counts[region_path][index] += n
            totals[region_path][index] += s
    out: dict[str, list[tuple[float, float] | None]] = {}
    for region_path in tree.within(deepest):
        c = _prefix(counts.get(region_path))
        t = _prefix(totals.get(region_path))
        series: list[tuple[float, float] | None] = []
        for k in range(n_days):
            day = first + dt.timedelta(days=k)
            if source.kind == sources.SNAPSHOT:
                known = day == span.last and cutoff - min(end_of(day), cutoff) <= SNAPSHOT_GRACE
                series.append((_at(c, width - 1), _at(t, width - 1)) if known else None)
                continue
            if source.kind == sources.STOCK:
                lo, hi = span.first, day
            else:
                start, stop = window_bounds(window, day)
                lo, hi = max(start or span.first, span.first), stop
            i, j = (lo - span.first).days, (hi - span.first).days
            if j < i:
                series.append((0.0, 0.0))
                continue
            series.append((_at(c, j) - _at(c, i - 1), _at(t, j) - _at(t, i - 1)))
        out[region_path] = series
    return out


def _prefix(values: list[float] | None) -> list[float] | None:
    if values is None:
        return None
    out, running = [], 0.0
    for v in values:
        running += v
        out.append(running)
    return out


def _at(prefix: list[float] | None, index: int) -> float:
    if prefix is None or index < 0:
        return 0.0
    return prefix[min(index, len(prefix) - 1)]


def _combine(ind: Indicator, num: tuple[float, float] | None, den: tuple[float, float] | None) -> Triple:
    if num is None:
        return None, None, None
    n, s = num
    agg = ind.aggregation
    if agg == Indicator.COUNT:
        return _round(n), n, None
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


def compute(
    ind: Indicator,
    first: dt.date,
    last: dt.date | None = None,
    *,
    cutoff: dt.datetime | None = None,
    tree: Tree | None = None,
) -> dict[str, list[Triple]]:
    """The indicator from raw rows for days first..last, per region path (levels down to its
    breakdown level): a list of (value, numerator, denominator) per day. Each day ends at midnight,
    or at `cutoff` (default: now) if that is earlier."""
    last = last or first
    tree = tree or _tree()
    now = clock.now()
    cutoff = min(cutoff or now, end_of(last))
    num = _part_series(
        tree, ind.source, ind.params, ind.window, ind.measure, first, last, cutoff, ind.breakdown_level
    )
    den: dict[str, list[tuple[float, float] | None]] = {}
    if ind.aggregation in (Indicator.RATIO, Indicator.GROWTH) and ind.denominator_source:
        den = _part_series(
            tree,
            ind.denominator_source,
            ind.denominator_params,
            ind.denominator_window or ind.window,
            ind.measure if ind.aggregation == Indicator.GROWTH else "",
            first,
            last,
            cutoff,
            ind.breakdown_level,
        )
    out: dict[str, list[Triple]] = {}
    for path, series in num.items():
        bottoms = den.get(path) or [None] * len(series)
        out[path] = [_combine(ind, n, d) for n, d in zip(series, bottoms, strict=True)]
    return out


def live(ind: Indicator) -> dict[str, Triple]:
    """Today's figures of every region, up to now; shared for a few seconds between readers.

    Not cached inside a transaction: a value seen there may include rows that are rolled back."""
    today = clock.today()
    key = f"zhizhi:cockpit:live:{ind.pk}:{ind.version}:{today.isoformat()}"
    use_cache = not connection.in_atomic_block
    if use_cache:
        hit = cache.get(key)
        if hit is not None:
            return hit
    result = {path: series[0] for path, series in compute(ind, today).items()}
    if use_cache:
        cache.set(key, result, LIVE_CACHE_SECONDS)
    return result


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
    for ind in indicators:
        usable = [r for r in regions if _allows(ind, r["level"])]
        if not usable:
            continue
        if today in days:
            now_values = live(ind)
            for r in usable:
                out[(ind.pk, r["id"], today)] = (now_values.get(r["path"]) or (None, None, None))[0]
        done = [d for d in past if (ind.pk, d) in found]
        for d in done:
            for r in usable:
                out.setdefault((ind.pk, r["id"], d), empty_value(ind))
        missing = sorted(d for d in past if (ind.pk, d) not in found)
        if missing:
            computed = compute(ind, missing[0], missing[-1], tree=tree)
            for r in usable:
                series = computed.get(r["path"])
                if series is None:
                    continue
                for d in missing:
                    out[(ind.pk, r["id"], d)] = series[(d - missing[0]).days][0]
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
    indicators = list(Indicator.objects.filter(enabled=True).order_by("scene", "order", "code"))
    if scene:
        indicators = [i for i in indicators if i.scene == scene]
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
        try:
            ind.clean_fields()
        except ValidationError as exc:
            for field_name, messages in exc.message_dict.items():
                for message in messages:
                    problems.append(
                        Problem(
                            "invalid_value",
                            f"取值不正确：{message}",
                            f"invalid value: {message}",
                            row=row_number,
                            column=field_name,
                            value=row.get(field_name),
                        )
                    )
            continue
        try:
            sources.check_indicator(ind)
        except Invalid as exc:
            for p in exc.problems:
                p.row, p.column = row_number, p.field
                problems.append(p)
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
