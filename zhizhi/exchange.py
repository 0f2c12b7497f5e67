"""Excel/CSV import and export for every registry, driven by the registry declarations.

Import: read the sheet (openpyxl read-only, or CSV in UTF-8/GBK) → map headers to columns → parse and
check every row with `registry.parse` + the registry's rules, collecting every problem with its row
number → only when nothing is wrong, write everything in one transaction (new rows bulk-created,
changed rows bulk-updated with a version bump, identical rows untouched) with change-log rows in bulk.

Export writes the same columns back, so export → import changes nothing. Protected values leave only
masked; a masked natural key travels with a companion "…标识" column holding its keyed lookup hash
(never the plaintext), which is how an exported file finds its rows again on import. Text cells that a
spreadsheet would evaluate (=, +, -, @, tab, CR) are written as plain text.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
import math
import re
import zipfile
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, BinaryIO

from django.conf import settings
from django.db import DatabaseError, IntegrityError, models, transaction
from openpyxl import Workbook, load_workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from zhizhi import clock, registry
from zhizhi.context import acting_as, current_request_id
from zhizhi.models import ChangeLogEntry
from zhizhi.permissions import can, restrict
from zhizhi.problems import Forbidden, Invalid, Problem
from zhizhi.registry import Column, Registry

CHUNK = 2000
HEADER_ROW = 1
# A text cell starting with one of these is a formula to a spreadsheet (OWASP "CSV injection").
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
KEY_SUFFIX_ZH = "标识"
KEY_SUFFIX_EN = " key"
MASK_CHAR = "*"
FORMATS = ("xlsx", "csv")
_XLSX_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # the old binary .xls
_FORMULA_TAG = re.compile(rb"<(?:[A-Za-z0-9_]+:)?f[\s>/]")
Progress = Callable[[int, int], None]


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    total: int = 0


# --- which columns an exchange file has --------------------------------------------------------
def needs_key(col: Column, reg: Registry) -> bool:
    """Whether a column is exported masked yet must find its row again: it gets a "…标识" column."""
    if col.kind == "sensitive":
        return col.name in reg.natural_key
    return col.kind == "ref" and col.ref is not None and col.ref.key.endswith("_hash")


def key_header(col: Column) -> str:
    return f"{col.zh}{KEY_SUFFIX_ZH}"


def headers(reg: Registry, *, with_keys: bool = True) -> list[str]:
    out = [col.zh for col in reg.columns]
    if with_keys:
        out += [key_header(col) for col in reg.columns if needs_key(col, reg)]
    return out


def _problem(code: str, zh: str, en: str, **where: Any) -> Problem:
    return Problem(code, zh, en, **where)


def _fail(code: str, zh: str, en: str, **where: Any) -> Invalid:
    return Invalid([_problem(code, zh, en, **where)])


# --- reading a file -----------------------------------------------------------------------------
@dataclass
class Table:
    """A sheet: its header cells and an iterator of (row number, cells, indexes of formula cells)."""

    headers: list[Any]
    rows: Iterator[tuple[int, Sequence[Any], list[int]]]
    total: int  # data rows expected (an estimate until read; 0 when unknown)


def read_limited(fileobj: BinaryIO | Any) -> bytes:
    """The file's bytes, refusing before parsing anything larger than ZHIZHI_IMPORT_MAX_BYTES."""
    limit = int(settings.ZHIZHI_IMPORT_MAX_BYTES)
    size = getattr(fileobj, "size", None)
    if size is not None and size > limit:
        raise _too_large(size, limit)
    data = fileobj.read(limit + 1)
    if isinstance(data, str):
        data = data.encode("utf-8")
    if len(data) > limit:
        raise _too_large(len(data), limit)
    return data


def _too_large(size: int, limit: int) -> Invalid:
    mb = f"{limit / 1024 / 1024:.1f}"
    return _fail(
        "file_too_large",
        f"文件过大（上限{mb}MB），请拆分后分批导入",
        f"The file is too large (limit {mb} MB); split it and import the parts",
        value=size,
        expected_zh=f"不超过{mb}MB",
        expected_en=f"at most {mb} MB",
    )


def _not_spreadsheet(filename: str) -> Invalid:
    return _fail(
        "not_spreadsheet",
        f"「{filename}」不是可读取的电子表格",
        f"'{filename}' is not a readable spreadsheet",
        value=filename,
        expected_zh="Excel .xlsx 文件或 CSV 文件（UTF-8 或 GBK 编码）",
        expected_en="an Excel .xlsx file or a CSV file (UTF-8 or GBK)",
    )


