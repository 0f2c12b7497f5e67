"""Reading-to-alarm and reading-to-case-in-queue latency through the real Mosquitto and the bridge,
against the bare broker round trip (publish → a paho subscriber's on_message) measured in the same run.

The child process migrates a throwaway database (SQLite file, or PostgreSQL `bench_alarm_latency` with
`--db postgres`), loads the demo street (scale 0.05), the shipped responsibility list and the demo
devices and rules (no seeded history), and runs the bridge in a thread. Each trial, on one of the four
culverts in turn: two low readings 61 s apart clear the previous alarm (not timed); then one reading of
1.6 m — over the critical rung, which needs no duration — is published and the clock runs until the
new alarm is committed (polled every 2 ms on another database connection), then until its case
(涵洞积水 4201) is in the command centre's queue (`unit_cases`). The alarm and its case are written in
one transaction, so the second figure differs from the first only by the queue query.

The per-device rate limit is lifted for the run (the trials send faster than a gauge would).
Prints figures; never asserts timings.
Run: .venv/bin/python bench/bench_alarm_latency.py [--db sqlite|postgres|both] [--trials 100]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import require_service, run_child  # noqa: E402

PG_NAME = "bench_alarm_latency"
HOST, PORT = "127.0.0.1", 1883
POLL = 0.002


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def publisher() -> Any:
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-lat-pub-{uuid.uuid4().hex[:8]}")
    client.connect(HOST, PORT)
    client.loop_start()
    return client


def bare_round_trip(trials: int) -> list[float]:
    """Seconds from publish (QoS 1) to the bare subscriber's on_message, one message at a time."""
    import paho.mqtt.client as mqtt

    topic = f"zhizhi/bare{uuid.uuid4().hex[:6]}/X/telemetry"
    arrived = threading.Event()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-lat-bare-{uuid.uuid4().hex[:8]}")
    subscribed = threading.Event()
    sub.on_message = lambda *a: arrived.set()
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.connect(HOST, PORT)
    sub.subscribe(topic, qos=1)
    sub.loop_start()
    subscribed.wait(5)
    pub = publisher()
    out = []
    for _ in range(trials):
        arrived.clear()
        t0 = time.perf_counter()
        pub.publish(topic, b'{"token": "x", "at": 0, "value": 1.6}', qos=1)
        if arrived.wait(5):
            out.append(time.perf_counter() - t0)
    for c in (pub, sub):
        c.disconnect()
        c.loop_stop()
    return out


