"""Excel/CSV import and export: round trips, idempotence, all-or-nothing with every problem reported,
bad files, formula cells and formula injection, scope, permissions, the page flow and the commands."""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from openpyxl import Workbook, load_workbook
from stdnum.cn import ric, uscc

from tests.factories import Street, tag
from zhizhi import exchange, registry
from zhizhi.enterprises.models import Executive, TaxRecord
from zhizhi.models import ChangeLogEntry, ImportJob, ObjectPermission
from zhizhi.people.models import Person, Residency
from zhizhi.problems import Forbidden, Invalid

PERSON_HEADERS = ["姓名", "身份证号", "性别", "出生日期", "手机号", "人口类型", "状态", "网格编码", "备注"]


def id_number(i: int, gender: str = "M") -> str:
    """A valid ID number for Gongshu (330105, a code since 1983), unique for i < 1,000,000."""
    birth = dt.date(1985, 1, 1) + dt.timedelta(days=i // 400)
    seq = (i % 400) * 2 + (1 if gender == "M" else 0)
    body = f"330105{birth:%Y%m%d}{seq:03d}"
    return body + ric.calc_check_digit(body + "0")


def person_row(i: int, grid: str, **over: str) -> list[str]:
    number = id_number(i)
    birth = f"{number[6:10]}-{number[10:12]}-{number[12:14]}"
    row = {
        "姓名": f"居民{i}",
        "身份证号": number,
        "性别": "男",
        "出生日期": birth,
        "手机号": f"138{i:08d}",
        "人口类型": "户籍",
        "状态": "在册",
        "网格编码": grid,
        "备注": "",
    }
    row.update(over)
    return [row[h] for h in PERSON_HEADERS]


def csv_file(
    rows: list[list[str]], headers: list[str] = PERSON_HEADERS, encoding: str = "utf-8-sig"
) -> bytes:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow(headers)
    writer.writerows(rows)
    return buf.getvalue().encode(encoding)


def xlsx_file(rows: list[list[object]], headers: list[str] = PERSON_HEADERS) -> bytes:
    book = Workbook(write_only=True)
    sheet = book.create_sheet("居民")
    sheet.append(headers)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def run_import(key: str, user, data: bytes, name: str = "f.csv", **kw) -> exchange.ImportResult:  # type: ignore[no-untyped-def]
    return exchange.import_file(registry.get(key), user, io.BytesIO(data), name, **kw)


def problems_of(exc: pytest.ExceptionInfo[Invalid]) -> list[tuple[int | None, str, str]]:
    return [(p.row, p.column, p.code) for p in exc.value.problems]


# --- round trip and idempotence -------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["xlsx", "csv"])
def test_export_then_import_changes_nothing(street: Street, fmt: str) -> None:
    street.person("a", grid="A1", house="A1-1-101", note="=cmd|' /C calc'!A0")
    street.person("b", grid="A2", house="A2-2-201", note="-5 楼下")
    street.person("c", grid="B1", house="B1-1-101")
    admin = street.users["admin"]
    tag(street.people["a"], "disabled", level="二级", verified_on=dt.date(2024, 3, 1))
    code = "91330105MA2" + "AB1C2D"
    enterprise = registry.create(
        registry.get("enterprises.enterprise"),
        admin,
        {
            "name": "=HYPERLINK(1)",
            "credit_code": code + uscc.calc_check_digit(code),
            "legal_representative": "张三",
            "registered_address": "测试路1号",
            "house": "B-A1-1-101",
            "industry": "C",
            "registered_capital": "100.50",
        },
    )
    TaxRecord.objects.create(enterprise=enterprise, period=dt.date(2024, 1, 1), revenue=12.5, tax_paid=1)
    Executive.objects.create(
        enterprise=enterprise, name="李四", position="gm", start_date=dt.date(2020, 5, 1)
    )
    keys = list(registry.registries())
    before_log = ChangeLogEntry.objects.count()
    versions = dict(Person.objects.values_list("pk", "version"))
    for key in keys:
        reg = registry.get(key)
        body = exchange.export_rows(reg, admin, fmt=fmt)
        result = exchange.import_file(reg, admin, io.BytesIO(body), f"out.{fmt}")
        count = reg.model._default_manager.count()
        assert (result.created, result.updated, result.unchanged, result.total) == (0, 0, count, count), key
    assert ChangeLogEntry.objects.count() == before_log
    assert dict(Person.objects.values_list("pk", "version")) == versions
    assert Person.objects.get(pk=street.people["a"].pk).note == "=cmd|' /C calc'!A0"
    assert {"enterprises.taxrecord", "orgs.orgunit", "people.caretag"} <= set(keys)


def test_export_is_masked_and_scoped(street: Street) -> None:
    mine = street.person("a", grid="A1")
    street.person("b", grid="B1")
    body = exchange.export_rows(registry.get("people.person"), street.users["community_a"], fmt="csv")
    text = body.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][: len(PERSON_HEADERS) - 2] == PERSON_HEADERS[:7]
    assert [r[0] for r in rows[1:]] == ["居民a"]  # community A only, never community B
    plain = mine.decrypt_sensitive("id_number")
    assert plain not in text and mine.decrypt_sensitive("phone") not in text
    assert mine.id_number_masked in text and mine.id_number_hash in text


