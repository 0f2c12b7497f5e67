"""The demo street's indicators: the 4 scenes of zhizhi/cockpit/data/indicators.json, and rollups
for the demo history (set-based: a few shared grouped queries per source for all days at once)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Min
from django.utils import timezone

from zhizhi import clock
from zhizhi.cases.models import Case
from zhizhi.cockpit import rollup, services
from zhizhi.cockpit.models import Indicator, RollupRun

MAX_HISTORY_DAYS = 200


def load(street: Any) -> dict[str, int]:
    counts = services.load_indicator_file()
    yesterday = clock.today() - dt.timedelta(days=1)
    first_case = Case.objects.aggregate(first=Min("reported_at"))["first"]
    first = yesterday - dt.timedelta(days=30)
    if first_case is not None:
        first = min(first, timezone.localdate(first_case))
    first = max(first, yesterday - dt.timedelta(days=MAX_HISTORY_DAYS - 1))
    done = RollupRun.objects.filter(day=yesterday).exists()
    if done and not Indicator.objects.filter(stale_since__isnull=False).exists():
        return {**counts, "rollup_rows": 0}
    written = rollup.backfill(first, yesterday)
    return {**counts, "rollup_rows": sum(written.values()), "rollup_days": (yesterday - first).days + 1}
