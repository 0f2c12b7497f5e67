"""Sensor simulator: realistic reading streams for demos, end-to-end tests and benchmarks.

Two halves, kept apart on purpose:

- *streams* — pure, deterministic functions of (device codes, start time, seed) that return `Sample`s
  (device code, measurement time, value): a typhoon afternoon at a culvert, restaurants' fume with lunch
  and dinner peaks, door contacts of elderly people living alone. No database, no network, no clock:
  the same arguments give the same samples, so tests can assert on them and a demo can be replayed.
- *transport* — `MqttSink` publishes to the broker's topic tree (what real devices do), `HttpSink` posts
  to `POST /api/v1/telemetry`; `play()` paces samples against the wall clock (time compression with
  `speed`), or sends everything at once.

`manage.py simulate_sensors` (docs/simulator.md) joins the two with the demo devices.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import time
import urllib.error
import urllib.request
import uuid
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, order=True)
class Sample:
    """One reading as a device would report it. Ordered by time first."""

    at: dt.datetime
    device: str
    value: float

    def as_reading(self) -> dict[str, object]:
        return {"at": self.at.isoformat(), "value": self.value}


def _rng(seed: int, code: str) -> random.Random:
    """A generator per (seed, device): adding a device does not change the others' streams."""
    return random.Random(seed * 1_000_003 + zlib.crc32(code.encode()))


def _times(start: dt.datetime, hours: float, step_seconds: int) -> list[dt.datetime]:
    return [start + dt.timedelta(seconds=s) for s in range(0, int(hours * 3600) + 1, step_seconds)]


def _hours_of_day(at: dt.datetime) -> float:
    return at.hour + at.minute / 60 + at.second / 3600


# --- typhoon: culvert water level ----------------------------------------------------------------
TYPHOON_HOURS = 5.0  # 13:00 → 18:00
TYPHOON_PEAK_HOUR = 2.8  # after the start


def typhoon_level(hours: float, peak: float, base: float = 0.35) -> float:
    """Water level (m) of a culvert `hours` into a typhoon afternoon: steady, a fast rise while the
    rain band passes (raised cosine up to `peak` at TYPHOON_PEAK_HOUR), a slower recession as the
    pumps catch up."""
    rise_from, fall_to = 1.2, TYPHOON_HOURS
    if hours <= rise_from:
        return base
    if hours <= TYPHOON_PEAK_HOUR:
        phase = (hours - rise_from) / (TYPHOON_PEAK_HOUR - rise_from)
        return base + (peak - base) * (1 - math.cos(math.pi * phase)) / 2
    phase = min((hours - TYPHOON_PEAK_HOUR) / (fall_to - TYPHOON_PEAK_HOUR), 1.0)
    settled = base + 0.25  # the ground stays wet: a little above the morning's level
    return settled + (peak - settled) * (1 + math.cos(math.pi * phase)) / 2


def typhoon(
    codes: Sequence[str], start: dt.datetime, *, seed: int = 1, step_seconds: int = 60
) -> list[Sample]:
    """A typhoon afternoon at the culverts `codes`: the first one floods (past 1.2 m, then 1.5 m, then
    back below 1.1 m), the others rise but stay under the first rung. One reading a minute each."""
    samples = []
    for i, code in enumerate(codes):
        rng = _rng(seed, code)
        peak = 1.72 if i == 0 else 0.7 + 0.12 * (i % 4)
        for at in _times(start, TYPHOON_HOURS, step_seconds):
            hours = (at - start).total_seconds() / 3600
            level = typhoon_level(hours, peak) + rng.gauss(0, 0.008)
            samples.append(Sample(at, code, round(max(level, 0.0), 3)))
    return sorted(samples)


# --- fume: restaurants' oil fume ------------------------------------------------------------------
FUME_LIMIT = 2.0  # mg/m³, GB 18483 饮食业油烟排放标准


def _peak(hours: float, centre: float, width: float) -> float:
    return math.exp(-(((hours - centre) / width) ** 2))


def fume_level(hour_of_day: float, scale: float, *, exceed: bool = False) -> float:
    """Oil fume concentration (mg/m³) at a restaurant: near zero while closed, a lunch peak around
    12:00 and a higher dinner peak around 18:30; `exceed` is a kitchen whose purifier is clogged:
    its dinner peak stays above the limit for most of an hour."""
    if hour_of_day < 9.5 or hour_of_day > 21.5:
        return 0.04
    level = 0.15 + scale * (0.9 * _peak(hour_of_day, 12.0, 0.8) + 1.0 * _peak(hour_of_day, 18.5, 1.0))
    if exceed:
        level += 1.3 * _peak(hour_of_day, 18.6, 0.55)
    return level


