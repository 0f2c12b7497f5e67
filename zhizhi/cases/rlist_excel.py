"""The responsibility list (权责清单) as one flat Excel sheet: one row per 小类 (leaf item).

Export writes every leaf with its 大类 repeated on the row; import reads such a sheet, reports every
problem (row, column, value, Chinese and English) and writes nothing when there is any, otherwise turns
the rows into the nested structure of `data/responsibility_list.json` and hands it to
`services.load_responsibility_list` — so an Excel import and the JSON path give the same result, and
importing an exported file changes nothing.

Time limits are written as text, grammar::

    limit   := amount ws? unit           (empty cell = no limit)
    amount  := positive integer or decimal, e.g. 2, 0.5
    unit    := "工作小时" | "工作日" | "分钟" | "自然分钟"

"工作小时"/"工作日" count Chinese working time; "分钟" (= "自然分钟") counts calendar minutes, for urgent
kinds. Export writes e.g. "2 工作小时", "3 工作日", "30 分钟".

Who may import: superusers and street leaders. There is no default grant on cases.category (the list
is street-wide policy, not scoped data), so the role is checked explicitly in `can_manage`.
"""

from __future__ import annotations

import io
import re
from decimal import Decimal, InvalidOperation
from typing import Any, BinaryIO

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from zhizhi.cases.models import Category
from zhizhi.cases.services import LIMIT_KEYS, load_responsibility_list
from zhizhi.exchange import _xlsx_cell, clean_cell, open_table, read_limited
from zhizhi.orgs.models import OrgUnit
from zhizhi.problems import Forbidden, Invalid, Problem

SEP = "、"
KINDS = {"事件": "event", "部件": "component"}
RESPONSIBILITY = {"属地": "territorial", "部门": "department", "联办": "joint"}
ASSIGN_RULES = {"网格员": "grid_worker", "值班": "on_duty", "值班人员": "on_duty", "最少在办": "least_loaded"}
YES_NO = {"是": True, "否": False}
# Unit words of the limit grammar; the first word per unit is the one export writes.
LIMIT_UNITS = {
    "工作小时": "work_hours",
    "工作日": "work_days",
    "分钟": "calendar_minutes",
    "自然分钟": "calendar_minutes",
}
LIMIT_WORDS = {"work_hours": "工作小时", "work_days": "工作日", "calendar_minutes": "分钟"}
_LIMIT_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(工作小时|工作日|自然分钟|分钟)\s*$")

# (header, field in the JSON structure). Order is the sheet's column order.
COLUMNS: list[tuple[str, str]] = [
    ("大类编码", "big_code"),
    ("大类名称", "big_name"),
    ("类型", "kind"),
    ("小类编码", "code"),
    ("小类名称", "name"),
    ("关键词", "keywords"),
    ("立案标准", "register_criteria"),
    ("结案标准", "close_criteria"),
    ("责任方式", "responsibility"),
    ("责任部门编码", "department"),
    ("协办单位编码", "assisting"),
    ("派单规则", "assign_rule"),
    ("签收时限", "sign_limit"),
    ("到场时限", "onsite_limit"),
    ("增援时限", "reinforce_limit"),
    ("跟进时限", "followup_limit"),
    ("办理时限", "handle_limit"),
    ("紧急", "urgent"),
    ("需照片", "photo_required"),
    ("去重距离(米)", "dedup_distance_m"),
]
HEADERS = [h for h, _ in COLUMNS]
# The Yingfeng-style reinforcement and follow-up limits are rare: a sheet without these columns keeps
# the stored values instead of clearing them.
OPTIONAL = {"增援时限", "跟进时限"}
OPTIONAL_FIELDS = {key for header, key in COLUMNS if header in OPTIONAL}
LIMIT_KEYS_ORDER = [key for _, key in COLUMNS if key in LIMIT_KEYS]
SHEET_TITLE = "权责清单"


def can_manage(user: Any) -> bool:
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    return bool(user.is_superuser or getattr(user, "role", "") == "street_leader")


def _require(user: Any) -> None:
    if not can_manage(user):
        raise Forbidden(
            "只有街道领导或管理员可以维护权责清单", "Only street leaders or admins may maintain the list"
        )


# --- export ---------------------------------------------------------------------------------------
def format_limit(limit: Any) -> str:
    if not limit:
        return ""
    amount, unit = limit
    if isinstance(amount, float) and amount.is_integer():
        amount = int(amount)
    return f"{amount} {LIMIT_WORDS.get(unit, unit)}"


def _leaves() -> list[Category]:
    return list(
        Category.objects.filter(parent__isnull=False)
        .select_related("parent", "department")
        .prefetch_related("assisting")
        .order_by("parent__code", "code")
    )


