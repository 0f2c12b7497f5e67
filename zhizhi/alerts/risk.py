"""The risk-area list (风险区名单) and the list match (`list_match` rules) against residents' returns.

When the list changes (an entry saved, deleted or imported), when a resident's travel record changes,
and once an hour (entries start and expire by date), `run()` recomputes which residents match an entry
in force and brings the alarms in line: one active `list_match` alarm per person and rule (source
`person:<id>`, severity from the highest matching level), cleared when nothing matches any more. Each
newly raised (or escalated) alarm is pushed as a list to the grid worker of the person's grid and the
community workers above it: one inbox message per worker and run, linking the matched-residents page.

A resident matches an entry when a travel record's origin is the entry's region (region code prefix,
or the region name inside the origin text) and they came back between `lookback_days` (default 14)
before the entry took effect and its end (see docs/risk-areas.md).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, BinaryIO
from urllib.parse import urlencode

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from zhizhi import clock, exchange
from zhizhi.alerts import alarms
from zhizhi.alerts.risk_models import RiskArea, TravelRecord
from zhizhi.alerts.rule_models import Alarm, AlertRule
from zhizhi.context import acting_as
from zhizhi.people.models import Person
from zhizhi.problems import Forbidden, Invalid, Problem

DEFAULT_LOOKBACK_DAYS = 14
LEVEL_SEVERITY = {RiskArea.HIGH: "major", RiskArea.MEDIUM: "minor", RiskArea.LOW: "info"}
LEVEL_RANK = {RiskArea.HIGH: 3, RiskArea.MEDIUM: 2, RiskArea.LOW: 1}
LEVEL_WORDS = {
    "高": RiskArea.HIGH,
    "高风险": RiskArea.HIGH,
    "high": RiskArea.HIGH,
    "中": RiskArea.MEDIUM,
    "中风险": RiskArea.MEDIUM,
    "medium": RiskArea.MEDIUM,
    "低": RiskArea.LOW,
    "低风险": RiskArea.LOW,
    "low": RiskArea.LOW,
}
MATCHES_URL = "/alerts/risk/matches/"
_CODE = re.compile(r"^(\d{6}|\d{9}|\d{12})$")
_SPACE = re.compile(r"\s+")


# --- who ---------------------------------------------------------------------------------------------
def can_maintain(user: Any) -> bool:
    """Street-level editors (and the admin) keep the list; others may be granted `change` on it."""
    from zhizhi.alerts.desk import EDITOR_ROLES
    from zhizhi.permissions import can

    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    return bool(
        user.is_superuser or getattr(user, "role", "") in EDITOR_ROLES or can(user, "change", RiskArea)
    )


def _require_maintainer(user: Any) -> None:
    if not can_maintain(user):
        raise Forbidden("无权维护风险区名单", "You may not maintain the risk-area list")


# --- one entry ---------------------------------------------------------------------------------------
@dataclass
class Col:
    name: str
    zh: str
    en: str
    required: bool = False


COLUMNS = [
    Col("region_name", "地区名称", "Region name", True),
    Col("region_code", "行政区划代码", "Region code"),
    Col("level", "风险等级", "Level", True),
    Col("valid_from", "生效日期", "Valid from", True),
    Col("valid_to", "截止日期", "Valid to"),
    Col("source", "来源", "Source"),
]


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip().replace("/", "-").replace(".", "-")
    if re.fullmatch(r"\d{8}", text):
        text = f"{text[:4]}-{text[4:6]}-{text[6:]}"
    parts = text.split("-")
    if len(parts) != 3:
        raise ValueError(text)
    return dt.date(int(parts[0]), int(parts[1]), int(parts[2]))


def parse_entry(
    raw: dict[str, Any], *, row: int | None = None, headers: dict[str, str] | None = None
) -> tuple[dict[str, Any], list[Problem]]:
    """Check one entry (a form or a sheet row); problems carry the field, and the row and column when
    they come from a sheet."""
    problems: list[Problem] = []
    values: dict[str, Any] = {}

    def problem(
        name: str, zh: str, en: str, value: Any = None, expected_zh: str = "", expected_en: str = ""
    ) -> None:
        problems.append(
            Problem(
                name,
                zh,
                en,
                field=name,
                row=row,
                column=(headers or {}).get(name, ""),
                value=None if value is None else str(value)[:80],
                expected_zh=expected_zh,
                expected_en=expected_en,
            )
        )

    def text(name: str) -> str:
        value = raw.get(name)
        return "" if value is None else str(value).strip()

    for col in COLUMNS:
        if col.required and not text(col.name):
            problem(col.name, f"请填写{col.zh}", f"{col.en} is required")
    name = _SPACE.sub("", text("region_name"))
    if len(name) > 100:
        problem("region_name", "地区名称不超过100字", "Region name: at most 100 characters", name)
    values["region_name"] = name
    code = text("region_code")
    if code.endswith(".0"):
        code = code[:-2]  # a number cell read as a float
    if code and not _CODE.fullmatch(code):
        problem(
            "region_code",
            "行政区划代码应为6、9或12位数字",
            "The region code has 6, 9 or 12 digits",
            code,
            "如 130109（区县）",
            "e.g. 130109 (a county)",
        )
    values["region_code"] = code
    level = text("level")
    if level:
        if level.lower() not in LEVEL_WORDS:
            problem("level", "风险等级无效", "Unknown risk level", level, "高、中、低", "high, medium, low")
        else:
            values["level"] = LEVEL_WORDS[level.lower()]
    for name_ in ("valid_from", "valid_to"):
        value = raw.get(name_)
        if value in (None, ""):
            values[name_] = None
            continue
        try:
            values[name_] = _date(value)
        except (TypeError, ValueError):
            problem(name_, "日期无效", "Not a valid date", value, "YYYY-MM-DD", "YYYY-MM-DD")
    if values.get("valid_from") and values.get("valid_to") and values["valid_to"] < values["valid_from"]:
        problem("valid_to", "截止日期早于生效日期", "Valid to is before valid from", values["valid_to"])
    source = text("source")
    if len(source) > 100:
        problem("source", "来源不超过100字", "Source: at most 100 characters", source)
    values["source"] = source
    return values, problems


def _assign(area: RiskArea, values: dict[str, Any]) -> bool:
    changed = False
    for key in ("region_name", "region_code", "level", "valid_from", "valid_to", "source"):
        if getattr(area, key) != values[key]:
            setattr(area, key, values[key])
            changed = True
    return changed


def save_area(actor: Any, raw: dict[str, Any], area: RiskArea | None = None) -> RiskArea:
    """Add or change one entry from the page, then re-run the match (same transaction)."""
    _require_maintainer(actor)
    values, problems = parse_entry(raw)
    if not problems:
        clash = RiskArea.objects.filter(region_name=values["region_name"], valid_from=values["valid_from"])
        if area is not None:
            clash = clash.exclude(pk=area.pk)
        if clash.exists():
            problems.append(
                Problem(
                    "duplicate",
                    "同一地区同一生效日期已有记录",
                    "This region already has an entry from that date",
                    field="region_name",
                    value=values["region_name"],
                )
            )
    if problems:
        raise Invalid(problems)
    with acting_as(actor), transaction.atomic():
        area = area or RiskArea()
        if _assign(area, values) or area.pk is None:
            area.save()
        run()
    return area


def delete_area(actor: Any, area: RiskArea) -> None:
    _require_maintainer(actor)
    with acting_as(actor), transaction.atomic():
        area.delete()
        run()


# --- import ------------------------------------------------------------------------------------------
def import_areas(actor: Any, fileobj: BinaryIO | Any, filename: str) -> dict[str, int]:
    """Import entries from .xlsx or .csv (same file reading as the registry import): every problem with
    its row and column in both languages, and nothing written unless the whole file is right. Entries
    are matched on (region name, valid from): new ones are added, changed ones updated."""
    _require_maintainer(actor)
    table = exchange.open_table(exchange.read_limited(fileobj), filename)
    aliases = {alias.strip().lower(): col for col in COLUMNS for alias in (col.zh, col.en, col.name)}
    problems: list[Problem] = []
    mapping: list[Col | None] = []
    headers: dict[str, str] = {}
    for header in table.headers:
        col = aliases.get(header.lower()) if header else None
        if header and col is None:
            problems.append(
                Problem(
                    "unknown_column",
                    f"未知的列「{header}」",
                    f"Unknown column '{header}'",
                    row=exchange.HEADER_ROW,
                    column=header,
                    value=header,
                    expected_zh="、".join(c.zh for c in COLUMNS),
                    expected_en=", ".join(c.en for c in COLUMNS),
                )
            )
        elif col is not None and col.name in headers:
            problems.append(
                Problem(
                    "duplicate_column",
                    f"列「{header}」重复",
                    f"Column '{header}' repeats",
                    row=exchange.HEADER_ROW,
                    column=header,
                    value=header,
                )
            )
            col = None
        if col is not None:
            headers[col.name] = header
        mapping.append(col)
    if not table.headers:
        problems.append(Problem("empty_file", "文件是空的", "The file is empty", row=exchange.HEADER_ROW))
    for col in COLUMNS:
        if col.required and table.headers and col.name not in headers:
            problems.append(
                Problem(
                    "missing_column",
                    f"缺少必填列「{col.zh}」",
                    f"The required column '{col.en}' is missing",
                    row=exchange.HEADER_ROW,
                    column=col.zh,
                    expected_zh=col.zh,
                    expected_en=col.en,
                )
            )
    if problems:
        raise Invalid(problems)
    rows: list[tuple[int, dict[str, Any]]] = []
    seen: dict[tuple[str, dt.date], int] = {}
    for number, cells, formulas in table.rows:
        raw: dict[str, Any] = {}
        for index, value in enumerate(cells):
            col = mapping[index] if index < len(mapping) else None
            value = exchange.clean_cell(value)
            if col is None or value is None:
                continue
            if index in formulas:
                problems.append(
                    Problem(
                        "formula",
                        "公式单元格不被接受",
                        "Formula cells are not accepted",
                        row=number,
                        column=headers[col.name],
                        field=col.name,
                        value=str(value)[:80],
                    )
                )
                continue
            raw[col.name] = value
        if not raw:
            continue
        values, row_problems = parse_entry(raw, row=number, headers=headers)
        problems += row_problems
        key = (values.get("region_name", ""), values.get("valid_from"))
        if not row_problems and key in seen:
            problems.append(
                Problem(
                    "duplicate_row",
                    f"与第{seen[key]}行重复（同一地区同一生效日期）",
                    f"Repeats row {seen[key]} (same region and valid-from date)",
                    row=number,
                    column=headers["region_name"],
                    field="region_name",
                    value=key[0],
                )
            )
        seen.setdefault(key, number)  # type: ignore[arg-type]
        rows.append((number, values))
    if problems:
        raise Invalid(sorted(problems, key=lambda p: p.row or 0))
    counts = {"created": 0, "updated": 0, "unchanged": 0, "total": len(rows)}
    with acting_as(actor), transaction.atomic():
        existing = {(a.region_name, a.valid_from): a for a in RiskArea.objects.select_for_update()}
        for _, values in rows:
            area = existing.get((values["region_name"], values["valid_from"]))
            if area is None:
                area = RiskArea()
                _assign(area, values)
                area.save()
                counts["created"] += 1
            elif _assign(area, values):
                area.save()
                counts["updated"] += 1
            else:
                counts["unchanged"] += 1
        result = run()
    counts.update({f"alarms_{k}": v for k, v in result.items()})
    return counts


def template_csv() -> bytes:
    head = ",".join(c.zh for c in COLUMNS)
    return ("\ufeff" + head + "\n石家庄市藁城区,130109,高,2026-07-01,,国务院客户端\n").encode()


# --- travel records --------------------------------------------------------------------------------
def record_travel(
    actor: Any,
    person: Person,
    *,
    arrived_on: Any,
    origin: str = "",
    origin_code: str = "",
    source: str = "self_report",
    note: str = "",
) -> TravelRecord:
    """A resident came back (报备 or found on a visit): store it and match this person at once."""
    problems: list[Problem] = []
    if not Person.objects.visible_to(actor, "change").filter(pk=person.pk).exists():
        raise Forbidden("无权为该居民登记返回信息", "You may not record this resident's return")
    day: dt.date | None = None
    try:
        day = _date(arrived_on)
        if day > clock.today():
            problems.append(
                Problem(
                    "future",
                    "返回日期不能晚于今天",
                    "The return date cannot be in the future",
                    field="arrived_on",
                    value=str(day),
                )
            )
    except (TypeError, ValueError):
        problems.append(
            Problem(
                "arrived_on",
                "返回日期无效",
                "Not a valid return date",
                field="arrived_on",
                value=str(arrived_on),
                expected_zh="YYYY-MM-DD",
                expected_en="YYYY-MM-DD",
            )
        )
    origin = _SPACE.sub("", origin or "")
    if not origin and not person.origin:
        problems.append(
            Problem("origin", "请填写来源地", "Where did the resident come back from?", field="origin")
        )
    if origin_code and not _CODE.fullmatch(origin_code):
        problems.append(
            Problem(
                "origin_code",
                "区划代码应为6、9或12位数字",
                "The region code has 6, 9 or 12 digits",
                field="origin_code",
                value=origin_code,
            )
        )
    if source not in dict(TravelRecord.SOURCES):
        problems.append(Problem("source", "信息来源无效", "Unknown source", field="source", value=source))
    if problems:
        raise Invalid(problems)
    assert day is not None
    with acting_as(actor), transaction.atomic():
        record = TravelRecord.objects.create(
            person=person,
            origin=origin,
            origin_code=origin_code,
            arrived_on=day,
            source=source,
            note=note[:200],
        )
        run(person_ids=[person.pk])
    return record


def delete_travel(actor: Any, record: TravelRecord) -> None:
    if not Person.objects.visible_to(actor, "change").filter(pk=record.person_id).exists():
        raise Forbidden("无权修改该居民的返回信息", "You may not change this resident's return")
    with acting_as(actor), transaction.atomic():
        person_id = record.person_id
        record.delete()
        run(person_ids=[person_id])


# --- matching ----------------------------------------------------------------------------------------
def _norm(text: str) -> str:
    return _SPACE.sub("", text or "")


def origin_matches(area: RiskArea, origin: str, origin_code: str = "") -> bool:
    if area.region_code and origin_code:
        return origin_code.startswith(area.region_code)
    name = _norm(area.region_name)
    return bool(name) and name in _norm(origin)


def list_rules() -> list[AlertRule]:
    rules = AlertRule.objects.filter(kind=AlertRule.LIST_MATCH, enabled=True).order_by("code")
    return [r for r in rules if (r.params or {}).get("list", "risk_area") == "risk_area"]


@dataclass
class Return:
    """The part of a travel record the match needs (read as plain values: many rows, few matches)."""

    pk: int
    arrived_on: dt.date
    origin: str


@dataclass
class Match:
    person: Person
    entries: list[tuple[RiskArea, Return]] = field(default_factory=list)

    @property
    def level(self) -> str:
        return max((a.level for a, _ in self.entries), key=lambda lv: LEVEL_RANK[lv])


def matches(
    day: dt.date, *, lookback_days: int = DEFAULT_LOOKBACK_DAYS, person_ids: Iterable[int] | None = None
) -> dict[int, Match]:
    """Residents (active) matching an entry in force on `day`, by person id."""
    areas = list(RiskArea.objects.filter(RiskArea.in_force_q(day)).order_by("pk"))
    if not areas:
        return {}
    lookback = dt.timedelta(days=lookback_days)
    earliest = min(a.valid_from for a in areas) - lookback
    records = TravelRecord.objects.filter(
        arrived_on__gte=earliest, arrived_on__lte=day, person__status="active"
    )
    if person_ids is not None:
        records = records.filter(person_id__in=list(person_ids))
    found: dict[int, list[tuple[RiskArea, Return]]] = {}
    names = {area.pk: _norm(area.region_name) for area in areas}
    spans = {area.pk: (area.valid_from - lookback, area.valid_to or day) for area in areas}
    # Candidates per record without looping over every area: entries by region code (a record's code
    # is looked up by its 6-, 9- and 12-digit prefixes), and the entries whose name is in an origin
    # text, remembered per text (returns from one place repeat).
    coded: dict[str, list[RiskArea]] = {}
    for area in areas:
        if area.region_code:
            coded.setdefault(area.region_code, []).append(area)
    lengths = sorted({len(c) for c in coded})
    named: dict[str, list[RiskArea]] = {}
    rows = records.order_by("person_id", "-arrived_on", "pk").values_list(
        "pk", "person_id", "origin", "origin_code", "arrived_on", "person__origin"
    )
    for pk, person_id, origin, code, arrived_on, home in rows.iterator(chunk_size=5000):
        where = origin or home
        text = _norm(where)
        by_name = named.get(text)
        if by_name is None:
            by_name = named[text] = [a for a in areas if names[a.pk] and names[a.pk] in text]
        # When both sides have a code, the code decides (the name in the text does not).
        candidates = [a for a in by_name if not (a.region_code and code)]
        if code:
            for n in lengths:
                if len(code) >= n:
                    candidates += coded.get(code[:n], [])
        for area in sorted(candidates, key=lambda a: a.pk):
            start, end = spans[area.pk]
            if not start <= arrived_on <= end:
                continue
            entries = found.setdefault(person_id, [])
            if all(a.pk != area.pk for a, _ in entries):
                entries.append((area, Return(pk, arrived_on, where)))
    people = Person.objects.select_related("grid").in_bulk(list(found))
    return {pid: Match(people[pid], entries) for pid, entries in found.items() if pid in people}


def _evidence(match: Match) -> dict[str, Any]:
    return {
        "entries": [
            {
                "id": a.pk,
                "region": a.region_name,
                "level": a.get_level_display(),
                "valid_from": a.valid_from.isoformat(),
                "valid_to": a.valid_to.isoformat() if a.valid_to else "",
                "arrived_on": r.arrived_on.isoformat(),
                "origin": r.origin,
            }
            for a, r in sorted(match.entries, key=lambda e: e[0].pk)
        ]
    }


def run(now: dt.datetime | None = None, *, person_ids: Iterable[int] | None = None) -> dict[str, int]:
    """Bring the list-match alarms in line with the list and the travel records (idempotent: a second
    run changes nothing and pushes nothing). Returns counts of raised, updated and cleared alarms."""
    now = now or clock.now()
    day = timezone.localdate(now)
    ids = list(person_ids) if person_ids is not None else None
    counts = {"raised": 0, "updated": 0, "cleared": 0}
    for rule in list_rules():
        params = rule.params or {}
        severity_of = {**LEVEL_SEVERITY, **(params.get("severity_by_level") or {})}
        found = matches(
            day, lookback_days=int(params.get("lookback_days", DEFAULT_LOOKBACK_DAYS)), person_ids=ids
        )
        with transaction.atomic():
            active_qs: QuerySet[Alarm] = Alarm.objects.select_for_update().filter(
                rule=rule, status=Alarm.ACTIVE
            )
            if ids is not None:
                active_qs = active_qs.filter(source_key__in=[f"person:{i}" for i in ids])
            active = {a.source_key: a for a in active_qs.order_by("pk")}
            pushed: list[Alarm] = []
            still: list[int] = []
            for person_id, match in sorted(found.items()):
                key = f"person:{person_id}"
                severity = severity_of.get(match.level, "minor")
                before = active.pop(key, None)
                evidence = _evidence(match)
                if before is not None and alarms.unchanged(before, severity, evidence):
                    still.append(before.pk)  # nothing changed: only "last seen", in one update below
                    continue
                names = "、".join(f"{a.region_name}（{a.get_level_display()}）" for a, _ in match.entries)
                alarm = alarms.raise_or_update(
                    rule,
                    key,
                    severity,
                    at=now if before is None else max(now, before.last_seen_at),
                    area_path=match.person.area_path,
                    note=names[:300],
                    title=f"{match.person.name}：近期来自风险区 {names}"[:200],
                    evidence=evidence,
                    person=match.person,
                )
                if before is None:
                    counts["raised"] += 1
                    pushed.append(alarm)
                else:
                    counts["updated"] += 1
                    if alarms.RANK.get(severity, 0) > alarms.RANK.get(before.severity, 0):
                        pushed.append(alarm)  # the area was raised to a higher level
            if still:
                Alarm.objects.filter(pk__in=still, last_seen_at__lt=now).update(last_seen_at=now)
                counts["updated"] += len(still)
            for alarm in active.values():
                alarms.clear(alarm, at=now, note="不再匹配风险区名单（到期、撤销或返回记录变更）")
                counts["cleared"] += 1
            push(pushed, now)
    return counts


# --- the pushed list -----------------------------------------------------------------------------------
def recipients_for(person: Person) -> list[Any]:
    """The grid worker(s) of the person's grid and the community workers of its community."""
    from zhizhi.orgs.models import User

    grid = person.grid
    if grid is None:
        return []
    q = Q(role="grid_worker", regions=grid)
    if grid.parent_id:
        q |= Q(role="community_worker", regions=grid.parent_id)
    return list(User.objects.filter(q, is_active=True).distinct().order_by("pk"))


