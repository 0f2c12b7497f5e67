"""Load indicator definitions from JSON (default: the demo set zhizhi/cockpit/data/indicators.json)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from zhizhi.cockpit import services
from zhizhi.problems import Invalid


class Command(BaseCommand):
    help = "导入指标定义（按编码新增或更新） / Load indicator definitions (create or update by code)"

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("path", nargs="?", help="JSON file (a list of definitions)")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["path"]) if options.get("path") else None
        try:
            counts = services.load_indicator_file(path)
        except Invalid as exc:
            raise CommandError("\n".join(p.message for p in exc.problems)) from exc
        except (OSError, ValueError) as exc:
            raise CommandError(f"无法读取文件 / cannot read the file: {exc}") from exc
        self.stdout.write(
            f"新增 created {counts['created']}，更新 updated {counts['updated']}，"
            f"未变 unchanged {counts['unchanged']}"
        )