def test_import_twice_is_idempotent_and_a_change_bumps_the_version(street: Street) -> None:
    user = street.users["community_a"]
    grid = street.grids["A1"].code
    data = csv_file([person_row(i, grid) for i in range(5)])
    first = run_import("people.person", user, data)
    assert (first.created, first.updated, first.unchanged, first.total) == (5, 0, 0, 5)
    assert ChangeLogEntry.objects.filter(action="import").count() == 5
    again = run_import("people.person", user, data)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 5)
    assert Person.objects.count() == 5
    person = Person.objects.get(name="居民0")
    assert person.version == 1 and person.area_path == street.grids["A1"].path
    assert person.created_by == user and person.id_number_masked.count("*") == 8
    changed = csv_file([person_row(0, grid, 姓名="张三")] + [person_row(i, grid) for i in range(1, 5)])
    third = run_import("people.person", user, changed)
    assert (third.created, third.updated, third.unchanged) == (0, 1, 4)
    person.refresh_from_db()
    assert person.name == "张三" and person.version == 2
    entry = ChangeLogEntry.objects.get(action="update", object_id=str(person.pk))
    assert entry.before["name"] == "居民0" and entry.after["name"] == "张三" and entry.actor == user


def test_xlsx_import_with_gbk_csv_and_numbers_as_cells(street: Street) -> None:
    grid = street.grids["A1"].code
    book = xlsx_file(
        [[f"居民{i}", id_number(i), "男", None, None, "常住", "在册", int(grid), None] for i in range(3)]
    )
    result = run_import("people.person", street.users["admin"], book, "people.xlsx")
    assert result.created == 3
    assert Person.objects.get(name="居民1").birth_date == dt.date(1985, 1, 1)  # derived from the ID
    gbk = csv_file([person_row(10, grid)], encoding="gbk")
    assert run_import("people.person", street.users["admin"], gbk, "gbk.csv").created == 1


# --- all or nothing, every problem with its row -----------------------------------------------------
def test_ten_thousand_rows_with_three_bad_report_all_three_and_write_nothing(street: Street) -> None:
    grid = street.grids["A1"].code
    rows = [person_row(i, grid) for i in range(10_000)]
    bad_id = rows[99][1]
    rows[99][1] = bad_id[:-1] + ("0" if bad_id[-1] != "0" else "1")  # spreadsheet row 101: check digit
    rows[5000][3] = "1990-02-30"  # row 5002: impossible date
    rows[9997][7] = "999999999999999"  # row 9999: unknown grid
    before = ChangeLogEntry.objects.count()
    with pytest.raises(Invalid) as exc:
        run_import("people.person", street.users["community_a"], csv_file(rows))
    found = problems_of(exc)
    assert [(r, c) for r, c, _ in found] == [(101, "身份证号"), (5002, "出生日期"), (9999, "网格编码")]
    assert [code for _, _, code in found] == ["id_checksum", "date_invalid", "ref_missing"]
    assert all(p.zh and p.en for p in exc.value.problems)
    assert Person.objects.count() == 0 and ChangeLogEntry.objects.count() == before


