"""Rehearse the 建国北路 evacuation on the demo street: declare an incident over the N adjacent
buildings holding the most households (default 13), as the command centre would (docs/emergency.md).

    python manage.py emergency_drill [--buildings 13] [--user dispatcher] [--kind collapse] [--dry-run]
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from zhizhi.cockpit.emergency import demo, services
from zhizhi.context import acting_as
from zhizhi.geo.models import Building
from zhizhi.orgs.models import User
from zhizhi.problems import Forbidden, Invalid


class Command(BaseCommand):
    help = "应急演练：按相邻楼幢启动一次应急（默认13幢） / Declare a drill incident over N adjacent buildings"

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--buildings", type=int, default=13, help="楼幢数 how many adjacent buildings")
        parser.add_argument(
            "--user", default="dispatcher", help="启动人 the declaring user (leader/dispatcher/admin)"
        )
        parser.add_argument("--kind", default="collapse", help="collapse / fire / flood / gas_leak / other")
        parser.add_argument("--street", default="", help="街道编码 street code (default: the first street)")
        parser.add_argument("--dry-run", action="store_true", help="只显示将选择的楼幢 show the choice only")

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts["buildings"] < 1:
            raise CommandError("--buildings 至少为1 / must be at least 1")
        street = demo.street_of(opts["street"])
        if street is None:
            raise CommandError("没有街道：先运行 demo_street / No street: run demo_street first")
        user = User.objects.filter(username=opts["user"]).first()
        if user is None:
            raise CommandError(f"用户不存在 / No such user: {opts['user']}")
        ids, households = demo.drill_buildings(street, opts["buildings"])
        names = list(Building.objects.filter(pk__in=ids).order_by("code").values_list("name", flat=True))
        self.stdout.write(f"楼幢 buildings ({len(ids)}): {'、'.join(names)}")
        self.stdout.write(f"现住户 households: {households}")
        if opts["dry_run"]:
            return
        started = time.perf_counter()
        try:
            with acting_as(user):
                result = services.declare_incident(
                    user,
                    kind=opts["kind"],
                    area_mode="buildings",
                    building_ids=ids,
                    location="演练 drill",
                    title=f"应急演练（{len(ids)}幢楼）",
                    note="emergency_drill",
                    request_id=f"drill-{uuid.uuid4().hex}",
                )
        except (Invalid, Forbidden) as exc:
            raise CommandError(str(exc)) from exc
        took = time.perf_counter() - started
        incident = result.incident
        self.stdout.write(
            self.style.SUCCESS(
                f"已启动 declared {incident.number}: {incident.households_total} 户 households, "
                f"{incident.residents_total} 人 residents, "
                f"{incident.vulnerable_total} 重点人群 people of special care "
                f"({took:.2f} s)"
            )
        )
        for w in result.warnings:
            self.stdout.write(self.style.WARNING(w.message))
        self.stdout.write(f"指挥看板 board: /emergency/{incident.pk}/")
