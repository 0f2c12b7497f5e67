"""Print where the demo runs and how to log in as each role."""

from __future__ import annotations

import unicodedata
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from zhizhi.demo.logins import DEMO_LOGINS, DEMO_URL, SHARED_PASSWORD
from zhizhi.orgs.models import User


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - _width(text))


class Command(BaseCommand):
    help = "Print the demo URL and the demo logins for each role."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default=DEMO_URL, help="where the server listens (make demo passes it)")

    def handle(self, *args: Any, **options: Any) -> None:
        existing = set(
            User.objects.filter(username__in=[d.username for d in DEMO_LOGINS]).values_list(
                "username", flat=True
            )
        )
        self.stdout.write(f"智治演示 / Zhizhi demo: {options['url']}")
        header = ("用户名 username", "密码 password", "角色 role", "范围 scope")
        rows = [(d.username, d.password, d.role_zh, f"{d.scope_zh} / {d.scope_en}") for d in DEMO_LOGINS]
        widths = [max(_width(r[i]) for r in [header, *rows]) + 2 for i in range(3)]
        self.stdout.write("".join(_pad(h, w) for h, w in zip(header, widths, strict=False)) + header[3])
        for row, login in zip(rows, DEMO_LOGINS, strict=True):
            line = "".join(_pad(c, w) for c, w in zip(row, widths, strict=False)) + row[3]
            if login.username not in existing:
                line += "  (未创建 not created yet: run manage.py demo_street)"
            self.stdout.write(line)
        self.stdout.write(
            f"其他网格员 grid02…grid170、社区工作者 community02…community07、科室账号的密码均为 "
            f"{SHARED_PASSWORD} / Every other demo staff account uses the password {SHARED_PASSWORD}."
        )
