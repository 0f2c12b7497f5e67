"""A burst of many devices stored together (`services.ingest_many`, what the MQTT bridge uses): each
batch gets what `ingest` alone would give, one bad batch or one device's rule error spoils nothing, and
the number of queries does not grow with the number of devices beyond one readings fetch each."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.factories import Street
from zhizhi import clock
from zhizhi.alerts import services
from zhizhi.alerts.models import Device, IngestCounter, Reading
from zhizhi.alerts.rule_models import Alarm, AlertRule, DeviceRuleOverride
from zhizhi.problems import Invalid

NOW = timezone.make_aware(dt.datetime(2026, 7, 1, 10, 0, 0))
HIGH = {"ladder": [{"above": 1.2, "for_seconds": 0, "severity": "major"}]}


def at(minutes: float) -> str:
    return (NOW + dt.timedelta(minutes=minutes)).isoformat()


def gauges(street: Street, n: int) -> dict[str, str]:
    """`n` water-level gauges in grid A1 → their tokens."""
    tokens = {}
    for i in range(n):
        device = Device.objects.create(
            code=f"WL-{i:03d}", name=f"水位{i}", kind="water_level", grid=street.grids["A1"], unit="m"
        )
        tokens[device.code] = services.issue_token(device)
    return tokens


def test_a_burst_gives_each_batch_its_own_outcome(street: Street) -> None:
    AlertRule.objects.create(
        code="WL-HIGH", name="水位超限", kind="threshold", device_kind="water_level", params=HIGH
    )
    tokens = gauges(street, 3)
    with clock.frozen_at(NOW):
        outcomes = services.ingest_many(
            [
                ("WL-000", tokens["WL-000"], [{"at": at(-1), "value": 0.5}, {"at": at(0), "value": 1.5}]),
                ("WL-001", "wrong", [{"at": at(0), "value": 1.5}]),
                ("WL-002", tokens["WL-002"], "not a list"),
                ("WL-002", tokens["WL-002"], [{"at": at(0), "value": 0.4}, {"at": at(0), "value": 0.4}]),
                ("NO-SUCH", "x", [{"at": at(0), "value": 1}]),
            ],
            source="mqtt",
        )
    first, wrong, shapeless, calm, unknown = outcomes
    assert isinstance(first, services.IngestResult) and first.accepted == 2
    assert isinstance(wrong, services.DeviceRefused) and wrong.reason == "bad_token"
    assert isinstance(shapeless, Invalid) and shapeless.problems[0].field == "readings"
    assert isinstance(calm, services.IngestResult) and (calm.accepted, calm.duplicates) == (1, 1)
    assert isinstance(unknown, services.DeviceRefused) and unknown.reason == "unknown_device"
    assert dict(IngestCounter.objects.values_list("reason", "count")) == {"bad_token": 1, "unknown_device": 1}
    assert Reading.objects.filter(device__code="WL-001").count() == 0
    # Only the gauge over the threshold raised an alarm; every device's latest value is its own.
    alarm = Alarm.objects.get()
    assert alarm.source_key == "device:WL-000" and alarm.value == 1.5
    assert dict(Device.objects.values_list("code", "last_value")) == {
        "WL-000": 1.5,
        "WL-001": None,
        "WL-002": 0.4,
    }


def test_two_batches_of_one_device_share_its_rate_budget_and_duplicates(
    street: Street, settings: Any
) -> None:
    settings.ZHIZHI_DEVICE_RATE_PER_MINUTE = 5
    tokens = gauges(street, 1)
    token = tokens["WL-000"]
    with clock.frozen_at(NOW):
        one, two = services.ingest_many(
            [
                ("WL-000", token, [{"at": at(-i), "value": 0.5} for i in range(3)]),
                # at(-2) repeats a reading of the first batch; then 4 new ones, of which 2 fit the budget.
                (
                    "WL-000",
                    token,
                    [{"at": at(-2), "value": 0.5}] + [{"at": at(-10 - i), "value": 0.5} for i in range(4)],
                ),
            ]
        )
    assert isinstance(one, services.IngestResult) and isinstance(two, services.IngestResult)
    assert one.accepted == 3
    assert (two.accepted, two.duplicates) == (2, 1)
    assert [r.code for r in two.rejected] == ["rate_limited", "rate_limited"]
    assert Reading.objects.count() == 5
    # The newest reading of the device wins, whichever batch it came in.
    assert Device.objects.get().last_seen_at == NOW


def test_one_devices_rule_error_does_not_stop_the_others(
    street: Street, caplog: pytest.LogCaptureFixture
) -> None:
    rule = AlertRule.objects.create(
        code="WL-HIGH", name="水位超限", kind="threshold", device_kind="water_level", params=HIGH
    )
    tokens = gauges(street, 2)
    # A broken per-device parameter (not a number) makes this device's evaluation fail.
    DeviceRuleOverride.objects.create(
        rule=rule, device=Device.objects.get(code="WL-000"), params={"ladder": [{"above": "high"}]}
    )
    with clock.frozen_at(NOW), caplog.at_level(logging.ERROR):
        outcomes = services.ingest_many(
            [(code, token, [{"at": at(0), "value": 1.5}]) for code, token in tokens.items()]
        )
    assert [o.accepted for o in outcomes if isinstance(o, services.IngestResult)] == [1, 1]
    assert Reading.objects.count() == 2  # the readings are kept either way
    assert list(Alarm.objects.values_list("source_key", flat=True)) == ["device:WL-001"]
    assert "alert rules failed for device WL-000" in caplog.text


def test_queries_do_not_grow_with_the_devices_of_a_burst(street: Street) -> None:
    AlertRule.objects.create(
        code="WL-HIGH", name="水位超限", kind="threshold", device_kind="water_level", params=HIGH
    )
    AlertRule.objects.create(
        code="WL-RISE",
        name="水位陡涨",
        kind="rate_of_change",
        device_kind="water_level",
        params={"delta": 0.5, "within_seconds": 600},
    )
    tokens = gauges(street, 12)
    codes = list(tokens)

    def burst(devices: list[str], minute: int) -> int:
        batches = [
            (code, tokens[code], [{"at": at(minute - 1 + k / 10), "value": 0.5} for k in range(5)])
            for code in devices
        ]
        with clock.frozen_at(NOW), CaptureQueriesContext(connection) as queries:
            outcomes = services.ingest_many(batches)
        assert all(isinstance(o, services.IngestResult) and o.accepted == 5 for o in outcomes)
        return len(queries.captured_queries)

    alone = burst(codes[:1], 0)
    many = burst(codes[1:], 0)
    # Eleven devices cost one readings fetch each more than one device, nothing else per device.
    assert many <= alone + 10
    assert Reading.objects.count() == 60 and not Alarm.objects.exists()


def test_a_long_window_of_frequent_readings_is_read_whole(street: Street) -> None:
    """A reading every 5 s under a 300 s duration rule: the window holds more readings than the first
    fetch of recent readings brings, so the evaluation reads it whole and still sees how long a run
    has lasted."""
    AlertRule.objects.create(
        code="WL-HIGH",
        name="水位超限",
        kind="threshold",
        device_kind="water_level",
        params={"ladder": [{"above": 1.2, "for_seconds": 300, "severity": "major"}]},
    )
    tokens = gauges(street, 2)

    def series(high_from: int) -> list[dict[str, object]]:
        """120 readings 5 s apart ending now, above the threshold from index `high_from` on."""
        return [{"at": at((i - 119) / 12), "value": 1.5 if i >= high_from else 0.5} for i in range(120)]

    with clock.frozen_at(NOW):
        services.ingest_many(
            [
                ("WL-000", tokens["WL-000"], series(0)),  # high for 595 s: raised
                ("WL-001", tokens["WL-001"], series(70)),  # high for 245 s only: not yet
            ]
        )
    assert list(Alarm.objects.values_list("source_key", flat=True)) == ["device:WL-000"]
    with clock.frozen_at(NOW + dt.timedelta(minutes=1)):
        services.ingest("WL-001", tokens["WL-001"], [{"at": at(i / 12), "value": 1.5} for i in range(1, 13)])
    # Now 305 s high: raised too.
    assert set(Alarm.objects.values_list("source_key", flat=True)) == {"device:WL-000", "device:WL-001"}