def test_duplicate_rows_in_one_file_name_both_rows(street: Street) -> None:
    grid = street.grids["A1"].code
    rows = [person_row(1, grid), person_row(2, grid), person_row(1, grid, 姓名="又一个")]
    with pytest.raises(Invalid) as exc:
        run_import("people.person", street.users["admin"], csv_file(rows))
    (problem,) = exc.value.problems
    assert problem.code == "duplicate_row" and problem.row == 4
    assert "第2行" in problem.zh and "row 2" in problem.en
    assert Person.objects.count() == 0


def test_header_problems_are_reported_together(street: Street) -> None:
    data = csv_file([["张三", "x"]], headers=["姓名", "身份证"])
    with pytest.raises(Invalid) as exc:
        run_import("people.person", street.users["admin"], data)
    assert ("身份证", "unknown_column") in [(p.column, p.code) for p in exc.value.problems]
    assert ("身份证号", "missing_column") in [(p.column, p.code) for p in exc.value.problems]


def test_gender_mismatch_and_bad_choice_are_rows_problems(street: Street) -> None:
    grid = street.grids["A1"].code
    rows = [person_row(1, grid, 性别="女"), person_row(2, grid, 人口类型="外星")]
    with pytest.raises(Invalid) as exc:
        run_import("people.person", street.users["admin"], csv_file(rows))
    assert problems_of(exc) == [(2, "性别", "gender_mismatch"), (3, "人口类型", "choice")]
    assert exc.value.problems[1].expected_zh == "户籍、常住、流动、境外"


# --- bad files ---------------------------------------------------------------------------------
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00"


@pytest.mark.parametrize("name", ["people.xlsx", "people.csv", "people.pdf"])
def test_a_file_that_is_not_a_spreadsheet_is_refused(street: Street, name: str) -> None:
    with pytest.raises(Invalid) as exc:
        run_import("people.person", street.users["admin"], PNG, name)
    (problem,) = exc.value.problems
    assert problem.code == "not_spreadsheet" and "不是可读取的电子表格" in problem.zh
    assert "not a readable spreadsheet" in problem.en


def test_a_zip_that_is_not_a_workbook_and_an_old_xls_are_refused(street: Street) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("word/document.xml", "<w:document/>")
    with pytest.raises(Invalid) as exc:
        run_import("people.person", street.users["admin"], buf.getvalue(), "fake.xlsx")
    assert exc.value.problems[0].code == "not_spreadsheet"
    with pytest.raises(Invalid) as exc:
        run_import(
            "people.person", street.users["admin"], b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 50, "a.xls"
        )
    assert exc.value.problems[0].code == "old_excel"


@override_settings(ZHIZHI_IMPORT_MAX_BYTES=200)
def test_an_oversized_file_is_refused_before_parsing(street: Street) -> None:
    grid = street.grids["A1"].code
    data = csv_file([person_row(i, grid) for i in range(10)])
    assert len(data) > 200
    with pytest.raises(Invalid) as exc:
        run_import("people.person", street.users["admin"], data)
    (problem,) = exc.value.problems
    assert problem.code == "file_too_large" and "过大" in problem.zh and "too large" in problem.en
    assert Person.objects.count() == 0


def test_formula_cells_are_refused(street: Street) -> None:
    grid = street.grids["A1"].code
    rows: list[list[object]] = [person_row(i, grid) for i in range(3)]
    rows[1][0] = '=CONCATENATE("居","民")'
    with pytest.raises(Invalid) as exc:
        run_import("people.person", street.users["admin"], xlsx_file(rows), "people.xlsx")
    (problem,) = exc.value.problems
    assert (problem.row, problem.column, problem.code) == (3, "姓名", "formula")
    assert problem.zh == "公式单元格不被接受" and problem.en == "Formula cells are not accepted"
    assert Person.objects.count() == 0


