"""manage.py mqtt_bridge: subscribe to device telemetry on the MQTT broker and store it (see
zhizhi/alerts/mqtt.py and docs/devices.md). Runs until SIGTERM/SIGINT; `--once N`/`--timeout S` for tests."""

from __future__ import annotations

import signal
import socket
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from zhizhi.alerts.mqtt import Bridge


class Command(BaseCommand):
    help = "把 MQTT 上的设备读数接入平台 / Bridge device telemetry from the MQTT broker into Zhizhi"

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--url", default=None, help="mqtt://host:port (default ZHIZHI_MQTT_URL)")
        parser.add_argument("--topic", default=None, help="default ZHIZHI_MQTT_TOPIC")
        parser.add_argument(
            "--client-id",
            default=None,
            help="fixed id of the persistent session (default zhizhi-bridge-<hostname>); keep it stable",
        )
        parser.add_argument(
            "--once", type=int, default=None, help="stop after N messages (0: just subscribe)"
        )
        parser.add_argument("--timeout", type=float, default=None, help="stop after this many seconds")

    def handle(self, *args: Any, **options: Any) -> None:
        bridge = Bridge(
            options["url"] or settings.ZHIZHI_MQTT_URL,
            options["topic"] or settings.ZHIZHI_MQTT_TOPIC,
            options["client_id"] or f"zhizhi-bridge-{socket.gethostname()}",
        )
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: bridge.stop())
        handled = bridge.run(once=options["once"], timeout=options["timeout"])
        self.stdout.write(f"已处理 {handled} 条消息 / {handled} messages handled")
