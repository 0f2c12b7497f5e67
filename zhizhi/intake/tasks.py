"""Huey tasks: the feedback sweep (backstop of the on-save hook) and old rate counters."""

from huey import crontab
from huey.contrib.djhuey import db_periodic_task

from zhizhi.intake import suggest  # noqa: F401 - registers the daily retraining task with the worker
from zhizhi.intake.services import purge_rate_counters, sweep_feedback


@db_periodic_task(crontab(minute="*/5"))
def sweep_intake_feedback() -> int:
    return sweep_feedback()


@db_periodic_task(crontab(minute="17", hour="3"))
def purge_intake_rate_counters() -> int:
    return purge_rate_counters()
