"""Indicators as data: values against hand-computed fixtures at every region level, validation."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from django.utils import timezone

from zhizhi import clock
from zhizhi.cases.models import Case
from zhizhi.cockpit import services
from zhizhi.cockpit.models import Indicator

pytestmark = pytest.mark.django_db
_numbers = itertools.count(1)
TZ = timezone.get_current_timezone()
NOW = dt.datetime(2026, 3, 10, 15, 0, tzinfo=TZ)


def at(day: int, hour: int = 10, month: int = 3) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, 0, tzinfo=TZ)


def case(street, grid: str, channel: str = "hotline", **kwargs) -> Case:
    c = Case(
        number=f"T{next(_numbers):08d}",
        title="测试",
        channel=channel,
        grid=street.grids[grid],
        reported_at=kwargs.pop("reported_at", at(10, 9)),
        **kwargs,
    )
    c.save()
    return c


def indicator(code: str, **kwargs) -> Indicator:
    kwargs.setdefault("name", code)
    ind = Indicator(code=code, **kwargs)
    ind.full_clean()
    ind.save()
    return ind


def test_cases_by_channel_today_at_every_level(street):
    case(street, "A1", "hotline")
    case(street, "A1", "hotline")
    case(street, "A2", "hotline")
    case(street, "B1", "hotline")
    case(street, "B1", "mailbox")
    case(street, "B2", "hotline", reported_at=at(9))  # yesterday
    case(street, "B2", "hotline", reported_at=at(10, 16))  # later today than now
    indicator("hotline_today", source="cases.reported", params={"channel": ["hotline"]}, window="day")
    with clock.frozen_at(NOW):
        assert services.value("hotline_today", street.street) == 4
        assert services.value("hotline_today", street.district) == 4
        assert services.value("hotline_today", street.communities["A"]) == 3
        assert services.value("hotline_today", street.communities["B"]) == 1
        assert services.value("hotline_today", street.grids["A1"]) == 2
        assert services.value("hotline_today", street.grids["B2"]) == 0
        assert services.value("hotline_today", street.grids["B1"], dt.date(2026, 3, 9)) == 0
        assert services.value("hotline_today", street.grids["B2"], dt.date(2026, 3, 9)) == 1


def test_board_shape(street):
    case(street, "A1", "hotline")
    indicator(
        "hotline_today",
        source="cases.reported",
        params={"channel": ["hotline"]},
        window="day",
        scene="overview",
        unit="件",
        threshold_green=0,
        threshold_red=5,
        higher_is_better=False,
    )
    indicator("open_cases", source="cases.open", window="now", scene="safety")
    with clock.frozen_at(NOW):
        b = services.board(street.street)
        scenes = services.scenes()
    assert b["region"] == {
        "id": street.street.pk,
        "code": "330105001",
        "name": street.street.name,
        "level": "street",
        "path": street.street.path,
    }
    assert b["day"] == "2026-03-10"
    rows = {r["code"]: r for r in b["indicators"]}
    assert rows["hotline_today"]["value"] == 1
    assert rows["hotline_today"]["previous"] == 0
    assert rows["hotline_today"]["trend"] == "up"
    assert rows["hotline_today"]["status"] == "yellow"
    assert rows["open_cases"]["value"] == 1
    assert [c["code"] for c in b["children"]] == [street.communities["A"].code, street.communities["B"].code]
    assert b["children"][0]["values"] == {"hotline_today": 1, "open_cases": 1}
    assert [s["code"] for s in scenes] == ["overview", "safety", "livelihood", "industry"]
    assert scenes[1]["indicators"] == ["open_cases"]
