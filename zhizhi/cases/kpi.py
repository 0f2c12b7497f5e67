"""Case KPIs (考核指标) per unit, grid, person, category, region and period.

Every breakdown is ONE grouped SQL query of conditional counts over the caller's visible cases
(portable: SQLite and PostgreSQL), plus one ordered query of handling times for the p90 (the
nearest-rank percentile of a sorted list; the same code on both engines). Which case counts in
which figure (period P = [start, end), local time):

    受理数 accepted       reported_at in P
    立案数 registered     registered_at in P
    应结案数 due          the handling deadline `due_at` (with approved extensions) in P,
                          not cancelled or merged — the cohort of the three rates below
    缓办数 deferred       of the due cohort, those deferred (缓办) now
    结案数 closed         of the due cohort, those closed (closed_at set: 已结案/已回访/回访不满意)
    按期结案数            of the closed ones, finished (办结) no later than due_at
    结案率                结案数 / 应结案数
    按期结案率            按期结案数 / (应结案数 − 缓办数)
    返工率                of the closed ones, those reworked at least once (核查不通过 or 重办)
    延期率                of the due cohort, those with at least one approved extension
    按期签收率            of cases dispatched in P and signed, those whose sign-for stage never
                          turned red (no `sla_red` timeline event for stage "sign")
    满意率                of cases visited (回访) in P, 满意 + 基本满意
    处置时长              finished_at − dispatched_at (calendar hours) of cases finished in P:
                          average and p90
    工作量 workload       timeline events in P per actor (and distinct cases they touched)

A rate whose denominator is 0 is None ("—" on the page), never 0 % or 100 %.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import (
    Avg,
    CharField,
    Count,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
    Value,
)
from django.db.models.functions import Substr
from django.utils import timezone

from zhizhi.cases.models import Case, CaseEvent

SATISFIED = ("satisfied", "basic")
GONE = ("cancelled", "merged")

# (key, 中文, English) of every figure, in the order of the table and the Excel sheet.
COLUMNS: list[tuple[str, str, str]] = [
    ("accepted", "受理数", "Accepted"),
    ("registered", "立案数", "Registered"),
    ("due", "应结案数", "Due to close"),
    ("deferred", "缓办数", "Deferred"),
    ("closed", "结案数", "Closed"),
    ("closed_on_time", "按期结案数", "Closed on time"),
    ("close_rate", "结案率", "Close rate"),
    ("on_time_rate", "按期结案率", "On-time close rate"),
    ("rework_rate", "返工率", "Rework rate"),
    ("extension_rate", "延期率", "Extension rate"),
    ("sign_on_time_rate", "按期签收率", "On-time sign-for rate"),
    ("satisfaction_rate", "满意率", "Satisfaction rate"),
    ("avg_hours", "平均处置时长(小时)", "Average handling (h)"),
    ("p90_hours", "P90处置时长(小时)", "P90 handling (h)"),
]
RATES = {
    "close_rate",
    "on_time_rate",
    "rework_rate",
    "extension_rate",
    "sign_on_time_rate",
    "satisfaction_rate",
}
# What a breakdown groups by: a column of Case.
DIMENSIONS = {"unit": "unit", "grid": "grid", "person": "assignee", "category": "category"}


@dataclass(frozen=True)
class Period:
    start: dt.datetime
    end: dt.datetime
    label: str

    @classmethod
    def month(cls, year: int, month: int) -> Period:
        tz = timezone.get_current_timezone()
        start = dt.datetime(year, month, 1, tzinfo=tz)
        end = dt.datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=tz)
        return cls(start, end, f"{year}-{month:02d}")

    @classmethod
    def days(cls, first: dt.date, last: dt.date) -> Period:
        """From the start of `first` to the end of `last` (both included)."""
        tz = timezone.get_current_timezone()
        start = dt.datetime.combine(first, dt.time(), tzinfo=tz)
        end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), tzinfo=tz)
        return cls(start, end, f"{first.isoformat()} ~ {last.isoformat()}")

    def previous_months(self, count: int) -> list[Period]:
        """`count` calendar months ending with the one holding this period's start (for trends)."""
        out: list[Period] = []
        local = timezone.localtime(self.start)
        year, month = local.year, local.month
        for _ in range(count):
            out.append(Period.month(year, month))
            year, month = (year - 1, 12) if month == 1 else (year, month - 1)
        return out[::-1]