def test_export_neutralises_formula_injection(street: Street) -> None:
    street.person("evil", grid="A1", name="=cmd|' /C calc'!A0", note="@SUM(1+1)")
    admin = street.users["admin"]
    reg = registry.get("people.person")
    book = load_workbook(io.BytesIO(exchange.export_rows(reg, admin, fmt="xlsx")))
    sheet = book.worksheets[0]
    name, note = sheet.cell(row=2, column=1), sheet.cell(row=2, column=10)
    assert name.value == "=cmd|' /C calc'!A0" and name.data_type == "s" and name.quotePrefix
    assert note.value == "@SUM(1+1)" and note.data_type == "s" and note.quotePrefix
    assert all(c.data_type != "f" for row in sheet.iter_rows() for c in row)
    text = exchange.export_rows(reg, admin, fmt="csv").decode("utf-8-sig")
    row = list(csv.reader(io.StringIO(text)))[1]
    assert row[0] == "'=cmd|' /C calc'!A0" and row[9] == "'@SUM(1+1)"


# --- scope and permissions ----------------------------------------------------------------------
def test_grid_worker_without_import_permission_is_forbidden(street: Street) -> None:
    data = csv_file([person_row(1, street.grids["A1"].code)])
    with pytest.raises(Forbidden):
        run_import("people.person", street.users["grid_a1"], data)
    for user in (AnonymousUser(), street.users["volunteer"]):
        with pytest.raises(Forbidden):
            run_import("people.person", user, data)
        with pytest.raises(Forbidden):
            exchange.export_rows(registry.get("people.person"), user)
    assert Person.objects.count() == 0


def test_grid_worker_importing_rows_of_another_grid_is_rejected(street: Street) -> None:
    worker = street.users["grid_a1"]
    perm = ObjectPermission.objects.create(
        name="网格员导入", object_types=["people.person"], actions=["import"],
        constraints={"area_path__startswith": "$scope"},
    )  # fmt: skip
    perm.users.add(worker)
    a1, b1 = street.grids["A1"].code, street.grids["B1"].code
    rows = [person_row(1, a1), person_row(2, b1), person_row(3, a1), person_row(4, b1)]
    with pytest.raises(Invalid) as exc:
        run_import("people.person", worker, csv_file(rows))
    assert [(p.row, p.code) for p in exc.value.problems] == [(3, "outside_scope"), (5, "outside_scope")]
    assert Person.objects.count() == 0
    # An existing resident of B1 cannot be changed through an import either.
    other = street.person("b", grid="B1")
    body = exchange.export_rows(registry.get("people.person"), street.users["admin"], fmt="csv")
    changed = body.decode("utf-8-sig").replace("居民b", "改名")
    with pytest.raises(Invalid) as exc:
        run_import("people.person", worker, changed.encode())
    assert [(p.row, p.code) for p in exc.value.problems] == [(2, "outside_scope")]
    other.refresh_from_db()
    assert other.name == "居民b"


def test_a_masked_id_without_its_key_cannot_create_a_row(street: Street) -> None:
    rows = [person_row(1, street.grids["A1"].code, 身份证号="330105********1234")]
    with pytest.raises(Invalid) as exc:
        run_import("people.person", street.users["admin"], csv_file(rows))
    assert [(p.row, p.code) for p in exc.value.problems] == [(2, "masked_value")]