def open_table(data: bytes, filename: str) -> Table:
    ext = PurePath(filename or "").suffix.lower()
    if data.startswith(_XLSX_MAGIC):
        return _open_xlsx(data, filename)
    if data.startswith(_OLE_MAGIC) or ext == ".xls":
        raise _fail(
            "old_excel",
            "不支持旧版 .xls 格式，请在 Excel 中另存为 .xlsx",
            "The old .xls format is not supported; save the file as .xlsx in Excel",
            value=filename,
            expected_zh=".xlsx 或 .csv",
            expected_en=".xlsx or .csv",
        )
    if ext in (".xlsx", ".xlsm") or ext not in (".csv", ".txt", ""):
        raise _not_spreadsheet(filename)
    return _open_csv(data, filename)


def _clean_header(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _open_xlsx(data: bytes, filename: str) -> Table:
    scan = _scan_sheets(data)
    has_formulas = any(formulas for formulas, _ in scan.values())
    try:
        # data_only=False only when the sheet holds formulas, so their cells can be recognised and
        # refused; cached results (data_only) are never trusted as values.
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=not has_formulas)
        sheet = book.worksheets[0]
    except Exception as exc:  # openpyxl raises many types for a zip that is not a workbook
        raise _not_spreadsheet(filename) from exc
    path = str(getattr(sheet, "_worksheet_path", "")).lstrip("/")
    total = max(scan.get(path, (False, 0))[1] - HEADER_ROW, 0)

    def cells() -> Iterator[tuple[int, Sequence[Any], list[int]]]:
        try:
            if not has_formulas:
                for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
                    yield number, values, []
            else:
                for number, row in enumerate(sheet.iter_rows(), start=1):
                    formulas = [i for i, c in enumerate(row) if getattr(c, "data_type", None) == "f"]
                    yield number, [getattr(c, "value", None) for c in row], formulas
        finally:
            book.close()

    rows = cells()
    try:
        first = next(rows, None)
    except Exception as exc:
        raise _not_spreadsheet(filename) from exc
    if first is None:
        return Table([], iter(()), 0)
    return Table([_clean_header(h) for h in first[1]], rows, total)


_ROW_TAG = re.compile(rb"<(?:[A-Za-z0-9_]+:)?row[\s>/]")


def _scan_sheets(data: bytes) -> dict[str, tuple[bool, int]]:
    """For each worksheet part: whether it holds a formula element, and how many rows (a cheap scan of
    the XML, so formulas are found before reading and the progress bar knows its total)."""
    out: dict[str, tuple[bool, int]] = {}
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for name in archive.namelist():
                if not (name.startswith("xl/worksheets/") and name.endswith(".xml")):
                    continue
                formulas, rows, tail = False, 0, b""
                with archive.open(name) as fh:
                    while chunk := fh.read(1 << 20):
                        # Tags cut by a chunk border are caught by the overlap; rows are counted per chunk.
                        formulas = formulas or bool(_FORMULA_TAG.search(tail + chunk))
                        rows += len(_ROW_TAG.findall(chunk))
                        tail = chunk[-16:]
                out[name] = (formulas, rows)
    except (zipfile.BadZipFile, OSError, EOFError):
        return {}
    return out


def _open_csv(data: bytes, filename: str) -> Table:
    if b"\x00" in data[:8192]:
        raise _not_spreadsheet(filename)
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise _not_spreadsheet(filename)
    first_line = text.split("\n", 1)[0]
    delimiter = "\t" if "\t" in first_line and "," not in first_line else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        head = next(reader, None)
    except csv.Error as exc:
        raise _not_spreadsheet(filename) from exc
    if head is None:
        return Table([], iter(()), 0)
    lines = text.count("\n") + (0 if text.endswith("\n") else 1)
    total = max(lines - HEADER_ROW, 0)  # an estimate for the progress bar: quoted newlines inflate it

    def cells() -> Iterator[tuple[int, Sequence[Any], list[int]]]:
        try:
            for number, values in enumerate(reader, start=HEADER_ROW + 1):
                yield number, values, []
        except csv.Error as exc:
            raise _fail(
                "csv_malformed",
                f"CSV 格式错误：{exc}",
                f"The CSV is malformed: {exc}",
                row=reader.line_num,
            ) from exc

    return Table([_clean_header(h) for h in head], cells(), total)


def clean_cell(value: Any) -> Any:
    """A cell as the parser wants it: trimmed text, whole floats as ints, export quoting undone."""
    if value is None:
        return None
    if isinstance(value, str):
        value = value.strip()
        if not value:
            return None
        # Undo the export's neutralising apostrophe ("'=x" was written for the text "=x").
        if len(value) > 1 and value[0] == "'" and value[1] in FORMULA_TRIGGERS:
            return value[1:]
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


