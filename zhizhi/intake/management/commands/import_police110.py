"""manage.py import_police110 FILE --user NAME: import a 110 non-police calls export (CSV/xlsx) as
cases on the police110 channel, all rows or none (see docs/integrations/police110.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from zhizhi.intake import police110
from zhizhi.orgs.models import User
from zhizhi.problems import Forbidden, Invalid


class Command(BaseCommand):
    help = "导入110非警务警情 / Import 110 non-police calls (CSV or .xlsx) as cases"

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("file", help="path of the .csv or .xlsx export")
        parser.add_argument("--user", required=True, help="the importing account (dispatcher or leader)")
        parser.add_argument("--dry-run", action="store_true", help="check and roll back; nothing is kept")
        parser.add_argument("--json", action="store_true", help="print the result (or errors) as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"文件不存在 / No such file: {path}")
        actor = User.objects.filter(username=options["user"], is_active=True).first()
        if actor is None:
            raise CommandError(f"没有这个用户 / No such active user: {options['user']}")
        try:
            result = police110.import_calls(actor, path.read_bytes(), path.name, dry_run=options["dry_run"])
        except Forbidden as exc:
            raise CommandError(str(exc)) from exc
        except Invalid as exc:
            if options["json"]:
                self.stdout.write(
                    json.dumps({"errors": [p.as_dict() for p in exc.problems]}, ensure_ascii=False)
                )
            else:
                for p in exc.problems:
                    self.stderr.write(p.message)
            raise CommandError(
                f"未导入：{len(exc.problems)}处错误 / Nothing imported: {len(exc.problems)} problem(s)"
            ) from exc
        if options["json"]:
            self.stdout.write(
                json.dumps({**result.as_dict(), "dry_run": options["dry_run"]}, ensure_ascii=False)
            )
            return
        verb = "检查通过（未保存）/ checked (nothing kept)" if options["dry_run"] else "已导入 / imported"
        self.stdout.write(
            f"{verb}: {result.rows} 行 rows, 新建 created {result.created}, 已存在 existing {result.existing}"
        )