# --- refs, residencies and the grid move --------------------------------------------------------
def test_residency_import_moves_the_person_to_the_grid_of_the_house(street: Street) -> None:
    admin = street.users["admin"]
    run_import("people.person", admin, csv_file([person_row(7, street.grids["A1"].code)]))
    person = Person.objects.get()
    data = csv_file(
        [[id_number(7), "B-B2-1-201", "户主", "2024-01-01", ""]],
        headers=["居民身份证号", "房屋", "关系", "起始日期", "截止日期"],
    )
    result = run_import("people.residency", admin, data)
    assert result.created == 1
    person.refresh_from_db()
    assert person.grid == street.grids["B2"] and person.area_path == street.grids["B2"].path
    residency = Residency.objects.get()
    assert residency.area_path == street.grids["B2"].path and residency.house == street.houses["B2-1-201"]
    assert run_import("people.residency", admin, data).unchanged == 1
    bad = csv_file(
        [[id_number(8), "B-B2-9-999", "户主", "", ""]],
        headers=["居民身份证号", "房屋", "关系", "起始日期", "截止日期"],
    )
    with pytest.raises(Invalid) as exc:
        run_import("people.residency", admin, bad)
    assert [(p.row, p.column, p.code) for p in exc.value.problems] == [
        (2, "居民身份证号", "ref_missing"),
        (2, "房屋", "ref_missing"),
    ]


def test_blank_template_has_headers_only(street: Street) -> None:
    reg = registry.get("people.person")
    sheet = load_workbook(io.BytesIO(exchange.template(reg, "xlsx")), read_only=True).worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    assert rows == [tuple(c.zh for c in reg.columns)]


def test_progress_is_reported(street: Street) -> None:
    seen: list[tuple[int, int]] = []
    grid = street.grids["A1"].code
    data = csv_file([person_row(i, grid) for i in range(exchange.CHUNK + 10)])
    run_import("people.person", street.users["admin"], data, progress=lambda d, t: seen.append((d, t)))
    assert seen[0] == (exchange.CHUNK, exchange.CHUNK + 10) and seen[-1] == (exchange.CHUNK + 10,) * 2


# --- pages ------------------------------------------------------------------------------------
def test_page_flow_upload_job_result(street: Street, client) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/exchange/").status_code == 302  # login first
    client.force_login(street.users["community_a"])
    page = client.get("/exchange/")
    assert page.status_code == 200 and "居民" in page.content.decode()
    grid = street.grids["A1"].code
    upload = io.BytesIO(csv_file([person_row(i, grid) for i in range(3)]))
    upload.name = "people.csv"
    response = client.post("/exchange/import/", {"registry": "people.person", "file": upload})
    assert response.status_code == 302
    job = ImportJob.objects.get()
    assert response["Location"] == f"/exchange/jobs/{job.pk}/"
    assert (job.status, job.created, job.total, bytes(job.data)) == ("done", 3, 3, b"")
    html = client.get(response["Location"]).content.decode()
    assert "导入完成" in html and "hx-trigger" not in html
    assert Person.objects.count() == 3

    bad = io.BytesIO(csv_file([person_row(9, grid, 出生日期="1990-13-01"), person_row(10, grid)]))
    bad.name = "bad.csv"
    response = client.post("/exchange/import/", {"registry": "people.person", "file": bad})
    job = ImportJob.objects.get(filename="bad.csv")
    assert job.status == "failed" and [p["row"] for p in job.problems] == [2]
    fragment = client.get(f"/exchange/jobs/{job.pk}/progress/").content.decode()
    assert "import-problems" in fragment and "出生日期" in fragment and "Not a valid date" in fragment
    assert Person.objects.count() == 3

    download = client.get("/exchange/export/people.person.csv")
    assert download.status_code == 200 and "attachment" in download["Content-Disposition"]
    assert download.content.decode("utf-8-sig").count("\n") == 4
    assert client.get("/exchange/template/people.person.xlsx").status_code == 200
    assert client.get("/exchange/export/nope.thing.csv").status_code == 404


def test_pages_refuse_the_unpermitted(street: Street, client) -> None:  # type: ignore[no-untyped-def]
    owner = street.users["community_a"]
    job = ImportJob.objects.create(actor=owner, registry="people.person", filename="x.csv", problems=[])
    client.force_login(street.users["volunteer"])
    assert client.get("/exchange/export/people.person.xlsx").status_code == 403
    assert client.get("/exchange/template/people.person.csv").status_code == 403
    upload = io.BytesIO(b"a,b\n")
    upload.name = "x.csv"
    assert client.post("/exchange/import/", {"registry": "people.person", "file": upload}).status_code == 403
    assert client.get(f"/exchange/jobs/{job.pk}/").status_code == 404  # someone else's job
    assert ImportJob.objects.count() == 1