def leaf_row(leaf: Category) -> list[Any]:
    parent = leaf.parent
    assert parent is not None
    rule_words = {v: k for k, v in ASSIGN_RULES.items() if k != "值班人员"}
    return [
        parent.code,
        parent.name,
        dict(Category.KINDS).get(leaf.kind, leaf.kind),
        leaf.code,
        leaf.name,
        SEP.join(str(k) for k in leaf.keywords or []),
        leaf.register_criteria,
        leaf.close_criteria,
        dict(Category.RESPONSIBILITY).get(leaf.responsibility, leaf.responsibility),
        leaf.department.code if leaf.department else "",
        SEP.join(sorted(u.code for u in leaf.assisting.all())),
        rule_words.get(leaf.assign_rule, leaf.assign_rule),
        *(format_limit(getattr(leaf, key)) for key in LIMIT_KEYS_ORDER),
        "是" if leaf.urgent else "否",
        "是" if leaf.photo_required else "否",
        leaf.dedup_distance_m,
    ]


def export_rlist() -> bytes:
    """The whole list as an .xlsx file (text cells neutralised against formula injection)."""
    book = Workbook(write_only=True)
    sheet = book.create_sheet(SHEET_TITLE)
    sheet.freeze_panes = "A2"
    for index, name in enumerate(HEADERS, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = max(10, min(40, len(name) * 2 + 4))
    bold = Font(bold=True)
    head = []
    for name in HEADERS:
        cell = WriteOnlyCell(sheet, value=name)
        cell.font = bold
        head.append(cell)
    sheet.append(head)
    for leaf in _leaves():
        sheet.append([_xlsx_cell(sheet, v) for v in leaf_row(leaf)])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


# --- import ---------------------------------------------------------------------------------------
def parse_limit(text: Any) -> list[Any] | None:
    """ "2 工作小时" → [2, "work_hours"]; empty → None; anything else raises ValueError."""
    if text is None or str(text).strip() == "":
        return None
    match = _LIMIT_RE.match(str(text))
    if not match:
        raise ValueError(text)
    try:
        amount = Decimal(match.group(1))
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only numbers
        raise ValueError(text) from exc
    if amount <= 0:
        raise ValueError(text)
    number: int | float = int(amount) if amount == amount.to_integral_value() else float(amount)
    return [number, LIMIT_UNITS[match.group(2)]]


class _Rows:
    """Collects problems while reading one row's cells."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def bad(
        self, row: int, column: str, value: Any, zh: str, en: str, exp_zh: str = "", exp_en: str = ""
    ) -> None:
        self.problems.append(
            Problem(
                "rlist",
                f"「{column}」{zh}",
                f"'{column}': {en}",
                row=row,
                column=column,
                value=None if value is None else str(value),
                expected_zh=exp_zh,
                expected_en=exp_en,
            )
        )


def _choice(p: _Rows, row: int, column: str, value: Any, options: dict[str, Any], default: Any = None) -> Any:
    if value is None:
        if default is not None:
            return default
        p.bad(row, column, value, "不能为空", "is required", "、".join(options), ", ".join(options))
        return None
    if str(value) not in options:
        p.bad(row, column, value, "取值无效", "is not a valid choice", "、".join(options), ", ".join(options))
        return None
    return options[str(value)]


def _split(value: Any) -> list[str]:
    if value is None:
        return []
    return [part.strip() for part in re.split(r"[、,，;；]", str(value)) if part.strip()]


def parse_rows(fileobj: BinaryIO | Any, filename: str) -> list[dict[str, Any]]:
    """The nested structure for `load_responsibility_list`, or `Invalid` with every problem found."""
    table = open_table(read_limited(fileobj), filename)
    p = _Rows()
    index = {h: i for i, h in enumerate(table.headers) if h}
    missing = [h for h in HEADERS if h not in index and h not in OPTIONAL]
    if missing:
        raise Invalid(
            [
                Problem(
                    "rlist_headers",
                    f"缺少列：{'、'.join(missing)}",
                    f"Missing columns: {', '.join(missing)}",
                    row=1,
                    expected_zh="、".join(HEADERS),
                    expected_en=", ".join(HEADERS),
                )
            ]
        )
    unit_codes = set(OrgUnit.objects.values_list("code", flat=True))
    stored = {
        c.code: c
        for c in Category.objects.filter(parent__isnull=False).only("code", *sorted(OPTIONAL_FIELDS))
    }
    groups: dict[str, dict[str, Any]] = {}
    group_rows: dict[str, int] = {}
    seen: dict[str, int] = {}
    for number, cells, formulas in table.rows:
        raw = {h: clean_cell(cells[i]) if i < len(cells) else None for h, i in index.items()}
        if all(v is None for v in raw.values()):
            continue
        for i in formulas:
            if i < len(table.headers) and table.headers[i]:
                p.bad(
                    number, table.headers[i], cells[i], "不能是公式", "must not be a formula", "文本", "text"
                )
        big_code = raw["大类编码"]
        big_name = raw["大类名称"]
        code = raw["小类编码"]
        name = raw["小类名称"]
        for column, value in (
            ("大类编码", big_code),
            ("大类名称", big_name),
            ("小类编码", code),
            ("小类名称", name),
        ):
            if value is None:
                p.bad(number, column, value, "不能为空", "is required")
        for column, value in (("大类编码", big_code), ("小类编码", code)):
            # Excel turns a typed 0102 into the number 102, silently losing the leading zero.
            if isinstance(value, int | float):
                p.bad(
                    number,
                    column,
                    value,
                    "须为文本（数字格式会丢失前导零）",
                    "must be text (a number cell loses leading zeros)",
                    "设为文本格式或以 ' 开头，如 '0102",
                    "format the cell as text or start with ', e.g. '0102",
                )
        big_code = None if big_code is None else str(big_code)
        code = None if code is None else str(code)
        kind = _choice(p, number, "类型", raw["类型"], KINDS, default="event")
        if code is not None:
            if code in seen:
                p.bad(
                    number,
                    "小类编码",
                    code,
                    f"与第{seen[code]}行重复",
                    f"duplicates row {seen[code]}",
                    "每个小类编码只出现一次",
                    "each item code once",
                )
            else:
                seen[code] = number
            if big_code is not None and (not code.startswith(big_code) or code == big_code):
                p.bad(
                    number,
                    "小类编码",
                    code,
                    f"须以大类编码「{big_code}」开头",
                    f"must start with the category code '{big_code}'",
                    f"{big_code}01 这样的编码",
                    f"a code like {big_code}01",
                )
        resp = _choice(p, number, "责任方式", raw["责任方式"], RESPONSIBILITY)
        dept = None if raw["责任部门编码"] is None else str(raw["责任部门编码"])
        if dept is not None and dept not in unit_codes:
            p.bad(
                number,
                "责任部门编码",
                dept,
                "组织单位不存在",
                "no org unit has this code",
                "已有组织单位编码",
                "an existing org unit code",
            )
        if resp == "department" and dept is None:
            p.bad(
                number, "责任部门编码", dept, "部门事项须指定责任部门", "a department item needs a department"
            )
        assisting = _split(raw["协办单位编码"])
        for unit in assisting:
            if unit not in unit_codes:
                p.bad(
                    number,
                    "协办单位编码",
                    unit,
                    "组织单位不存在",
                    "no org unit has this code",
                    "已有组织单位编码",
                    "an existing org unit code",
                )
        rule = (
            None if raw["派单规则"] is None else _choice(p, number, "派单规则", raw["派单规则"], ASSIGN_RULES)
        )
        limits: dict[str, Any] = {}
        for header, key in COLUMNS:
            if key not in LIMIT_KEYS:
                continue
            if header not in index:
                old = stored.get(code or "")
                limits[key] = getattr(old, key) if old is not None else None
                continue
            try:
                limits[key] = parse_limit(raw[header])
            except ValueError:
                p.bad(
                    number,
                    header,
                    raw[header],
                    "时限格式错误",
                    "is not a valid time limit",
                    "如「2 工作小时」「3 工作日」「30 分钟」",
                    "e.g. '2 工作小时' (working hours), '3 工作日' (working days), '30 分钟' (minutes)",
                )
        urgent = _choice(p, number, "紧急", raw["紧急"], YES_NO, default=False)
        photo = _choice(p, number, "需照片", raw["需照片"], YES_NO, default=False)
        distance: Any = raw["去重距离(米)"]
        if distance is None:
            distance = 50
        elif not (isinstance(distance, int) or str(distance).isdigit()) or int(distance) <= 0:
            p.bad(
                number,
                "去重距离(米)",
                distance,
                "须为正整数",
                "must be a positive whole number",
                "如 50",
                "e.g. 50",
            )
        if big_code is None or code is None:
            continue
        group = groups.get(big_code)
        if group is None:
            group = groups[big_code] = {"code": big_code, "name": big_name, "kind": kind, "children": []}
            group_rows[big_code] = number
        elif big_name is not None and group["name"] != big_name:
            p.bad(
                number,
                "大类名称",
                big_name,
                f"与第{group_rows[big_code]}行的大类名称「{group['name']}」不一致",
                f"differs from row {group_rows[big_code]} ('{group['name']}')",
            )
        group["children"].append(
            {
                "code": code,
                "name": name,
                "kind": kind,
                "keywords": _split(raw["关键词"]),
                "register_criteria": "" if raw["立案标准"] is None else str(raw["立案标准"]),
                "close_criteria": "" if raw["结案标准"] is None else str(raw["结案标准"]),
                "responsibility": resp,
                "department": dept,
                "assisting": assisting,
                "assign_rule": rule,
                **limits,
                "urgent": urgent,
                "photo_required": photo,
                "dedup_distance_m": int(distance) if str(distance).isdigit() else 50,
            }
        )
    if not seen and not p.problems:
        p.problems.append(Problem("rlist_empty", "表格中没有数据行", "The sheet has no data rows", row=2))
    if p.problems:
        raise Invalid(p.problems)
    return list(groups.values())


def import_rlist(fileobj: BinaryIO | Any, filename: str, actor: Any) -> dict[str, Any]:
    """Import the sheet as `actor`: every problem or nothing written; else the loader's counts."""
    _require(actor)
    return load_responsibility_list(parse_rows(fileobj, filename), actor)
