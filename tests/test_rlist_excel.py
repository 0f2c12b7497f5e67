"""The responsibility list ⇄ Excel: round trip, edits, every problem reported, permissions, the page,
and the uncovered-year holiday banner."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import pytest
from django.test import Client
from openpyxl import Workbook, load_workbook

from zhizhi import clock
from zhizhi.cases import rlist_excel
from zhizhi.cases.models import Category, HolidayOverride
from zhizhi.cases.services import load_responsibility_list
from zhizhi.problems import Forbidden, Invalid

from .factories import PASSWORD

LIST: list[dict[str, Any]] = [
    {
        "code": "01",
        "name": "市容环境",
        "kind": "event",
        "children": [
            {
                "code": "0102",
                "name": "暴露垃圾",
                "keywords": ["垃圾", "暴露"],
                "register_criteria": "暴露垃圾面积0.5平方米以上",
                "close_criteria": "=清运完毕",
                "responsibility": "territorial",
                "assign_rule": "grid_worker",
                "sign_limit": [1, "work_hours"],
                "handle_limit": [1, "work_days"],
                "photo_required": True,
                "dedup_distance_m": 30,
            },
            {
                "code": "0103",
                "name": "燃气泄漏",
                "keywords": ["燃气", "煤气味"],
                "responsibility": "joint",
                "department": "QYFZB",
                "assisting": ["C-A", "G-A1"],
                "assign_rule": "on_duty",
                "sign_limit": [5, "calendar_minutes"],
                "onsite_limit": [15, "calendar_minutes"],
                "followup_limit": [24, "work_hours"],
                "handle_limit": [0.5, "work_days"],
                "urgent": True,
            },
        ],
    },
    {
        "code": "02",
        "name": "设施管理",
        "kind": "component",
        "children": [
            {
                "code": "0201",
                "name": "井盖破损",
                "keywords": ["井盖"],
                "responsibility": "department",
                "department": "QYFZB",
                "assign_rule": "least_loaded",
                "handle_limit": [3, "work_days"],
            }
        ],
    },
]


@pytest.fixture
def rlist(street: Any) -> Any:
    load_responsibility_list(LIST, None)
    return street


def _sheet(data: bytes) -> list[list[Any]]:
    return [list(r) for r in load_workbook(io.BytesIO(data)).worksheets[0].iter_rows(values_only=True)]


def _xlsx(rows: list[list[Any]]) -> io.BytesIO:
    book = Workbook()
    for row in rows:
        book.active.append(row)
    for cells in book.active.iter_rows():
        for cell in cells:
            if isinstance(cell.value, str) and cell.value.startswith("="):
                cell.data_type = "s"  # kept as text, as Excel does for a quote-prefixed cell
    out = io.BytesIO()
    book.save(out)
    out.seek(0)
    return out


def _snapshot() -> list[tuple[Any, ...]]:
    return [
        (
            c.code,
            c.name,
            c.kind,
            c.parent_id,
            c.sign_limit,
            c.onsite_limit,
            c.followup_limit,
            c.handle_limit,
            c.department_id,
            tuple(sorted(c.assisting.values_list("code", flat=True))),
            c.keywords,
            c.urgent,
            c.photo_required,
            c.dedup_distance_m,
            c.assign_rule,
            c.close_criteria,
            c.register_criteria,
            c.responsibility,
            c.reinforce_limit,
        )
        for c in Category.objects.order_by("code")
    ]


def test_export_writes_one_row_per_leaf_with_chinese_headers_and_limit_text(rlist: Any) -> None:
    rows = _sheet(rlist_excel.export_rlist())
    assert rows[0][:6] == ["大类编码", "大类名称", "类型", "小类编码", "小类名称", "关键词"]
    by_code = {r[3]: dict(zip(rows[0], r, strict=True)) for r in rows[1:]}
    assert set(by_code) == {"0102", "0103", "0201"}
    gas = by_code["0103"]
    assert (
        gas["签收时限"] == "5 分钟" and gas["办理时限"] == "0.5 工作日" and gas["跟进时限"] == "24 工作小时"
    )
    assert gas["协办单位编码"] == "C-A、G-A1" and gas["责任方式"] == "联办" and gas["派单规则"] == "值班"
    assert gas["紧急"] == "是" and by_code["0201"]["类型"] == "部件"
    # A text starting with "=" is written as text, never as a formula.
    book = load_workbook(io.BytesIO(rlist_excel.export_rlist()))
    cells = [c for row in book.worksheets[0].iter_rows() for c in row if c.value == "=清运完毕"]
    assert cells and all(c.data_type == "s" for c in cells)


def test_round_trip_changes_nothing(rlist: Any) -> None:
    before = _snapshot()
    counts = rlist_excel.import_rlist(
        io.BytesIO(rlist_excel.export_rlist()), "清单.xlsx", rlist.users["leader"]
    )
    assert counts["created"] == 0 and counts["updated"] == 0 and counts["unchanged"] == 5
    assert _snapshot() == before


def test_an_edited_limit_is_updated(rlist: Any) -> None:
    rows = _sheet(rlist_excel.export_rlist())
    col = rows[0].index("办理时限")
    for row in rows[1:]:
        if row[3] == "0102":
            row[col] = "3工作日"
    counts = rlist_excel.import_rlist(_xlsx(rows), "清单.xlsx", rlist.users["leader"])
    assert counts["updated"] == 1 and counts["created"] == 0
    assert Category.objects.get(code="0102").handle_limit == [3, "work_days"]


def test_limit_grammar() -> None:
    assert rlist_excel.parse_limit("2 工作小时") == [2, "work_hours"]
    assert rlist_excel.parse_limit("30分钟") == [30, "calendar_minutes"]
    assert rlist_excel.parse_limit("30 自然分钟") == [30, "calendar_minutes"]
    assert rlist_excel.parse_limit(" ") is None
    for bad in ("2 小时", "三 工作日", "0 工作日", "-1 工作日", "2"):
        with pytest.raises(ValueError):
            rlist_excel.parse_limit(bad)


def test_every_bad_row_is_reported_and_nothing_written(rlist: Any) -> None:
    before = _snapshot()
    rows = _sheet(rlist_excel.export_rlist())
    head = rows[0]
    base = next(r for r in rows[1:] if r[3] == "0102")

    def row(**changes: Any) -> list[Any]:
        out = list(base)
        for header, value in changes.items():
            out[head.index(header)] = value
        return out

    bad = [
        head,
        row(小类编码="0105", 小类名称="新事项", 责任部门编码="NOPE"),  # row 2: unknown unit
        row(小类编码="0106", 小类名称="时限错", 签收时限="两小时"),  # row 3: bad limit text
        row(小类编码="0105", 小类名称="重复"),  # row 4: duplicate item code
        row(小类编码="0901", 小类名称="前缀错"),  # row 5: not prefixed by its 大类 01
        row(小类编码=104, 小类名称="数字编码"),  # row 6: a number cell (the leading zero is lost)
    ]
    with pytest.raises(Invalid) as caught:
        rlist_excel.import_rlist(_xlsx(bad), "坏.xlsx", rlist.users["leader"])
    found = {(p.row, p.column, p.value) for p in caught.value.problems}
    assert (2, "责任部门编码", "NOPE") in found
    assert (3, "签收时限", "两小时") in found
    assert (4, "小类编码", "0105") in found
    assert (5, "小类编码", "0901") in found
    assert (6, "小类编码", "104") in found
    assert all(p.zh and p.en for p in caught.value.problems)
    assert _snapshot() == before
    assert not Category.objects.filter(code__in=["0105", "0106", "0901"]).exists()


def test_a_grid_worker_may_not_import_or_open_the_page(rlist: Any) -> None:
    worker = rlist.users["grid_a1"]
    with pytest.raises(Forbidden):
        rlist_excel.import_rlist(io.BytesIO(rlist_excel.export_rlist()), "清单.xlsx", worker)
    client = Client()
    client.login(username=worker.username, password=PASSWORD)
    assert client.get("/cases/rlist/").status_code == 403
    assert client.get("/cases/rlist/export.xlsx").status_code == 403


def test_the_page_renders_exports_and_imports_for_the_leader(rlist: Any) -> None:
    client = Client()
    client.login(username="leader", password=PASSWORD)
    page = client.get("/cases/rlist/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "市容环境" in html and "燃气泄漏" in html and "0.5 工作日" in html and "QYFZB" in html
    exported = client.get("/cases/rlist/export.xlsx")
    assert exported.status_code == 200 and _sheet(exported.content)[0][0] == "大类编码"
    upload = io.BytesIO(exported.content)
    upload.name = "清单.xlsx"
    done = client.post("/cases/rlist/", {"file": upload})
    assert done.status_code == 200 and "0 created, 0 updated" in done.content.decode()
    rows = _sheet(exported.content)
    rows[1][rows[0].index("签收时限")] = "两小时"
    bad = _xlsx(rows)
    bad.name = "坏.xlsx"
    refused = client.post("/cases/rlist/", {"file": bad})
    text = refused.content.decode()
    assert refused.status_code == 400 and "两小时" in text and "时限格式错误" in text
    assert "is not a valid time limit" in text


def test_the_banner_shows_for_the_leader_when_next_year_is_uncovered(rlist: Any) -> None:
    leader, worker = Client(), Client()
    leader.login(username="leader", password=PASSWORD)
    worker.login(username="grid_a1", password=PASSWORD)
    with clock.frozen_at(dt.datetime(2026, 12, 15, 10, 0, tzinfo=dt.UTC)):
        html = leader.get("/cases/rlist/").content.decode()
        assert "节假日数据缺少 2027 年" in html and "Holiday data for 2027 is missing" in html
        assert "/admin/cases/holidayoverride/" in html
        page = worker.get("/cases/mobile/")
        assert page.status_code == 200 and "holiday-banner" not in page.content.decode()
    with clock.frozen_at(dt.datetime(2025, 6, 15, 10, 0, tzinfo=dt.UTC)):
        assert "holiday-banner" not in leader.get("/cases/rlist/").content.decode()
    assert HolidayOverride.objects.count() == 0


@pytest.mark.django_db
def test_the_shipped_list_survives_the_excel_round_trip_unchanged() -> None:
    """All 224 items of data/responsibility_list.json: JSON load, export, import → nothing changes."""
    import json
    from pathlib import Path

    from zhizhi.demo.plan import STREET_UNITS
    from zhizhi.orgs.models import OrgUnit, User

    for code, name, kind in STREET_UNITS:
        OrgUnit.objects.create(code=code, name=name, kind=kind)
    path = Path(rlist_excel.__file__).parent / "data" / "responsibility_list.json"
    load_responsibility_list(json.loads(path.read_text(encoding="utf-8")), None)
    before = _snapshot()
    admin = User.objects.create_superuser("rlist-admin", password=PASSWORD)
    data = rlist_excel.export_rlist()
    assert len(_sheet(data)) == 1 + Category.objects.filter(parent__isnull=False).count()
    counts = rlist_excel.import_rlist(io.BytesIO(data), "清单.xlsx", admin)
    assert counts["created"] == 0 and counts["updated"] == 0
    assert _snapshot() == before
