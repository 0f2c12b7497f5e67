"""Demo layer "police110": two days of 110 non-police calls for the demo street, imported through
the real feed (`police110.import_calls`), so the cockpit's 110 panel and the cases list have them.

Each day's calls are imported as one file at the end of that day (today: now), the way a daily
export arrives. Idempotent: call ids are fixed, so a second run finds every call "existing".
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
from typing import Any

from django.utils import timezone

from zhizhi import clock
from zhizhi.geo.models import Building, Region
from zhizhi.intake import police110
from zhizhi.orgs.models import User

# (the centre's category, content template); some categories match the responsibility list by name.
CALLS = [
    ("装修噪声", "{addr}楼上装修电钻声很大，中午也不停"),
    ("夜间施工噪声", "{addr}附近工地夜里十一点还在施工"),
    ("邻里纠纷", "{addr}两户居民因楼道堆物发生争吵，请社区调解"),
    ("楼道堆物", "{addr}楼道里堆满纸箱杂物，影响消防通道"),
    ("井盖缺失", "{addr}门口井盖不见了，有人险些踩空"),
    ("路灯不亮", "{addr}旁边的路灯连续几天不亮，晚上很黑"),
    ("机动车违停", "{addr}小区出入口被车辆堵住，救护车进不来"),
    ("宠物扰民", "{addr}有狗整夜吠叫，影响休息"),
    ("电梯困人", "{addr}电梯停在两层之间，里面有人，已联系物业未到"),
    ("停水", "{addr}整栋楼停水，没有接到通知"),
]
PER_DAY = 12


def _rows(street: Region, day: dt.date, rng: random.Random) -> list[list[Any]]:
    buildings = list(
        Building.objects.filter(grid__path__startswith=street.path)
        .order_by("code")
        .values_list("address", "lng", "lat")
    )
    rows = []
    for i in range(PER_DAY):
        category, template = rng.choice(CALLS)
        address, lng, lat = rng.choice(buildings) if buildings else ("", None, None)
        at = timezone.make_aware(dt.datetime.combine(day, dt.time(7, 0))) + dt.timedelta(
            minutes=rng.randrange(0, 14 * 60)
        )
        with_point = lng is not None and i % 4 != 3  # some calls give only an address
        rows.append(
            [
                f"J{street.code}{day:%Y%m%d}{i + 1:03d}",
                timezone.localtime(at).strftime("%Y-%m-%d %H:%M:%S"),
                template.format(addr=address or "辖区内"),
                address or "辖区内某处",
                lng if with_point else "",
                lat if with_point else "",
                category,
            ]
        )
    return rows


def load(street: Region) -> dict[str, int]:
    actor = User.objects.filter(role="dispatcher", is_active=True).order_by("id").first()
    if actor is None:
        return {"created": 0, "existing": 0}
    rng = random.Random(110)
    today = timezone.localdate(clock.now())
    counts = {"created": 0, "existing": 0}
    for day in (today - dt.timedelta(days=1), today):
        rows = [r for r in _rows(street, day, rng)]
        if day == today:
            now = timezone.localtime(clock.now())
            rows = [r for r in rows if r[1] <= now.strftime("%Y-%m-%d %H:%M:%S")]
        if not rows:
            continue
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["警情编号", "报警时间", "报警内容", "发生地址", "经度", "纬度", "警情类别"])
        writer.writerows(rows)
        end_of_day = timezone.make_aware(dt.datetime.combine(day, dt.time(22, 0)))
        with clock.frozen_at(min(end_of_day, clock.now())):
            result = police110.import_calls(actor, out.getvalue().encode(), f"110-{day:%Y%m%d}.csv")
        counts["created"] += result.created
        counts["existing"] += result.existing
    return counts
