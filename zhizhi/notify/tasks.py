"""Huey tasks: deliver the outbox right after a commit, and sweep it every minute.

Both drain the outbox (`services.drain`): pass after pass until nothing is due, capped at 50 s, so
a burst of thousands of rows goes out in one run rather than a batch a minute."""

from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task

from zhizhi.notify.services import drain


@db_task()
def deliver_outbox_task() -> dict[str, int]:
    return drain()


@db_periodic_task(crontab(minute="*"))
def sweep_outbox() -> dict[str, int]:
    return drain()
