"""manage.py import_registry people.person residents.xlsx --as <username>

Imports a spreadsheet with a progress bar. On any problem, prints every one (row, column, Chinese and
English) and exits non-zero, having written nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from zhizhi import exchange, registry
from zhizhi.problems import Forbidden, Invalid


class Command(BaseCommand):
    help = "导入 Excel/CSV 到登记簿 / Import an Excel or CSV file into a registry"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("registry", help="登记簿，如 people.person / registry key")
        parser.add_argument("file", help=".xlsx 或 .csv 文件 / the file")
        parser.add_argument("--as", dest="username", required=True, help="以此用户身份导入 / act as")
        parser.add_argument("--no-progress", action="store_true", help="不显示进度条 / no progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        reg = _registry(options["registry"])
        actor = _user(options["username"])
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"文件不存在 / No such file: {path}")
        bar = tqdm(
            total=0,
            unit="行",
            desc=reg.zh,
            disable=options["no_progress"],
            file=self.stderr._out,
            leave=False,
        )

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            with path.open("rb") as fh:
                result = exchange.import_file(reg, actor, fh, path.name, progress=progress)
        except Invalid as exc:
            bar.close()
            for problem in exc.problems:
                self.stderr.write(problem.message)
            raise CommandError(
                f"未导入：共 {len(exc.problems)} 个问题 / Nothing imported: {len(exc.problems)} problem(s)"
            ) from None
        except Forbidden as exc:
            bar.close()
            raise CommandError(str(exc)) from None
        bar.close()
        self.stdout.write(
            f"导入完成 / Imported: 新增 created {result.created}, 修改 updated {result.updated}, "
            f"未变 unchanged {result.unchanged}, 共 total {result.total}"
        )


def _registry(key: str) -> registry.Registry:
    try:
        return registry.get(key)
    except KeyError:
        known = ", ".join(registry.registries())
        raise CommandError(f"没有登记簿 / No registry '{key}'. 可选 / known: {known}") from None


def _user(username: str) -> Any:
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise CommandError(f"没有此用户 / No active user '{username}'")
    return user