def child(trials: int) -> None:
    import django

    django.setup()
    import datetime as dt
    import io

    from django.core.management import call_command
    from django.db import connection

    from zhizhi import clock
    from zhizhi.alerts import devices_demo
    from zhizhi.alerts.models import Device
    from zhizhi.alerts.mqtt import Bridge
    from zhizhi.alerts.rule_models import Alarm
    from zhizhi.cases.services import unit_cases
    from zhizhi.geo.models import Region
    from zhizhi.orgs.models import User

    call_command("migrate", "--no-input", verbosity=0)
    call_command("demo_street", seed=1, scale=0.05, stdout=io.StringIO())
    call_command("load_responsibility_list", stdout=io.StringIO())
    street = Region.objects.get(level=Region.STREET)
    devices_demo.ensure_rules()
    devices_demo.ensure_devices(street)
    culverts = list(Device.objects.filter(kind="water_level").order_by("code"))
    tokens = {d.code: devices_demo.demo_token(d.code) for d in culverts}
    duty = User.objects.filter(org_unit__code="ZHZX", is_active=True).order_by("pk").first()
    assert duty is not None, "the demo street has no 综合指挥中心 staff"

    bare = bare_round_trip(trials)

    run = uuid.uuid4().hex[:6]
    client_id = f"bench-lat-bridge-{run}"
    bridge = Bridge(f"mqtt://{HOST}:{PORT}", f"zhizhi/{run}/+/telemetry", client_id)

    def serve() -> None:
        try:
            bridge.run(timeout=900)
        finally:
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    bridge.subscribed.wait(10)
    pub = publisher()

    def send(device: Device, at: dt.datetime, value: float) -> float:
        body = json.dumps({"token": tokens[device.code], "at": at.isoformat(), "value": value}).encode()
        t0 = time.perf_counter()
        pub.publish(f"zhizhi/{run}/{device.code}/telemetry", body, qos=1)
        return t0

    def wait_for(check: Any, limit: float = 10.0) -> bool:
        deadline = time.perf_counter() + limit
        while time.perf_counter() < deadline:
            if check():
                return True
            time.sleep(POLL)
        return False

    start = clock.now() - dt.timedelta(seconds=130 * (trials // len(culverts) + 2))
    to_alarm: list[float] = []
    to_case: list[float] = []
    for k in range(trials):
        device = culverts[k % len(culverts)]
        t = start + dt.timedelta(seconds=130 * (k // len(culverts)))
        send(device, t, 0.5)
        send(device, t + dt.timedelta(seconds=61), 0.5)
        # The previous alarm of this culvert is cleared before the timed reading.
        wait_for(
            lambda d=device: (
                not Alarm.objects.filter(device=d, rule__code="WL-LEVEL", status="active").exists()
            )
        )
        before = Alarm.objects.filter(device=device, rule__code="WL-LEVEL").count()
        t0 = send(device, t + dt.timedelta(seconds=62), 1.6)
        new = Alarm.objects.filter(device=device, rule__code="WL-LEVEL")
        if not wait_for(lambda n=new, b=before: n.count() > b):
            continue
        to_alarm.append(time.perf_counter() - t0)
        alarm = new.order_by("-pk").first()
        if wait_for(lambda a=alarm: unit_cases(duty).filter(external_id=f"alarm:{a.pk}").exists()):
            to_case.append(time.perf_counter() - t0)
    bridge.stop()
    thread.join(10)
    pub.disconnect()
    pub.loop_stop()
    import paho.mqtt.client as mqtt

    cleanup = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    cleanup.connect(HOST, PORT)
    cleanup.loop(timeout=0.5)
    cleanup.disconnect()
    print(
        json.dumps(
            {
                "engine": connection.vendor,
                "trials": trials,
                "bare": bare,
                "alarm": to_alarm,
                "case": to_case,
            }
        )
    )


def run_engine(engine: str, trials: int) -> dict[str, Any]:
    return run_child(
        __file__,
        engine,
        PG_NAME,
        [f"--trials={trials}"],
        prefix="zhizhi-bench-latency-",
        extra_env=lambda tmp: {"ZHIZHI_DEVICE_RATE_PER_MINUTE": 10_000_000},
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="sqlite")
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.trials)
        return
    require_service("mqtt")
    engines = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    load = os.getloadavg()[0]
    print(f"Reading → alarm → case latency, {os.cpu_count()} cores, load average {load:.1f} (shared machine)")
    for engine in engines:
        r = run_engine(engine, args.trials)
        bare, alarm, case = r["bare"], r["alarm"], r["case"]
        ms = 1000.0
        print(
            f"{r['engine']:<10} bare broker round trip  p50 {pct(bare, 0.5) * ms:6.1f} ms  "
            f"p99 {pct(bare, 0.99) * ms:6.1f} ms  ({len(bare)} messages)"
        )
        for name, values in (("reading → alarm", alarm), ("reading → case queued", case)):
            if not values:
                print(f"{'':<10} {name}: no trial completed")
                continue
            print(
                f"{'':<10} {name:<23} p50 {pct(values, 0.5) * ms:6.1f} ms  "
                f"p99 {pct(values, 0.99) * ms:6.1f} ms  "
                f"mean {statistics.mean(values) * ms:6.1f} ms  ({len(values)}/{r['trials']} trials; "
                f"p50 = {pct(values, 0.5) / pct(bare, 0.5):.0f}× the bare round trip)"
            )


if __name__ == "__main__":
    main()
