"""Huey tasks of the case loop: the SLA sweep every minute."""

from huey import crontab
from huey.contrib.djhuey import db_periodic_task

from zhizhi.cases import sla


@db_periodic_task(crontab(minute="*"))
def sweep_case_deadlines() -> dict[str, int]:
    """Colour cases yellow/red and escalate the ones red past the grace (see sla.py)."""
    return sla.sweep()
