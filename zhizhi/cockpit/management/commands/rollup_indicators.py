"""Roll indicators up for past days: yesterday and missed days, a span, or the stale ones."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from zhizhi.cockpit import rollup


class Command(BaseCommand):
    help = "指标日汇总 / Daily indicator rollups (default: catch up to yesterday)"

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--from", dest="first", help="first day YYYY-MM-DD")
        parser.add_argument("--to", dest="last", help="last day YYYY-MM-DD (default: yesterday)")
        parser.add_argument(
            "--stale", action="store_true", help="rebuild indicators whose definition changed"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        if options["stale"]:
            codes = rollup.rebuild_stale()
            self.stdout.write(f"重算 rebuilt: {', '.join(codes) or '-'}")
        elif options["first"]:
            try:
                first = dt.date.fromisoformat(options["first"])
                last = dt.date.fromisoformat(options["last"]) if options["last"] else None
            except ValueError as exc:
                raise CommandError(f"日期格式应为 YYYY-MM-DD / dates are YYYY-MM-DD: {exc}") from exc
            written = rollup.backfill(first, last or dt.date.max)
            self.stdout.write(f"{len(written)} 项指标 indicators, {sum(written.values())} 行 rows")
        else:
            days = rollup.catch_up()
            self.stdout.write(f"汇总 rolled up: {', '.join(d.isoformat() for d in days) or '-'}")
        self.stdout.write(f"用时 took {time.perf_counter() - started:.1f} s")
