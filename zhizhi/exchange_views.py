"""Excel/CSV exchange pages: the list of registries a user may import or export, the upload form,
the job page that polls the worker's progress (htmx, every second), and the downloads.

An unknown registry or someone else's import job is a 404; a registry the user may not import or
export is a 403 and never data.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET, require_POST

from zhizhi import exchange, registry
from zhizhi.models import ImportJob
from zhizhi.permissions import can
from zhizhi.problems import Forbidden, Invalid
from zhizhi.registry import Registry

CONTENT_TYPES = {
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "csv": "text/csv; charset=utf-8",
}


def _registry(key: str) -> Registry:
    try:
        return registry.get(key)
    except KeyError:
        raise Http404("没有这个登记簿 / No such registry") from None


def _forbidden(request: HttpRequest, exc: Forbidden) -> HttpResponse:
    return render(request, "exchange/forbidden.html", {"zh": exc.zh, "en": exc.en}, status=403)


def _offered(user: Any) -> list[dict[str, Any]]:
    out = []
    for reg in registry.registries().values():
        may_import = can(user, "import", reg.model)
        may_export = can(user, "export", reg.model)
        if may_import or may_export:
            out.append({"reg": reg, "import": may_import, "export": may_export})
    return out


@login_required
@require_GET
def index(request: HttpRequest) -> HttpResponse:
    return _index(request)


def _index(request: HttpRequest, *, error: Invalid | None = None, status: int = 200) -> HttpResponse:
    offered = _offered(request.user)
    jobs = ImportJob.objects.filter(actor_id=request.user.pk).defer("data")[:10]
    return render(
        request,
        "exchange/index.html",
        {
            "offered": offered,
            "importable": [o["reg"] for o in offered if o["import"]],
            "jobs": jobs,
            "error": error,
            "max_mb": f"{settings.ZHIZHI_IMPORT_MAX_BYTES / 1024 / 1024:.1f}",
        },
        status=status,
    )


@login_required
@require_POST
def upload(request: HttpRequest) -> HttpResponse:
    from zhizhi.tasks import run_import

    reg = _registry(request.POST.get("registry", ""))
    if not can(request.user, "import", reg.model):
        return _forbidden(request, Forbidden("无权导入此登记簿", "You may not import into this registry"))
    upload = request.FILES.get("file")
    if upload is None:
        error = Invalid(
            [exchange._problem("no_file", "请选择要导入的文件", "Choose a file to import", field="file")]
        )
        return _index(request, error=error, status=400)
    try:
        data = exchange.read_limited(upload)
    except Invalid as exc:
        return _index(request, error=exc, status=400)
    job = ImportJob.objects.create(
        actor=request.user,  # type: ignore[misc]  # login_required: always a User here
        registry=reg.key,
        filename=(upload.name or "upload")[:200],
        data=data,
    )
    run_import(job.pk)
    return redirect("exchange:job", pk=job.pk)


def _job(request: HttpRequest, pk: int) -> ImportJob:
    # Only the person who uploaded sees a job (and its problem list, which quotes cell values).
    return get_object_or_404(ImportJob.objects.defer("data"), pk=pk, actor_id=request.user.pk)


@login_required
@require_GET
def job(request: HttpRequest, pk: int) -> HttpResponse:
    item = _job(request, pk)
    return render(request, "exchange/job.html", {"job": item, "reg": _registry(item.registry)})


@login_required
@require_GET
def job_progress(request: HttpRequest, pk: int) -> HttpResponse:
    item = _job(request, pk)
    return render(request, "exchange/_progress.html", {"job": item, "reg": _registry(item.registry)})


def _download(body: bytes, filename: str, fmt: str) -> HttpResponse:
    response = HttpResponse(body, content_type=CONTENT_TYPES[fmt])
    response["Content-Disposition"] = content_disposition_header(True, filename)
    response["X-Content-Type-Options"] = "nosniff"
    return response


@login_required
@require_GET
def export(request: HttpRequest, key: str, fmt: str) -> HttpResponse:
    reg = _registry(key)
    if fmt not in exchange.FORMATS:
        raise Http404("不支持的格式 / Unsupported format")
    try:
        body = exchange.export_rows(reg, request.user, fmt=fmt)
    except Forbidden as exc:
        return _forbidden(request, exc)
    return _download(body, exchange.export_filename(reg, fmt), fmt)


@login_required
@require_GET
def blank(request: HttpRequest, key: str, fmt: str) -> HttpResponse:
    reg = _registry(key)
    if fmt not in exchange.FORMATS:
        raise Http404("不支持的格式 / Unsupported format")
    if not (can(request.user, "import", reg.model) or can(request.user, "export", reg.model)):
        return _forbidden(request, Forbidden())
    return _download(exchange.template(reg, fmt), exchange.export_filename(reg, fmt, blank=True), fmt)
