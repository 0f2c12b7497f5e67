"""Background work of the cockpit: the nightly rollup of yesterday (with a catch-up of missed days
and a redo of the days before, for rows that arrived late) and the rebuild of changed indicators."""

from __future__ import annotations

import logging

from huey import crontab
from huey.contrib.djhuey import db_periodic_task, lock_task

from zhizhi.cockpit import rollup

log = logging.getLogger(__name__)


@db_periodic_task(crontab(minute="10", hour="0"))
@lock_task("cockpit-rollup")
def nightly_rollup() -> dict[str, object]:
    """00:10 local time: roll up yesterday and anything missed."""
    result = rollup.nightly()
    log.info("indicator rollup: %s", result)
    return result


@db_periodic_task(crontab(minute="*/15"))
@lock_task("cockpit-rollup")
def rebuild_changed_indicators() -> list[str]:
    """Every 15 minutes: indicators added or redefined get their rollups (re)computed."""
    return rollup.rebuild_stale()
