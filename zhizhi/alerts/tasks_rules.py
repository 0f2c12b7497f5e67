"""Huey task of the alert rules: the silence sweep (missing data, inactivity) every minute.

Imported from zhizhi/alerts/tasks.py, which huey autodiscovers."""

from huey import crontab
from huey.contrib.djhuey import db_periodic_task

from zhizhi.alerts import rules


@db_periodic_task(crontab(minute="*"))
def sweep_alert_silence() -> int:
    """Raise device-offline and inactivity alarms for devices silent too long (see rules.py)."""
    return rules.sweep_silence()
