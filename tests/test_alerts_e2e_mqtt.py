"""End to end through the real Mosquitto on 127.0.0.1:1883: a simulated typhoon afternoon is published
the way a water-level gauge would (paho, QoS 1, the simulator's MQTT sink), the bridge stores it, the
demo rules raise, escalate and clear the alarm, and the case waits in the command centre's queue with
its dispatch notification in the outbox.

(Broker drops, reconnects and the persistent session that loses no QoS-1 message while the bridge is
down are covered in tests/test_mqtt_bridge.py.)
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid

import pytest

from tests.factories import Street
from tests.test_mqtt_bridge import URL, broker, drop_session, publish  # noqa: F401
from tests.test_simulator import load_real_leaves
from zhizhi import clock
from zhizhi.alerts import devices_demo, simulator
from zhizhi.alerts.models import Device, Reading
from zhizhi.alerts.mqtt import Bridge
from zhizhi.alerts.rule_models import Alarm
from zhizhi.cases.services import unit_cases
from zhizhi.notify.models import OutboxMessage


@pytest.fixture
def fast_devices(settings):  # type: ignore[no-untyped-def]
    # The afternoon is replayed in seconds: lift the per-device ingestion rate limit for the test.
    settings.ZHIZHI_DEVICE_RATE_PER_MINUTE = 100_000


@pytest.mark.usefixtures("broker", "fast_devices")
def test_typhoon_over_mqtt_raises_the_alarm_and_queues_the_case(street: Street) -> None:
    members = load_real_leaves(street)
    devices_demo.ensure_rules()
    devices_demo.ensure_devices(street.street)
    culvert = Device.objects.get(code="WL-001")
    tokens = {"WL-001": devices_demo.demo_token("WL-001")}
    # The afternoon ends a minute ago, so no reading is stamped in the future.
    now = clock.now().replace(second=0, microsecond=0)
    stream = simulator.typhoon(["WL-001"], now - dt.timedelta(hours=5, minutes=1), seed=1)
    run_id = uuid.uuid4().hex[:10]
    client_id = f"test-e2e-bridge-{run_id}"
    bridge = Bridge(URL, f"zhizhi/{run_id}/+/telemetry", client_id)
    problems: list[str] = []

    def device_side() -> None:
        try:
            if not bridge.subscribed.wait(5):
                problems.append("the bridge did not subscribe")
                return
            sink = simulator.MqttSink(URL, run_id)
            try:
                # 1800×: the afternoon in about ten seconds, a message per device whenever readings are due
                # (slow enough that a loaded machine rarely merges both rises into one burst).
                simulator.play(stream, sink, tokens, speed=1800)
            finally:
                sink.close()
            deadline = time.monotonic() + 30
            while bridge.accepted < len(stream) and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            bridge.stop()

    thread = threading.Thread(target=device_side)
    thread.start()
    try:
        bridge.run(timeout=60)
    finally:
        thread.join()
        drop_session(client_id)
    assert not problems
    assert Reading.objects.filter(device=culvert, status="ok").count() == len(stream) == bridge.accepted

    alarm = Alarm.objects.get(rule__code="WL-LEVEL", device=culvert)
    kinds = list(alarm.events.values_list("kind", flat=True))
    assert kinds[:3] == ["raised", "case_created", "escalated"] and kinds[-1] == "cleared", kinds
    first_above = next(s.at for s in stream if s.value > 1.2)
    assert alarm.first_seen_at >= first_above + dt.timedelta(minutes=2)
    assert alarm.events.get(kind="escalated").value > 1.5
    case = alarm.case
    assert case is not None
    assert (case.channel, case.category.code, case.unit.code, case.status) == (
        "iot",
        "4201",
        "ZHZX",
        "dispatched",
    )
    assert case in unit_cases(members["ZHZX"])
    assert OutboxMessage.objects.filter(cause=f"cases.case:{case.pk}").exists()
    assert case.urgent  # 涵洞积水 is an urgent leaf of the list


@pytest.mark.usefixtures("broker", "fast_devices")
def test_a_burst_is_stored_in_batches_and_a_bad_message_spoils_nothing(street: Street) -> None:
    """Messages queued while the bridge is down arrive as a burst: the readings of one device go to
    ingestion together (fewer ingest calls than messages), and a wrong token, a non-JSON body or an
    oversized batch in the same burst is refused on its own without losing anyone else's readings."""
    devices_demo.ensure_devices(street.street)
    gauges = list(Device.objects.filter(kind="water_level").order_by("code")[:2])
    run_id = uuid.uuid4().hex[:10]
    client_id = f"test-burst-bridge-{run_id}"
    topic = f"zhizhi/{run_id}/{{}}/telemetry"
    start = clock.now().replace(microsecond=0) - dt.timedelta(hours=2)
    good: list[object] = []
    for i in range(60):
        gauge = gauges[i % 2]
        at = (start + dt.timedelta(minutes=i)).isoformat()
        good.append((gauge.code, {"token": devices_demo.demo_token(gauge.code), "at": at, "value": 0.4}))
    bad = [
        (gauges[0].code, {"token": "zd_wrong", "at": start.isoformat(), "value": 9.9}),
        (gauges[1].code, b"{not json"),
        (gauges[0].code, {"token": devices_demo.demo_token(gauges[0].code),
                          "readings": [{"at": start.isoformat(), "value": 0.1}] * 1001}),
    ]  # fmt: skip
    try:
        first = Bridge(URL, f"zhizhi/{run_id}/+/telemetry", client_id)
        first.run(once=0, timeout=5)  # the broker now holds the session
        messages = good[:30] + bad + good[30:]
        for code, body in messages:
            publish(topic.format(code), [body])
        bridge = Bridge(URL, f"zhizhi/{run_id}/+/telemetry", client_id)
        bridge.run(once=len(messages), timeout=20)
    finally:
        drop_session(client_id)
    assert bridge.handled == len(messages)
    assert bridge.accepted == 60 == Reading.objects.filter(device__in=gauges).count()
    assert bridge.batches < bridge.handled  # stored in batches, not one ingest per message
    from zhizhi.alerts.models import IngestCounter

    assert IngestCounter.objects.get(reason="bad_token").count == 1


