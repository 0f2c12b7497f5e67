"""Load the demo street (小河街道, 拱墅区, Hangzhou): regions, buildings, houses, residents,
enterprises, org units and staff, with a documented set of injected data errors."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from zhizhi.demo import load, plan


class Command(BaseCommand):
    help = "Load the reproducible demo street 小河街道 (see docs/demo-data.md)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seed", type=int, default=42, help="random seed (same seed, same street)")
        parser.add_argument("--scale", type=float, default=1.0, help="1.0 ≈ 5,000 houses, 15,000 residents")
        parser.add_argument(
            "--if-empty", action="store_true", help="do nothing when the demo street already exists"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        if load.street_exists(plan.STREET[0]):
            if options["if_empty"]:
                self.stdout.write(
                    f"演示街道已存在，跳过 / The demo street {plan.STREET[0]} exists; nothing loaded."
                )
                return
            raise CommandError(
                f"街道 {plan.STREET[0]} 已存在 / Street {plan.STREET[0]} already exists "
                "(use --if-empty, or start from an empty database)"
            )
        try:
            the_plan = plan.build_plan(seed=options["seed"], scale=options["scale"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        planned = time.perf_counter()
        counts = load.load_plan(the_plan)
        done = time.perf_counter()
        self.stdout.write(
            f"演示街道已载入 / Demo street loaded: {plan.DISTRICT[1]} {plan.STREET[1]} ({plan.STREET[0]}), "
            f"seed {the_plan.seed}, scale {the_plan.scale}"
        )
        summary = the_plan.counts()
        for key in ("communities", "grids", "buildings", "houses", "people", "tagged_people", "enterprises"):
            self.stdout.write(f"  {key:<14} {summary[key]:>7}")
        self.stdout.write(f"  {'tax_records':<14} {summary['tax_records']:>7}")
        self.stdout.write(f"  {'staff':<14} {summary['staff']:>7}")
        self.stdout.write("注入的数据错误 / Injected data errors (docs/demo-data.md):")
        for error in the_plan.errors:
            example = error.examples[0] if error.examples else ""
            self.stdout.write(f"  {error.count:>3}  {error.key:<28} {error.zh} / {error.en}  e.g. {example}")
        self.stdout.write(
            f"用时 / Took {done - started:.1f} s (plan {planned - started:.1f} s, "
            f"write {done - planned:.1f} s); {sum(counts.values())} rows."
        )
