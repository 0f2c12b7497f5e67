"""The MQTT bridge: device readings published to the broker go through `services.ingest`.

Topic tree `zhizhi/<street>/<device code>/telemetry`; payload `{"token": "...", "readings": [...]}` or a
single reading `{"token": "...", "at": "...", "value": ...}`. The bridge keeps a persistent session
(MQTT 5, clean start off, a session expiry of SESSION_EXPIRY, fixed client id) and subscribes with QoS 1,
so the broker queues what arrives while the bridge is down and hands it over when it comes back: a
restart loses no reading. A message is acknowledged (PUBACK, sent by hand) only after its readings are
committed.

Throughput: the bridge tells the broker it takes up to RECEIVE_MAXIMUM unacknowledged messages (MQTT 5
Receive Maximum; a 3.1.1 session gets the broker's max_inflight_messages, 20 by default). After each
network read it drains what else has already arrived, then stores the lot: the messages of one device
with one token form one batch, and the batches of all devices go to `services.ingest_many` together
(one transaction and a fixed number of queries for the whole burst, one rule evaluation per device
instead of one per message), and only then are they acknowledged. A lone reading is stored at once — batches
only form when messages arrive faster than they are stored. A message that is not a plain list of
readings (malformed, too large) is handled on its own, so it cannot spoil another message's readings.

The network loop runs in the thread that calls `run()`, so the database work happens there too.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from django.db import close_old_connections, connection
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from zhizhi.alerts import services
from zhizhi.problems import Invalid

log = logging.getLogger(__name__)

MAX_BACKOFF = 30.0
RECEIVE_MAXIMUM = 1000  # unacknowledged messages the broker may send us (MQTT 5)
SESSION_EXPIRY = 7 * 24 * 3600  # seconds the broker keeps our session (and queue) while we are away
DRAIN_LIMIT = 1000  # messages gathered before they are stored


def device_code_from_topic(topic: str) -> str | None:
    """`zhizhi/<street>/<device>/telemetry` → the device code; None for any other shape."""
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != "zhizhi" or parts[3] != "telemetry" or not parts[2]:
        return None
    return parts[2]


class Bridge:
    def __init__(self, url: str, topic: str, client_id: str) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        self.topic = topic
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, manual_ack=True
        )
        self._connect_properties = Properties(PacketTypes.CONNECT)
        self._connect_properties.ReceiveMaximum = RECEIVE_MAXIMUM
        self._connect_properties.SessionExpiryInterval = SESSION_EXPIRY
        if parts.username:
            self.client.username_pw_set(parts.username, parts.password)
        if parts.scheme == "mqtts":
            self.client.tls_set()
        self.client.enable_logger(logging.getLogger("paho.bridge"))
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.subscribed = threading.Event()
        self.handled = 0  # messages processed (stored, refused or malformed alike)
        self.accepted = 0  # readings stored as "ok" (a redelivered duplicate does not count twice)
        self.connects = 0  # successful connections (more than one: the bridge reconnected)
        self.batches = 0  # device batches stored (fewer than messages when messages arrive in bursts)
        self._stop = threading.Event()
        self._link = False  # a socket to the broker is open (CONNACK may still be on its way)
        self._inbox: list[mqtt.MQTTMessage] = []  # received, not yet stored nor acknowledged

    # --- callbacks (run in the thread of `run`) -------------------------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            log.error("MQTT broker refused the connection: %s", reason)
            return
        self.connects += 1
        log.info("MQTT connected (session present: %s); subscribing to %s", flags.session_present, self.topic)
        # Subscribe on every connect: a broker that lost the session must learn the subscription again.
        client.subscribe(self.topic, qos=1)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self._link = False
        self.subscribed.clear()
        if not self._stop.is_set():
            log.warning("MQTT disconnected: %s; will reconnect", reason)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        self.subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._inbox.append(message)

    # --- messages -------------------------------------------------------------------------------------
    @staticmethod
    def parse(topic: str, payload: bytes | bytearray | str) -> tuple[str, str, Any] | None:
        """(device code, token, readings) of a message; None (logged) for one that cannot be read."""
        code = device_code_from_topic(topic)
        if code is None:
            log.warning("MQTT message on unexpected topic %s ignored", topic)
            return None
        try:
            body = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            log.warning("MQTT message from %s is not JSON; dropped", code)
            return None
        if not isinstance(body, dict):
            log.warning("MQTT message from %s is not a JSON object; dropped", code)
            return None
        readings = body.get("readings")
        if readings is None:
            readings = [{"at": body.get("at"), "value": body.get("value")}]
        return code, str(body.get("token") or ""), readings

    def handle(self, topic: str, payload: bytes | bytearray | str) -> services.IngestResult | None:
        """Ingest one message; a bad message is logged and dropped, it never stops the bridge."""
        parsed = self.parse(topic, payload)
        if parsed is None:
            return None
        self._fresh_connection()
        return self._ingest(*parsed)

    def store(self, messages: list[tuple[str, bytes | bytearray | str]]) -> None:
        """Ingest messages received together: per (device, token) one batch, in arrival order."""
        groups: dict[tuple[str, str], list[Any]] = {}
        alone: list[tuple[str, str, Any]] = []
        for topic, payload in messages:
            parsed = self.parse(topic, payload)
            if parsed is None:
                continue
            code, token, readings = parsed
            if isinstance(readings, list) and len(readings) <= services.MAX_BATCH:
                groups.setdefault((code, token), []).extend(readings)
            else:
                alone.append(parsed)  # refused on its own, with its own reason
        batches = [
            (code, token, readings[i : i + services.MAX_BATCH])
            for (code, token), readings in groups.items()
            for i in range(0, len(readings), services.MAX_BATCH)
        ]
        batches += alone
        self._fresh_connection()
        if len(batches) == 1:
            self._ingest(*batches[0])
        elif batches:
            self._ingest_many(batches)

    def _fresh_connection(self) -> None:
        if not connection.in_atomic_block:
            # A long-running bridge must survive a database restart (inside a test's transaction the
            # connection is the test's own and must stay).
            close_old_connections()

    def _ingest(self, code: str, token: str, readings: Any) -> services.IngestResult | None:
        self.batches += 1
        try:
            result = services.ingest(code, token, readings, source="mqtt")
            self.accepted += result.accepted
            return result
        except services.DeviceRefused as refused:
            log.warning("MQTT message from %s refused: %s", code, refused)
        except Invalid as exc:
            log.warning("MQTT message from %s invalid: %s", code, exc)
        except Exception:
            log.exception("MQTT message from %s could not be stored", code)
        return None

    def _ingest_many(self, batches: list[tuple[str, str, Any]]) -> None:
        """All devices of a burst in one transaction (`services.ingest_many`); should that fail as a
        whole (the database went away mid-way), batch by batch, each on its own."""
        self.batches += len(batches)
        try:
            outcomes = services.ingest_many(batches, source="mqtt")
        except Exception:
            log.exception("MQTT burst of %d batches could not be stored together; one by one", len(batches))
            self.batches -= len(batches)
            self._fresh_connection()
            for batch in batches:
                self._ingest(*batch)
            return
        for (code, _, _), outcome in zip(batches, outcomes, strict=True):
            if isinstance(outcome, services.IngestResult):
                self.accepted += outcome.accepted
            elif isinstance(outcome, services.DeviceRefused):
                log.warning("MQTT message from %s refused: %s", code, outcome)
            else:
                log.warning("MQTT message from %s invalid: %s", code, outcome)

    def _flush(self) -> None:
        """Store what was received, then acknowledge it (a crash before the commit means redelivery)."""
        if not self._inbox:
            return
        inbox, self._inbox = self._inbox, []
        try:
            self.store([(m.topic, m.payload) for m in inbox])
        finally:
            self.handled += len(inbox)
        for message in inbox:
            if message.qos > 0:
                # Not connected any more: the broker redelivers it on reconnect (a harmless duplicate).
                self.client.ack(message.mid, message.qos)

    # --- the loop -------------------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    def run(self, once: int | None = None, timeout: float | None = None) -> int:
        """Process messages until stopped (SIGTERM → `stop()`), until `once` messages were handled
        (`once=0`: just connect and subscribe, which creates the broker session), or `timeout` seconds.
        Reconnects with exponential backoff. Returns the number of messages handled."""
        started = time.monotonic()
        backoff = 1.0
        connected_before = False
        while not self._stop.is_set():
            if timeout is not None and time.monotonic() - started >= timeout:
                break
            if once is not None and self.handled >= once and self.subscribed.is_set():
                break
            if not self._link:
                try:
                    if connected_before:
                        self.client.reconnect()
                    else:
                        self.client.connect(
                            self.host,
                            self.port,
                            keepalive=30,
                            clean_start=False,
                            properties=self._connect_properties,
                        )
                        connected_before = True
                    self._link = True
                    backoff = 1.0
                except OSError as exc:
                    log.warning(
                        "MQTT broker %s:%s unreachable (%s); retry in %.0fs",
                        self.host,
                        self.port,
                        exc,
                        backoff,
                    )
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF)
                    continue
            rc = self.client.loop(timeout=0.2)
            # Drain what has already arrived, so a burst is stored in a few batches.
            while rc == mqtt.MQTT_ERR_SUCCESS and 0 < len(self._inbox) < DRAIN_LIMIT:
                before = len(self._inbox)
                rc = self.client.loop(timeout=0)
                if len(self._inbox) == before:
                    break
            self._flush()
            if rc != mqtt.MQTT_ERR_SUCCESS:
                self._link = False
                self.subscribed.clear()
        if self._link:
            # A clean DISCONNECT keeps the persistent session: what arrives meanwhile is queued.
            self.client.disconnect()
        self._link = False
        return self.handled
