"""Enterprise triggers in a real browser: 区域发展办 filters the list to revenue drops, opens the
enterprise, and sees the trigger with its numbers and the revenue/tax chart drawn by ECharts."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.e2e.test_browser import log_in
from tests.factories import build_street
from zhizhi import clock
from zhizhi.alerts import enterprise_triggers as et
from zhizhi.enterprises.models import Enterprise, TaxRecord

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_qyfzb_finds_the_revenue_drop_and_its_chart(page: Any, live_server: Any) -> None:
    street = build_street()
    e = Enterprise.objects.create(
        name="浙江物联电子商务有限公司", credit_code="91330105MA0000001X", legal_representative="张三",
        registered_address="测试路1号", industry="F", grid=street.grids["A1"],
        building=street.buildings["A1"],
    )  # fmt: skip
    month = et.default_month(clock.today())
    for k in range(24):
        period = et.add_months(month, k - 23)
        revenue = Decimal("80") if period == month else Decimal("100")
        TaxRecord.objects.create(enterprise=e, period=period, revenue=revenue, tax_paid=Decimal("5"))
    assert et.evaluate_enterprises()["tripped"]["revenue_drop"] == 1
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    base = live_server.url
    log_in(page, base, "dept")
    page.goto(f"{base}/alerts/enterprises/")
    page.select_option("#trigger", "revenue_drop")
    page.click("#ent-filter button[type=submit]")
    page.wait_for_url("**trigger=revenue_drop**")
    page.click(f"#ent-rows tr[data-enterprise='{e.pk}'] a")
    page.wait_for_url(f"**/alerts/enterprises/{e.pk}/")
    assert "同比下降 20.0%" in page.locator("#ent-triggers").inner_text()
    page.wait_for_selector("#ent-chart canvas")
    assert page.locator("#ent-chart canvas").first.bounding_box()["width"] > 100
    assert errors == []
