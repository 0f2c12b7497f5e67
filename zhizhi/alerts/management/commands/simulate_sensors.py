"""manage.py simulate_sensors: play realistic sensor streams to the demo devices over MQTT (default) or
HTTP, so the alert rules, alarms and cases can be watched working (docs/simulator.md).

    manage.py simulate_sensors typhoon                 # a typhoon afternoon, 60× faster (5 minutes)
    manage.py simulate_sensors fume --speed 120
    manage.py simulate_sensors all --http http://127.0.0.1:8000
    manage.py simulate_sensors typhoon --once          # one batch per device (last 10 minutes), exit

A compressed replay cannot send readings stamped in the future, so it plays the recent past: the
scenario is laid out to end when the replay ends. Its devices' readings inside that span (the seeded
demo history) are removed first, so the replay is the newest data the rules see.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from zhizhi import clock
from zhizhi.alerts import simulator
from zhizhi.alerts.devices_demo import adopt_tokenless, demo_tokens
from zhizhi.alerts.models import Device, Reading

SCENARIOS = ("typhoon", "fume", "doors", "all")
# Local time of day each scenario's day starts at.
STARTS = {"typhoon": dt.time(13, 0), "fume": dt.time(10, 0), "doors": dt.time(0, 0)}
BACKGROUND_KINDS = ("noise", "gas", "smoke", "power")


def _street_of(device: Device) -> str:
    parts = [p for p in (device.area_path or "").split("/") if p]
    return parts[1] if len(parts) > 1 else "0"


def build(scenario: str, devices: list[Device], seed: int, day: dt.date) -> list[simulator.Sample]:
    """The samples of `scenario` for `devices` on the local day `day` (not yet shifted)."""
    tz = timezone.get_current_timezone()

    def start(name: str) -> dt.datetime:
        return dt.datetime.combine(day, STARTS[name], tzinfo=tz)

    def codes(kind: str) -> list[str]:
        return [d.code for d in devices if d.kind == kind and (kind != "door" or d.watched_person_id)]

    parts: list[list[simulator.Sample]] = []
    if scenario in ("typhoon", "all"):
        parts.append(simulator.typhoon(codes("water_level"), start("typhoon"), seed=seed))
    if scenario in ("fume", "all"):
        parts.append(simulator.fume(codes("fume"), start("fume"), seed=seed))
    if scenario in ("doors", "all"):
        doors = codes("door")
        # The first watched person stops moving (the care layer's demo picks the same one).
        parts.append(
            simulator.doors(doors, start("doors"), seed=seed, stops_moving=doors[0] if doors else None)
        )
    if scenario == "all":
        others = [(d.code, d.kind) for d in devices if d.kind in BACKGROUND_KINDS]
        parts.append(simulator.baseline(others, start("fume"), hours=11, seed=seed, step_seconds=60))
    # Every part is laid out to end at the same moment (the longest part sets the span).
    span = max(((p[-1].at - p[0].at) for p in parts if p), default=dt.timedelta(0))
    origin = min((p[0].at for p in parts if p), default=start("doors"))
    out: list[simulator.Sample] = []
    for part in parts:
        if part:
            out += simulator.shift(part, (origin + span) - part[-1].at)
    return sorted(out)


class Command(BaseCommand):
    help = "向演示设备播放模拟读数 / Play simulated sensor readings to the demo devices (MQTT or HTTP)"

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("scenario", choices=SCENARIOS)
        parser.add_argument("--http", default=None, help="post to <base>/api/v1/telemetry instead of MQTT")
        parser.add_argument("--url", default=None, help="mqtt://host:port (default ZHIZHI_MQTT_URL)")
        parser.add_argument("--speed", type=float, default=60.0, help="time compression (default 60×)")
        parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument(
            "--once", action="store_true", help="send one batch per device (the last --window minutes), exit"
        )
        parser.add_argument("--window", type=float, default=10.0, help="minutes of readings for --once")
        parser.add_argument(
            "--devices",
            default="",
            help="only these device codes (comma-separated; default all demo devices)",
        )
        parser.add_argument(
            "--adopt-tokenless",
            action="store_true",
            help="demo only: give enabled devices that have no token yet (e.g. the care layer's door "
            "contacts) their derived demo token",
        )
        parser.add_argument(
            "--street", default=None, help="street code in the MQTT topic (default: the device's)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        scenario, speed = options["scenario"], max(float(options["speed"]), 1.0)
        qs = Device.objects.filter(enabled=True)
        if options["devices"]:
            qs = qs.filter(code__in=[c.strip() for c in options["devices"].split(",") if c.strip()])
        if options["adopt_tokenless"]:
            adopted = adopt_tokenless(qs)
            self.stdout.write(f"{adopted} 台设备获得演示令牌 / {adopted} devices given their demo token")
        tokens = demo_tokens(qs)
        devices = [d for d in qs.order_by("code") if d.code in tokens]
        skipped = qs.exclude(code__in=list(tokens)).count()
        if skipped:
            self.stdout.write(
                f"{skipped} 台设备没有演示令牌，跳过 / {skipped} devices without a demo token skipped "
                "(see docs/simulator.md)"
            )
        now = clock.now().replace(microsecond=0)
        samples = build(scenario, devices, options["seed"], timezone.localdate(now))
        if not samples:
            raise CommandError(
                f"场景 {scenario} 没有可用设备，请先运行 demo_extras / No devices for {scenario}: "
                "run manage.py demo_extras first"
            )
        span = samples[-1].at - samples[0].at
        # The replay ends now (--once) or when it finishes playing (at `speed`), never in the future.
        end = now if options["once"] else now + span / speed
        samples = simulator.shift(samples, end - samples[-1].at)
        if options["once"]:
            # One batch per device, within the ingestion rate limit (ZHIZHI_DEVICE_RATE_PER_MINUTE).
            since = end - dt.timedelta(minutes=options["window"])
            samples = [s for s in samples if s.at > since]
            if not samples:
                self.stdout.write(
                    f"{scenario}: 最近 {options['window']:g} 分钟没有读数 / nothing in the last window"
                )
                return
        origin = samples[0].at
        removed = self._make_room({s.device for s in samples}, origin)
        sink = self._sink(options, devices)
        self.stdout.write(
            f"{scenario}: {len(samples)} 条读数 readings, {len({s.device for s in samples})} 台设备 devices, "
            f"{timezone.localtime(samples[0].at):%m-%d %H:%M}–{timezone.localtime(samples[-1].at):%H:%M}"
            + ("" if options["once"] else f", {speed:g}× ≈ {span.total_seconds() / speed:.0f} s")
            + (f"; {removed} 条旧读数已移除 older readings removed" if removed else "")
        )
        last_report = [time.monotonic()]

        def tick(sample: simulator.Sample) -> None:
            if time.monotonic() - last_report[0] >= 10:
                last_report[0] = time.monotonic()
                local = timezone.localtime(sample.at)
                self.stdout.write(f"  {local:%H:%M} {sample.device} = {sample.value:g}")

        try:
            sent = simulator.play(
                samples,
                sink,
                tokens,
                speed=speed,
                once=options["once"],
                origin=origin,
                until=options["duration"],
                on_tick=tick,
            )
        finally:
            sink.close()
        refused = getattr(sink, "refused", [])
        for line in refused[:10]:
            self.stderr.write(f"refused: {line}")
        self.stdout.write(f"已发送 {sent} 条读数 / {sent} readings sent")

    def _make_room(self, codes: set[str], origin: dt.datetime) -> int:
        """Remove the replayed devices' readings from `origin` on (demo history), so the replay is the
        newest data, and move their latest value back to what remains."""
        devices = list(Device.objects.filter(code__in=codes))
        deleted, _ = Reading.objects.filter(device__in=devices, at__gte=origin).delete()
        for device in devices:
            last = Reading.objects.filter(device=device, status=Reading.OK).order_by("-at").first()
            Device.objects.filter(pk=device.pk).update(
                last_value=last.value if last else None, last_seen_at=last.at if last else None
            )
        return deleted

    def _sink(self, options: dict[str, Any], devices: list[Device]) -> Any:
        if options["http"]:
            try:
                return simulator.HttpSink(options["http"])
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
        url = options["url"] or settings.ZHIZHI_MQTT_URL
        try:
            streets = {d.code: options["street"] or _street_of(d) for d in devices}
            return simulator.MqttSink(url, streets)
        except OSError as exc:
            raise CommandError(
                f"连不上 MQTT broker {url}: {exc} / Cannot reach the MQTT broker; start it with: "
                "mosquitto -d -c /etc/mosquitto/mosquitto.conf, or use --http"
            ) from exc
