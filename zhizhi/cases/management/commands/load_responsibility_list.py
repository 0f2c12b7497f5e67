"""Load (or update) the responsibility list from a JSON file; idempotent by category code."""

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from zhizhi.cases.services import load_responsibility_list
from zhizhi.problems import Invalid

DEFAULT = Path(__file__).resolve().parents[2] / "data" / "responsibility_list.json"


class Command(BaseCommand):
    help = "导入权责清单 Load the responsibility list (JSON: categories with their items)"

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("path", nargs="?", default=str(DEFAULT))

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["path"])
        if not path.exists():
            raise CommandError(f"文件不存在 / File not found: {path}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise CommandError(f"不是有效的 JSON / Not valid JSON: {exc}") from exc
        try:
            counts = load_responsibility_list(data, None)
        except Invalid as exc:
            raise CommandError("\n".join(p.message for p in exc.problems)) from exc
        self.stdout.write(
            f"新增 created {counts['created']}，更新 updated {counts['updated']}，"
            f"未变 unchanged {counts['unchanged']}"
        )
