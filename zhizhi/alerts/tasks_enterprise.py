"""Huey task of the 八必访 enterprise triggers: a daily evaluation (the event triggers — executives,
addresses, new enterprises — look back a window of days; the tax triggers read the latest month).

Imported from zhizhi/alerts/tasks.py, which huey autodiscovers."""

from typing import Any

from huey import crontab
from huey.contrib.djhuey import db_periodic_task

from zhizhi.alerts import enterprise_triggers


@db_periodic_task(crontab(minute="40", hour="5"))
def evaluate_enterprise_triggers() -> dict[str, Any]:
    """Every morning before office hours: raise and clear the enterprise-trigger alarms."""
    return enterprise_triggers.evaluate_enterprises()
