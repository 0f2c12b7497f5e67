"""The 110 non-police calls feed: the sample file imports as police110 cases routed like any other,
a re-import or an overlapping export changes nothing already imported, a bad file is refused whole
with every problem at its row and column in both languages, Excel files with real date cells, who
may import, and the management command."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from openpyxl import Workbook

from tests.test_cases_support import CaseMaker, loop_fixture  # noqa: F401
from zhizhi import clock
from zhizhi.cases.models import Case
from zhizhi.intake import police110
from zhizhi.intake.models import ChannelMessage
from zhizhi.problems import Forbidden, Invalid

SAMPLE = Path(__file__).resolve().parent.parent / "docs" / "samples" / "police110-sample.csv"
NOON = timezone.make_aware(dt.datetime(2026, 11, 23, 12, 0))
HEAD = "警情编号,报警时间,报警内容,发生地址,经度,纬度,警情类别\n"


@pytest.fixture(autouse=True)
def fresh_dedup_index() -> None:
    from zhizhi.intake import dedup, suggest

    dedup.invalidate()
    suggest.use(None)


def csv(*lines: str, head: str = HEAD) -> bytes:
    return (head + "\n".join(lines) + "\n").encode()


def run(loop: CaseMaker, data: bytes, name: str = "feed.csv", user: str = "dispatcher") -> police110.Result:
    with clock.frozen_at(NOON):
        return police110.import_calls(loop.user(user), data, name)


def test_sample_file_imports_as_police110_cases(loop: CaseMaker) -> None:
    result = run(loop, SAMPLE.read_bytes(), SAMPLE.name)
    assert (result.rows, result.created, result.existing) == (4, 4, 0)
    cases = {c.external_id: c for c in Case.objects.filter(channel="police110")}
    assert set(cases) == {f"J33010520261123000{i}" for i in range(1, 5)}
    first = cases["J330105202611230001"]
    assert first.title.startswith("110转办：楼上装修噪音")
    # The centre's category that is not on the responsibility list stays in the description.
    assert "警情类别：噪音扰民" in first.description and "报警时间 2026-11-23 08:12" in first.description
    assert first.reporter_name == "王先生" and first.reporter_phone_masked.endswith("0001")
    assert first.grid is not None and first.grid.code.endswith("001")  # located in grid A1
    message = ChannelMessage.objects.get(channel="police110", external_id="J330105202611230001")
    assert message.case == first and message.source == "110"
    assert message.received_at == timezone.make_aware(dt.datetime(2026, 11, 23, 8, 12, 5))
    assert message.payload["category"] == "噪音扰民"
    # "2026/11/23 09:30" is read as a local time.
    late = ChannelMessage.objects.get(external_id="J330105202611230004")
    assert timezone.localtime(late.received_at).strftime("%H:%M") == "09:30"
    # Address only: no point, no grid; the case waits for the dispatcher.
    assert cases["J330105202611230003"].lng is None and cases["J330105202611230003"].grid is None
    assert police110.counts_by_day(dt.date(2026, 11, 22), dt.date(2026, 11, 23)) == {dt.date(2026, 11, 23): 4}


def test_a_matched_category_is_routed_and_dispatched_like_any_case(loop: CaseMaker) -> None:
    run(loop, csv("P-1,2026-11-23 10:00:00,小区门口垃圾堆放三天,测试路A1号,120.1025,30.305,暴露垃圾"))
    case = Case.objects.get(channel="police110")
    assert case.category is not None and case.category.code == "0102"
    assert case.status == "dispatched" and case.assignee == loop.user("grid_a1")


def test_reimport_and_overlapping_exports_change_nothing_already_imported(loop: CaseMaker) -> None:
    run(loop, SAMPLE.read_bytes())
    before = {c.external_id: (c.pk, c.title, c.status) for c in Case.objects.filter(channel="police110")}
    again = run(loop, SAMPLE.read_bytes())
    assert (again.created, again.existing) == (0, 4)
    after = {c.external_id: (c.pk, c.title, c.status) for c in Case.objects.filter(channel="police110")}
    assert after == before
    overlap = run(
        loop,
        csv(
            "J330105202611230001,2026-11-23 08:12:05,内容被改过也不更新,测试路A1号,120.1025,30.305,",
            "J330105202611230009,2026-11-23 11:00:00,公园长椅损坏,测试路A2号,120.1075,30.305,",
        ),
    )
    assert (overlap.created, overlap.existing) == (1, 1)
    assert overlap.cases[0] == Case.objects.get(external_id="J330105202611230001").number
    assert Case.objects.filter(channel="police110").count() == 5
    assert ChannelMessage.objects.filter(channel="police110").count() == 5


def test_a_bad_file_is_refused_whole_with_row_and_column_in_both_languages(loop: CaseMaker) -> None:
    data = csv(
        "OK-1,2026-11-23 08:00:00,这一行是好的,测试路A1号,120.1025,30.305,",  # row 2
        "OK-2,2026-11-23 08:00:00,,测试路A1号,,,",  # row 3: no content
        "OK-3,昨天上午,路面塌陷,测试路A1号,,,",  # row 4: not a time
        "OK-1,2026-11-23 08:00:00,重复编号,测试路A1号,,,",  # row 5: same id as row 2
        "OK-5,2026-11-23 08:00:00,只有经度,,120.1025,,",  # row 6: half a point
        "OK-6,2026-11-23 08:00:00,经纬度填反,,30.305,120.1025,",  # row 7: swapped
        "OK-7,2026-11-24 08:00:00,未来的时间,测试路A1号,,,",  # row 8: future
        "OK-8,2026-11-23 08:00:00,没有地点,,,,",  # row 9: no address, no point
        "OK 9!,2026-11-23 08:00:00,编号有空格,测试路A1号,,,",  # row 10: bad id
    )
    with pytest.raises(Invalid) as err:
        run(loop, data)
    found = {(p.row, p.column, p.code) for p in err.value.problems}
    assert found == {
        (3, "报警内容", "required"),
        (4, "报警时间", "call_time"),
        (5, "警情编号", "duplicate_in_file"),
        (6, "纬度", "location_incomplete"),
        (7, "经度", "coord_swapped"),
        (8, "报警时间", "future"),
        (9, "发生地址", "location_required"),
        (10, "警情编号", "external_id"),
    }
    assert all(p.zh and p.en for p in err.value.problems)
    duplicate = next(p for p in err.value.problems if p.code == "duplicate_in_file")
    assert "第2行" in duplicate.zh and "row 2" in duplicate.en
    assert "第5行 row 5" in duplicate.message and "警情编号" in duplicate.message
    assert not Case.objects.exists() and not ChannelMessage.objects.exists()


def test_missing_columns_are_named(loop: CaseMaker) -> None:
    with pytest.raises(Invalid) as err:
        run(loop, csv("X-1,内容", head="编号,内容\n"))
    [problem] = err.value.problems
    assert (problem.code, problem.column) == ("column_missing", "报警时间")
    assert "来电时间" in problem.expected_zh and "call_time" in problem.expected_en
    with pytest.raises(Invalid) as err:
        run(loop, b"")
    assert err.value.problems[0].code == "file_empty"


def test_excel_feed_with_date_cells_and_english_headers(loop: CaseMaker) -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["external_id", "call_time", "content", "address", "lng", "lat", "category"])
    sheet.append(
        ["X-1", dt.datetime(2026, 11, 23, 7, 45), "井盖松动", "测试路A2号", 120.1075, 30.305, "市政设施"]
    )
    sheet.append(["X-2", "2026-11-23 07:50", "树枝挡路", "测试路B2号", None, None, None])
    buffer = io.BytesIO()
    book.save(buffer)
    result = run(loop, buffer.getvalue(), "110.xlsx")
    assert (result.created, result.existing) == (2, 0)
    message = ChannelMessage.objects.get(external_id="X-1")
    assert timezone.localtime(message.received_at).strftime("%Y-%m-%d %H:%M") == "2026-11-23 07:45"
    assert Case.objects.get(external_id="X-1").grid is not None


def test_only_dispatchers_leaders_and_admins_import(loop: CaseMaker) -> None:
    for name in ("grid_a1", "community_a", "dept"):
        with pytest.raises(Forbidden):
            run(loop, SAMPLE.read_bytes(), user=name)
    assert run(loop, SAMPLE.read_bytes(), user="leader").created == 4
    assert not Case.objects.filter(channel="police110").exclude(external_id__startswith="J3301").exists()


def test_management_command_imports_checks_and_refuses(loop: CaseMaker, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    with clock.frozen_at(NOON):
        call_command("import_police110", str(SAMPLE), "--user", "dispatcher", "--dry-run", "--json")
        trial = json.loads(capsys.readouterr().out)
        assert (trial["created"], trial["dry_run"]) == (4, True)
        assert not Case.objects.filter(channel="police110").exists()
        call_command("import_police110", str(SAMPLE), "--user", "dispatcher")
        assert "新建 created 4" in capsys.readouterr().out
        bad = tmp_path / "bad.csv"
        bad.write_bytes(csv("N-1,2026-11-23 08:00:00,好的一行,测试路A1号,,,", "N-2,,没有时间,测试路A1号,,,"))
        with pytest.raises(CommandError, match="Nothing imported: 1 problem"):
            call_command("import_police110", str(bad), "--user", "dispatcher")
        assert "第3行 row 3" in capsys.readouterr().err
        with pytest.raises(CommandError, match="Only dispatchers"):
            call_command("import_police110", str(SAMPLE), "--user", "grid_a1")
    assert Case.objects.filter(channel="police110").count() == 4


def test_upload_page_imports_or_lists_every_problem(loop: CaseMaker) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test import Client

    from tests.factories import PASSWORD

    grid = Client()
    assert grid.login(username="grid_a1", password=PASSWORD)
    assert grid.get("/intake/police110/").status_code == 403
    client = Client()
    assert client.login(username="dispatcher", password=PASSWORD)
    page = client.get("/intake/police110/").content.decode()
    assert "警情编号" in page and "call_time" in page
    bad = csv("W-1,2026-11-23 08:00:00,好的,测试路A1号,,,", "W-2,2026-11-23 08:00:00,,测试路A1号,,,")
    with clock.frozen_at(NOON):
        answer = client.post("/intake/police110/", {"file": SimpleUploadedFile("bad.csv", bad)})
    text = answer.content.decode()
    assert (
        answer.status_code == 400
        and "第3行 row 3" in text
        and "缺少报警内容" in text
        and "content is missing" in text
    )
    assert not Case.objects.filter(channel="police110").exists()
    with clock.frozen_at(NOON):
        ok = client.post("/intake/police110/", {"file": SimpleUploadedFile("feed.csv", SAMPLE.read_bytes())})
    assert ok.status_code == 200 and 'id="import-result"' in ok.content.decode()
    assert ok.content.decode().count("J33010520261123000") == 4  # the recent calls, with their cases
    assert Case.objects.filter(channel="police110").count() == 4


def test_demo_layer_imports_two_days_of_calls_once(loop: CaseMaker) -> None:
    from zhizhi.intake import police110_demo

    with clock.frozen_at(NOON):
        first = police110_demo.load(loop.street.street)
        again = police110_demo.load(loop.street.street)
    assert first["created"] >= police110_demo.PER_DAY and first["existing"] == 0
    assert (again["created"], again["existing"]) == (0, first["created"])
    days = police110.counts_by_day(dt.date(2026, 11, 22), dt.date(2026, 11, 23))
    assert days[dt.date(2026, 11, 22)] == police110_demo.PER_DAY and sum(days.values()) == first["created"]
    assert Case.objects.filter(channel="police110").count() == first["created"]


def test_recent_calls_are_area_scoped(loop: CaseMaker) -> None:
    from zhizhi.orgs.services import create_staff

    run(loop, SAMPLE.read_bytes())
    desk_a = create_staff(
        username="desk_a",
        full_name="A社区坐席",
        role="dispatcher",
        password="pass-1234",
        regions=[loop.street.communities["A"]],
    )
    everyone = {m.external_id for m in police110.recent_calls(loop.user("dispatcher"))}
    mine = {m.external_id for m in police110.recent_calls(desk_a)}
    assert everyone == {f"J33010520261123000{i}" for i in range(1, 5)}
    assert mine == {"J330105202611230001", "J330105202611230002"}  # the calls located in community A