@dataclass
class KpiRow:
    key: Any
    label: str = ""
    url: str = ""
    accepted: int = 0
    registered: int = 0
    due: int = 0
    deferred: int = 0
    closed: int = 0
    closed_on_time: int = 0
    reworked: int = 0
    extended: int = 0
    signed: int = 0
    signed_on_time: int = 0
    visited: int = 0
    satisfied: int = 0
    finished: int = 0
    avg_hours: float | None = None
    p90_hours: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def _rate(part: int, whole: int) -> float | None:
        return part / whole if whole > 0 else None

    @property
    def close_rate(self) -> float | None:
        return self._rate(self.closed, self.due)

    @property
    def on_time_rate(self) -> float | None:
        return self._rate(self.closed_on_time, self.due - self.deferred)

    @property
    def rework_rate(self) -> float | None:
        return self._rate(self.reworked, self.closed)

    @property
    def extension_rate(self) -> float | None:
        return self._rate(self.extended, self.due)

    @property
    def sign_on_time_rate(self) -> float | None:
        return self._rate(self.signed_on_time, self.signed)

    @property
    def satisfaction_rate(self) -> float | None:
        return self._rate(self.satisfied, self.visited)

    def value(self, key: str) -> Any:
        return getattr(self, key)

    def as_dict(self) -> dict[str, Any]:
        out = {"key": self.key, "label": self.label}
        out.update({key: self.value(key) for key, _, _ in COLUMNS})
        return out


def _within(column: str, period: Period) -> Q:
    return Q(**{f"{column}__gte": period.start, f"{column}__lt": period.end})


def _handling_time() -> ExpressionWrapper:
    return ExpressionWrapper(F("finished_at") - F("dispatched_at"), output_field=DurationField())


def _aggregates(period: Period) -> dict[str, Any]:
    due = _within("due_at", period) & ~Q(status__in=GONE)
    closed = due & Q(closed_at__isnull=False)
    dispatched_signed = _within("dispatched_at", period) & Q(signed_at__isnull=False)
    visited = _within("visited_at", period) & ~Q(satisfaction="")
    finished = _within("finished_at", period) & Q(dispatched_at__isnull=False)
    return {
        "accepted": Count("id", filter=_within("reported_at", period)),
        "registered": Count("id", filter=_within("registered_at", period)),
        "due": Count("id", filter=due),
        "deferred": Count("id", filter=due & Q(status="deferred")),
        "closed": Count("id", filter=closed),
        "closed_on_time": Count("id", filter=closed & Q(finished_at__lte=F("due_at"))),
        "reworked": Count("id", filter=closed & Q(rework_count__gt=0)),
        "extended": Count("id", filter=due & Q(extension_count__gt=0)),
        "signed": Count("id", filter=dispatched_signed),
        "signed_on_time": Count("id", filter=dispatched_signed & Q(kpi_sign_red=False)),
        "visited": Count("id", filter=visited),
        "satisfied": Count("id", filter=visited & Q(satisfaction__in=SATISFIED)),
        "finished": Count("id", filter=finished),
        "avg_handling": Avg(_handling_time(), filter=finished),
    }


def _relevant(cases: QuerySet[Case], period: Period) -> QuerySet[Case]:
    """Only rows that can count in some figure (each date column is indexed or narrow)."""
    touched = Q()
    for column in ("reported_at", "registered_at", "due_at", "dispatched_at", "visited_at", "finished_at"):
        touched |= _within(column, period)
    sign_red = CaseEvent.objects.filter(case=OuterRef("pk"), action="sla_red", data__stage="sign")
    return cases.filter(touched).annotate(kpi_sign_red=Exists(sign_red))


def _hours(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, dt.timedelta):
        return value.total_seconds() / 3600
    return float(value) / 3_600_000_000  # SQLite hands an average duration back in microseconds


def p90(values: list[float]) -> float | None:
    """Nearest-rank 90th percentile of an ascending list: the value at rank ⌈0.9·n⌉."""
    if not values:
        return None
    return values[max(math.ceil(0.9 * len(values)) - 1, 0)]


