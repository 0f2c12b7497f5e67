"""The MQTT bridge: device readings published to the broker go through `services.ingest`.

Topic tree `zhizhi/<street>/<device code>/telemetry`; payload `{"token": "...", "readings": [...]}` or a
single reading `{"token": "...", "at": "...", "value": ...}`. The bridge keeps a persistent session
(clean_session=False, fixed client id) and subscribes with QoS 1, so the broker queues what arrives
while the bridge is down and hands it over when it comes back: a restart loses no reading. A message
is acknowledged (PUBACK) only after `on_message` returns, i.e. after the readings are committed.

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

from zhizhi.alerts import services
from zhizhi.problems import Invalid

log = logging.getLogger(__name__)

MAX_BACKOFF = 30.0


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
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False, protocol=mqtt.MQTTv311
        )
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
        self._stop = threading.Event()
        self._link = False  # a socket to the broker is open (CONNACK may still be on its way)

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
        try:
            self.handle(message.topic, message.payload)
        finally:
            self.handled += 1

    # --- one message --------------------------------------------------------------------------------
    def handle(self, topic: str, payload: bytes | bytearray | str) -> services.IngestResult | None:
        """Ingest one message; a bad message is logged and dropped, it never stops the bridge."""
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
        if not connection.in_atomic_block:
            # A long-running bridge must survive a database restart (inside a test's transaction the
            # connection is the test's own and must stay).
            close_old_connections()
        try:
            result = services.ingest(code, str(body.get("token") or ""), readings, source="mqtt")
            self.accepted += result.accepted
            return result
        except services.DeviceRefused as refused:
            log.warning("MQTT message from %s refused: %s", code, refused)
        except Invalid as exc:
            log.warning("MQTT message from %s invalid: %s", code, exc)
        except Exception:
            log.exception("MQTT message from %s could not be stored", code)
        return None

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
                        self.client.connect(self.host, self.port, keepalive=30)
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
            if rc != mqtt.MQTT_ERR_SUCCESS:
                self._link = False
                self.subscribed.clear()
        if self._link:
            # A clean DISCONNECT keeps the persistent session: what arrives meanwhile is queued.
            self.client.disconnect()
        self._link = False
        return self.handled
