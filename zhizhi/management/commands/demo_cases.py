"""Generate the demo street's case history (six months, about 20,000 cases) in one bulk load.

On a database without a responsibility list it loads the demo one first (`make demo` runs
`demo_cases --if-empty` right after `demo_street --if-empty`)."""

from __future__ import annotations

import time
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from zhizhi.cases import demo_history
from zhizhi.cases.models import Case, Category


class Command(BaseCommand):
    help = "生成演示案件历史 Generate the reproducible demo case history (see docs/demo-cases.md)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seed", type=int, default=7, help="random seed (same seed, same history)")
        parser.add_argument("--months", type=int, default=6, help="how many months back")
        parser.add_argument("--count", type=int, default=20000, help="how many cases")
        parser.add_argument("--if-empty", action="store_true", help="do nothing when cases already exist")

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        if Case.objects.exists():
            if options["if_empty"]:
                self.stdout.write("已有案件，跳过 / Cases exist; no history generated.")
                return
            raise CommandError(
                "已有案件 / Cases already exist (use --if-empty, or start from an empty case table)"
            )
        if options["count"] < 1 or options["months"] < 1:
            raise CommandError("--count 与 --months 须为正数 / --count and --months must be positive")
        if not Category.objects.filter(parent__isnull=False).exists():
            # A fresh demo database: the demo responsibility list first (never over an edited one).
            call_command("load_responsibility_list", stdout=self.stdout)
        try:
            gen = demo_history.Generator(
                seed=options["seed"], months=options["months"], count=options["count"]
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        gen.build()
        built = time.perf_counter()
        counts = gen.write()
        done = time.perf_counter()
        share = demo_history.shares(gen)
        n = counts["cases"] or 1
        self.stdout.write(
            f"演示案件已生成 / Demo cases generated: {counts['cases']} cases, {counts['events']} events, "
            f"{counts['tasks']} 联办 tasks (seed {gen.seed}, {gen.months} months)"
        )
        self.stdout.write("状态 / status: " + ", ".join(f"{k} {v}" for k, v in share["status"].most_common()))
        self.stdout.write(
            "来源 / source: " + ", ".join(f"{k} {v / n:.1%}" for k, v in share["source"].most_common())
        )
        self.stdout.write(
            f"超时 overdue {share['overdue']:.1%}, 退单 returned {share['returned']:.1%}, "
            f"返工 reworked {share['reworked']:.1%}, 延期 extended {share['extended']:.1%}, "
            f"缓办 deferred {share['deferred']:.1%}"
        )
        rated = sum(share["satisfaction"].values()) or 1
        self.stdout.write(
            "满意度 / satisfaction: "
            + ", ".join(f"{k} {v / rated:.1%}" for k, v in share["satisfaction"].most_common())
        )
        self.stdout.write(
            "在办时限 / open SLA: " + ", ".join(f"{k} {v}" for k, v in share["sla_open"].items())
        )
        self.stdout.write(
            f"用时 / Took {done - started:.1f} s (build {built - started:.1f} s, write {done - built:.1f} s)"
        )
