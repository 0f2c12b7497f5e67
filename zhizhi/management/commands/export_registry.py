"""manage.py export_registry people.person out.xlsx --as <username> [--blank]

Writes what the user may export (masked, formula-safe) in the import format; .csv or .xlsx by the
file's extension. --blank writes the headers only (a template to fill in)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from zhizhi import exchange
from zhizhi.management.commands.import_registry import _registry, _user
from zhizhi.problems import Forbidden


class Command(BaseCommand):
    help = "导出登记簿为 Excel/CSV / Export a registry to Excel or CSV"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("registry", help="登记簿，如 people.person / registry key")
        parser.add_argument("file", help="输出文件 .xlsx 或 .csv / output file")
        parser.add_argument("--as", dest="username", required=True, help="以此用户身份导出 / act as")
        parser.add_argument("--blank", action="store_true", help="只写表头（模板）/ headers only")

    def handle(self, *args: Any, **options: Any) -> None:
        reg = _registry(options["registry"])
        actor = _user(options["username"])
        path = Path(options["file"])
        fmt = path.suffix.lower().lstrip(".")
        if fmt not in exchange.FORMATS:
            raise CommandError("文件扩展名应为 .xlsx 或 .csv / The file must end in .xlsx or .csv")
        try:
            if options["blank"]:
                body = exchange.template(reg, fmt)
            else:
                body = exchange.export_rows(reg, actor, fmt=fmt)
        except Forbidden as exc:
            raise CommandError(str(exc)) from None
        path.write_bytes(body)
        self.stdout.write(f"已写入 / Wrote {path} ({len(body)} bytes)")
