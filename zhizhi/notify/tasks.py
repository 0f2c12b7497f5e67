"""Huey tasks: deliver the outbox right after a commit, and sweep it every minute."""

from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task

from zhizhi.notify.services import deliver_due


@db_task()
def deliver_outbox_task() -> dict[str, int]:
    return deliver_due()


@db_periodic_task(crontab(minute="*"))
def sweep_outbox() -> dict[str, int]:
    return deliver_due()
