"""/intake/police110/: dispatchers upload the 110 non-police calls export (see intake/police110.py)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from zhizhi.exchange import read_limited
from zhizhi.intake import police110
from zhizhi.problems import Forbidden, Invalid, Problem
from zhizhi.views import forbidden_page, problem_text


@login_required
def import_page(request: HttpRequest) -> HttpResponse:
    user: Any = request.user
    if not (user.is_superuser or getattr(user, "role", "") in police110.IMPORT_ROLES):
        return forbidden_page(request, "您的角色不能导入110警情", "Your role cannot import 110 calls")
    problems: list[str] = []
    result = None
    status = 200
    if request.method == "POST":
        upload = request.FILES.get("file")
        try:
            if upload is None:
                raise Invalid([Problem("required", "请选择文件", "Choose a file", field="file")])
            result = police110.import_calls(
                user, read_limited(upload), upload.name or "", dry_run=request.POST.get("dry_run") == "1"
            )
        except Forbidden as exc:
            return forbidden_page(request, exc.zh, exc.en)
        except Invalid as exc:
            problems = [_where(p) + problem_text(p) for p in exc.problems]
            status = 400
    columns = [(aliases[0], name, required) for name, (aliases, required) in police110.COLUMNS.items()]
    return render(
        request,
        "intake/police110.html",
        {
            "problems": problems,
            "result": result,
            "dry_run": request.POST.get("dry_run") == "1",
            "columns": columns,
            "recent": police110.recent_calls(user),
        },
        status=status,
    )


def _where(p: Problem) -> str:
    parts = []
    if p.row is not None:
        parts.append(f"第{p.row}行 row {p.row}")
    if p.column:
        parts.append(f"「{p.column}」")
    return (" ".join(parts) + ": ") if parts else ""
