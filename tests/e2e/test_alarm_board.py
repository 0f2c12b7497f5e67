"""The live alarm board in a real browser: the board is open, an alarm is raised by the rule engine's
lifecycle (`alarms.report`, from this test thread, committed), and the row appears without a reload
within 5 seconds over server-sent events; the grid worker then acknowledges it from the page. An
alarm of another grid never shows up on that board."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest

from tests.e2e.test_browser import log_in
from tests.factories import build_street
from zhizhi import clock, live
from zhizhi.alerts import alarms
from zhizhi.alerts.models import Device, Reading
from zhizhi.alerts.rule_models import Alarm, AlertRule

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LADDER = {"ladder": [{"above": 1.2, "for_seconds": 0, "severity": "major"}]}


def test_a_new_alarm_appears_live_and_is_acknowledged_from_the_board(
    page: Any, live_server: Any, monkeypatch: Any
) -> None:
    # A WSGI server learns that the browser left only when a write fails: frequent keep-alives let the
    # stream's thread (and its database session) end soon after the page is closed.
    monkeypatch.setattr(live, "HEARTBEAT_SECONDS", 0.2)
    street = build_street()
    rule = AlertRule.objects.create(code="WL", name="河道水位", kind="threshold", device_kind="water_level",
                                    params=LADDER)  # fmt: skip
    mine = Device.objects.create(code="WL-1", name="一号水位计", kind="water_level", grid=street.grids["A1"],
                                 lng=120.1025, lat=30.305)  # fmt: skip
    other = Device.objects.create(code="WL-2", name="二号水位计", kind="water_level", grid=street.grids["B1"],
                                  lng=120.1125, lat=30.305)  # fmt: skip
    base = live_server.url
    log_in(page, base, "grid_a1")
    page.goto(f"{base}/alerts/")
    assert page.locator("tr.empty").count() == 1
    page.wait_for_selector('#live-state[data-state="open"]', timeout=5000)

    alarms.report(rule, other, "critical", at=clock.now(), value=1.6)  # B1: not for this board
    started = time.monotonic()
    alarm = alarms.report(rule, mine, "major", at=clock.now(), value=1.3)
    row = page.locator(f"#alarm-{alarm.pk}")
    row.wait_for(timeout=5000)  # the requirement: on the open board within 5 s, no reload
    print(f"alarm on the board {time.monotonic() - started:.2f} s after it was raised")
    assert "一号水位计" in row.inner_text() and "重要" in row.inner_text()
    assert row.get_attribute("data-ack") == "no"
    assert page.locator("tr.alarm-row").count() == 1  # the B1 alarm stayed off this board

    # An escalation updates the same row in place.
    alarms.report(rule, mine, "critical", at=clock.now(), value=1.7)
    page.wait_for_selector(f'#alarm-{alarm.pk}[data-severity="critical"]', timeout=5000)

    row.locator("button.ack-button").click()
    page.wait_for_selector(f'#alarm-{alarm.pk} [data-acked="{alarm.pk}"]', timeout=5000)
    alarm.refresh_from_db()
    assert alarm.acknowledged_by == street.users["grid_a1"] and alarm.status == Alarm.ACTIVE
    # The acknowledgement came back over the stream as well: the refreshed row says so.
    page.wait_for_selector(f'#alarm-{alarm.pk}[data-ack="yes"]', timeout=5000)

    # The alarm's page shows the timeline the board led to.
    page.locator(f"#alarm-{alarm.pk} a").first.click()
    page.wait_for_url(f"**/alerts/alarms/{alarm.pk}/")
    events = page.locator("#timeline li").evaluate_all("els => els.map(e => e.dataset.event)")
    assert events == ["raised", "escalated", "acknowledged"]
    page.goto("about:blank")  # close the event stream before the database is flushed
    time.sleep(1.5)


def test_map_layers_sparkline_and_the_guided_rule_form(page: Any, live_server: Any) -> None:
    street = build_street()
    rule = AlertRule.objects.create(code="WL", name="河道水位", kind="threshold", device_kind="water_level",
                                    params=LADDER)  # fmt: skip
    place = {"grid": street.grids["A1"], "lng": 120.1025, "lat": 30.305}
    device = Device.objects.create(code="WL-1", name="一号水位计", kind="water_level", **place)
    now = clock.now()
    for minutes in range(0, 120, 10):
        Reading.objects.create(
            device=device, at=now - dt.timedelta(minutes=minutes), value=1.0 + minutes / 100
        )
    Device.objects.filter(pk=device.pk).update(last_value=1.0, last_seen_at=now)
    alarms.report(rule, device, "major", at=now, value=1.3)
    base = live_server.url
    log_in(page, base, "dispatcher")

    # The map: one device (in alarm) and one alarm marker, in their own toggleable layers.
    page.goto(f"{base}/map/")
    page.wait_for_selector('#alerts-map-layer[data-ready="1/1"]', state="attached")
    assert page.locator(".leaflet-control-layers-overlays label").count() == 2

    # The device page draws its last 24 hours.
    page.goto(f"{base}/alerts/devices/{device.pk}/")
    page.wait_for_selector('#sparkline[data-ready="12"] canvas')

    # The rule form shows the fields of the chosen kind and puts errors next to them.
    page.goto(f"{base}/alerts/rules/new/")
    # Alpine applies x-show on its next tick: wait for the state rather than read it at once.
    from playwright.sync_api import expect

    expect(page.locator("#params-threshold")).to_be_visible()
    expect(page.locator("#params-rate")).to_be_hidden()
    page.select_option("#id_kind", "rate_of_change")
    expect(page.locator("#params-rate")).to_be_visible()
    expect(page.locator("#params-threshold")).to_be_hidden()
    page.fill("#id_code", "RATE")
    page.fill("#id_name", "水位陡涨")
    page.fill("#id_delta", "0.3")
    page.click("#save-rule")
    page.wait_for_selector("#params-rate .has-error")
    assert "within_seconds" in page.locator("#params-rate").inner_text()
    assert not AlertRule.objects.filter(code="RATE").exists()
    page.fill("#id_within", "600")
    page.click("#save-rule")
    page.wait_for_url(f"{base}/alerts/rules/")
    assert AlertRule.objects.get(code="RATE").params == {"delta": 0.3, "within_seconds": 600}