def fume(
    codes: Sequence[str],
    start: dt.datetime,
    *,
    hours: float = 11.0,
    seed: int = 1,
    step_seconds: int = 60,
    exceeding: str | None = None,
) -> list[Sample]:
    """Restaurants `codes` from `start` (10:00 by default in the command) for `hours`; the kitchen
    `exceeding` (default: the first code) goes over the limit at dinner."""
    exceeding = exceeding if exceeding is not None else (codes[0] if codes else None)
    samples = []
    for code in codes:
        rng = _rng(seed, code)
        scale = 0.9 + 0.6 * rng.random()  # some kitchens cook more than others
        for at in _times(start, hours, step_seconds):
            value = fume_level(_hours_of_day(at), scale, exceed=code == exceeding)
            value *= 1 + rng.gauss(0, 0.05)
            samples.append(Sample(at, code, round(max(value, 0.0), 3)))
    return sorted(samples)


# --- doors: elderly people living alone ---------------------------------------------------------------
# Local hours at which a person living alone usually goes out or comes back (market, lunch, a walk …).
DOOR_HABITS = (7.3, 8.6, 11.2, 11.9, 15.0, 16.4, 18.2, 19.1)


def doors(
    codes: Sequence[str],
    start: dt.datetime,
    *,
    hours: float = 24.0,
    seed: int = 1,
    stops_moving: str | None = None,
    stops_after_hours: float = 3.0,
) -> list[Sample]:
    """Door contacts (1 open, 0 closed): each person leaves and returns around their habits, the door
    open for a minute or two each time. `stops_moving` (default: the last code) has no event after
    `stops_after_hours` — the case the inactivity rule is there for."""
    stops_moving = stops_moving if stops_moving is not None else (codes[-1] if codes else None)
    end = start + dt.timedelta(hours=hours)
    samples = []
    for code in codes:
        rng = _rng(seed, code)
        until = start + dt.timedelta(hours=stops_after_hours) if code == stops_moving else end
        day = start.replace(hour=0, minute=0, second=0, microsecond=0)
        while day < end:
            for habit in DOOR_HABITS:
                if rng.random() < 0.25:
                    continue  # not every habit every day
                opened = day + dt.timedelta(hours=habit + rng.uniform(-0.4, 0.4))
                opened = opened.replace(microsecond=0)
                closed = opened + dt.timedelta(seconds=rng.randint(20, 150))
                for at, value in ((opened, 1.0), (closed, 0.0)):
                    if start <= at < until:
                        samples.append(Sample(at, code, value))
            day += dt.timedelta(days=1)
    return sorted(samples)


# --- everyday baselines (the past day of the demo, and the quiet devices of `all`) ------------------
def baseline_value(kind: str, at: dt.datetime, rng: random.Random) -> float:
    """An ordinary reading of a device of `kind` at local time `at` (nothing an alert rule fires on)."""
    hour = _hours_of_day(at)
    if kind == "water_level":
        return round(0.3 + 0.05 * math.sin(hour / 24 * 2 * math.pi) + rng.gauss(0, 0.01), 3)
    if kind == "fume":
        return round(max(fume_level(hour, 0.8 + 0.4 * rng.random()) * (1 + rng.gauss(0, 0.05)), 0.0), 3)
    if kind == "noise":  # dB(A): quiet nights, busy afternoons on a commercial street
        day = 0.5 - 0.5 * math.cos((hour - 3) / 24 * 2 * math.pi)
        return round(42 + 20 * day + rng.gauss(0, 2.5), 1)
    if kind == "gas":  # %LEL: nothing but sensor noise
        return round(max(rng.gauss(0.4, 0.2), 0.0), 2)
    if kind == "smoke":
        return round(max(rng.gauss(0.3, 0.1), 0.0), 2)
    if kind == "power":  # kW of a commercial building: office hours and evening lights
        load = 25 + 60 * _peak(hour, 14.0, 4.0) + 30 * _peak(hour, 20.0, 1.5)
        return round(load * (1 + rng.gauss(0, 0.04)), 1)
    if kind == "door":
        return 0.0
    return 0.0


def baseline(
    devices: Iterable[tuple[str, str]],
    start: dt.datetime,
    *,
    hours: float,
    seed: int = 1,
    step_seconds: int = 300,
) -> list[Sample]:
    """Ordinary readings of `devices` ((code, kind) pairs) every `step_seconds` for `hours`."""
    samples = []
    for code, kind in devices:
        if kind == "door":
            continue  # a door contact reports events, not a series
        rng = _rng(seed, code)
        samples += [
            Sample(at, code, baseline_value(kind, at, rng)) for at in _times(start, hours, step_seconds)
        ]
    return sorted(samples)


# --- transport ------------------------------------------------------------------------------------
class Sink(Protocol):
    def send(self, device: str, token: str, samples: Sequence[Sample]) -> None: ...

    def close(self) -> None: ...


