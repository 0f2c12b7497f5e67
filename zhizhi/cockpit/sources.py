"""The registered sources indicators are computed from, and the check of an indicator's definition.

A source answers one question set-based: for a span of days, how many rows (and what total of a
measure) fell on each day, per `area_path`. One grouped query gives the figures of every region of
every level at once; `services` adds the paths up the region tree and applies the window.

Three kinds of source:
- flow (流量): rows that happen on a day (a case reported, an alarm raised). A window (today, this
  month, 30 days, this year …) is a sum of daily buckets.
- stock (存量): rows that exist at the end of a day (open cases, active alarms, residents). The
  source gives +1 on the day a row comes in and −1 on the day it goes; the value is the running sum
  since the beginning (window "now"). Rows from before the span are folded into its first day.
- snapshot (快照): a state with no history in the tables (devices online now). Only today can be
  computed; the nightly rollup keeps each day's picture, a backfill of older days leaves them empty.

Filters with a `lookup` are plain column matches: indicators of one source that differ only in such
filters share ONE query grouped by those columns too (`group`), and each takes its rows from it.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models import (
    Case,
    Count,
    DateField,
    DateTimeField,
    DurationField,
    ExpressionWrapper,
    F,
    FloatField,
    Func,
    Max,
    Min,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Greatest, TruncDate
from django.utils import timezone

from zhizhi.problems import Invalid, Problem

FLOW, STOCK, SNAPSHOT = "flow", "stock", "snapshot"
FLOW_WINDOWS = ("day", "month", "days30", "year", "month_last_year", "year_last_year")

# A bucket: (area_path, day, count, measure total, values of the grouped columns).
Bucket = tuple[str, dt.date, float, float, tuple[Any, ...]]
Group = tuple[str, ...]


@dataclass(frozen=True)
class Span:
    """Days `first`..`last` (local dates); rows at or after `cutoff` do not count yet (today: now).
    `fold` puts every row from before `first` on `first` (stock sources)."""

    first: dt.date
    last: dt.date
    cutoff: dt.datetime
    fold: bool = False
    # The last local date a date column may hold to count (dates count from their morning).
    cutoff_day: dt.date = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cutoff_day", timezone.localdate(self.cutoff - dt.timedelta(microseconds=1)))

    @property
    def start(self) -> dt.datetime:
        return local_midnight(self.first)


_PASS: ContextVar[dict[Any, Any] | None] = ContextVar("zhizhi_cockpit_pass", default=None)


@contextmanager
def one_pass() -> Iterator[None]:
    """Within a computation pass, sources may share what they read (`memo`)."""
    token = _PASS.set({})
    try:
        yield
    finally:
        _PASS.reset(token)


def memo(key: Any, fetch: Callable[[], Any]) -> Any:
    cache = _PASS.get()
    if cache is None:
        return fetch()
    if key not in cache:
        cache[key] = fetch()
    return cache[key]


def local_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=timezone.get_current_timezone())


@dataclass(frozen=True)
class Filter:
    """A filter a source accepts: its allowed values (None: any of `kind`), and how it maps to a Q."""

    label: str
    choices: tuple[tuple[str, str], ...] | None = None
    kind: str = "str"  # str | bool | int
    many: bool = True
    lookup: str = ""  # the ORM lookup path of a plain column match; "" for filters the source applies
    # Allowed values read from the database (e.g. the category codes of the responsibility list).
    choices_from: Callable[[], set[str]] | None = None

    def allowed(self) -> set[str] | None:
        if self.choices_from is not None:
            return self.choices_from()
        if self.choices is not None:
            return {c for c, _ in self.choices}
        return None


Compute = Callable[[dict[str, Any], str, "Span", Group], Iterable[Bucket]]


@dataclass(frozen=True)
class Source:
    name: str
    label: str
    label_en: str
    kind: str
    compute: Compute
    filters: dict[str, Filter] = field(default_factory=dict)
    measures: dict[str, str] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    # Whether `compute` honours `group` (adds the grouped columns to its GROUP BY).
    groupable: bool = True
    # Rows routinely entered with a date in the past (registers, monthly tax): today's figure is
    # then computed from raw rows, not from yesterday's rollup plus today's changes.
    backdated: bool = False
    # The table ("app.Model") of a source defined by events (case_events, alarm_events): today's
    # changes of all such sources on one table come from one scan.
    model: str = ""

    @property
    def windows(self) -> tuple[str, ...]:
        return FLOW_WINDOWS if self.kind == FLOW else ("now",)

    def effective(self, params: dict[str, Any]) -> dict[str, Any]:
        return {**self.defaults, **params}

    def split(self, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, set[Any]]]:
        """(filters the query applies, {lookup: allowed values} taken from grouped rows)."""
        if not self.groupable:
            return params, {}
        shared: dict[str, Any] = {}
        grouped: dict[str, set[Any]] = {}
        for name, value in params.items():
            spec = self.filters.get(name)
            if spec is not None and spec.lookup:
                grouped[spec.lookup] = set(value if isinstance(value, list) else [value])
            else:
                shared[name] = value
        return shared, grouped

    def buckets(
        self, params: dict[str, Any], measure: str, span: Span, group: Group = ()
    ) -> Iterator[Bucket]:
        yield from self.compute(self.effective(params), measure, span, group)


REGISTRY: dict[str, Source] = {}


def register(source: Source) -> Source:
    REGISTRY[source.name] = source
    return source


def get(name: str) -> Source:
    return REGISTRY[name]


# --- the query helpers ---------------------------------------------------------------------------


def filters_q(source_filters: dict[str, Filter], params: dict[str, Any]) -> Q:
    """The column filters among `params` as one Q (the others the source applies itself)."""
    q = Q()
    for name, value in params.items():
        spec = source_filters.get(name)
        if spec is None or not spec.lookup:
            continue
        if isinstance(value, list):
            q &= Q(**{f"{spec.lookup}__in": value})
        else:
            q &= Q(**{spec.lookup: value})
    return q


def apply_filters(qs: QuerySet, source_filters: dict[str, Filter], params: dict[str, Any]) -> QuerySet:
    return qs.filter(filters_q(source_filters, params))


def buckets(
    qs: QuerySet,
    column: Any,
    span: Span,
    *,
    group: Group = (),
    measure: Any = None,
    sign: int = 1,
    path: str = "area_path",
    dates: bool = False,
) -> Iterator[Bucket]:
    """Rows of `qs` grouped by (path, local day of `column`, *group) within the span: one query.

    `column` is a field name or an expression (a datetime, or a date when `dates`); rows whose
    column is null never count. `measure` is summed per bucket."""
    expr = F(column) if isinstance(column, str) else column
    out_field = DateField() if dates else DateTimeField()
    qs = qs.annotate(_at=ExpressionWrapper(expr, output_field=out_field)).filter(_at__isnull=False)
    if dates:
        qs = qs.filter(_at__lte=span.cutoff_day)
        day_expr: Any = F("_at")
        before = Q(_at__lt=span.first)
    else:
        qs = qs.filter(_at__lt=span.cutoff)
        day_expr = _local_date("_at", span)
        before = Q(_at__lt=span.start)
    if span.fold:
        day_expr = Case(When(before, then=Value(span.first)), default=day_expr, output_field=DateField())
    else:
        qs = qs.exclude(before)
    aggregates: dict[str, Any] = {"n": Count("pk")}
    if measure is not None:
        aggregates["s"] = Sum(measure)
    rows = qs.annotate(_p=F(path), _d=day_expr).order_by().values("_p", "_d", *group).annotate(**aggregates)
    for row in rows:
        if not row["_p"]:
            continue
        day = row["_d"]
        if isinstance(day, str):  # SQLite hands a CASE of dates back as text
            day = dt.date.fromisoformat(day)
        elif isinstance(day, dt.datetime):
            day = day.date()
        total = number(row.get("s"))
        yield row["_p"], day, sign * row["n"], sign * total, tuple(row[g] for g in group)


def _local_date(column: str, span: Span) -> Any:
    """The local calendar date of a datetime column. SQLite's TruncDate calls back into Python for
    every row; when the zone keeps one UTC offset over the span (Asia/Shanghai always does), the
    built-in date(column, '+480 minutes') gives the same date without leaving SQLite."""
    tz = timezone.get_current_timezone()
    if connection.vendor == "sqlite":
        offset = span.start.utcoffset()
        if offset is not None and offset == span.cutoff.astimezone(tz).utcoffset():
            minutes = int(offset.total_seconds() // 60)
            return Func(F(column), Value(f"{minutes:+d} minutes"), function="date", output_field=DateField())
    return TruncDate(column, tzinfo=tz)


def number(value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, dt.timedelta):
        return value.total_seconds() / 3600
    return float(value)


def _choices(pairs: Iterable[tuple[Any, Any]]) -> tuple[tuple[str, str], ...]:
    return tuple((str(k), str(v)) for k, v in pairs)


def _on_day(day: dt.date, span: Span) -> dt.date | None:
    """Where a row that came in on `day` lands in the span (None: outside it)."""
    if day > span.cutoff_day or day > span.last:
        return None
    if day < span.first:
        return span.first if span.fold else None
    return day


# --- cases -------------------------------------------------------------------------------------


def _category_classes() -> set[str]:
    from zhizhi.cases.models import Category

    return set(Category.objects.filter(parent__isnull=True).values_list("code", flat=True))


def _category_leaves() -> set[str]:
    from zhizhi.cases.models import Category

    return set(Category.objects.filter(parent__isnull=False).values_list("code", flat=True))


def _case_filters() -> dict[str, Filter]:
    from zhizhi.cases.models import Case

    return {
        "channel": Filter("来源渠道", _choices(Case.CHANNELS), lookup="channel"),
        "category_class": Filter("大类编码", lookup="category__parent__code", choices_from=_category_classes),
        "category": Filter("小类编码", lookup="category__code", choices_from=_category_leaves),
        "urgent": Filter("紧急", kind="bool", many=False, lookup="urgent"),
        "status": Filter("当前状态", _choices(Case.STATUSES), lookup="status"),
        "sla_level": Filter("时限状态", _choices(Case.SLA_LEVELS), lookup="sla_level"),
    }


# When a case stopped being open (办结, or cancelled/merged before that).
CASE_ENDED = ("finished_at", "closed_at", "cancelled_at", "merged_at")


def _ended() -> Any:
    return Coalesce(*[F(c) for c in CASE_ENDED], output_field=DateTimeField())


def _handling_hours() -> Any:
    return ExpressionWrapper(F("finished_at") - F("dispatched_at"), output_field=DurationField())


@dataclass(frozen=True)
class Event:
    """A row of the source's table comes in (+1) or goes out (−1) when `column` passes, if `q`."""

    q: Q
    column: Any
    sign: int = 1
    measure: Any = None


