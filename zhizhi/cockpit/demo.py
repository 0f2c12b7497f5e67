"""The demo street's indicators: the 4 scenes of zhizhi/cockpit/data/indicators.json, and rollups
for the whole demo history (set-based: a few grouped queries per indicator for all days at once)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Min

from zhizhi import clock
from zhizhi.cases.models import Case
from zhizhi.cockpit import rollup, services
from zhizhi.cockpit.models import IndicatorValue

HISTORY_DAYS = 400  # enough for a year trend and last year's same period of the YoY indicators


def load(street: Any) -> dict[str, int]:
    counts = services.load_indicator_file()
    yesterday = clock.today() - dt.timedelta(days=1)
    first_case = Case.objects.aggregate(first=Min("reported_at"))["first"]
    first = yesterday - dt.timedelta(days=HISTORY_DAYS - 1)
    if first_case is not None:
        first = max(first, clock.today().replace(day=1) - dt.timedelta(days=366), dt.date(2000, 1, 1))
    if (
        IndicatorValue.objects.filter(day=yesterday).exists()
        and not counts["created"]
        and not counts["updated"]
    ):
        return {**counts, "rollup_rows": 0}
    written = rollup.backfill(first, yesterday)
    return {**counts, "rollup_rows": sum(written.values())}
