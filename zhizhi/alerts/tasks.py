"""Background work of the alerts app: keeping the readings table to its retention period."""

from __future__ import annotations

import logging

from huey import crontab
from huey.contrib.djhuey import db_periodic_task

from zhizhi.alerts import services

log = logging.getLogger(__name__)


@db_periodic_task(crontab(minute="25", hour="3"))
def purge_readings() -> int:
    """Nightly: delete readings older than ZHIZHI_READING_RETENTION_DAYS (alarms keep their own values)."""
    deleted = services.purge_old_readings()
    if deleted:
        log.info("purged %d old readings", deleted)
    return deleted


import zhizhi.alerts.tasks_enterprise  # noqa: E402  (the daily 八必访 enterprise triggers)
import zhizhi.alerts.tasks_risk  # noqa: E402, F401  (the hourly risk-area list match)
from zhizhi.alerts import tasks_rules  # noqa: E402, F401  (the alert-rule silence sweep)