@pytest.mark.usefixtures("broker")
def test_messages_received_but_not_stored_are_delivered_again(street: Street) -> None:
    """A message is acknowledged only after its readings are committed: a bridge that received
    messages and died before storing them (no PUBACK sent) gets them again on restart."""
    devices_demo.ensure_devices(street.street)
    token = devices_demo.demo_token("WL-001")
    run_id = uuid.uuid4().hex[:10]
    client_id = f"test-crash-bridge-{run_id}"
    topic = f"zhizhi/{run_id}/WL-001/telemetry"
    start = clock.now().replace(microsecond=0) - dt.timedelta(hours=1)
    bodies = [
        {"token": token, "at": (start + dt.timedelta(minutes=i)).isoformat(), "value": 0.5} for i in range(5)
    ]
    try:
        doomed = Bridge(URL, f"zhizhi/{run_id}/+/telemetry", client_id)
        doomed.run(once=0, timeout=5)  # session and subscription exist at the broker
        publish(topic, bodies)
        # The doomed bridge reconnects and receives the messages, then dies before storing them.
        doomed.client.reconnect()
        deadline = time.monotonic() + 5
        while len(doomed._inbox) < len(bodies) and time.monotonic() < deadline:
            doomed.client.loop(timeout=0.1)
        assert len(doomed._inbox) == len(bodies)
        doomed.client.socket().close()  # a crash: no DISCONNECT, no PUBACK
        assert Reading.objects.count() == 0
        bridge = Bridge(URL, f"zhizhi/{run_id}/+/telemetry", client_id)
        bridge.run(once=len(bodies), timeout=15)
    finally:
        drop_session(client_id)
    assert Reading.objects.filter(device__code="WL-001").count() == len(bodies) == bridge.accepted
