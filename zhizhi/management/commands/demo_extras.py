"""Load the demo street's extra layers (devices, alert rules, enterprise triggers, indicators …).

Every layer is idempotent, so `make demo` runs this on every start (see zhizhi/demo/extras.py)."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from zhizhi.demo import extras
from zhizhi.geo.models import Region


class Command(BaseCommand):
    help = "加载演示街道的扩展数据 Load the demo street's extra layers (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--street", default="330105001", help="street region code")
        parser.add_argument("--only", nargs="*", help="layer names to load (default: all)")

    def handle(self, *args: Any, **options: Any) -> None:
        street = Region.objects.filter(code=options["street"], level="street").first()
        if street is None:
            raise CommandError(
                f"没有街道 {options['street']}，请先运行 demo_street / "
                f"No street {options['street']}; run demo_street first"
            )
        for name, _target in extras.LOADERS:
            if options["only"] and name not in options["only"]:
                continue
            started = time.perf_counter()
            counts = extras.run(street, only=[name])[name]
            spent = time.perf_counter() - started
            summary = ", ".join(f"{k}={v}" for k, v in counts.items()) or "—"
            self.stdout.write(f"{name}: {summary} ({spent:.1f} s)")