def _ended_known() -> Q:
    out = Q(pk__in=[])
    for column in CASE_ENDED:
        out |= Q(**{f"{column}__isnull": False})
    return out


def case_events(name: str, params: dict[str, Any], measure: str) -> list[Event]:
    """What each case source counts, as events on the case table: the one definition both the
    daily buckets and today's single scan (services.delta) are built from."""
    if name == "cases.reported":
        return [Event(Q(), F("reported_at"))]
    if name == "cases.closed":
        return [Event(Q(), F("closed_at"))]
    if name == "cases.finished":
        q = Q()
        on_time = params.get("on_time")
        if on_time is not None:
            q &= Q(due_at__isnull=False)
            q &= Q(finished_at__lte=F("due_at")) if on_time else Q(finished_at__gt=F("due_at"))
        if params.get("with_deadline"):
            q &= Q(due_at__isnull=False)
        if measure == "handling_hours":
            return [Event(q & Q(dispatched_at__isnull=False), F("finished_at"), measure=_handling_hours())]
        return [Event(q, F("finished_at"))]
    if name == "cases.visited":
        q = ~Q(satisfaction="")
        if params.get("satisfaction"):
            q &= Q(satisfaction__in=params["satisfaction"])
        return [Event(q, F("visited_at"))]
    if name == "cases.open":
        return [Event(Q(), F("reported_at")), Event(Q(), _ended(), sign=-1)]
    if name == "cases.overdue":
        due = Q(due_at__isnull=False)
        return [
            Event(due, F("due_at")),
            Event(
                due & _ended_known(), Greatest(F("due_at"), _ended(), output_field=DateTimeField()), sign=-1
            ),
        ]
    raise KeyError(name)