@override_settings(ZHIZHI_IMPORT_MAX_BYTES=100)
def test_page_refuses_an_oversized_upload(street: Street, client) -> None:  # type: ignore[no-untyped-def]
    client.force_login(street.users["community_a"])
    upload = io.BytesIO(b"x" * 500)
    upload.name = "big.csv"
    response = client.post("/exchange/import/", {"registry": "people.person", "file": upload})
    assert response.status_code == 400 and "文件过大" in response.content.decode()
    assert ImportJob.objects.count() == 0


# --- commands ---------------------------------------------------------------------------------
def test_commands_import_export_and_fail_with_problems(street: Street, tmp_path) -> None:  # type: ignore[no-untyped-def]
    grid = street.grids["A1"].code
    good = tmp_path / "people.csv"
    good.write_bytes(csv_file([person_row(i, grid) for i in range(4)]))
    out = io.StringIO()
    call_command(
        "import_registry", "people.person", str(good), "--as", "community_a", "--no-progress", stdout=out
    )
    assert "新增 created 4" in out.getvalue() and Person.objects.count() == 4
    bad = tmp_path / "bad.csv"
    bad.write_bytes(csv_file([person_row(20, grid, 手机号="123"), person_row(21, grid, 状态="不明")]))
    err = io.StringIO()
    with pytest.raises(CommandError) as exc:
        call_command(
            "import_registry", "people.person", str(bad), "--as", "community_a", "--no-progress", stderr=err
        )
    assert "2 problem" in str(exc.value)
    assert "第2行 row 2" in err.getvalue() and "第3行 row 3" in err.getvalue()
    assert Person.objects.count() == 4
    target = tmp_path / "out.xlsx"
    call_command("export_registry", "people.person", str(target), "--as", "community_a", stdout=io.StringIO())
    assert len(list(load_workbook(target, read_only=True).worksheets[0].iter_rows())) == 5
    with pytest.raises(CommandError):
        call_command("export_registry", "people.person", str(target), "--as", "volunteer")


def test_import_command_exits_non_zero_on_problems(street: Street, tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from django.db import connections

    from zhizhi.management.commands.import_registry import Command

    # run_from_argv closes every connection when it ends, which would end the test's transaction.
    monkeypatch.setattr(connections, "close_all", lambda: None)
    bad = tmp_path / "bad.csv"
    bad.write_bytes(csv_file([person_row(1, street.grids["A1"].code, 出生日期="1990-02-30")]))
    argv = ["manage.py", "import_registry", "people.person", str(bad), "--as", "community_a", "--no-progress"]
    with pytest.raises(SystemExit) as exc:
        Command().run_from_argv(argv)
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "第2行 row 2" in err and "出生日期" in err and "Nothing imported" in err
    assert Person.objects.count() == 0


def test_a_running_job_page_polls_every_second(street: Street, client) -> None:  # type: ignore[no-untyped-def]
    owner = street.users["community_a"]
    job = ImportJob.objects.create(
        actor=owner, registry="people.person", filename="big.xlsx", status="running", total=400, done=100
    )
    client.force_login(owner)
    html = client.get(f"/exchange/jobs/{job.pk}/").content.decode()
    assert 'hx-trigger="every 1s"' in html and f"/exchange/jobs/{job.pk}/progress/" in html
    assert '<progress max="100" value="25"' in html and "100 / 400" in html


def test_english_headers_and_field_names_are_accepted(street: Street) -> None:
    reg = registry.get("people.person")
    english = [reg.column(n).en for n in ("name", "id_number")] + ["grid", "Note"]
    data = csv_file([["张三", id_number(42), street.grids["A1"].code, "+86 备注"]], headers=english)
    assert run_import("people.person", street.users["admin"], data).created == 1
    person = Person.objects.get()
    assert (person.name, person.grid, person.note) == ("张三", street.grids["A1"], "+86 备注")