def push(raised: list[Alarm], now: dt.datetime) -> int:
    """One inbox message per worker listing their newly matched residents (outbox, same transaction)."""
    from zhizhi.notify.services import notify_user

    by_user: dict[int, tuple[Any, list[Alarm]]] = {}
    by_grid: dict[int | None, list[Any]] = {}
    for alarm in raised:
        if alarm.person is None:
            continue
        grid_id = alarm.person.grid_id
        if grid_id not in by_grid:
            by_grid[grid_id] = recipients_for(alarm.person)
        for user in by_grid[grid_id]:
            by_user.setdefault(user.pk, (user, []))[1].append(alarm)
    stamp = now.replace(microsecond=0)
    since = (stamp - dt.timedelta(seconds=1)).isoformat()
    for user, rows in by_user.values():
        digest = hashlib.sha256(",".join(f"{a.pk}:{a.severity}" for a in rows).encode()).hexdigest()[:16]
        lines = [f"{a.person.name if a.person else ''}：{describe(a)}" for a in rows[:20]]
        more = f"\n……共 {len(rows)} 人" if len(rows) > 20 else ""
        notify_user(
            user,
            f"风险区名单比对：辖区 {len(rows)} 名居民近期来自风险区",
            "\n".join(lines) + more + "\n请尽快联系核实（手机号在名单页查看，查看留痕）。",
            key=f"risk:{user.pk}:{digest}",
            link=f"{MATCHES_URL}?{urlencode({'since': since})}",
            cause="alerts.risk",
        )
    return len(by_user)


def describe(alarm: Alarm) -> str:
    """The matched entries of a list-match alarm in one line: 石家庄市藁城区（高，7月8日返回）."""
    return "、".join(
        f"{e.get('region', '')}（{e.get('level', '')}，{e.get('arrived_on', '')} 返回）"
        for e in (alarm.evidence or {}).get("entries", [])
    )


def matched_alarms(
    user: Any, *, since: dt.datetime | None = None, active_only: bool = True
) -> QuerySet[Alarm]:
    """List-match alarms the user may see (newest first), optionally those raised since a moment."""
    qs = (
        Alarm.objects.visible_to(user)
        .filter(rule__kind=AlertRule.LIST_MATCH)
        .select_related("person", "person__grid", "rule")
    )
    if active_only:
        qs = qs.filter(status=Alarm.ACTIVE)
    if since is not None:
        qs = qs.filter(Q(first_seen_at__gte=since) | Q(last_seen_at__gte=since))
    return qs.order_by("-first_seen_at", "pk")