def topic_for(street: str, device: str) -> str:
    return f"zhizhi/{street}/{device}/telemetry"


def payload(token: str, samples: Sequence[Sample]) -> bytes:
    """The MQTT payload of docs/devices.md: `{"token": ..., "readings": [{"at", "value"}, ...]}`."""
    return json.dumps({"token": token, "readings": [s.as_reading() for s in samples]}).encode()


class MqttSink:
    """Publishes each batch with QoS 1 to `zhizhi/<street>/<device>/telemetry`, as a device would."""

    def __init__(self, url: str, street: str | dict[str, str], client_id: str | None = None) -> None:
        """`street`: the street code of the topic, or device code → street code."""
        from urllib.parse import urlsplit

        import paho.mqtt.client as mqtt

        parts = urlsplit(url)
        self.street = street
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"zhizhi-sim-{uuid.uuid4().hex[:8]}"
        )
        if parts.username:
            self.client.username_pw_set(parts.username, parts.password)
        if parts.scheme == "mqtts":
            self.client.tls_set()
        self.client.connect(parts.hostname or "127.0.0.1", parts.port or 1883, keepalive=30)
        self.client.loop_start()
        self.sent = 0
        self._pending: list[object] = []

    def send(self, device: str, token: str, samples: Sequence[Sample]) -> None:
        street = self.street if isinstance(self.street, str) else self.street.get(device, "0")
        info = self.client.publish(topic_for(street, device), payload(token, samples), qos=1)
        self._pending.append(info)
        self.sent += len(samples)
        if len(self._pending) >= 200:  # bound the in-flight window
            self.flush()

    def flush(self) -> None:
        for info in self._pending:
            info.wait_for_publish(timeout=10)  # type: ignore[attr-defined]
        self._pending.clear()

    def close(self) -> None:
        self.flush()
        self.client.disconnect()
        self.client.loop_stop()


class HttpSink:
    """Posts each batch to `<base>/api/v1/telemetry` with the device's token in the header."""

    def __init__(self, base: str) -> None:
        if not base.startswith(("http://", "https://")):
            raise ValueError(f"--http needs an http(s):// address, not {base!r}")
        self.url = base.rstrip("/") + "/api/v1/telemetry"
        self.sent = 0
        self.refused: list[str] = []

    def send(self, device: str, token: str, samples: Sequence[Sample]) -> None:
        body = json.dumps({"readings": [s.as_reading() for s in samples]}).encode()
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked in __init__
            self.url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Device {device}:{token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                response.read()
        except urllib.error.HTTPError as exc:
            self.refused.append(f"{device}: HTTP {exc.code} {exc.read()[:200]!r}")
            return
        self.sent += len(samples)

    def close(self) -> None:
        return None


def batches(samples: Iterable[Sample], size: int = 500) -> list[tuple[str, list[Sample]]]:
    """Samples grouped per device (time order kept), in chunks of at most `size` readings."""
    per_device: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        per_device[sample.device].append(sample)
    out = []
    for device, items in per_device.items():
        out += [(device, items[i : i + size]) for i in range(0, len(items), size)]
    return out


def shift(samples: Iterable[Sample], delta: dt.timedelta) -> list[Sample]:
    return [Sample(s.at + delta, s.device, s.value) for s in samples]


def play(
    samples: Sequence[Sample],
    sink: Sink,
    tokens: dict[str, str],
    *,
    speed: float = 1.0,
    once: bool = False,
    origin: dt.datetime | None = None,
    until: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
    on_tick: Callable[[Sample], None] | None = None,
) -> int:
    """Send `samples` through `sink`. `once`: everything now, batched per device. Otherwise samples
    are due at (their time − `origin`, default the first one's) / `speed` seconds of wall clock after
    the start; what is due together goes in one message per device; `until`: stop after that many
    wall-clock seconds. Returns how many readings were sent."""
    ordered = sorted(s for s in samples if s.device in tokens)
    if not ordered:
        return 0
    if once:
        for device, chunk in batches(ordered):
            sink.send(device, tokens[device], chunk)
        return len(ordered)
    first = origin if origin is not None else ordered[0].at
    started = monotonic()
    sent, i = 0, 0
    while i < len(ordered):
        if until is not None and monotonic() - started >= until:
            break
        due = (ordered[i].at - first).total_seconds() / speed
        wait = due - (monotonic() - started)
        if wait > 0:
            sleep(min(wait, 1.0))
            continue
        now_due = (monotonic() - started) * speed
        j = i
        while j < len(ordered) and (ordered[j].at - first).total_seconds() <= now_due:
            j += 1
        for device, chunk in batches(ordered[i:j]):
            sink.send(device, tokens[device], chunk)
        if on_tick is not None:
            on_tick(ordered[j - 1])
        sent += j - i
        i = j
    return sent
