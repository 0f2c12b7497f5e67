"""Background work of the platform core (huey): imports of uploaded spreadsheets."""

from __future__ import annotations

import io
import logging

from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task

from zhizhi import clock

log = logging.getLogger(__name__)

# Progress is written at most this often (rows), so a big import does not spend its time on it.
PROGRESS_EVERY = 2000
# The page lists at most this many problems (a file with every row wrong would otherwise make a page
# of 100,000 table rows); the count of all of them is always shown.
PROBLEMS_SHOWN = 2000


@db_task()
def run_import(job_id: int) -> None:
    """Import an uploaded file for its `ImportJob`, recording progress, problems and counts."""
    from zhizhi import exchange, registry
    from zhizhi.models import ImportJob
    from zhizhi.problems import Forbidden, Invalid

    job = ImportJob.objects.select_related("actor").filter(pk=job_id, status="pending").first()
    if job is None:
        return
    ImportJob.objects.filter(pk=job.pk).update(status="running")
    last = [0]

    def progress(done: int, total: int) -> None:
        if done - last[0] >= PROGRESS_EVERY or done == total:
            last[0] = done
            ImportJob.objects.filter(pk=job.pk).update(done=done, total=total)

    fields: dict = {"data": b"", "finished_at": clock.now()}
    try:
        reg = registry.get(job.registry)
        result = exchange.import_file(
            reg, job.actor, io.BytesIO(bytes(job.data)), job.filename, progress=progress
        )
    except Invalid as exc:
        shown = [p.as_dict() for p in exc.problems[:PROBLEMS_SHOWN]]
        fields.update(status="failed", problems=shown)
        if len(exc.problems) > PROBLEMS_SHOWN:
            n = len(exc.problems)
            fields["message"] = (
                f"共{n}个问题，仅列出前{PROBLEMS_SHOWN}个 / {n} problems, the first {PROBLEMS_SHOWN} listed"
            )
    except Forbidden as exc:
        fields.update(status="failed", message=str(exc))
    except Exception:
        log.exception("import job %s failed", job.pk)
        fields.update(status="failed", message="导入时发生内部错误 / An internal error stopped the import")
    else:
        fields.update(
            status="done",
            created=result.created,
            updated=result.updated,
            unchanged=result.unchanged,
            total=result.total,
            done=result.total,
        )
    ImportJob.objects.filter(pk=job.pk).update(**fields)


@db_periodic_task(crontab(minute="40", hour="3"))
def purge_live_events() -> int:
    """Nightly: drop live-screen events older than two days (zhizhi/live.py)."""
    from zhizhi import live

    return live.purge()
