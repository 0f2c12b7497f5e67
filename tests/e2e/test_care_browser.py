"""Care monitoring in a real browser: the grid worker finds the silent elderly resident on the care
list, opens their page (phone masked), reveals the phone with a stated purpose (logged), and opens
the risk-area match list that a pushed message links to."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tests.e2e.test_browser import log_in
from tests.factories import build_street, tag
from zhizhi import clock
from zhizhi.alerts import risk, rules
from zhizhi.alerts.models import Device
from zhizhi.alerts.risk_models import TravelRecord
from zhizhi.alerts.rule_models import AlertRule
from zhizhi.models import RevealLog

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_grid_worker_finds_the_silent_elder_and_reveals_the_phone(page: Any, live_server: Any) -> None:
    street = build_street()
    AlertRule.objects.create(
        code="IDLE",
        name="独居老人无活动",
        kind="inactivity",
        device_kind="door",
        params={"silent_seconds": 86400},
    )
    elder = street.person("elder", grid="A1", house="A1-1-101", birth="19400101", name="王奶奶")
    tag(elder, "living_alone")
    b = street.buildings["A1"]
    door = Device.objects.create(
        code="DOOR-1",
        name="王奶奶家门磁",
        kind="door",
        grid=street.grids["A1"],
        building=b,
        lng=b.lng,
        lat=b.lat,
        watched_person=elder,
    )
    Device.objects.filter(pk=door.pk).update(last_seen_at=clock.now() - dt.timedelta(hours=30), last_value=1)
    assert rules.sweep_silence(clock.now()) == 1
    base = live_server.url
    log_in(page, base, "grid_a1")
    page.goto(f"{base}/alerts/care/")
    row = page.locator(f"#care-{elder.pk}")
    assert "活动告警" in row.inner_text() and elder.phone_masked in row.inner_text()
    row.locator("a").first.click()
    page.wait_for_url(f"**/alerts/care/{elder.pk}/")
    assert page.locator("#care-alarm").count() == 1
    assert elder.decrypt_sensitive("phone") not in page.content()
    page.click('#reveal-phone button[data-reveal="phone"]')
    page.fill('#reveal-phone input[name="purpose"]', "电话确认老人安全")
    page.click('#reveal-phone button[type="submit"]')
    page.wait_for_selector("#reveal-phone .revealed")
    assert page.inner_text("#reveal-phone .revealed") == elder.decrypt_sensitive("phone")
    assert RevealLog.objects.get().purpose == "电话确认老人安全"

    # The risk list: a return from a listed area is pushed and listed for this grid worker.
    AlertRule.objects.create(code="RISK", name="风险区返回人员", kind="list_match", params={})
    back = street.person("back", grid="A1", house="A1-2-101", name="李先生")
    TravelRecord.objects.create(person=back, origin="河北省石家庄市藁城区", arrived_on=clock.today())
    risk.save_area(
        street.users["admin"],
        {"region_name": "石家庄市藁城区", "level": "高", "valid_from": clock.today().isoformat()},
    )
    page.goto(f"{base}/alerts/risk/matches/")
    assert "李先生" in page.inner_text("#risk-matches") and "石家庄市藁城区" in page.inner_text(
        "#risk-matches"
    )