# --- import -------------------------------------------------------------------------------------
def import_file(
    reg: Registry,
    actor: Any,
    fileobj: BinaryIO | Any,
    filename: str,
    *,
    progress: Progress | None = None,
) -> ImportResult:
    """Import a spreadsheet into `reg` as `actor`: everything or nothing (see the module docstring)."""
    if not can(actor, "import", reg.model):
        raise Forbidden("无权导入此登记簿", "You may not import into this registry")
    data = read_limited(fileobj)
    table = open_table(data, filename)
    del data
    with acting_as(actor, current_request_id() or None):
        return _Importer(reg, actor, table, progress).run()


@dataclass
class _Row:
    number: int
    raw: dict[str, Any]
    keys: dict[str, str]  # companion "…标识" values by column name
    cells: dict[str, Any]  # the cell as written, by column name (for problem reports)
    masked: set[str] = field(default_factory=set)
    blocked: set[str] = field(default_factory=set)  # cells refused before parsing (formulas, masks)
    values: dict[str, Any] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    key: tuple | None = None


class _Importer:
    def __init__(self, reg: Registry, actor: Any, table: Table, progress: Progress | None) -> None:
        self.reg = reg
        self.model: type[models.Model] = reg.model
        self.actor = actor
        self.table = table
        self.progress = progress
        self.problems: list[Problem] = []
        self.cache: dict = {}
        self.seen: dict[tuple, int] = {}
        self.creates: list[tuple[int, Any]] = []
        self.updates: list[tuple[int, Any, dict]] = []
        self.unchanged = 0
        self.total = 0
        self.today = clock.today()
        self.now = clock.now()
        self.header_of: dict[str, str] = {}
        self.mapping: list[tuple[str, Column] | None] = []
        self.fields = {f.name: f for f in self.model._meta.concrete_fields}
        self.lookups = [self._lookup_name(reg.column(n)) for n in reg.natural_key]

    # -- headers --
    def _map_headers(self) -> None:
        by_header = self.reg.by_header()
        keyed = {c.name: c for c in self.reg.columns if needs_key(c, self.reg)}
        key_aliases: dict[str, Column] = {}
        for col in keyed.values():
            for alias in (key_header(col), f"{col.en}{KEY_SUFFIX_EN}", f"{col.name}_key"):
                key_aliases[alias.strip().lower()] = col
        problems: list[Problem] = []
        used: dict[tuple[str, str], str] = {}
        for header in self.table.headers:
            if not header:
                self.mapping.append(None)
                continue
            alias = header.lower()
            if alias in by_header:
                entry: tuple[str, Column] = ("col", by_header[alias])
            elif alias in key_aliases:
                entry = ("key", key_aliases[alias])
            else:
                problems.append(
                    _problem(
                        "unknown_column",
                        f"未知的列「{header}」",
                        f"Unknown column '{header}'",
                        row=HEADER_ROW,
                        column=header,
                        value=header,
                        expected_zh="、".join(headers(self.reg, with_keys=False)),
                        expected_en=", ".join(c.en for c in self.reg.columns),
                    )
                )
                self.mapping.append(None)
                continue
            slot = (entry[0], entry[1].name)
            if slot in used:
                problems.append(
                    _problem(
                        "duplicate_column",
                        f"列「{header}」与「{used[slot]}」重复",
                        f"Column '{header}' repeats '{used[slot]}'",
                        row=HEADER_ROW,
                        column=header,
                        value=header,
                    )
                )
                self.mapping.append(None)
                continue
            used[slot] = header
            if entry[0] == "col":
                self.header_of[entry[1].name] = header
            self.mapping.append(entry)
        for col in self.reg.columns:
            if col.required and col.name not in self.header_of:
                problems.append(
                    _problem(
                        "missing_column",
                        f"缺少必填列「{col.zh}」",
                        f"The required column '{col.en}' is missing",
                        row=HEADER_ROW,
                        column=col.zh,
                        expected_zh=col.zh,
                        expected_en=col.en,
                    )
                )
        if not self.table.headers:
            problems.append(
                _problem("empty_file", "文件是空的", "The file is empty", row=HEADER_ROW),
            )
        if problems:
            raise Invalid(problems)

    # -- the run --
    def run(self) -> ImportResult:
        self._map_headers()
        estimate = self.table.total
        chunk: list[_Row] = []
        for number, cells, formulas in self.table.rows:
            row = self._row(number, cells, formulas)
            if row is None:
                continue
            chunk.append(row)
            if len(chunk) >= CHUNK:
                self._check_chunk(chunk)
                chunk = []
                if self.progress:
                    self.progress(self.total, max(estimate, self.total))
        if chunk:
            self._check_chunk(chunk)
        if self.progress:
            self.progress(self.total, self.total)
        if self.problems:
            raise Invalid(sorted(self.problems, key=lambda p: p.row or 0))
        self._write()
        return ImportResult(
            created=len(self.creates), updated=len(self.updates), unchanged=self.unchanged, total=self.total
        )

    def _row(self, number: int, cells: Sequence[Any], formulas: list[int]) -> _Row | None:
        row = _Row(number, {}, {}, {})
        empty = True
        for index, value in enumerate(cells):
            entry = self.mapping[index] if index < len(self.mapping) else None
            value = clean_cell(value)
            if value is None:
                continue
            empty = False
            if entry is None:
                continue
            kind, col = entry
            if index in formulas:
                row.problems.append(
                    _problem(
                        "formula",
                        "公式单元格不被接受",
                        "Formula cells are not accepted",
                        row=number,
                        column=self.table.headers[index],
                        field=col.name,
                        value=str(value)[:80],
                        expected_zh="直接填写数值（复制后「选择性粘贴 → 数值」）",
                        expected_en="a plain value (copy, then paste as values)",
                    )
                )
                row.blocked.add(col.name)
                continue
            if kind == "key":
                row.keys[col.name] = str(value)
            else:
                row.raw[col.name] = value
                row.cells[col.name] = value
        if empty:
            return None
        self.total += 1
        return row

    # -- checking a chunk --
    def _check_chunk(self, rows: list[_Row]) -> None:
        for row in rows:
            self._unmask(row)
        self._prefetch_refs(rows)
        for row in rows:
            # Rows with a formula or an unusable masked cell are still parsed, so every other problem
            # of the row is reported too; the missing cell is not reported a second time as "required".
            skip = row.masked | row.blocked
            values, problems = registry.parse(self.reg, row.raw, cache=self.cache, today=self.today)
            problems = [p for p in problems if not (p.code == "required" and p.field in skip)]
            row.values = values
            row.problems.extend(problems)
            if not row.problems:
                self._natural_key(row)
        existing = self._existing([r for r in rows if r.key is not None and not r.problems])
        in_scope = self._in_scope([obj.pk for obj in existing.values()])
        for row in rows:
            if not row.problems and row.key is not None:
                self._prepare(row, existing.get(row.key), in_scope)
            for p in row.problems:
                p.row = row.number
                if not p.column:
                    p.column = self.header_of.get(p.field, "")
                    if not p.column and p.field:
                        try:
                            p.column = self.reg.column(p.field).zh
                        except KeyError:
                            p.column = p.field
                if p.value is not None and isinstance(p.value, str) and p.value.startswith("#"):
                    p.value = row.cells.get(p.field, p.value)
            self.problems.extend(row.problems)

    def _unmask(self, row: _Row) -> None:
        """A masked cell (from an export) means "keep the stored value"; its row is found by its key."""
        for name, value in list(row.raw.items()):
            if not (isinstance(value, str) and MASK_CHAR in value):
                continue
            col = self.reg.column(name)
            if col.kind == "sensitive":
                del row.raw[name]
                row.masked.add(name)
                if name in self.reg.natural_key and not row.keys.get(name):
                    row.problems.append(self._masked_problem(col, value))
            elif needs_key(col, self.reg):
                if row.keys.get(name):
                    row.raw[name] = "#" + row.keys[name]
                else:
                    del row.raw[name]
                    row.blocked.add(name)
                    row.problems.append(self._masked_problem(col, value))

    def _masked_problem(self, col: Column, value: str) -> Problem:
        return _problem(
            "masked_value",
            f"「{col.zh}」是打码值，无法识别；请填写完整值，或保留导出文件中的「{key_header(col)}」列",
            f"'{col.en}' is masked and cannot be matched; write the full value or keep the "
            f"'{key_header(col)}' column of the exported file",
            field=col.name,
            value=value,
        )

    def _prefetch_refs(self, rows: list[_Row]) -> None:
        """Fill the parse cache for a whole chunk: one query per referenced model, not one per row."""
        for col in self.reg.columns:
            if col.kind != "ref" or col.ref is None:
                continue
            ref = col.ref
            written = {
                str(clean_cell(r.raw[col.name])).strip() for r in rows if r.raw.get(col.name) is not None
            }
            todo = {w for w in written if (ref.model, w) not in self.cache}
            if not todo:
                continue
            manager = ref.model._default_manager.select_related(*_required_fks(ref.model))
            if ref.key.endswith("_hash"):
                hashed = {w: (w[1:] if w.startswith("#") else _hash_for(ref.model, ref.key, w)) for w in todo}
                found = {
                    getattr(o, ref.key): o for o in manager.filter(**{f"{ref.key}__in": hashed.values()})
                }
                for w, h in hashed.items():
                    self.cache[(ref.model, w)] = found.get(h) if h else None
            elif ref.resolve is not None:
                prefetch = _RESOLVE_PREFETCH.get(getattr(ref.resolve, "__qualname__", ""))
                if prefetch is not None:
                    self.cache.update({(ref.model, w): o for w, o in prefetch(todo).items()})
                # Anything else is resolved (once per distinct value) by registry.parse itself.
            else:
                lookups = {ref.transform(w) if ref.transform else w: w for w in todo}
                found = {
                    str(getattr(o, ref.key)): o for o in manager.filter(**{f"{ref.key}__in": list(lookups)})
                }
                for lookup in lookups:
                    self.cache[(ref.model, lookup)] = found.get(lookup)

    def _lookup_name(self, col: Column) -> str:
        if col.kind == "sensitive":
            return f"{col.name}_hash"
        if col.kind == "ref":
            return f"{col.name}_id"
        return col.name

    def _natural_key(self, row: _Row) -> None:
        parts: list[Any] = []
        for name in self.reg.natural_key:
            col = self.reg.column(name)
            value = row.values.get(name)
            if col.kind == "sensitive":
                if name in row.masked:
                    parts.append(row.keys.get(name, ""))
                else:
                    parts.append(_hash_for(self.model, f"{name}_hash", value) if value else "")
            elif col.kind == "ref":
                parts.append(value.pk if value is not None else None)
            else:
                parts.append(value)
        key = tuple(parts)
        first = self.seen.get(key)
        if first is not None:
            names = "、".join(self.reg.column(n).zh for n in self.reg.natural_key)
            names_en = ", ".join(self.reg.column(n).en for n in self.reg.natural_key)
            row.problems.append(
                _problem(
                    "duplicate_row",
                    f"与第{first}行重复（{names}相同）",
                    f"Duplicates row {first} (same {names_en})",
                    field=self.reg.natural_key[0],
                    value=f"{first},{row.number}",
                    expected_zh="每条记录只出现一次",
                    expected_en="each record once",
                )
            )
            return
        self.seen[key] = row.number
        row.key = key

    def _existing(self, rows: list[_Row]) -> dict[tuple, Any]:
        if not rows or not self.reg.natural_key:
            return {}
        first = {r.key[0] for r in rows if r.key and r.key[0] not in (None, "")}
        if not first:
            return {}
        # Referenced rows come from the parse cache, not from a join: a join would build (and decode
        # the polygon of) one grid object per resident.
        refs = [c for c in self.reg.columns if c.kind == "ref" and c.ref is not None]
        known: dict[Any, dict[Any, Any]] = {}
        for (model, _), target in self.cache.items():
            if target is not None:
                known.setdefault(model, {})[target.pk] = target
        found: dict[tuple, Any] = {}
        for obj in self.model._default_manager.filter(**{f"{self.lookups[0]}__in": first}):
            key = tuple(getattr(obj, name) for name in self.lookups)
            found.setdefault(key, obj)
            for col in refs:
                assert col.ref is not None
                target = known.get(col.ref.model, {}).get(getattr(obj, f"{col.name}_id"))
                if target is not None:
                    self.fields[col.name].set_cached_value(obj, target)  # type: ignore[attr-defined]
        return found

    def _in_scope(self, pks: list[Any]) -> set[Any]:
        if not pks:
            return set()
        qs = restrict(self.model._default_manager.filter(pk__in=pks), self.actor, "import")
        return set(qs.values_list("pk", flat=True))

    def _prepare(self, row: _Row, obj: Any, in_scope: set[Any]) -> None:
        values = row.values
        if obj is not None and obj.pk not in in_scope:
            row.problems.append(self._outside_scope())
            return
        if obj is None and row.masked & set(self.reg.natural_key):
            col = self.reg.column(next(iter(row.masked & set(self.reg.natural_key))))
            row.problems.append(
                _problem(
                    "masked_new",
                    f"按「{key_header(col)}」找不到已有记录，新记录须填写完整的{col.zh}",
                    f"No existing record matches '{key_header(col)}'; a new record needs the full {col.en}",
                    field=col.name,
                    value=row.cells.get(col.name),
                )
            )
            return
        if self.reg.rules is not None:
            problems = self.reg.rules(values, obj)
            if problems:
                row.problems.extend(problems)
                return
        if obj is None:
            obj = self.model()
            self._assign(obj, values, creating=True)
            obj.created_by = self.actor
            obj.updated_by = self.actor
            obj.created_at = self.now
            obj.updated_at = self.now
            obj.area_path = obj.compute_area_path()
            self.creates.append((row.number, obj))
            return
        changed = self._assign(obj, values, creating=False)
        area = obj.compute_area_path()
        if area != obj.area_path:
            obj.area_path = area
            changed = True
        if not changed:
            self.unchanged += 1
            return
        obj.updated_by = self.actor
        obj.updated_at = self.now
        # The row as read from the database (kept by ZhizhiModel.from_db): only changed rows pay for it.
        self.updates.append((row.number, obj, obj._loaded_snapshot() or {}))

    def _outside_scope(self) -> Problem:
        return _problem(
            "outside_scope",
            "该记录不在您的辖区内，不能导入",
            "This record is outside your area and cannot be imported",
            expected_zh="您辖区内的记录",
            expected_en="a record inside your area",
        )

    def _assign(self, obj: Any, values: dict[str, Any], *, creating: bool) -> bool:
        """Set the parsed values; True when something differs from what the row held."""
        changed = False
        for name, value in values.items():
            col = self.reg.column(name)
            if col.kind == "sensitive":
                text = value or ""
                if creating or _hash_for(self.model, f"{name}_hash", text) != getattr(obj, f"{name}_hash"):
                    obj.set_sensitive(name, text)
                    changed = True
                continue
            if col.kind == "ref":
                if creating or getattr(obj, f"{name}_id") != (value.pk if value is not None else None):
                    setattr(obj, name, value)
                    changed = True
                continue
            model_field = self.fields.get(name)
            if value is None and model_field is not None and not model_field.null:
                if isinstance(model_field, models.CharField | models.TextField) and not model_field.choices:
                    value = ""
                else:
                    continue  # a blank cell keeps the stored value (or the default for a new row)
            if creating or not _same(getattr(obj, name), value):
                setattr(obj, name, value)
                changed = True
        return changed

    # -- writing --
    def _write(self) -> None:
        model = self.model
        manager = model._default_manager
        try:
            with transaction.atomic():
                created = [obj for _, obj in self.creates]
                batch = _batch_size(model)
                # Chunk by chunk, so the change-log rows of a big file never sit in memory all at once.
                for start in range(0, len(created), CHUNK):
                    part = created[start : start + CHUNK]
                    manager.bulk_create(part, batch_size=batch)
                    ChangeLogEntry.record_many((obj, "import", None, obj.snapshot()) for obj in part)
                if self.updates:
                    self._write_updates()
                    for start in range(0, len(self.updates), CHUNK):
                        ChangeLogEntry.record_many(
                            (obj, "update", before, obj.snapshot())
                            for _, obj, before in self.updates[start : start + CHUNK]
                        )
                _after_save(self.reg, created, [obj for _, obj, _ in self.updates])
                self._check_landed()
        except (IntegrityError, DatabaseError) as exc:
            raise _fail(
                "integrity",
                "与已有记录冲突，未导入任何数据",
                f"Conflicts with existing records; nothing was imported ({exc})",
            ) from exc

    def _write_updates(self) -> None:
        model = self.model
        manager = model._default_manager
        stale = []
        for start in range(0, len(self.updates), CHUNK):
            part = self.updates[start : start + CHUNK]
            current = dict(
                manager.select_for_update()
                .filter(pk__in=[o.pk for _, o, _ in part])
                .values_list("pk", "version")
            )
            for number, obj, _ in part:
                if current.get(obj.pk) != obj.version:
                    stale.append(
                        _problem(
                            "conflict",
                            "导入期间此记录已被他人修改，请重新导出后再导入",
                            "This record was changed by someone else during the import; export again",
                            row=number,
                        )
                    )
                obj.version += 1
        if stale:
            raise Invalid(stale)
        names = [
            f.name
            for f in model._meta.concrete_fields
            if not f.primary_key and f.name not in ("created_at", "created_by")
        ]
        objs = [obj for _, obj, _ in self.updates]
        manager.bulk_update(objs, names, batch_size=max(_batch_size(model) // 2, 1))

    def _check_landed(self) -> None:
        """Every written row must lie inside the actor's scope: checked by the one permission rule."""
        rows = [(n, o) for n, o in self.creates] + [(n, o) for n, o, _ in self.updates]
        outside = []
        for start in range(0, len(rows), CHUNK):
            part = rows[start : start + CHUNK]
            visible = self._in_scope([o.pk for _, o in part])
            for number, obj in part:
                if obj.pk not in visible:
                    p = self._outside_scope()
                    p.row = number
                    outside.append(p)
        if outside:
            raise Invalid(outside)


def _same(stored: Any, value: Any) -> bool:
    # A spreadsheet keeps 15 significant digits: 120.11749999999999 comes back as 120.1175.
    if isinstance(stored, float) and isinstance(value, float | int):
        return math.isclose(stored, value, rel_tol=1e-13, abs_tol=1e-12)
    return bool(stored == value)


def _batch_size(model: type[models.Model]) -> int:
    from django.db import connection

    limit = connection.features.max_query_params or 100000
    return max(min(1000, limit // max(len(model._meta.concrete_fields), 1)), 1)


def _required_fks(model: type[models.Model]) -> list[str]:
    """Non-null foreign keys (how a row of `model` writes itself, e.g. a house via its building)."""
    return [
        f.name
        for f in model._meta.concrete_fields
        if f.many_to_one and not f.null and f.related_model is not model
    ]


def _hash_for(model: type[models.Model], lookup: str, value: str) -> str:
    name = lookup[: -len("_hash")]
    try:
        return str(model.hash_for(name, str(value)))  # type: ignore[attr-defined]
    except (KeyError, AttributeError):
        return ""


def _prefetch_houses(keys: Collection[str]) -> dict[str, Any]:
    """House refs written "<building code>-<unit>-<room>": one query for a chunk of them."""
    from zhizhi.people.models import House
    from zhizhi.people.services import HOUSE_KEY_SEPARATOR

    wanted: dict[tuple[str, int, str], str] = {}
    for key in keys:
        try:
            code, unit, room = key.rsplit(HOUSE_KEY_SEPARATOR, 2)
            wanted[(code, int(unit), room)] = key
        except ValueError:
            continue
    out: dict[str, Any] = {key: None for key in keys}
    codes = {code for code, _, _ in wanted}
    for house in House.objects.select_related("building").filter(building__code__in=codes):
        written = wanted.get((house.building.code, house.unit, house.room))
        if written is not None:
            out[written] = house
    return out


_RESOLVE_PREFETCH: dict[str, Callable[[Collection[str]], dict[str, Any]]] = {
    "resolve_house": _prefetch_houses,
}


# --- after-save hooks, in bulk where a per-row hook would cost a query per row ---------------------
def _after_save(reg: Registry, created: list[Any], updated: list[Any]) -> None:
    bulk = _BULK_AFTER_SAVE.get(reg.key)
    if bulk is not None:
        bulk(created, updated)
        return
    if reg.after_save is None:
        return
    for obj in created:
        reg.after_save(obj, True)
    for obj in updated:
        reg.after_save(obj, False)


def _persons_saved(created: list[Any], updated: list[Any]) -> None:
    """people.person's hook in bulk: care tags follow an updated person's area."""
    from zhizhi.people.models import CareTag

    by_path: dict[str, list[Any]] = {}
    for person in updated:
        by_path.setdefault(person.area_path, []).append(person.pk)
    for path, pks in by_path.items():
        for start in range(0, len(pks), CHUNK):
            CareTag.objects.filter(person_id__in=pks[start : start + CHUNK]).update(area_path=path)


def _residencies_saved(created: list[Any], updated: list[Any]) -> None:
    """people.residency's hook in bulk: a person's grid is the grid of their current home
    (ordered as `_person_grid_from_residencies`: relation, then newest start)."""
    from zhizhi.people.models import CareTag, Person, Residency

    person_ids = sorted({r.person_id for r in [*created, *updated]})
    for start in range(0, len(person_ids), CHUNK):
        part = person_ids[start : start + CHUNK]
        grids: dict[Any, Any] = {}
        current = (
            Residency.objects.current()
            .filter(person_id__in=part)
            .select_related("house__building__grid")
            .order_by("person_id", "relation", "-start_date")
        )
        for residency in current:
            grids.setdefault(residency.person_id, residency.house.building.grid)
        now_grid = dict(Person.objects.filter(pk__in=part).values_list("pk", "grid_id"))
        moves: dict[Any, list[Any]] = {}
        for pk, grid in grids.items():
            if grid is not None and grid.pk != now_grid.get(pk):
                moves.setdefault(grid, []).append(pk)
        for grid, pks in moves.items():
            Person.objects.filter(pk__in=pks).update(grid=grid, area_path=grid.path)
            CareTag.objects.filter(person_id__in=pks).update(area_path=grid.path)


_BULK_AFTER_SAVE: dict[str, Callable[[list[Any], list[Any]], None]] = {
    "people.person": _persons_saved,
    "people.residency": _residencies_saved,
}


# --- export -------------------------------------------------------------------------------------
def export_rows(reg: Registry, actor: Any, queryset: Any = None, fmt: str = "xlsx") -> bytes:
    """The rows `actor` may export, in the import format (masked, formula-safe)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}")
    if not can(actor, "export", reg.model):
        raise Forbidden("无权导出此登记簿", "You may not export this registry")
    qs = queryset if queryset is not None else reg.model._default_manager.all()
    qs = restrict(qs, actor, "export").order_by("pk")
    return _write(fmt, reg.zh, headers(reg), _export_values(reg, qs), reg)


def template(reg: Registry, fmt: str = "xlsx") -> bytes:
    """A blank file with the headers only: what a person fills in to import."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}")
    return _write(fmt, reg.zh, headers(reg, with_keys=False), iter(()), reg)


def _export_values(reg: Registry, qs: Any) -> Iterator[list[Any]]:
    refs: dict[str, dict[Any, Any]] = {c.name: {} for c in reg.columns if c.kind == "ref"}
    keyed = [c for c in reg.columns if needs_key(c, reg)]
    chunk: list[Any] = []

    def flush() -> Iterator[list[Any]]:
        for col in reg.columns:
            if col.kind != "ref" or col.ref is None:
                continue
            known = refs[col.name]
            ids = {getattr(o, f"{col.name}_id") for o in chunk} - set(known) - {None}
            if ids:
                manager = col.ref.model._default_manager.select_related(*_required_fks(col.ref.model))
                known.update(manager.in_bulk(list(ids)))
        for obj in chunk:
            out = [_export_value(reg, col, obj, refs) for col in reg.columns]
            for col in keyed:
                if col.kind == "sensitive":
                    out.append(getattr(obj, f"{col.name}_hash", ""))
                else:
                    target = refs[col.name].get(getattr(obj, f"{col.name}_id"))
                    out.append(getattr(target, col.ref.key, "") if target is not None and col.ref else "")
            yield out

    for obj in qs.iterator(chunk_size=CHUNK):
        chunk.append(obj)
        if len(chunk) >= CHUNK:
            yield from flush()
            chunk = []
    if chunk:
        yield from flush()


def _export_value(reg: Registry, col: Column, obj: Any, refs: dict[str, dict[Any, Any]]) -> Any:
    if col.kind == "sensitive":
        return getattr(obj, f"{col.name}_masked", "")
    if col.kind == "ref":
        assert col.ref is not None
        target = refs[col.name].get(getattr(obj, f"{col.name}_id"))
        return col.ref.natural(target) if target is not None else None
    value = getattr(obj, col.name)
    if value is None:
        return None
    if col.kind == "choice":
        choices = dict(reg.model._meta.get_field(col.name).choices or [])  # type: ignore[union-attr]
        return str(choices.get(value, value))
    if col.kind == "bool":
        return "是" if value else "否"
    if col.kind == "json":
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return value


def neutralise(value: str) -> str:
    """The CSV form of a text cell: a leading apostrophe stops a spreadsheet evaluating it."""
    return "'" + value if value.startswith(FORMULA_TRIGGERS) else value


def _write(fmt: str, title: str, head: list[str], rows: Iterator[list[Any]], reg: Registry) -> bytes:
    if fmt == "csv":
        return _write_csv(head, rows)
    return _write_xlsx(title, head, rows, reg)


def _write_csv(head: list[str], rows: Iterator[list[Any]]) -> bytes:
    buf = io.StringIO(newline="")
    # The BOM lets Excel open the UTF-8 file with its Chinese intact.
    buf.write("\ufeff")
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(head)
    for row in rows:
        writer.writerow([_csv_text(v) for v in row])
    return buf.getvalue().encode("utf-8")


def _csv_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        return neutralise(value)
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    return str(value)


def _write_xlsx(title: str, head: list[str], rows: Iterator[list[Any]], reg: Registry) -> bytes:
    book = Workbook(write_only=True)
    sheet = book.create_sheet(title[:31] or "Sheet1")
    sheet.freeze_panes = "A2"
    keyed_from = len(reg.columns)
    for index, name in enumerate(head, start=1):
        dim = sheet.column_dimensions[get_column_letter(index)]
        dim.width = max(10, min(40, len(name) * 2 + 4))
        if index > keyed_from:
            dim.hidden = True  # the lookup-hash columns are for the importer, not for reading
    bold = Font(bold=True)
    header_cells = []
    for name in head:
        cell = WriteOnlyCell(sheet, value=name)
        cell.font = bold
        header_cells.append(cell)
    sheet.append(header_cells)
    for row in rows:
        sheet.append([_xlsx_cell(sheet, v) for v in row])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _xlsx_cell(sheet: Any, value: Any) -> Any:
    if isinstance(value, str):
        value = ILLEGAL_CHARACTERS_RE.sub("", value)
        if value.startswith(FORMULA_TRIGGERS):
            # Stored as a text cell with Excel's quote prefix: shown and kept as text, never evaluated.
            cell = WriteOnlyCell(sheet, value=value)
            cell.data_type = "s"
            cell.quotePrefix = True
            return cell
        return value
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    return value


def export_filename(reg: Registry, fmt: str, *, blank: bool = False) -> str:
    stamp = clock.now().strftime("%Y%m%d-%H%M")
    kind = "模板" if blank else stamp
    return f"{reg.zh}-{kind}.{fmt}"
