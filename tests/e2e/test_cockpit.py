"""The cockpit big screen in a real browser at 1920×1080: a new alarm raised elsewhere (here, by the
test thread, the way the rule evaluator would) reaches the screen's feed and its key number through
the SSE stream within 5 seconds, without a reload; a click on an area of the map drills down."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache

from tests.e2e.conftest import open_page
from tests.e2e.test_browser import log_in
from tests.factories import build_street
from tests.test_cases_support import A1, LIST, add_loop_units
from zhizhi import clock
from zhizhi.alerts import alarms
from zhizhi.alerts.rule_models import AlertRule
from zhizhi.cases import services as case_services
from zhizhi.cockpit.models import Indicator

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LIVE_MS = 5000  # the promise: a change shows on the screen within 5 s


@pytest.fixture
def wall(chromium: Any) -> Iterator[Any]:
    """A full-HD wall display."""
    page = open_page(chromium, viewport={"width": 1920, "height": 1080})
    yield page
    page.context.close()


def _indicator(**kw: Any) -> None:
    ind = Indicator(**kw)
    ind.full_clean()
    ind.save()


def _tile_value(page: Any, code: str) -> str:
    return page.locator(f'.tile[data-code="{code}"]').get_attribute("data-value") or ""


def test_a_new_alarm_and_a_new_case_reach_the_screen_without_a_reload(wall: Any, live_server: Any) -> None:
    street = build_street()
    case_services.ensure_case_permissions()
    add_loop_units(street)
    case_services.load_responsibility_list(LIST, street.users["admin"])
    _indicator(code="alarms_active", name="活动告警", source="alarms.active", window="now", scene="safety",
               unit="条", threshold_green=0, threshold_red=3, higher_is_better=False)  # fmt: skip
    _indicator(code="open_cases", name="在办案件", source="cases.open", window="now", scene="safety")
    cache.clear()
    rule = AlertRule.objects.create(code="W1", name="水位超限", kind="threshold", device_kind="water_level")
    page = wall
    base = live_server.url

    log_in(page, base, "leader")
    page.goto(f"{base}/cockpit/")
    page.wait_for_function("document.body.dataset.live === 'open'")
    page.wait_for_selector("#sc-map[data-ready='2']")  # the street's two communities
    assert _tile_value(page, "alarms_active") == "0"
    page.evaluate("window.notReloaded = true")

    # An alarm raised in grid A1 (committed by the test thread, as the evaluator would).
    a1, title = street.grids["A1"].path, "A1积水点水位超限"
    alarms.raise_or_update(rule, "device:WL-1", "major", at=clock.now(), area_path=a1, title=title)
    page.wait_for_selector("#feed li[data-kind='alarm']:has-text('A1积水点水位超限')", timeout=LIVE_MS)
    page.wait_for_function(
        "document.querySelector('.tile[data-code=\"alarms_active\"]').dataset.value === '1'", timeout=LIVE_MS
    )
    assert page.locator("#feed li[data-kind='alarm'] .f-label").first.inner_text() == "重要"

    # A case registered at the same time shows too, and the open-case count follows.
    case = case_services.register_case(
        street.users["dispatcher"], title="井盖缺失", category="0102", lng=A1[0], lat=A1[1]
    )
    page.wait_for_selector(f"#feed li[data-kind='case']:has-text('{case.number}')", timeout=LIVE_MS)
    page.wait_for_function(
        "document.querySelector('.tile[data-code=\"open_cases\"]').dataset.value === '1'", timeout=LIVE_MS
    )
    assert page.evaluate("window.notReloaded") is True

    # The ranking and the map name the communities; a click on community A opens its board.
    page.wait_for_selector("#ranking-chart[data-rows='2']")
    page.wait_for_selector("#trend-chart[data-points='30']")
    page.locator("#sc-map path.leaflet-interactive").first.click()
    page.wait_for_url(f"**/cockpit/r/{street.communities['A'].pk}/**")
    assert page.locator(".sc-title h1").inner_text().startswith("A社区")
    page.locator(".sc-crumbs a", has_text=street.street.name).click()
    page.wait_for_url(f"**/cockpit/r/{street.street.pk}/**")
