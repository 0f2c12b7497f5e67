"""One case through the whole loop in a real browser: a resident's report → the dispatcher registers
and dispatches it on the desk (htmx) → the grid worker signs on the phone page and asks for more
time → the supervisor approves → the grid worker finishes with a photo and the browser's GPS → the
dispatcher verifies and records the return visit (满意) → the case page shows it closed and rated."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import open_page
from tests.e2e.test_browser import log_in, log_out
from tests.factories import build_street
from tests.test_cases_support import A1, LIST, PNG, add_loop_units
from zhizhi.cases import services
from zhizhi.cases.models import Case, CaseEvent, CasePhoto

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def phone(chromium: Any) -> Iterator[Any]:
    """A phone-sized page whose browser reports a position inside grid A1."""
    page = open_page(
        chromium,
        viewport={"width": 390, "height": 844},
        is_mobile=True,
        has_touch=True,
        geolocation={"longitude": A1[0], "latitude": A1[1]},
        permissions=["geolocation"],
    )
    yield page
    page.context.close()


def test_a_report_goes_round_the_loop(page: Any, phone: Any, live_server: Any) -> None:
    street = build_street()
    services.ensure_case_permissions()
    add_loop_units(street)
    services.load_responsibility_list(LIST, street.users["admin"])
    resident = street.users["resident"]
    # The resident's report (受理, not yet registered); the category is only a guess.
    case = services.register_case(
        resident,
        title="小区门口垃圾堆积",
        description="垃圾桶满了两天没人清",
        category="0102",
        category_certain=False,
        lng=A1[0],
        lat=A1[1],
        channel="web",
        reporter_user=resident,
        register=False,
    )
    assert case.status == "reported"
    base = live_server.url

    # The dispatcher registers it, then dispatches it with one click to the suggested unit.
    log_in(page, base, "dispatcher")
    page.goto(f"{base}/cases/dispatch/")
    row = page.locator(f"#q-{case.pk}")
    assert "小区门口垃圾堆积" in row.inner_text()
    row.locator("button", has_text="立案").click()
    page.wait_for_selector("tr.row-done")
    page.reload()
    row = page.locator(f"#q-{case.pk}")
    assert "A1网格" in row.inner_text() and "暴露垃圾" in row.inner_text()
    row.locator("button.one-click").click()
    page.wait_for_selector("tr.row-done >> text=派遣")
    case.refresh_from_db()
    assert case.status == "dispatched" and case.assignee == street.users["grid_a1"]

    # The grid worker signs for it on the phone and asks for one more working day.
    log_in(phone, base, "grid_a1")
    phone.goto(f"{base}/cases/mobile/")
    phone.wait_for_selector("#task-map[data-ready='1'] path.leaflet-interactive")
    assert phone.locator(".leaflet-tile").count() == 0  # offline: a blank background
    task = phone.locator(f"#task-{case.pk}")
    assert "geo:" in task.locator("a", has_text="打开导航").get_attribute("href")
    task.locator("button[data-action=sign]").click()
    phone.wait_for_url(f"{base}/cases/mobile/")
    phone.goto(f"{base}/cases/unit/")
    form = phone.locator(f"#case-{case.pk} form.act-request_extension")
    form.locator("input[name=reason]").fill("需物业配合清运")
    form.locator("button[type=submit]").click()
    phone.wait_for_url(f"{base}/cases/unit/")
    case.refresh_from_db()
    assert case.status == "extension_pending"

    # The community (the grid's supervisor) approves on the approvals page.
    log_out(page)
    log_in(page, base, "community_a")
    page.goto(f"{base}/cases/approvals/")
    item = page.locator(f"#approvals-extension_pending #case-{case.pk}")
    assert "需物业配合清运" in item.inner_text()
    item.locator("button[data-action=approve_extension]").click()
    page.wait_for_url(f"{base}/cases/approvals/")
    case.refresh_from_db()
    assert case.status == "handling" and case.extension_count == 1

    # Back on the phone: finish with a photo and the browser's position.
    phone.goto(f"{base}/cases/mobile/")
    phone.wait_for_selector("#gps-status[data-ready='1']")
    task = phone.locator(f"#task-{case.pk}")
    task.locator("textarea[name=result]").fill("已联系物业清运，现场干净")
    task.locator("input[type=file][name=photos]").set_input_files(
        files=[{"name": "现场.png", "mimeType": "image/png", "buffer": PNG}]
    )
    task.locator("button[data-action=finish]").click()
    phone.wait_for_url(f"{base}/cases/mobile/")
    assert "今天没有待办任务" in phone.inner_text(".task-list")
    case.refresh_from_db()
    assert case.status == "finished"
    finish = CaseEvent.objects.get(case=case, action="finish")
    assert finish.photos == [CasePhoto.objects.get(case=case).pk]
    assert finish.lng == pytest.approx(A1[0], abs=1e-5) and finish.lat == pytest.approx(A1[1], abs=1e-5)

    # The dispatcher verifies it and records the return visit.
    log_out(page)
    log_in(page, base, "dispatcher")
    page.goto(f"{base}/cases/{case.pk}/")
    page.wait_for_selector("#mini-map[data-ready='1']")
    page.click("button[data-action=verify_pass]")
    page.wait_for_selector("#case-status[data-status=closed]")
    assert "已结案" in page.inner_text("#case-status")
    page.check("form.act-visit input[value=满意]")
    page.fill("form.act-visit input[name=note]", "居民表示满意")
    page.click("button[data-action=visit]")
    page.wait_for_selector("#case-status[data-status=visited]")
    assert page.inner_text("#case-satisfaction") == "满意"
    timeline = page.inner_text("#timeline")
    for step in ("受理", "立案", "派遣", "签收", "申请延期", "同意延期", "办结", "核查通过结案", "回访"):
        assert step in timeline, step
    assert page.locator("#timeline img").count() == 1  # the finish photo, served to the dispatcher
    assert page.locator("#deliveries tbody tr").count() >= 3
    case = Case.objects.get(pk=case.pk)
    assert case.closed_at is not None and case.satisfaction == "satisfied"

    # The month's KPIs count it: the charts draw from the vendored ECharts, and the table agrees.
    page.goto(f"{base}/cases/kpi/")
    page.wait_for_selector("#chart-units[data-ready='1'] canvas")
    page.wait_for_selector("#chart-trend[data-ready='1'] canvas")
    units = page.inner_text("#kpi-units")
    assert "A1网格" in units
    assert page.locator("#kpi-workload tbody tr").count() >= 3  # dispatcher, grid worker, community