def _from_events(name: str, model: str) -> Compute:
    def compute(params: dict[str, Any], measure: str, span: Span, group: Group) -> Iterator[Bucket]:
        from django.apps import apps

        qs = apply_filters(apps.get_model(model).objects.all(), FILTERS[model](), params)
        for event in EVENTS[model](name, params, measure):
            yield from buckets(
                qs.filter(event.q), event.column, span, group=group, measure=event.measure, sign=event.sign
            )

    compute.__name__ = name.replace(".", "_")
    compute.__doc__ = f"{name}: daily buckets of the events of {model} (see case_events / alarm_events)."
    return compute


def _event_source(name: str, label: str, label_en: str, kind: str, model: str, **kw: Any) -> Source:
    return Source(name, label, label_en, kind, _from_events(name, model), model=model, **kw)


register(_event_source("cases.reported", "受理案件", "cases reported", FLOW, "cases.Case"))
register(_event_source("cases.closed", "结案案件", "cases closed", FLOW, "cases.Case"))
register(
    _event_source(
        "cases.finished", "办结案件", "cases finished", FLOW, "cases.Case",
        measures={"handling_hours": "处置时长(小时)"},
    )
)  # fmt: skip
register(_event_source("cases.visited", "回访案件", "cases visited", FLOW, "cases.Case"))
register(_event_source("cases.open", "在办案件", "open cases", STOCK, "cases.Case"))
register(_event_source("cases.overdue", "超期未办结案件", "overdue cases", STOCK, "cases.Case"))


