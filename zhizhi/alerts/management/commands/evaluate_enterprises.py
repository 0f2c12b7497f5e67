"""manage.py evaluate_enterprises [--month YYYY-MM]: run the 八必访 enterprise triggers now."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from zhizhi.alerts.enterprise_triggers import TRIGGERS, evaluate_enterprises
from zhizhi.problems import Invalid


class Command(BaseCommand):
    help = "Evaluate the eight enterprise triggers (八必访) and raise or clear their alarms."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--month", help="the tax month compared, YYYY-MM (default: last month)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            result = evaluate_enterprises(options.get("month"))
        except Invalid as exc:
            raise CommandError("; ".join(p.message for p in exc.problems)) from exc
        self.stdout.write(f"month {result['month']}, windows end {result['as_of']}")
        for name, n in result["tripped"].items():
            t = TRIGGERS[name]
            self.stdout.write(f"  {t.code:<28} {t.zh:<14} {n:>6}")
        self.stdout.write(
            "raised {raised}, updated {updated}, unchanged {unchanged}, cleared {cleared}; "
            "detection {detect_seconds} s, alarms {write_seconds} s".format(**result)
        )
