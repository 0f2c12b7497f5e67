"""Readings per second through the real Mosquitto → the bridge → ingestion (checks, store) → rule
evaluation, as a ratio to the raw rate of the same broker with a bare paho subscriber that does nothing
with what it receives — both measured in the same run, same publisher, same messages.

The child process migrates a throwaway database (SQLite file, or PostgreSQL `bench_mqtt` with
`--db postgres`), creates D water-level devices with tokens and the demo alert rules (threshold ladder,
rate of change, offline), then publishes M single-reading messages (QoS 1, round-robin over the devices,
one reading per device every 30 s of measurement time, values below every threshold, so every reading
is evaluated but raises nothing). The publisher keeps at
most WINDOW messages ahead of the receiver: Mosquitto queues at most `max_queued_messages` (1000 by
default) for a slow subscriber and drops the rest, which would be measuring the broker's queue limit.

The per-device rate limit is lifted for the run (ZHIZHI_DEVICE_RATE_PER_MINUTE): it guards against a
flooding device, which is not what is measured here.

Prints figures; never asserts timings.
Run: .venv/bin/python bench/bench_mqtt.py [--db sqlite|postgres|both] [--messages 4000] [--devices 20]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import require_service, run_child  # noqa: E402

PG_NAME = "bench_mqtt"
HOST, PORT = "127.0.0.1", 1883
STEP = 30
WINDOW = 900  # under max_queued_messages (1000) plus what is in flight


def publish_all(messages: list[tuple[str, bytes]], received: Any, started: threading.Event) -> float:
    """Publish `messages` (QoS 1), never more than WINDOW ahead of `received()`; returns the start time."""
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{uuid.uuid4().hex[:8]}")
    client.max_inflight_messages_set(100)
    client.connect(HOST, PORT)
    client.loop_start()
    t0 = time.perf_counter()
    started.set()
    pending = []
    for i, (topic, body) in enumerate(messages):
        while i - received() >= WINDOW:
            time.sleep(0.001)
        pending.append(client.publish(topic, body, qos=1))
        if len(pending) >= 200:
            for info in pending:
                info.wait_for_publish(timeout=30)
            pending.clear()
    for info in pending:
        info.wait_for_publish(timeout=30)
    client.disconnect()
    client.loop_stop()
    return t0


def bare_rate(messages: list[tuple[str, bytes]], street: str) -> float:
    """Messages per second to a subscriber that only counts them (QoS 1, auto-ack)."""
    import paho.mqtt.client as mqtt

    count = [0]
    done = threading.Event()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-bare-{uuid.uuid4().hex[:8]}")

    def on_message(client: Any, userdata: Any, message: Any) -> None:
        count[0] += 1
        if count[0] >= len(messages):
            done.set()

    subscribed = threading.Event()
    sub.on_message = on_message
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.connect(HOST, PORT)
    sub.subscribe(f"zhizhi/{street}/+/telemetry", qos=1)
    sub.loop_start()
    subscribed.wait(5)
    started = threading.Event()
    t0 = publish_all(messages, lambda: count[0], started)
    done.wait(120)
    elapsed = time.perf_counter() - t0
    sub.disconnect()
    sub.loop_stop()
    return count[0] / elapsed


def child(n_messages: int, n_devices: int) -> None:
    import django

    django.setup()
    import datetime as dt

    from django.core.management import call_command
    from django.db import connection

    from zhizhi import clock
    from zhizhi.alerts import devices_demo, services
    from zhizhi.alerts.models import Device, Reading
    from zhizhi.alerts.mqtt import Bridge
    from zhizhi.alerts.rule_models import Alarm

    call_command("migrate", "--no-input", verbosity=0)
    devices_demo.ensure_rules()
    tokens = {}
    for i in range(n_devices):
        device = Device.objects.create(code=f"WL-B{i:03d}", name=f"水位{i}", kind="water_level", unit="m")
        tokens[device.code] = services.issue_token(device)
    codes = list(tokens)
    street = f"bench{uuid.uuid4().hex[:6]}"
    # Each gauge reports every STEP seconds, as field devices do (not a 1 Hz stream), ending now.
    per_device = -(-n_messages // n_devices)
    start = clock.now() - dt.timedelta(seconds=STEP * per_device + 60)
    messages = []
    for i in range(n_messages):
        code = codes[i % n_devices]
        at = start + dt.timedelta(seconds=STEP * (i // n_devices))
        body = {
            "token": tokens[code],
            "at": at.isoformat(),
            "value": round(0.3 + 0.2 * ((i * 7) % 10) / 10, 3),
        }
        messages.append((f"zhizhi/{street}/{code}/telemetry", json.dumps(body).encode()))

    bare = bare_rate(messages, street)

    client_id = f"bench-bridge-{uuid.uuid4().hex[:8]}"
    bridge = Bridge(f"mqtt://{HOST}:{PORT}", f"zhizhi/{street}/+/telemetry", client_id)
    result: dict[str, float] = {}

    def device_side() -> None:
        if not bridge.subscribed.wait(10):
            bridge.stop()
            return
        started = threading.Event()
        t0 = publish_all(messages, lambda: bridge.handled, started)
        deadline = time.monotonic() + 300
        while bridge.handled < n_messages and time.monotonic() < deadline:
            time.sleep(0.002)
        result["elapsed"] = time.perf_counter() - t0
        bridge.stop()

    thread = threading.Thread(target=device_side)
    thread.start()
    bridge.run(timeout=600)
    thread.join()
    # Forget the bridge's persistent session.
    import paho.mqtt.client as mqtt

    cleanup = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    cleanup.connect(HOST, PORT)
    cleanup.loop(timeout=0.5)
    cleanup.disconnect()

    stored = Reading.objects.filter(status="ok").count()
    print(
        json.dumps(
            {
                "engine": connection.vendor,
                "messages": n_messages,
                "devices": n_devices,
                "bare_per_s": bare,
                "bridge_per_s": bridge.handled / result.get("elapsed", float("inf")),
                "handled": bridge.handled,
                "batches": bridge.batches,
                "stored": stored,
                "alarms": Alarm.objects.count(),
            }
        )
    )


def run_engine(engine: str, args: argparse.Namespace) -> dict[str, Any]:
    return run_child(
        __file__,
        engine,
        PG_NAME,
        [f"--messages={args.messages}", f"--devices={args.devices}"],
        prefix="zhizhi-bench-mqtt-",
        extra_env=lambda tmp: {"ZHIZHI_DEVICE_RATE_PER_MINUTE": 10_000_000},
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="sqlite")
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.messages, args.devices)
        return
    require_service("mqtt")
    engines = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    load = os.getloadavg()[0]
    print(f"MQTT → bridge → ingest → rules, {os.cpu_count()} cores, load average {load:.1f} (shared machine)")
    for engine in engines:
        r = run_engine(engine, args)
        print(
            f"{r['engine']:<10} {r['messages']} one-reading messages over {r['devices']} devices: "
            f"bare paho subscriber {r['bare_per_s']:8.0f} msg/s | "
            f"bridge+store+rules {r['bridge_per_s']:8.0f} "
            f"readings/s | ratio {r['bridge_per_s'] / r['bare_per_s']:.2f} "
            f"(stored {r['stored']}, alarms {r['alarms']}, {r['handled'] / max(r['batches'], 1):.1f} "
            "readings per ingest call)"
        )


if __name__ == "__main__":
    main()
