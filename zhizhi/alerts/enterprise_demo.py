"""Demo layer "enterprise_triggers" (zhizhi/demo/extras.py): touch a few of the demo street's
enterprises so that each of the eight 八必访 triggers trips at least once, add three support policies,
then evaluate — first for March of the latest year of data (浙江物联电子商务有限公司's revenue fell more
than 15 % that month and 区域发展办 visited), then for the latest month. Idempotent: the renamed
enterprise marks a street already touched; the evaluation itself changes nothing on a re-run.
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Count, Max
from stdnum.cn import uscc

from zhizhi import clock
from zhizhi.alerts import enterprise_triggers as et
from zhizhi.alerts.enterprise_models import SupportPolicy
from zhizhi.alerts.rule_models import Alarm
from zhizhi.enterprises.models import Enterprise, Executive, TaxRecord
from zhizhi.geo.models import Building, Region
from zhizhi.problems import Forbidden, Invalid

log = logging.getLogger(__name__)

WULIAN = "浙江物联电子商务有限公司"
NEW_NAME = "杭州小河数智科技有限公司"
VISIT_RESULT = (
    "走访发现企业受疫情影响，部分大客户取消订单。街道协助对接新客户，协调解决招投标问题，"
    "后续跟踪业务恢复情况。"
)
POLICIES = [
    {
        "name": "小河街道数字经济企业成长奖励",
        "issued_by": "小河街道办事处",
        "summary": "信息技术服务企业营收同比增长15%以上，给予一次性成长奖励。",
        "criteria": {"industries": ["I"], "min_revenue_growth_pct": 15},
    },
    {
        "name": "拱墅区小微商贸企业稳岗补贴",
        "issued_by": "拱墅区商务局",
        "summary": "从业人数10人以下的批发零售、住宿餐饮企业，营收同比增长12%以上的给予稳岗补贴。",
        "criteria": {"industries": ["F", "H"], "max_employees": 10, "min_revenue_growth_pct": 12},
    },
    {
        "name": "拱墅区制造业技术改造补助",
        "issued_by": "拱墅区经信局",
        "summary": "注册资本500万元以上、营收同比增长5%以上的制造业企业，技改投入按比例补助。",
        "criteria": {"industries": ["C"], "min_registered_capital": 500, "min_revenue_growth_pct": 5},
    },
]


def _credit_code(seed: int) -> str:
    digits = [(seed * 7 + i * 3) % 10 for i in range(8)]
    check = 11 - sum(d * w for d, w in zip(digits, (3, 7, 9, 10, 5, 8, 4, 2), strict=True)) % 11
    body = "91330105" + "".join(map(str, digits)) + {10: "X", 11: "0"}.get(check, str(check))
    return body + uscc.calc_check_digit(body)


def load(street: Region) -> dict[str, Any]:
    today = clock.today()
    ents = Enterprise.objects.filter(area_path__startswith=street.path)
    latest = TaxRecord.objects.filter(enterprise__in=ents).aggregate(m=Max("period"))["m"]
    if latest is None:
        return {"skipped": 1}
    march = dt.date(latest.year if latest.month >= 3 else latest.year - 1, 3, 1)
    touched = 0
    if not ents.filter(name=WULIAN).exists():
        with transaction.atomic():
            touched = _touch(street, ents, latest, march, today)
    for p in POLICIES:
        SupportPolicy.objects.get_or_create(
            name=p["name"], defaults={**p, "valid_from": dt.date(march.year, 1, 1)}
        )
    first = None
    if touched and march < latest:
        # The March evaluation, as it ran early in April: the visit case is dated then.
        ran = dt.datetime.combine(
            et.add_months(march, 1) + dt.timedelta(days=4), dt.time(1, 0), tzinfo=dt.UTC
        )
        with clock.frozen_at(ran):
            first = et.evaluate_enterprises(march)
        with clock.frozen_at(ran + dt.timedelta(days=1, hours=5)):
            _record_visit(ents.get(name=WULIAN))
    result = et.evaluate_enterprises(latest, as_of=today)
    return {
        "touched": touched,
        "policies": SupportPolicy.objects.count(),
        "march_raised": first["raised"] if first else 0,
        **{name: n for name, n in result["tripped"].items()},
        "active_alarms": Alarm.objects.filter(
            status=Alarm.ACTIVE, rule__code__in=[t.code for t in et.TRIGGERS.values()]
        ).count(),
    }


def _touch(street: Region, ents: Any, latest: dt.date, march: dt.date, today: dt.date) -> int:
    """The data changes that make every trigger trip; returns how many enterprises changed."""
    full = (
        ents.filter(status="operating", building__isnull=False)
        .annotate(n=Count("tax_records"))
        .filter(n__gte=24)
        .order_by("credit_code")
    )
    picks = list(full[:40])
    if len(picks) < 5:
        return 0
    wulian, boss, mover, building_ent = picks[0], picks[1], picks[2], picks[3]
    # 经营异常: 浙江物联 sells about 30 % less than a year before, from March on.
    wulian.name, wulian.industry = WULIAN, "F"
    wulian.save()
    for rec in TaxRecord.objects.filter(enterprise=wulian, period__gte=march, period__lte=latest):
        before = TaxRecord.objects.filter(enterprise=wulian, period=et.add_months(rec.period, -12)).first()
        if before is None:
            continue
        ratio = Decimal("0.70")
        rec.revenue = (before.revenue * ratio).quantize(Decimal("0.01"))
        rec.tax_paid = (before.tax_paid * ratio).quantize(Decimal("0.01"))
        rec.save()
    # 高管变动: a new legal representative a few days ago.
    old = boss.executives.filter(position="legal_rep", end_date__isnull=True).first()
    changed = today - dt.timedelta(days=5)
    if old is not None:
        old.end_date = changed - dt.timedelta(days=1)
        old.save()
    Executive.objects.create(enterprise=boss, name="周启明", position="legal_rep", start_date=changed)
    boss.legal_representative = "周启明"
    boss.save()
    # 地址变动: the enterprise moved to another building of the street.
    other = (
        Building.objects.filter(area_path__startswith=street.path)
        .exclude(pk=mover.building_id)
        .order_by("code")
        .first()
    )
    if other is not None:
        mover.building = other
        mover.house = None
        mover.registered_address = f"{other.address}（新址）"
        mover.save()
    # 楼宇税收变动: the latest month's tax of one building's enterprises at 60 % of a year before.
    if building_ent.building_id:
        for rec in TaxRecord.objects.filter(enterprise__building=building_ent.building, period=latest):
            before = TaxRecord.objects.filter(
                enterprise=rec.enterprise, period=et.add_months(latest, -12)
            ).first()
            if before is not None:
                rec.tax_paid = (before.tax_paid * Decimal("0.6")).quantize(Decimal("0.01"))
                rec.save()
    # 新增企业: registered a week ago in a building of the street.
    established = today - dt.timedelta(days=7)
    new = Enterprise.objects.create(
        name=NEW_NAME,
        credit_code=_credit_code(street.pk),
        legal_representative="沈一帆",
        registered_address=f"{wulian.building.address if wulian.building else ''}1208室",
        building=wulian.building,
        grid=wulian.grid,
        industry="I",
        status="operating",
        established_on=established,
        registered_capital=Decimal("200"),
        employees=6,
        tax_region_code=street.code,
    )
    Executive.objects.create(enterprise=new, name="沈一帆", position="legal_rep", start_date=established)
    # 税在地不在 and 地在税不在 come with the demo street itself (its "tax_here_not_business" and
    # "business_here_not_tax" enterprises); make sure of one of each all the same.
    if len(picks) >= 6:
        absent, elsewhere = picks[4], picks[5]
        absent.building, absent.house, absent.status = None, None, "moved_out"
        absent.save()
        elsewhere.tax_region_code = "330106"
        elsewhere.save()
    if len(picks) >= 7:
        # 政策匹配: a software firm whose latest month grew 25 % (the street's growth award).
        grower = picks[6]
        grower.industry = "I"
        grower.save()
        latest_rec = TaxRecord.objects.filter(enterprise=grower, period=latest).first()
        year_ago = TaxRecord.objects.filter(enterprise=grower, period=et.add_months(latest, -12)).first()
        if latest_rec is not None and year_ago is not None:
            latest_rec.revenue = (year_ago.revenue * Decimal("1.25")).quantize(Decimal("0.01"))
            latest_rec.save()
    return min(len(picks), 7)


def _record_visit(wulian: Enterprise) -> None:
    """区域发展办 visited 浙江物联 after the March alarm: sign for and finish its case with the finding."""
    from zhizhi.cases import services

    alarm = Alarm.objects.filter(enterprise=wulian, rule__code="ENT-REVENUE-DROP").order_by("pk").first()
    case = alarm.case if alarm is not None else None
    if case is None or case.status != "dispatched":
        return
    who = case.assignee or (case.unit.members.order_by("id").first() if case.unit else None)
    if who is None:
        return
    try:
        services.sign_for(who, case.pk)
        for task in case.tasks.filter(role="assist").select_related("unit"):
            helper = task.unit.members.order_by("id").first()
            if helper is not None:
                services.finish_task(helper, case.pk, result="协助核实企业经营情况")
        services.finish_case(who, case.pk, result=VISIT_RESULT)
    except (Invalid, Forbidden) as exc:  # the demo's case rules changed: keep the alarm and its case
        log.warning("enterprise demo: visit not recorded: %s", exc)