def breakdown(
    cases: QuerySet[Case], period: Period, by: str | None = None, *, times: bool = True
) -> list[KpiRow]:
    """KPI rows of `cases` in `period`, one per value of `by` (None: one total row).

    `by` is a DIMENSIONS key or "prefix:<n>" (the first n characters of area_path, i.e. one
    region level below a parent: street → communities → grids). `times=False` leaves out the
    handling times (average and p90), for charts that do not show them."""
    qs = _relevant(cases, period)
    if by is None:
        key_expr: Any = Value(None, output_field=CharField())
    elif by.startswith("prefix:"):
        key_expr = Substr("area_path", 1, int(by.split(":", 1)[1]))
    else:
        key_expr = F(f"{DIMENSIONS[by]}_id")
    aggregates = _aggregates(period)
    if not times:
        aggregates.pop("avg_handling")
    if by is None:
        grouped: list[dict[str, Any]] = [{"k": None, **qs.aggregate(**aggregates)}]
    else:
        grouped = [dict(g) for g in qs.annotate(k=key_expr).values("k").annotate(**aggregates).order_by("k")]
    by_key: dict[Any, list[float]] = defaultdict(list)
    if times:
        # Ordered by group then duration, so each group's list arrives sorted for the percentile.
        finished = cases.filter(_within("finished_at", period), dispatched_at__isnull=False)
        pairs = finished.annotate(k=key_expr, d=_handling_time()).order_by("k", "d").values_list("k", "d")
        for key, d in pairs:
            hours = _hours(d)
            if hours is not None:
                by_key[None if by is None else key].append(hours)
    rows = []
    for g in grouped:
        avg = g.pop("avg_handling", None)
        key = g.pop("k")
        row = KpiRow(key=key, **g)
        row.avg_hours = _hours(avg)
        row.p90_hours = p90(by_key.get(key, []))
        rows.append(row)
    return rows


def total(cases: QuerySet[Case], period: Period, *, times: bool = True) -> KpiRow:
    return breakdown(cases, period, None, times=times)[0]


def trend(cases: QuerySet[Case], period: Period, months: int = 6, *, times: bool = True) -> list[KpiRow]:
    """One total row per calendar month, the last `months` months up to the period's month.

    One scan for all months: every month's conditional counts are columns of a single aggregate
    query (and one ordered query of handling times when `times`)."""
    periods = period.previous_months(months)
    whole = Period(periods[0].start, periods[-1].end, "")
    aggregates: dict[str, Any] = {}
    for index, month in enumerate(periods):
        for name, aggregate in _aggregates(month).items():
            if name != "avg_handling" or times:
                aggregates[f"m{index}__{name}"] = aggregate
    values = _relevant(cases, whole).aggregate(**aggregates)
    durations: list[list[float]] = [[] for _ in periods]
    if times:
        finished = cases.filter(_within("finished_at", whole), dispatched_at__isnull=False)
        for at, d in finished.annotate(d=_handling_time()).order_by("d").values_list("finished_at", "d"):
            hours = _hours(d)
            for index, month in enumerate(periods):
                if hours is not None and at is not None and month.start <= at < month.end:
                    durations[index].append(hours)
    out = []
    for index, month in enumerate(periods):
        prefix = f"m{index}__"
        counts = {k[len(prefix) :]: v for k, v in values.items() if k.startswith(prefix)}
        avg = counts.pop("avg_handling", None)
        row = KpiRow(key=month.label, label=month.label, **counts)
        row.avg_hours = _hours(avg)
        row.p90_hours = p90(durations[index]) if times else None
        out.append(row)
    return out


def workload(cases: QuerySet[Case], period: Period) -> list[dict[str, Any]]:
    """Timeline events per actor in the period on the given cases (system events left out):
    one grouped query; each dict has actor_id, events, cases and a per-action count."""
    events = CaseEvent.objects.filter(
        _within("at", period), actor__isnull=False, case_id__in=cases.values("pk")
    )
    totals = {
        r["actor_id"]: r
        for r in events.values("actor_id").annotate(events=Count("id"), cases=Count("case_id", distinct=True))
    }
    per_action: dict[int, dict[str, int]] = defaultdict(dict)
    for r in events.values("actor_id", "action").annotate(n=Count("id")):
        per_action[r["actor_id"]][r["action"]] = r["n"]
    rows = [{**r, "actions": per_action[a]} for a, r in totals.items()]
    return sorted(rows, key=lambda r: (-r["events"], r["actor_id"]))


def label_rows(
    rows: Iterable[KpiRow], labels: dict[Any, str], none_label: str = "（未指定）"
) -> list[KpiRow]:
    out = list(rows)
    for row in out:
        row.label = labels.get(row.key, none_label if row.key in (None, "") else str(row.key))
    return out
