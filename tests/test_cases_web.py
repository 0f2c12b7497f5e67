"""The case workbenches through the web client, as each role would use them: who may open which
page, dispatch from the dispatcher's queue (htmx), finish with a photo from the phone page, what
each person can see, approvals, the return visit, the case page, the KPI page and its Excel report."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from openpyxl import load_workbook

from tests.factories import PASSWORD
from tests.test_cases_support import A1, PNG, CaseMaker, loop_fixture  # noqa: F401
from zhizhi.cases import services
from zhizhi.cases.models import Case, CaseEvent, CasePhoto, Category
from zhizhi.notify.models import OutboxMessage

HTMX = {"HTTP_HX_REQUEST": "true"}
PAGES = ["/cases/dispatch/", "/cases/unit/", "/cases/mobile/", "/cases/approvals/", "/cases/kpi/"]
# Who may open which page (everyone else gets the bilingual 403 page).
ALLOWED = {
    "/cases/dispatch/": {"dispatcher", "leader", "admin"},
    "/cases/unit/": {"dispatcher", "leader", "admin", "dept", "community_a", "grid_a1", "grid_b1", "cg"},
    "/cases/mobile/": {"dispatcher", "leader", "admin", "dept", "community_a", "grid_a1", "grid_b1", "cg"},
    "/cases/approvals/": {"leader", "admin", "dept", "community_a", "cg"},
    "/cases/kpi/": {"dispatcher", "leader", "admin", "dept", "community_a", "grid_a1", "grid_b1", "cg"},
}


def client_for(username: str) -> Client:
    client = Client()
    assert client.login(username=username, password=PASSWORD)
    return client


def png(name: str = "现场.png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, PNG, content_type="image/png")


@pytest.mark.parametrize("url", PAGES)
def test_each_page_opens_for_its_roles_only(loop: CaseMaker, url: str) -> None:
    loop.new()  # something on the pages
    for username in ["dispatcher", "leader", "admin", "dept", "community_a", "grid_a1", "grid_b1", "cg"]:
        answer = client_for(username).get(url)
        expected = 200 if username in ALLOWED[url] else 403
        assert answer.status_code == expected, (username, url, answer.status_code)
        if expected == 403:
            text = answer.content.decode()
            assert "您的角色不能使用此工作台" in text and "Your role cannot use this workbench" in text
    for username in ["resident", "volunteer"]:
        assert client_for(username).get(url).status_code == 403
    assert Client().get(url).status_code == 302  # anonymous → login


def test_index_sends_each_role_to_its_workbench(loop: CaseMaker) -> None:
    assert client_for("dispatcher").get("/cases/").url == "/cases/dispatch/"
    assert client_for("grid_a1").get("/cases/").url == "/cases/mobile/"
    assert client_for("community_a").get("/cases/").url == "/cases/unit/"
    assert client_for("resident").get("/cases/").status_code == 403


def test_case_page_is_scoped(loop: CaseMaker) -> None:
    case = loop.new()
    assert case.status == "dispatched"
    for username, status in [("grid_a1", 200), ("community_a", 200), ("dispatcher", 200), ("grid_b1", 404)]:
        assert client_for(username).get(f"/cases/{case.pk}/").status_code == status, username
    assert client_for("resident").get(f"/cases/{case.pk}/").status_code == 404
    assert client_for("grid_b1").get(f"/cases/{case.number}/").status_code == 404
    assert client_for("grid_a1").get(f"/cases/{case.number}/").url == f"/cases/{case.pk}/"
    # Actions on a case out of scope are 404 too, and change nothing.
    answer = client_for("grid_b1").post(f"/cases/{case.pk}/act/sign/", {})
    assert answer.status_code == 404
    case.refresh_from_db()
    assert case.status == "dispatched"


def test_dispatcher_dispatches_from_the_queue_with_one_click(loop: CaseMaker) -> None:
    case = loop.new(category_certain=False)  # uncertain category: waits for a person
    assert case.status == "registered" and case.suggested_unit == loop.street.units["A1"]
    desk = client_for("dispatcher")
    page = desk.get("/cases/dispatch/").content.decode()
    assert case.number in page and "暴露垃圾" in page and "A1网格" in page and "一键派遣" in page
    answer = desk.post(
        f"/cases/{case.pk}/act/dispatch/", {"unit": "G-A1", "fragment": "row", "request_id": "x1"}, **HTMX
    )
    assert answer.status_code == 200
    assert 'class="row-done"' in answer.content.decode()
    case.refresh_from_db()
    assert case.status == "dispatched" and case.unit.code == "G-A1"
    assert case.assignee == loop.user("grid_a1")  # the grid's worker, by the category's rule
    # The same click again (a retry with the same request id) changes nothing.
    again = desk.post(
        f"/cases/{case.pk}/act/dispatch/", {"unit": "G-A1", "fragment": "row", "request_id": "x1"}, **HTMX
    )
    assert again.status_code == 200
    assert CaseEvent.objects.filter(case=case, action="dispatch").count() == 1
    # A new dispatch of a dispatched case is refused with 409 and the allowed actions, both languages.
    refused = desk.post(f"/cases/{case.pk}/act/dispatch/", {"unit": "G-A1", "fragment": "row"}, **HTMX)
    assert refused.status_code == 409
    text = refused.content.decode()
    assert "不能执行" in text and "is not allowed" in text and "改派" in text and "redispatch" in text


def test_dispatch_to_another_unit_and_assignee(loop: CaseMaker) -> None:
    case = loop.new(category_certain=False)
    answer = client_for("dispatcher").post(
        f"/cases/{case.pk}/act/dispatch/",
        {"unit": "C-A", "assignee": "community_a", "next": "/cases/dispatch/"},
    )
    assert answer.status_code == 302 and answer.url == "/cases/dispatch/"
    case.refresh_from_db()
    assert case.unit.code == "C-A" and case.assignee == loop.user("community_a")


def test_grid_worker_signs_and_finishes_with_a_photo_on_the_phone_page(loop: CaseMaker) -> None:
    case = loop.new()
    phone = client_for("grid_a1")
    page = phone.get("/cases/mobile/").content.decode()
    assert case.number in page and "geo:" in page and "task-markers" in page and "act-sign" in page
    assert phone.post(f"/cases/{case.pk}/act/sign/", {"next": "/cases/mobile/"}).url == "/cases/mobile/"
    page = phone.get("/cases/mobile/").content.decode()
    assert 'accept="image/*"' in page and 'capture="environment"' in page and "act-finish" in page
    assert 'class="gps-lng"' in page
    answer = phone.post(
        f"/cases/{case.pk}/act/finish/",
        {
            "result": "垃圾已清运",
            "photos": png(),
            "lng": str(A1[0]),
            "lat": str(A1[1]),
            "next": "/cases/mobile/",
        },
    )
    assert answer.status_code == 302, answer.content.decode()
    case.refresh_from_db()
    assert case.status == "finished" and case.result == "垃圾已清运"
    photo = CasePhoto.objects.get(case=case)
    event = CaseEvent.objects.get(case=case, action="finish")
    assert event.photos == [photo.pk] and (event.lng, event.lat) == A1
    # The photo is served to who can see the case, and to nobody else.
    shown = phone.get(f"/cases/{case.pk}/photos/{photo.pk}/")
    assert shown.status_code == 200 and shown["Content-Type"] == "image/png"
    assert b"".join(shown.streaming_content) == PNG
    assert client_for("grid_b1").get(f"/cases/{case.pk}/photos/{photo.pk}/").status_code == 404


def test_finish_refuses_a_missing_photo_or_a_file_that_is_not_an_image(loop: CaseMaker) -> None:
    case = loop.new()
    phone = client_for("grid_a1")
    phone.post(f"/cases/{case.pk}/act/sign/", {})
    missing = phone.post(f"/cases/{case.pk}/act/finish/", {"result": "已处理"})
    assert missing.status_code == 400
    assert "此类案件办结须附现场照片" in missing.content.decode()
    fake = SimpleUploadedFile("x.png", b"not an image at all", content_type="image/png")
    answer = phone.post(f"/cases/{case.pk}/act/finish/", {"result": "已处理", "photos": fake})
    assert answer.status_code == 400
    text = answer.content.decode()
    assert "文件不是图片" in text and "not an image" in text
    case.refresh_from_db()
    assert case.status == "handling" and not CasePhoto.objects.filter(case=case).exists()


def test_grid_worker_sees_only_their_own_grid(loop: CaseMaker) -> None:
    mine = loop.new()
    other = loop.new(at=(120.1175, 30.305), category_certain=False)  # B2: nobody's grid unit
    for url in ("/cases/mobile/", "/cases/unit/", "/cases/kpi/"):
        page = client_for("grid_b1").get(url).content.decode()
        assert mine.number not in page, url
    assert mine.number in client_for("grid_a1").get("/cases/mobile/").content.decode()
    assert other.number not in client_for("grid_a1").get("/cases/mobile/").content.decode()
    assert other.number not in client_for("grid_a1").get("/cases/unit/").content.decode()


def test_unit_workbench_offers_sign_return_extension_and_finish(loop: CaseMaker) -> None:
    case = loop.new()
    desk = client_for("grid_a1")
    page = desk.get("/cases/unit/").content.decode()
    assert case.number in page and "act-sign" in page and "act-return" in page
    assert "属地不符" in page and "权属不清" in page and "职能交叉" in page
    answer = desk.post(f"/cases/{case.pk}/act/return/", {"reason": "权属不清", "note": "非本网格"})
    assert answer.status_code == 302
    case.refresh_from_db()
    assert case.status == "returned" and case.return_reason == "权属不清"
    # The return shows on the dispatcher's desk, to rule on.
    page = client_for("dispatcher").get("/cases/dispatch/").content.decode()
    assert "退单待裁定" in page and case.number in page


def test_supervisor_approves_an_extension_on_the_approvals_page(loop: CaseMaker) -> None:
    case = loop.at("handling")
    desk = client_for("grid_a1")
    assert "act-request_extension" in desk.get("/cases/unit/").content.decode()
    desk.post(
        f"/cases/{case.pk}/act/request_extension/",
        {"amount": "2", "time_unit": "work_days", "reason": "需协调"},
    )
    case.refresh_from_db()
    assert case.status == "extension_pending"
    boss = client_for("community_a")
    page = boss.get("/cases/approvals/").content.decode()
    assert case.number in page and "act-approve_extension" in page and "需协调" in page
    assert boss.post(f"/cases/{case.pk}/act/approve_extension/", {"note": "同意"}).status_code == 302
    case.refresh_from_db()
    assert case.status == "handling" and case.extension_count == 1
    # The asker cannot approve (not a supervisor): 403 with both languages.
    case = loop.at("extension_pending")
    refused = desk.post(f"/cases/{case.pk}/act/approve_extension/", {})
    assert refused.status_code == 403 and "You may not" in refused.content.decode()


def test_unsatisfied_visit_goes_to_approvals_and_is_reopened(loop: CaseMaker) -> None:
    case = loop.at("unsatisfied")
    boss = client_for("community_a")
    page = boss.get("/cases/approvals/").content.decode()
    assert case.number in page and "act-reopen" in page and "act-close_with_explanation" in page
    boss.post(f"/cases/{case.pk}/act/reopen/", {"note": "重新处置"})
    case.refresh_from_db()
    assert case.status == "handling" and case.rework_count == 1


def test_case_page_shows_timeline_deliveries_and_the_allowed_actions(loop: CaseMaker) -> None:
    case = loop.new()
    page = client_for("grid_a1").get(f"/cases/{case.pk}/").content.decode()
    assert "时间线" in page and "派遣" in page and "mini-map" in page
    assert 'data-action="sign"' in page and 'data-action="return"' in page
    assert 'data-action="dispatch"' not in page
    assert OutboxMessage.objects.filter(cause=f"cases.case:{case.pk}").exists()
    assert "通知送达" in page and "新派案件" in page
    # The dispatcher is offered other actions on the same case.
    page = client_for("dispatcher").get(f"/cases/{case.pk}/").content.decode()
    assert 'data-action="redispatch"' in page and 'data-action="sign"' not in page


def test_dispatcher_verifies_and_records_the_return_visit(loop: CaseMaker) -> None:
    case = loop.at("finished")
    desk = client_for("dispatcher")
    page = desk.get("/cases/dispatch/").content.decode()
    assert case.number in page and f'data-verify="{case.pk}"' in page
    answer = desk.post(f"/cases/{case.pk}/act/verify_pass/", {"note": "现场已核实"}, **HTMX)
    assert answer.status_code == 200 and "核查通过结案" in answer.content.decode()
    case.refresh_from_db()
    assert case.status == "closed"
    page = desk.get(f"/cases/{case.pk}/").content.decode()
    assert 'name="satisfaction"' in page and "基本满意" in page
    desk.post(f"/cases/{case.pk}/act/visit/", {"satisfaction": "满意", "note": "电话回访"})
    case.refresh_from_db()
    assert case.status == "visited" and case.satisfaction == "satisfied"
    assert "已回访" in desk.get(f"/cases/{case.pk}/").content.decode()


def test_reporter_rates_by_the_link(loop: CaseMaker) -> None:
    case = loop.at("closed")
    anonymous = Client()
    url = f"/cases/rate/{case.rate_token}/"
    assert "提交评价" in anonymous.get(url).content.decode()
    answer = anonymous.post(url, {"satisfaction": "基本满意"})
    assert answer.status_code == 200 and "感谢您的评价" in answer.content.decode()
    case.refresh_from_db()
    assert case.status == "visited" and case.satisfaction == "basic"
    assert anonymous.get("/cases/rate/not-a-real-token-at-all/").status_code == 404


def test_kpi_page_drills_down_street_community_grid_person(loop: CaseMaker) -> None:
    loop.at("visited")
    loop.at("handling")
    street = loop.street
    desk = client_for("leader")
    page = desk.get("/cases/kpi/").content.decode()
    assert "按期结案率" in page and "chart-units" in page and "vendor/echarts.min.js" in page
    community = street.communities["A"]
    assert f"?region={community.pk}&amp;month=" in page  # street → community
    page = desk.get(f"/cases/kpi/?region={community.pk}").content.decode()
    assert f"?region={street.grids['A1'].pk}&amp;month=" in page  # community → grid
    page = desk.get(f"/cases/kpi/?region={street.grids['A1'].pk}").content.decode()
    assert "A1网格员" in page  # grid → person
    # A region outside the user's area is not found.
    assert client_for("grid_a1").get(f"/cases/kpi/?region={community.pk}").status_code == 404


def test_monthly_excel_report_has_the_kpi_columns_and_no_formulas(loop: CaseMaker) -> None:
    evil = Category.objects.create(code="0199", name="=HYPERLINK(1)", parent=Category.objects.get(code="01"))
    services.register_case(
        loop.user("dispatcher"), title="公式测试", category=evil.code, lng=A1[0], lat=A1[1]
    )
    loop.at("visited")
    answer = client_for("leader").get("/cases/kpi/export.xlsx")
    assert answer.status_code == 200
    assert answer["Content-Type"].startswith("application/vnd.openxmlformats")
    book = load_workbook(io.BytesIO(answer.content))
    assert book.sheetnames == ["汇总", "按社区", "按单位", "按类别", "工作量"]
    head = [c.value for c in book["按单位"][1]]
    for column in ("受理数", "立案数", "应结案数", "结案数", "结案率", "按期结案率", "返工率", "延期率"):
        assert column in head
    assert "按期签收率" in head and "满意率" in head and "P90处置时长(小时)" in head
    categories = book["按类别"]
    cell = next(row[0] for row in categories.iter_rows(min_row=2) if row[0].value == "=HYPERLINK(1)")
    assert cell.data_type == "s" and cell.quotePrefix
    assert all(c.data_type != "f" for sheet in book for row in sheet.iter_rows() for c in row)
    total = next(book["汇总"].iter_rows(min_row=2, max_row=2, values_only=True))
    accepted = Case.objects.count()
    assert total[1] == accepted  # every case here was reported this month


def test_pages_switch_to_english(loop: CaseMaker) -> None:
    loop.new(category_certain=False)
    desk = client_for("dispatcher")
    desk.post("/i18n/setlang/", {"language": "en", "next": "/"})
    page = desk.get("/cases/dispatch/").content.decode()
    assert "Command centre desk" in page and "Returns to rule on" in page and "指挥中心工作台" not in page
    page = desk.get("/cases/kpi/").content.decode()
    assert "On-time close rate" in page and "Monthly report (Excel)" in page


def test_kpi_page_takes_a_date_range(loop: CaseMaker) -> None:
    loop.at("visited")
    desk = client_for("leader")
    street = loop.street.street
    page = desk.get("/cases/kpi/?start=2026-01-01&end=2026-12-31").content.decode()
    assert "2026-01-01 ~ 2026-12-31" in page
    assert "start=2026-01-01&amp;end=2026-12-31" in page  # drill-down and export keep the range
    answer = desk.get(f"/cases/kpi/export.xlsx?start=2026-01-01&end=2026-12-31&region={street.pk}")
    assert answer.status_code == 200
    # A reversed range falls back to the current month.
    assert (
        "~"
        not in desk.get("/cases/kpi/?start=2026-12-31&end=2026-01-01").content.decode().split("<h1>")[1][:80]
    )


def test_a_repeated_finish_stores_its_photo_once_and_a_too_large_photo_is_refused(
    loop: CaseMaker, settings: Any
) -> None:
    case = loop.at("handling")
    phone = client_for("grid_a1")
    form = {"result": "已清理", "request_id": "finish-once"}
    assert phone.post(f"/cases/{case.pk}/act/finish/", {**form, "photos": png()}).status_code == 302
    assert phone.post(f"/cases/{case.pk}/act/finish/", {**form, "photos": png()}).status_code == 302
    assert CasePhoto.objects.filter(case=case).count() == 1
    assert CaseEvent.objects.filter(case=case, action="finish").count() == 1

    settings.ZHIZHI_PHOTO_MAX_BYTES = 40
    other = loop.at("handling")
    answer = phone.post(f"/cases/{other.pk}/act/finish/", {"result": "已清理", "photos": png()})
    assert answer.status_code == 400
    assert "照片过大" in answer.content.decode() and "too large" in answer.content.decode()
    assert not CasePhoto.objects.filter(case=other).exists()


def test_the_queue_suggests_a_unit_by_the_rules_when_the_row_has_none(loop: CaseMaker) -> None:
    case = loop.new(category_certain=False)
    Case.objects.filter(pk=case.pk).update(suggested_unit=None)  # an older row without a suggestion
    page = client_for("dispatcher").get("/cases/dispatch/").content.decode()
    row = page.split(f'id="q-{case.pk}"')[1].split("</tr>")[0]
    assert "一键派遣" in row and '"unit": "G-A1"' in row and "A1网格" in row
    nowhere = loop.new(at=(120.1175, 30.305), category_certain=False)  # B2: no unit serves it
    page = client_for("dispatcher").get("/cases/dispatch/").content.decode()
    row = page.split(f'id="q-{nowhere.pk}"')[1].split("</tr>")[0]
    assert "一键派遣" not in row and '<details class="more" open>' in row


def test_a_resident_follows_their_own_report_without_staff_details(loop: CaseMaker) -> None:
    resident = loop.user("resident")
    mine = services.register_case(
        resident,
        title="楼道堆物",
        category="0102",
        lng=A1[0],
        lat=A1[1],
        channel="web",
        reporter_user=resident,
        register=False,
    )
    services.register_reported(loop.user("dispatcher"), mine.pk)
    page = client_for("resident").get(f"/cases/{mine.pk}/").content.decode()
    assert "楼道堆物" in page and "时间线" in page and "受理" in page and "派遣" in page
    assert "通知送达" not in page and "A1网格员" not in page and "坐席" not in page
    assert "工作人员" in page
    other = loop.new()
    assert client_for("resident").get(f"/cases/{other.pk}/").status_code == 404


def test_the_deadline_board_counts_and_filters_by_colour(loop: CaseMaker) -> None:
    late, fine = loop.new(), loop.new()
    Case.objects.filter(pk=late.pk).update(sla_level="red")
    desk = client_for("dispatcher")
    page = desk.get("/cases/dispatch/").content.decode()
    board = page.split('id="board"')[1].split("</section>")[0]
    assert late.number in board and fine.number in board and 'class="sla-row sla-red"' in board
    assert (
        '<span class="sla sla-red">超时</span> 1' in board
        and '<span class="sla sla-green">正常</span> 1' in board
    )
    board = (
        desk.get("/cases/dispatch/?level=red").content.decode().split('id="board"')[1].split("</section>")[0]
    )
    assert late.number in board and fine.number not in board
