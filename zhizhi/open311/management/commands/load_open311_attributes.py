"""Load the extra questions of the Open311 services (idempotent by service and question code)."""

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from zhizhi.open311.services import load_attributes


class Command(BaseCommand):
    help = "导入 Open311 服务问题 Load Open311 service attributes (default: the built-in examples)"

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("path", nargs="?", help='JSON: {"<service code>": [{"code", "datatype", …}]}')

    def handle(self, *args: Any, **options: Any) -> None:
        spec = None
        if options["path"]:
            path = Path(options["path"])
            if not path.exists():
                raise CommandError(f"文件不存在 / File not found: {path}")
            try:
                spec = json.loads(path.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise CommandError(f"不是有效的 JSON / Not valid JSON: {exc}") from exc
        written = load_attributes(spec)
        self.stdout.write(f"写入问题 written {written}")
