"""Huey task of the risk-area list match: hourly, so entries that take effect or expire by date raise
and clear their alarms without anyone touching the list (imported from zhizhi/alerts/tasks.py)."""

from huey import crontab
from huey.contrib.djhuey import db_periodic_task

from zhizhi.alerts import risk


@db_periodic_task(crontab(minute="7"))
def match_risk_areas() -> dict[str, int]:
    """Re-run the list match against every resident's recent returns (see alerts/risk.py)."""
    return risk.run()
