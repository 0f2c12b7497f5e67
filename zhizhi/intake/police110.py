"""The 110 non-police calls feed (110非警务警情): a CSV/Excel export from the public-security
command centre, imported as cases on the `police110` channel.

One call is one row: external id (警情编号), call time, content, address and/or coordinates, the
centre's category, optionally the caller. A file is all or nothing: every row is checked first and
every problem is reported with its row and column in both languages; only a clean file is written,
in one transaction. Rows whose external id was imported before are counted as "existing" and left
unchanged, so the same export (or an overlapping one) can be imported again safely.

The centre's category is matched to the responsibility list by code or name; when it does not
match, the suggestion of `intake.suggest` decides (as for a phone call) and the centre's category
is kept on the channel message and in the case description. The call time is kept as the channel
message's `received_at` (the case's own `reported_at` is when the street took it in). Points
outside the street are kept: such a case waits in the dispatcher's queue, like a hotline order.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from zhizhi import clock, validators
from zhizhi.cases.models import Category
from zhizhi.exchange import clean_cell, open_table
from zhizhi.intake.models import ChannelMessage
from zhizhi.intake.services import MAX_TEXT, _register, title_from
from zhizhi.problems import Forbidden, Invalid, Problem

CHANNEL = "police110"
SOURCE = "110"
MAX_ID = 48
MAX_ROWS = 20_000
# A call time may run a little ahead of our clock (the centre's clock is not ours).
CLOCK_SKEW = dt.timedelta(minutes=10)
IMPORT_ROLES = ("dispatcher", "street_leader")

# field → (accepted headers, required). The first header is the one the sample file uses.
COLUMNS: dict[str, tuple[tuple[str, ...], bool]] = {
    "external_id": (("警情编号", "接警编号", "编号", "external_id", "id"), True),
    "call_time": (("报警时间", "来电时间", "接警时间", "call_time"), True),
    "content": (("报警内容", "警情内容", "内容", "content"), True),
    "address": (("发生地址", "地址", "address"), False),
    "lng": (("经度", "lng", "longitude"), False),
    "lat": (("纬度", "lat", "latitude"), False),
    "category": (("警情类别", "类别", "category"), False),
    "caller_name": (("报警人", "caller_name"), False),
    "caller_phone": (("联系电话", "报警电话", "caller_phone"), False),
}
TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y%m%d%H%M%S")
_ID = re.compile(r"^[0-9A-Za-z_.:-]+$")


@dataclass
class Call:
    row: int
    external_id: str
    call_time: dt.datetime
    content: str
    address: str = ""
    lng: float | None = None
    lat: float | None = None
    category_raw: str = ""
    category: Category | None = None
    caller_name: str = ""
    caller_phone: str = ""


@dataclass
class Result:
    created: int = 0
    existing: int = 0
    rows: int = 0
    cases: list[str] = field(default_factory=list)  # case numbers, in file order

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "created": self.created, "existing": self.existing, "cases": self.cases}


def _header_index(headers: list[str]) -> tuple[dict[str, int], list[Problem]]:
    problems: list[Problem] = []
    index: dict[str, int] = {}
    for name, (aliases, required) in COLUMNS.items():
        found = [i for i, h in enumerate(headers) if h in aliases or h.lower() in aliases]
        if len(found) > 1:
            problems.append(
                Problem(
                    "column_twice",
                    f"有多列都是「{aliases[0]}」",
                    f"More than one column holds {name}",
                    column=headers[found[1]],
                    expected_zh="每项一列",
                    expected_en="one column each",
                )
            )
        elif found:
            index[name] = found[0]
        elif required:
            problems.append(
                Problem(
                    "column_missing",
                    f"缺少「{aliases[0]}」列",
                    f"The column {aliases[0]} ({name}) is missing",
                    column=aliases[0],
                    expected_zh="、".join(aliases),
                    expected_en=", ".join(aliases),
                )
            )
    return index, problems


def parse_call_time(value: Any) -> dt.datetime | None:
    """A cell as an aware datetime (naive times are local), or None when it is not a time."""
    moment: dt.datetime | None = None
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, str):
        text = value.strip().replace("T", " ")
        for fmt in TIME_FORMATS:
            try:
                moment = dt.datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
    if moment is None:
        return None
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


def _categories() -> dict[str, Category]:
    out: dict[str, Category] = {}
    for cat in Category.objects.filter(parent__isnull=False, active=True):
        out.setdefault(cat.code, cat)
        out.setdefault(cat.name, cat)
    return out


def read_calls(data: bytes, filename: str) -> list[Call]:
    """Every row of the file checked; Invalid lists all problems with row and column."""
    table = open_table(data, filename)
    headers = [str(h or "").strip() for h in table.headers]
    if not headers:
        raise Invalid([Problem("file_empty", "文件为空", "The file is empty", field="file")])
    index, problems = _header_index(headers)
    if problems:
        raise Invalid(problems)
    categories = _categories()
    seen: dict[str, int] = {}
    calls: list[Call] = []
    now = clock.now()
    for row_no, cells, formulas in table.rows:
        values = {f: clean_cell(cells[i]) if i < len(cells) else None for f, i in index.items()}
        if all(v in (None, "") for v in values.values()):
            continue
        if len(calls) >= MAX_ROWS:
            raise Invalid(
                [
                    Problem(
                        "too_many_rows",
                        f"一次最多导入{MAX_ROWS}行，请分批导入",
                        f"At most {MAX_ROWS} rows per file; split the file",
                        field="file",
                    )
                ]
            )
        before = len(problems)

        def bad(
            name: str, code: str, zh: str, en: str, value: Any = None, ezh: str = "", een: str = ""
        ) -> None:
            problems.append(
                Problem(
                    code,
                    zh,
                    en,
                    row=row_no,  # noqa: B023 - used at once, inside this iteration
                    column=headers[index[name]] if name in index else COLUMNS[name][0][0],
                    value=value,
                    expected_zh=ezh,
                    expected_en=een,
                )
            )

        for i in formulas:
            if i in index.values():
                problems.append(
                    Problem(
                        "formula",
                        "单元格是公式，请粘贴为数值",
                        "The cell is a formula; paste it as a value",
                        row=row_no,
                        column=headers[i],
                    )
                )
        external_id = str(values.get("external_id") or "").strip()
        if not external_id:
            bad("external_id", "required", "缺少警情编号", "The call's id is missing")
        elif len(external_id) > MAX_ID or not _ID.match(external_id):
            bad(
                "external_id",
                "external_id",
                f"警情编号须为不超过{MAX_ID}位的字母、数字或 - _ . :",
                f"The id must be at most {MAX_ID} letters, digits or - _ . :",
                external_id[:60],
            )
        elif external_id in seen:
            bad(
                "external_id",
                "duplicate_in_file",
                f"警情编号与第{seen[external_id]}行重复",
                f"The same id as row {seen[external_id]}",
                external_id,
            )
        else:
            seen[external_id] = row_no
        raw_time = values.get("call_time")
        call_time = parse_call_time(raw_time)
        if raw_time in (None, ""):
            bad("call_time", "required", "缺少报警时间", "The call time is missing")
        elif call_time is None:
            bad(
                "call_time",
                "call_time",
                "报警时间无法识别",
                "The call time is not a date and time",
                str(raw_time)[:40],
                "如 2026-11-23 09:30:00",
                "e.g. 2026-11-23 09:30:00",
            )
        elif call_time > now + CLOCK_SKEW:
            bad(
                "call_time", "future", "报警时间晚于当前时间", "The call time is in the future", str(raw_time)
            )
        content = str(values.get("content") or "").strip()
        if not content:
            bad("content", "required", "缺少报警内容", "The call's content is missing")
        elif len(content) > MAX_TEXT:
            bad(
                "content",
                "too_long",
                f"内容不超过{MAX_TEXT}字（现有{len(content)}字）",
                f"At most {MAX_TEXT} characters (got {len(content)})",
                len(content),
            )
        address = str(values.get("address") or "").strip()
        if len(address) > 200:
            bad("address", "too_long", "地址不超过200字", "Address: at most 200 characters", len(address))
        lng_raw, lat_raw = values.get("lng"), values.get("lat")
        lng = lat = None
        if (lng_raw in (None, "")) != (lat_raw in (None, "")):
            bad(
                "lng" if lng_raw in (None, "") else "lat",
                "location_incomplete",
                "经度和纬度须同时填写",
                "Give both longitude and latitude",
            )
        elif lng_raw not in (None, ""):
            try:
                lng, lat = validators.coordinates(lng_raw, lat_raw, "lng")
            except Invalid as exc:
                for p in exc.problems:
                    bad("lng", p.code, p.zh, p.en, p.value, p.expected_zh, p.expected_en)
        if not address and lng is None and len(problems) == before:
            bad(
                "address",
                "location_required",
                "须填写发生地址或经纬度",
                "Give the address or the coordinates",
            )
        phone = str(values.get("caller_phone") or "").strip()
        if phone:
            try:
                phone = validators.phone(phone, "caller_phone")
            except Invalid as exc:
                for p in exc.problems:
                    bad("caller_phone", p.code, p.zh, p.en, p.value, p.expected_zh, p.expected_en)
        category_raw = str(values.get("category") or "").strip()[:100]
        if len(problems) == before and call_time is not None:
            calls.append(
                Call(
                    row=row_no,
                    external_id=external_id,
                    call_time=call_time,
                    content=content,
                    address=address,
                    lng=lng,
                    lat=lat,
                    category_raw=category_raw,
                    category=categories.get(category_raw),
                    caller_name=str(values.get("caller_name") or "").strip()[:50],
                    caller_phone=phone,
                )
            )
    if problems:
        raise Invalid(problems)
    if not calls:
        raise Invalid([Problem("no_rows", "文件中没有警情", "The file holds no calls", field="file")])
    return calls


def _description(call: Call) -> str:
    head = f"【110非警务警情 {call.external_id}，报警时间 {timezone.localtime(call.call_time):%Y-%m-%d %H:%M}"
    if call.category_raw:
        head += f"，警情类别：{call.category_raw}"
    return f"{head}】\n{call.content}"[:MAX_TEXT]


def import_calls(actor: Any, data: bytes, filename: str, *, dry_run: bool = False) -> Result:
    """Import a 110 feed file: all rows or none. Rows seen before are counted, not changed."""
    if actor is None or not (actor.is_superuser or getattr(actor, "role", "") in IMPORT_ROLES):
        raise Forbidden(
            "只有指挥中心坐席和街道领导可以导入110警情", "Only dispatchers and leaders may import 110 calls"
        )
    calls = read_calls(data, filename)
    result = Result(rows=len(calls))
    known = dict(
        ChannelMessage.objects.filter(
            channel=CHANNEL, external_id__in=[c.external_id for c in calls]
        ).values_list("external_id", "case__number")
    )
    problems: list[Problem] = []
    try:
        with transaction.atomic():
            for call in calls:
                if call.external_id in known:
                    result.existing += 1
                    result.cases.append(known[call.external_id] or "")
                    continue
                try:
                    case = _register(
                        actor,
                        title=f"110转办：{title_from(call.content, 24)}",
                        description=_description(call),
                        category=call.category,
                        lng=call.lng,
                        lat=call.lat,
                        address=call.address,
                        channel=CHANNEL,
                        external_id=call.external_id,
                        reporter_name=call.caller_name,
                        reporter_phone=call.caller_phone,
                        note=f"110非警务警情 {call.external_id}",
                    )
                except Invalid as exc:
                    problems += [
                        Problem(
                            p.code,
                            p.zh,
                            p.en,
                            row=call.row,
                            column=p.column or p.field,
                            value=p.value,
                            expected_zh=p.expected_zh,
                            expected_en=p.expected_en,
                        )
                        for p in exc.problems
                    ]
                    continue
                ChannelMessage.objects.create(
                    channel=CHANNEL,
                    source=SOURCE,
                    external_id=call.external_id,
                    case=case,
                    received_at=call.call_time,
                    last_seen=clock.now(),
                    payload={
                        "call_time": call.call_time.isoformat(),
                        "category": call.category_raw,
                        "address": call.address,
                        "file": filename[:100],
                        "row": call.row,
                    },
                )
                result.created += 1
                result.cases.append(case.number)
            if problems:
                raise Invalid(problems)
            if dry_run:
                raise _DryRun
    except _DryRun:
        pass
    except BaseException:
        _forget_rolled_back_cases()
        raise
    if dry_run:
        _forget_rolled_back_cases()
        result.cases = []
    return result


class _DryRun(Exception):
    """Raised inside the transaction to roll a trial import back."""


def _forget_rolled_back_cases() -> None:
    # The duplicate index may have picked up cases of the rolled-back transaction.
    from zhizhi.intake import dedup

    dedup.invalidate()


def counts_by_day(since: dt.date, until: dt.date) -> dict[dt.date, int]:
    """110 calls per local day of their call time (for the cockpit)."""
    start = timezone.make_aware(dt.datetime.combine(since, dt.time.min))
    end = timezone.make_aware(dt.datetime.combine(until + dt.timedelta(days=1), dt.time.min))
    out: dict[dt.date, int] = {}
    for at in ChannelMessage.objects.filter(
        channel=CHANNEL, received_at__gte=start, received_at__lt=end
    ).values_list("received_at", flat=True):
        day = timezone.localtime(at).date()
        out[day] = out.get(day, 0) + 1
    return out


def recent_calls(user: Any, limit: int = 20) -> list[ChannelMessage]:
    """The latest imported calls whose cases `user` may see, newest call first."""
    from zhizhi.cases.models import Case

    visible = Case.objects.visible_to(user, "view").filter(channel=CHANNEL).values("pk")
    return list(
        ChannelMessage.objects.filter(channel=CHANNEL, case__in=visible)
        .select_related("case")
        .order_by("-received_at", "-id")[:limit]
    )