# --- alarms, devices, cameras ------------------------------------------------------------------


def _alarm_filters() -> dict[str, Filter]:
    from zhizhi.alerts.models import Alarm, AlertRule, Device

    return {
        "rule_kind": Filter("规则类型", _choices(AlertRule.KINDS), lookup="rule__kind"),
        "rule": Filter("规则编码", lookup="rule__code"),
        "device_kind": Filter("设备类型", _choices(Device.KINDS), lookup="device__kind"),
        "severity": Filter("级别", _choices(Alarm.SEVERITIES), lookup="severity"),
    }


def alarm_events(name: str, params: dict[str, Any], measure: str) -> list[Event]:
    """Alarms: raised on first_seen_at; active from then until cleared_at."""
    if name == "alarms.raised":
        return [Event(Q(), F("first_seen_at"))]
    if name == "alarms.active":
        return [Event(Q(), F("first_seen_at")), Event(Q(), F("cleared_at"), sign=-1)]
    raise KeyError(name)


def _device_filters() -> dict[str, Filter]:
    from zhizhi.alerts.models import Device

    return {
        "kind": Filter("设备类型", _choices(Device.KINDS), lookup="kind"),
        "online": Filter("在线", kind="bool", many=False),
        "online_minutes": Filter("在线判定(分钟)", kind="int", many=False),
    }


def devices(params: dict[str, Any], measure: str, span: Span, group: Group) -> Iterator[Bucket]:
    """Enabled devices; with `online`, those heard from (or not) within `online_minutes` (default 60)."""
    from zhizhi.alerts.models import Device

    qs = apply_filters(Device.objects.filter(enabled=True), _device_filters(), params)
    if "online" in params:
        since = span.cutoff - dt.timedelta(minutes=int(params.get("online_minutes") or 60))
        heard = Q(last_seen_at__gte=since, last_seen_at__lt=span.cutoff)
        qs = qs.filter(heard) if params["online"] else qs.exclude(heard)
    for row in qs.order_by().values("area_path", *group).annotate(n=Count("pk")):
        if row["area_path"]:
            yield row["area_path"], span.last, row["n"], 0.0, tuple(row[g] for g in group)


def cameras(params: dict[str, Any], measure: str, span: Span, group: Group) -> Iterator[Bucket]:
    from zhizhi.intake.models import Camera

    qs = Camera.objects.filter(enabled=True, grid__isnull=False)
    for row in qs.order_by().values("grid__path", *group).annotate(n=Count("pk")):
        yield row["grid__path"], span.last, row["n"], 0.0, tuple(row[g] for g in group)


