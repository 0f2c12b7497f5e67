"""Template context shared by every page."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import reverse

from zhizhi import clock

BANNER_ROLES = ("street_leader",)


def holiday_banner(request: HttpRequest) -> dict[str, Any]:
    """Warn admins and street leaders when this or next year has no holiday data (deadlines then fall
    back to weekends only). Cheap: worktime caches its coverage and the holiday table."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    if not (user.is_superuser or getattr(user, "role", "") in BANNER_ROLES):
        return {}
    from zhizhi.cases import worktime

    year = clock.today().year
    missing = worktime.uncovered_years([year, year + 1])
    if not missing:
        return {}
    years = "、".join(str(y) for y in missing)
    years_en = ", ".join(str(y) for y in missing)
    return {
        "holiday_banner": {
            "zh": f"节假日数据缺少 {years} 年：请在节假日表中补录",
            "en": f"Holiday data for {years_en} is missing: fill in the holiday table",
            "url": reverse("admin:cases_holidayoverride_changelist"),
        }
    }
