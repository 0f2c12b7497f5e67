"""The MQTT bridge against the real Mosquitto on 127.0.0.1:1883 (no fake broker).

Each test uses its own street segment of the topic tree and its own client ids, so runs in parallel
or leftovers of an earlier run cannot cross-talk; persistent sessions are dropped at the end.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from django.core.management import call_command
from django.utils import timezone

from scripts.check_services import SERVICES, reachable
from zhizhi import clock
from zhizhi.alerts import services
from zhizhi.alerts.models import Device, IngestCounter, Reading
from zhizhi.alerts.mqtt import Bridge, device_code_from_topic

NOW = timezone.make_aware(dt.datetime(2026, 7, 1, 10, 0, 0))
URL = "mqtt://127.0.0.1:1883"


@pytest.fixture
def broker() -> None:
    port, start = SERVICES["mqtt"]
    if not reachable(port):
        pytest.fail(f"mqtt is not reachable on 127.0.0.1:{port}. Start it with:\n    {start}")


@pytest.fixture
def run_id() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def device(db):  # type: ignore[no-untyped-def]
    device = Device.objects.create(code="SM-001", name="烟感1", kind="smoke", unit="%")
    device.raw_token = services.issue_token(device)
    return device


@pytest.fixture
def frozen() -> Iterator[None]:
    with clock.frozen_at(NOW):
        yield


def at(minutes: float) -> str:
    return (NOW + dt.timedelta(minutes=minutes)).isoformat()


def publish(topic: str, payloads: list[object]) -> None:
    """Publish with QoS 1 and wait until the broker has each message."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    try:
        for payload in payloads:
            raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            client.publish(topic, raw, qos=1).wait_for_publish(timeout=5)
    finally:
        client.disconnect()
        client.loop_stop()


def drop_session(client_id: str) -> None:
    """Connect with a clean session once: the broker forgets the persistent one of the test."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    client.connect("127.0.0.1", 1883)
    client.loop(timeout=0.5)
    client.disconnect()


def test_topic_names_the_device() -> None:
    assert device_code_from_topic("zhizhi/310101001/SM-001/telemetry") == "SM-001"
    assert device_code_from_topic("zhizhi/310101001/SM-001/status") is None
    assert device_code_from_topic("other/x/SM-001/telemetry") is None


def test_published_readings_are_stored(broker, device, frozen, run_id) -> None:  # type: ignore[no-untyped-def]
    client_id = f"test-bridge-{run_id}"
    bridge = Bridge(URL, f"zhizhi/{run_id}/+/telemetry", client_id)
    topic = f"zhizhi/{run_id}/SM-001/telemetry"

    def publisher() -> None:
        # The bridge runs in the test's thread (it writes to the test database); this one publishes.
        if bridge.subscribed.wait(5):
            publish(
                topic,
                [
                    {
                        "token": device.raw_token,
                        "readings": [{"at": at(-2), "value": 1.0}, {"at": at(-1), "value": 2}],
                    },
                    {"token": device.raw_token, "at": at(0), "value": 3.5},
                    b"not json at all",
                    {"token": "zd_stolen", "at": at(0), "value": 99},
                    {"token": device.raw_token, "at": at(-0.5), "value": 500},  # 500 % smoke: implausible
                ],
            )

    thread = threading.Thread(target=publisher)
    thread.start()
    try:
        handled = bridge.run(once=5, timeout=10)
    finally:
        thread.join()
        drop_session(client_id)
    assert handled == 5
    assert list(Reading.objects.filter(status="ok").order_by("at").values_list("value", flat=True)) == [
        1.0,
        2.0,
        3.5,
    ]
    assert Reading.objects.get(status="rejected").value == 500
    assert IngestCounter.objects.get(reason="bad_token").count == 1
    device.refresh_from_db()
    assert device.last_value == 3.5


def test_persistent_session_loses_nothing_while_the_bridge_is_down(broker, device, frozen, run_id) -> None:  # type: ignore[no-untyped-def]
    client_id = f"test-bridge-{run_id}"
    options = {"url": URL, "topic": f"zhizhi/{run_id}/+/telemetry", "client_id": client_id}
    topic = f"zhizhi/{run_id}/SM-001/telemetry"
    try:
        # First start: connect and subscribe (the broker now holds the session), then stop.
        call_command("mqtt_bridge", once=0, timeout=5, **options)
        # While the bridge is down the device keeps publishing with QoS 1.
        publish(topic, [{"token": device.raw_token, "at": at(-i), "value": float(i)} for i in range(6)])
        assert Reading.objects.count() == 0
        # Restart with the same client id: the queued messages are delivered.
        call_command("mqtt_bridge", once=6, timeout=10, **options)
    finally:
        drop_session(client_id)
    assert sorted(Reading.objects.values_list("value", flat=True)) == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]


def test_bridge_stop_ends_the_loop(broker, db, run_id) -> None:  # type: ignore[no-untyped-def]
    """What SIGTERM does: `stop()` ends `run()` promptly and cleanly."""
    client_id = f"test-bridge-{run_id}"
    bridge = Bridge(URL, f"zhizhi/{run_id}/+/telemetry", client_id)
    threading.Timer(0.5, bridge.stop).start()
    started = dt.datetime.now()
    try:
        assert bridge.run(timeout=10) == 0
    finally:
        drop_session(client_id)
    assert (dt.datetime.now() - started).total_seconds() < 5


def test_unreachable_broker_is_retried_not_fatal(db) -> None:  # type: ignore[no-untyped-def]
    bridge = Bridge("mqtt://127.0.0.1:1", "zhizhi/+/+/telemetry", f"test-{uuid.uuid4().hex[:6]}")
    assert bridge.run(timeout=1.5) == 0


def test_bridge_reconnects_and_resubscribes_after_the_broker_drops_it(broker, device, frozen, run_id) -> None:  # type: ignore[no-untyped-def]
    client_id = f"test-bridge-{run_id}"
    bridge = Bridge(URL, f"zhizhi/{run_id}/+/telemetry", client_id)
    topic = f"zhizhi/{run_id}/SM-001/telemetry"
    dropped = threading.Event()

    def device_side() -> None:
        if not bridge.subscribed.wait(5):
            return
        publish(topic, [{"token": device.raw_token, "at": at(-1), "value": 1.0}])
        # A second connection with the bridge's client id makes the broker drop the bridge (takeover).
        intruder = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        intruder.connect("127.0.0.1", 1883)
        intruder.loop(timeout=0.5)
        intruder.disconnect()
        for _ in range(50):
            if bridge.connects >= 2:
                dropped.set()
                break
            threading.Event().wait(0.1)
        if bridge.subscribed.wait(5):
            # QoS 1 is at-least-once: the first message may come again after the takeover (a duplicate,
            # ignored by ingestion), so wait for the second accepted reading, not the second message.
            publish(topic, [{"token": device.raw_token, "at": at(0), "value": 2.0}])
            for _ in range(50):
                if bridge.accepted >= 2:
                    break
                threading.Event().wait(0.1)
        bridge.stop()

    thread = threading.Thread(target=device_side)
    thread.start()
    try:
        bridge.run(timeout=12)
    finally:
        thread.join()
        drop_session(client_id)
    assert dropped.is_set()
    assert sorted(Reading.objects.values_list("value", flat=True)) == [1.0, 2.0]