register(_event_source("alarms.raised", "新发告警", "alarms raised", FLOW, "alerts.Alarm"))
register(_event_source("alarms.active", "活动告警", "active alarms", STOCK, "alerts.Alarm"))
register(Source("devices", "感知设备", "devices", SNAPSHOT, devices))
register(Source("cameras", "视频监控点位", "cameras", SNAPSHOT, cameras))


# --- residents, care, houses -------------------------------------------------------------------


def _person_filters() -> dict[str, Filter]:
    from zhizhi.people.models import Person

    return {
        "population_type": Filter("人口类型", _choices(Person.POPULATION_TYPES), lookup="population_type"),
        "gender": Filter("性别", _choices(Person.GENDERS), lookup="gender"),
        "min_age": Filter("最小年龄", kind="int", many=False),
        "max_age": Filter("最大年龄", kind="int", many=False),
    }


def _years_after(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # born on 29 February: the birthday falls on 1 March
        return day.replace(year=day.year + years, month=3, day=1)


PERSON_DIMS = ("population_type", "gender")


def _person_rows(span: Span) -> list[dict[str, Any]]:
    """One row per resident: where, since when, until when (if gone), birth date and the column
    filters — ONE grouped query, shared by every residents indicator of a computation pass."""
    from zhizhi.people.models import Person

    def fetch() -> list[dict[str, Any]]:
        rows = (
            Person.objects.order_by()
            .values("pk", "area_path", "created_at", "birth_date", "status", *PERSON_DIMS)
            .annotate(since=Min("residencies__start_date"), until=Max("residencies__end_date"))
        )
        return list(rows)

    return memo(("residents", span.cutoff), fetch)


def residents(params: dict[str, Any], measure: str, span: Span, group: Group) -> Iterator[Bucket]:
    """实有人口: a person counts from their earliest residency start (else their registration in
    Zhizhi) and, once no longer 在册 (moved out, deceased), until their last residency end; someone
    not 在册 without such a date leaves the whole history. With min_age/max_age a person counts from
    their min_age birthday until their (max_age + 1) birthday: the age as of each day."""
    wanted = {
        name: set(value if isinstance(value, list) else [value])
        for name, value in params.items()
        if name in PERSON_DIMS
    }
    min_age, max_age = params.get("min_age"), params.get("max_age")
    # Counted here per (path, day, grouped values): a person is a row of the query, not a bucket.
    changes: dict[tuple[str, dt.date, tuple[Any, ...]], int] = defaultdict(int)
    for row in _person_rows(span):
        path = row["area_path"]
        if not path or (wanted and any(row[name] not in allowed for name, allowed in wanted.items())):
            continue
        enter = row["since"] or timezone.localdate(row["created_at"])
        leave = None
        if row["status"] != "active":
            if row["until"] is None:
                continue
            leave = row["until"]
        if min_age is not None:
            enter = max(enter, _years_after(row["birth_date"], int(min_age)))
        if max_age is not None:
            aged_out = _years_after(row["birth_date"], int(max_age) + 1)
            leave = aged_out if leave is None else min(leave, aged_out)
        if leave is not None and leave <= enter:
            continue
        dims = tuple(row[g] for g in group)
        day_in = _on_day(enter, span)
        if day_in is None:
            continue
        changes[(path, day_in, dims)] += 1
        if leave is not None:
            day_out = _on_day(leave, span)
            if day_out is not None:
                changes[(path, day_out, dims)] -= 1
    for (path, day, dims), n in changes.items():
        if n:
            yield path, day, n, 0.0, dims


def care_people(params: dict[str, Any], measure: str, span: Span, group: Group) -> Iterator[Bucket]:
    """重点人群: residents (在册) with at least one of the care tag kinds, each counted once, from the
    earliest date one of those tags was known (its verification or its registration)."""
    from zhizhi.people.models import CareTag

    qs = CareTag.objects.filter(person__status="active")
    if params.get("kind"):
        qs = qs.filter(kind__in=params["kind"])
    if params.get("population_type"):
        qs = qs.filter(person__population_type__in=params["population_type"])
    per_person = (
        qs.order_by()
        .values("person_id", "person__area_path")
        .annotate(created=Min("created_at"), verified=Min("verified_on"))
    )
    for row in per_person:
        path, created = row["person__area_path"], row["created"]
        if not path:
            continue
        known = timezone.localdate(created)
        if row["verified"] is not None:
            known = min(known, row["verified"])
        day = _on_day(known, span)
        if day is not None:
            yield path, day, 1, 0.0, ()


def _care_filters() -> dict[str, Filter]:
    from zhizhi.people.models import CareTag, Person

    return {
        "kind": Filter("关怀类别", _choices(CareTag.KINDS)),
        "population_type": Filter("人口类型", _choices(Person.POPULATION_TYPES)),
    }


def _house_filters() -> dict[str, Filter]:
    from zhizhi.geo.models import Building
    from zhizhi.people.models import House

    return {
        "use": Filter("用途", _choices(House.USES), lookup="use"),
        "building_kind": Filter("楼幢类型", _choices(Building.KINDS), lookup="building__kind"),
    }


def houses(params: dict[str, Any], measure: str, span: Span, group: Group) -> Iterator[Bucket]:
    """实有房屋, from the year their building was built (else their registration in Zhizhi); `use`
    is the current use."""
    from zhizhi.people.models import House

    qs = apply_filters(House.objects.all(), _house_filters(), params)
    rows = (
        qs.order_by()
        .values("area_path", "building__built_year", *group)
        .annotate(n=Count("pk"), created=Min("created_at"))
    )
    for row in rows:
        if not row["area_path"]:
            continue
        year = row["building__built_year"]
        since = dt.date(year, 1, 1) if year else timezone.localdate(row["created"])
        day = _on_day(since, span)
        if day is not None:
            yield row["area_path"], day, row["n"], 0.0, tuple(row[g] for g in group)


register(Source("residents", "实有人口", "residents", STOCK, residents, backdated=True))
register(
    Source(
        "care.people",
        "重点人群",
        "people of special care",
        STOCK,
        care_people,
        groupable=False,
        backdated=True,
    )
)
register(Source("houses", "实有房屋", "houses", STOCK, houses, backdated=True))


# --- enterprises and tax -----------------------------------------------------------------------

LIVE_ENTERPRISE = ["active", "operating"]


def _enterprise_filters() -> dict[str, Filter]:
    from zhizhi.enterprises.models import Enterprise

    return {
        "industry": Filter("行业", _choices(Enterprise.INDUSTRIES), lookup="industry"),
        "status": Filter("状态", _choices(Enterprise.STATUSES), lookup="status"),
    }


def enterprises(params: dict[str, Any], measure: str, span: Span, group: Group) -> Iterator[Bucket]:
    """Enterprises in the street (by default 存续/在业, the current status), from their establishment
    date; those without a date count from their registration in Zhizhi."""
    from zhizhi.enterprises.models import Enterprise

    qs = apply_filters(Enterprise.objects.all(), _enterprise_filters(), params)
    since = Coalesce("established_on", TruncDate("created_at"), output_field=DateField())
    return buckets(qs, since, span, group=group, dates=True)


def enterprises_new(params: dict[str, Any], measure: str, span: Span, group: Group) -> Iterator[Bucket]:
    from zhizhi.enterprises.models import Enterprise

    qs = apply_filters(Enterprise.objects.all(), _enterprise_filters(), params)
    return buckets(qs, "established_on", span, group=group, dates=True)


def _tax_filters() -> dict[str, Filter]:
    from zhizhi.enterprises.models import Enterprise

    return {
        "industry": Filter("行业", _choices(Enterprise.INDUSTRIES), lookup="enterprise__industry"),
        "tax_paid_here": Filter("在本街道纳税", kind="bool", many=False, lookup="tax_paid_here"),
    }


def tax(params: dict[str, Any], measure: str, span: Span, group: Group) -> Iterator[Bucket]:
    """Monthly tax records, each on the first day of its month (所属期): sum `tax_paid` or `revenue`."""
    from zhizhi.enterprises.models import TaxRecord

    qs = apply_filters(TaxRecord.objects.all(), _tax_filters(), params)
    column = ExpressionWrapper(F(measure or "tax_paid"), output_field=FloatField())
    return buckets(qs, "period", span, group=group, measure=column, dates=True)


register(
    Source(
        "enterprises",
        "企业",
        "enterprises",
        STOCK,
        enterprises,
        defaults={"status": LIVE_ENTERPRISE},
        backdated=True,
    )
)
register(Source("enterprises.new", "新设企业", "new enterprises", FLOW, enterprises_new, backdated=True))
register(
    Source(
        "tax",
        "税收与营收",
        "tax and revenue",
        FLOW,
        tax,
        backdated=True,
        measures={"tax_paid": "纳税额(万元)", "revenue": "营业收入(万元)"},
    )
)

FILTERS: dict[str, Callable[[], dict[str, Filter]]] = {
    "cases.Case": _case_filters,
    "alerts.Alarm": _alarm_filters,
}
EVENTS: dict[str, Callable[[str, dict[str, Any], str], list[Event]]] = {
    "cases.Case": case_events,
    "alerts.Alarm": alarm_events,
}

_attached = False


def ensure_filters() -> None:
    """Attach the filters: they read model choices, so not while the app registry is loading."""
    global _attached
    if _attached:
        return
    case_extra = {
        "cases.finished": {
            "on_time": Filter("按期", kind="bool", many=False),
            "with_deadline": Filter("有办理时限", kind="bool", many=False),
        },
        "cases.visited": {
            "satisfaction": Filter(
                "满意度",
                (("satisfied", "满意"), ("basic", "基本满意"), ("unsatisfied", "不满意")),
                lookup="satisfaction",
            )
        },
    }
    specs: dict[str, Callable[[], dict[str, Filter]]] = {
        "alarms.raised": _alarm_filters,
        "alarms.active": _alarm_filters,
        "devices": _device_filters,
        "residents": _person_filters,
        "care.people": _care_filters,
        "houses": _house_filters,
        "enterprises": _enterprise_filters,
        "enterprises.new": _enterprise_filters,
        "tax": _tax_filters,
    }
    for name in (
        "cases.reported",
        "cases.closed",
        "cases.finished",
        "cases.visited",
        "cases.open",
        "cases.overdue",
    ):
        REGISTRY[name].filters.update({**_case_filters(), **case_extra.get(name, {})})
    for name, spec in specs.items():
        REGISTRY[name].filters.update(spec())
    _attached = True


# --- checking a definition ---------------------------------------------------------------------


def _check_params(source: Source, params: Any, field_name: str, problems: list[Problem]) -> None:
    if not isinstance(params, dict):
        problems.append(
            Problem(
                "params_not_object",
                "筛选条件须为对象（键: 值）",
                "filters must be an object (key: value)",
                field=field_name,
                value=params,
            )
        )
        return
    for name, value in params.items():
        spec = source.filters.get(name)
        if spec is None:
            known = "、".join(sorted(source.filters)) or "无"
            problems.append(
                Problem(
                    "unknown_filter",
                    f"数据来源「{source.name}」没有筛选字段「{name}」",
                    f"source '{source.name}' has no filter '{name}'",
                    field=field_name,
                    value=name,
                    expected_zh=known,
                    expected_en=", ".join(sorted(source.filters)) or "none",
                )
            )
            continue
        values = value if isinstance(value, list) else [value]
        if isinstance(value, list) and not spec.many:
            problems.append(
                Problem(
                    "filter_not_list",
                    f"筛选字段「{name}」只取一个值",
                    f"filter '{name}' takes a single value",
                    field=field_name,
                    value=value,
                )
            )
            continue
        if not values:
            problems.append(
                Problem(
                    "filter_empty",
                    f"筛选字段「{name}」不能为空列表",
                    f"filter '{name}' is an empty list",
                    field=field_name,
                    value=name,
                )
            )
        for v in values:
            if spec.kind == "bool" and not isinstance(v, bool):
                problems.append(
                    Problem(
                        "filter_not_bool",
                        f"筛选字段「{name}」应为 true/false",
                        f"filter '{name}' must be true or false",
                        field=field_name,
                        value=v,
                    )
                )
            elif spec.kind == "int" and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                problems.append(
                    Problem(
                        "filter_not_int",
                        f"筛选字段「{name}」应为非负整数",
                        f"filter '{name}' must be a whole number ≥ 0",
                        field=field_name,
                        value=v,
                    )
                )
            elif spec.kind == "str" and not isinstance(v, str):
                problems.append(
                    Problem(
                        "filter_not_text",
                        f"筛选字段「{name}」应为文字",
                        f"filter '{name}' must be text",
                        field=field_name,
                        value=v,
                    )
                )
            else:
                allowed = spec.allowed()
                if allowed is not None and str(v) not in allowed:
                    shown = sorted(allowed)
                    if spec.choices:
                        shown = [f"{c}({label})" for c, label in spec.choices]
                    problems.append(
                        Problem(
                            "filter_bad_value",
                            f"筛选字段「{name}」没有取值「{v}」",
                            f"filter '{name}' has no value '{v}'",
                            field=field_name,
                            value=v,
                            expected_zh="、".join(shown[:60]),
                            expected_en=", ".join(sorted(allowed)[:60]),
                        )
                    )


def _check_part(
    source_name: str, params: Any, window: str, measure: str, prefix: str, problems: list[Problem]
) -> Source | None:
    ensure_filters()
    source = REGISTRY.get(source_name)
    if source is None:
        problems.append(
            Problem(
                "unknown_source",
                f"未登记的数据来源「{source_name}」",
                f"unknown source '{source_name}'",
                field=f"{prefix}source",
                value=source_name,
                expected_zh="、".join(sorted(REGISTRY)),
                expected_en=", ".join(sorted(REGISTRY)),
            )
        )
        return None
    _check_params(source, params, f"{prefix}params", problems)
    if window not in source.windows:
        problems.append(
            Problem(
                "bad_window",
                f"数据来源「{source.name}」不支持时间窗口「{window}」",
                f"source '{source.name}' has no window '{window}'",
                field=f"{prefix}window",
                value=window,
                expected_zh="、".join(source.windows),
                expected_en=", ".join(source.windows),
            )
        )
    if measure and measure not in source.measures:
        problems.append(
            Problem(
                "unknown_measure",
                f"数据来源「{source.name}」没有度量「{measure}」",
                f"source '{source.name}' has no measure '{measure}'",
                field="measure",
                value=measure,
                expected_zh="、".join(source.measures) or "无",
                expected_en=", ".join(source.measures) or "none",
            )
        )
    return source


def check_indicator(ind: Any) -> None:
    """Raise Invalid with every problem of an indicator definition (field-located, zh + en)."""
    problems: list[Problem] = []
    source = _check_part(ind.source, ind.params, ind.window, ind.measure, "", problems)
    agg = ind.aggregation
    if agg in ("sum", "avg") and source is not None and not ind.measure:
        problems.append(
            Problem(
                "measure_required",
                "求和/平均须选择度量",
                "a sum or an average needs a measure",
                field="measure",
                expected_zh="、".join(source.measures) or "（该来源无度量，请用计数）",
                expected_en=", ".join(source.measures) or "(this source has none: use count)",
            )
        )
    if agg in ("ratio", "growth"):
        if not ind.denominator_source:
            problems.append(
                Problem(
                    "denominator_required",
                    "比率/增长率须填写分母来源",
                    "a ratio or growth needs a denominator source",
                    field="denominator_source",
                )
            )
        else:
            _check_part(
                ind.denominator_source,
                ind.denominator_params,
                ind.denominator_window or ind.window,
                ind.measure if agg == "growth" else "",
                "denominator_",
                problems,
            )
    elif ind.denominator_source:
        problems.append(
            Problem(
                "denominator_unused",
                "只有比率/增长率使用分母来源",
                "only a ratio or growth uses a denominator source",
                field="denominator_source",
            )
        )
    if source is not None and source.kind == SNAPSHOT and agg in ("ratio", "growth"):
        den = REGISTRY.get(ind.denominator_source)
        if den is not None and den.kind != SNAPSHOT:
            problems.append(
                Problem(
                    "snapshot_mix",
                    "快照来源只能与快照来源组成比率",
                    "a snapshot source only divides by another snapshot source",
                    field="denominator_source",
                )
            )
    if problems:
        raise Invalid(problems)
