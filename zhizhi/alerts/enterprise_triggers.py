"""八必访: the eight enterprise triggers of 区域发展办 (see docs/enterprise-triggers.md).

Each trigger is an `AlertRule` of kind `registry` whose params name the trigger and its thresholds. The
evaluation is set-based: per street a handful of aggregate queries over Enterprise, TaxRecord,
Executive and the change log find every enterprise (or building) for which a trigger holds (`detect`),
then `write_alarms` raises or updates one alarm per (source, rule) — an enterprise alarm's source is
`enterprise:<credit code>`, a building's `building:<code>` — and clears the alarms whose condition is
over. A new alarm becomes a visit case of the rule's responsibility-list item (2901–2908), routed to
区域发展办. Re-running changes nothing that did not change in the data.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.db.models import Count, F, Max, Q, Sum, TextField, Value
from django.db.models.fields.json import KT
from django.db.models.functions import Coalesce
from django.utils import timezone

from zhizhi import clock
from zhizhi.alerts import alarms
from zhizhi.alerts.enterprise_models import SupportPolicy
from zhizhi.alerts.rule_models import Alarm, AlertRule
from zhizhi.enterprises.models import Enterprise, Executive, TaxRecord
from zhizhi.geo.models import Building, Region
from zhizhi.models import ChangeLogEntry
from zhizhi.problems import Invalid, Problem

# Enterprises that still do business (存续, 在业); 迁出/吊销/注销 ones are not visited for revenue or policy.
LIVE = ("operating", "active")


@dataclass(frozen=True)
class Trigger:
    name: str
    code: str
    zh: str
    en: str
    category: str
    severity: str
    defaults: dict[str, Any]


TRIGGERS: dict[str, Trigger] = {
    t.name: t
    for t in (
        Trigger("tax_here_not_present", "ENT-TAX-HERE-NOT-PRESENT", "税在地不在",
                "tax paid here, business not here", "2901", "major", {"months": 3}),
        Trigger("present_tax_elsewhere", "ENT-PRESENT-TAX-ELSEWHERE", "地在税不在",
                "business here, tax paid elsewhere", "2902", "major", {"months": 3}),
        Trigger("executive_changed", "ENT-EXECUTIVE-CHANGED", "高管变动", "executive changed", "2903",
                "minor", {"window_days": 30}),
        Trigger("address_changed", "ENT-ADDRESS-CHANGED", "地址变动", "address changed", "2904", "minor",
                {"window_days": 30}),
        Trigger("building_tax_change", "ENT-BUILDING-TAX-CHANGE", "楼宇税收变动",
                "building tax changed year on year", "2905", "major", {"threshold_pct": 20, "min_base": 1}),
        Trigger("revenue_drop", "ENT-REVENUE-DROP", "经营异常（营收同比下降）",
                "operating anomaly (revenue down year on year)", "2906", "major", {"threshold_pct": -15}),
        Trigger("new_enterprise", "ENT-NEW", "新增企业", "new enterprise", "2907", "info",
                {"window_days": 30}),
        Trigger("policy_match", "ENT-POLICY-MATCH", "政策匹配", "matches a support policy", "2908", "info",
                {}),
    )
}  # fmt: skip

# The parameters each trigger reads: name → (sign, integer?). sign "negative" | "positive" | "non_negative".
PARAMS: dict[str, dict[str, tuple[str, bool]]] = {
    "tax_here_not_present": {"months": ("positive", True)},
    "present_tax_elsewhere": {"months": ("positive", True)},
    "executive_changed": {"window_days": ("positive", True)},
    "address_changed": {"window_days": ("positive", True)},
    "building_tax_change": {"threshold_pct": ("positive", False), "min_base": ("non_negative", False)},
    "revenue_drop": {"threshold_pct": ("negative", False)},
    "new_enterprise": {"window_days": ("positive", True)},
    "policy_match": {},
}
SIGN_TEXT = {
    "positive": ("正数", "a positive number"),
    "negative": ("负数（如 -15 表示下降超过15%）", "a negative number (-15: down more than 15 %)"),
    "non_negative": ("非负数", "a non-negative number"),
}


# --- parameter and criteria checks -----------------------------------------------------------------
def registry_param_problems(params: dict[str, Any]) -> list[Problem]:
    """What is wrong with a registry rule's params (used by rules.check_params at save time)."""
    name = params.get("trigger")
    if name not in TRIGGERS:
        return [
            Problem(
                "trigger",
                "触发条件无效",
                "Unknown trigger",
                field="params.trigger",
                value=name,
                expected_zh="、".join(f"{t.name}（{t.zh}）" for t in TRIGGERS.values()),
                expected_en=", ".join(TRIGGERS),
            )
        ]
    problems = []
    for key, (sign, integer) in PARAMS[name].items():
        if key not in params:
            continue  # the trigger's default applies
        value = params[key]
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and integer and float(value) != int(value):
            ok = False
        if ok:
            number = float(value)
            ok = {"positive": number > 0, "negative": -100 < number < 0, "non_negative": number >= 0}[sign]
            if ok and key == "months":
                ok = number <= 12
            if ok and key == "window_days":
                ok = number <= 366
        if not ok:
            zh, en = SIGN_TEXT[sign]
            if integer:
                zh, en = f"{zh}（整数）", f"{en} (whole)"
            problems.append(
                Problem(
                    "param",
                    f"参数 {key} 应为{zh}",
                    f"Parameter {key} must be {en}",
                    field=f"params.{key}",
                    value=value,
                )
            )
    return problems


def check_criteria(criteria: Any) -> dict[str, Any]:
    """Validate a support policy's criteria; raises `Invalid` listing every problem."""
    if not isinstance(criteria, dict):
        raise Invalid([Problem("criteria", "适用条件应为 JSON 对象", "Criteria must be a JSON object",
                               field="criteria")])  # fmt: skip
    problems = []
    industries = dict(Enterprise.INDUSTRIES)
    for key, value in criteria.items():
        spec = SupportPolicy.CRITERIA.get(key)
        where = f"criteria.{key}"
        if spec is None:
            problems.append(Problem("criterion", "未知的适用条件", "Unknown criterion", field=where,
                                    expected_en=", ".join(SupportPolicy.CRITERIA)))  # fmt: skip
        elif spec[2] == "industries":
            if not isinstance(value, list) or not value or any(v not in industries for v in value):
                problems.append(Problem("industries", "行业应为行业代码列表", "Industries: a list of "
                                        "industry codes", field=where, value=value,
                                        expected_en=", ".join(industries)))  # fmt: skip
        elif (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or (key != "min_revenue_growth_pct" and value < 0)
        ):
            problems.append(Problem("number", f"{spec[0]}应为数值", f"{spec[1]}: must be a number",
                                    field=where, value=value))  # fmt: skip
    bounds = (("min_registered_capital", "max_registered_capital"), ("min_employees", "max_employees"))
    for low, high in bounds:
        lo, hi = criteria.get(low), criteria.get(high)
        if isinstance(lo, int | float) and isinstance(hi, int | float) and lo > hi:
            problems.append(Problem("range", "下限大于上限", "The lower bound is above the upper bound",
                                    field=f"criteria.{low}", value=lo))  # fmt: skip
    if problems:
        raise Invalid(problems)
    return criteria


# --- rules as data -------------------------------------------------------------------------------
def ensure_rules() -> dict[str, AlertRule]:
    """The eight rules, created once with their defaults (an admin edits params or disables a rule;
    nothing here overwrites that). Returns the enabled ones by trigger name."""
    existing = set(
        AlertRule.objects.filter(code__in=[t.code for t in TRIGGERS.values()]).values_list("code", flat=True)
    )
    for t in TRIGGERS.values():
        if t.code not in existing:
            # get_or_create: two first evaluations at once (the task and the command) make one rule.
            AlertRule.objects.get_or_create(
                code=t.code,
                defaults={
                    "name": f"八必访·{t.zh}",
                    "kind": AlertRule.REGISTRY,
                    "params": {"trigger": t.name, **t.defaults},
                    "category_code": t.category,
                    "creates_case": True,
                },
            )
    out: dict[str, AlertRule] = {}
    for rule in AlertRule.objects.filter(kind=AlertRule.REGISTRY, enabled=True).order_by("code"):
        name = (rule.params or {}).get("trigger")
        if name in TRIGGERS and name not in out:
            out[name] = rule
    return out


def param(rule: AlertRule, key: str) -> Any:
    name = (rule.params or {}).get("trigger", "")
    return (rule.params or {}).get(key, TRIGGERS[name].defaults.get(key))


# --- month arithmetic ----------------------------------------------------------------------------
def add_months(first: dt.date, n: int) -> dt.date:
    k = first.year * 12 + first.month - 1 + n
    return dt.date(k // 12, k % 12 + 1, 1)


def parse_month(value: Any) -> dt.date:
    """ "YYYY-MM" or a date → the first day of that month; bilingual `Invalid` otherwise."""
    if isinstance(value, dt.date):
        return value.replace(day=1)
    try:
        year, month = str(value).strip().split("-")[:2]
        return dt.date(int(year), int(month), 1)
    except (TypeError, ValueError):
        raise Invalid([Problem("month", "月份格式应为 YYYY-MM", "Month must be YYYY-MM", field="month",
                               value=value)]) from None  # fmt: skip


def default_month(today: dt.date) -> dt.date:
    """The latest month whose tax filings are in: the calendar month before `today`."""
    return add_months(today.replace(day=1), -1)


def latest_filed_month(today: dt.date) -> dt.date:
    """The month evaluated by default: the latest month with tax filings, and not after the month
    before `today`. Early in a month last month's filings may not be in yet; comparing a month nobody
    filed would clear every revenue alarm and raise them again (with new visit cases) a week later."""
    cap = default_month(today)
    latest = TaxRecord.objects.filter(period__lte=cap).aggregate(m=Max("period"))["m"]
    return latest.replace(day=1) if latest else cap


def month_end(first: dt.date) -> dt.date:
    return add_months(first, 1) - dt.timedelta(days=1)


# --- detection -----------------------------------------------------------------------------------
@dataclass
class Trip:
    """One trigger holding for one source, with the numbers behind it."""

    key: str
    severity: str
    title: str
    evidence: dict[str, Any]
    area_path: str
    enterprise_id: int | None = None
    value: float | None = None


@dataclass
class Detected:
    month: dt.date
    as_of: dt.date
    trips: dict[str, dict[str, Trip]] = field(default_factory=dict)  # trigger → source key → trip
    queries: int = 0


def _num(value: Any, places: int = 2) -> float | None:
    return None if value is None else round(float(value), places)


def _pct(now: Any, prev: Any) -> float:
    return round((float(now) - float(prev)) / float(prev) * 100, 1)


def _ent_key(credit_code: str) -> str:
    return f"enterprise:{credit_code}"


def _trip(det: Detected, name: str, trip: Trip) -> None:
    det.trips.setdefault(name, {})[trip.key] = trip


def _yoy(qs: Any, column: str, month: dt.date, *groups: str) -> Any:
    """Group `qs` (TaxRecords) by `groups` with this month's and the same month last year's sums."""
    last_year = add_months(month, -12)
    return (
        qs.filter(period__in=[month, last_year])
        .values(*groups)
        .annotate(
            now=Sum(column, filter=Q(period=month)),
            prev=Sum(column, filter=Q(period=last_year)),
        )
    )


def detect(rules: dict[str, AlertRule], month: dt.date, as_of: dt.date) -> Detected:
    """Every trip of every enabled trigger, per street, in a handful of aggregate queries each."""
    det = Detected(month=month, as_of=as_of)
    streets = Region.objects.filter(level=Region.STREET).select_related("parent")
    for street in streets:
        _detect_street(det, rules, street, month, as_of)
    return det


def _detect_street(det: Detected, rules: dict[str, AlertRule], street: Region, month: dt.date,
                   as_of: dt.date) -> None:  # fmt: skip
    p = street.path
    r: Any  # one row of whichever aggregate query the trigger runs
    rows: Any
    here = Enterprise.objects.filter(area_path__startswith=p)
    records = TaxRecord.objects.filter(enterprise__area_path__startswith=p)
    industries = dict(Enterprise.INDUSTRIES)

    def since(rule: AlertRule) -> dt.date:
        return as_of - dt.timedelta(days=int(param(rule, "window_days")))

    # 1 税在地不在: tax paid here lately, yet no place of business in the street (or moved out).
    rule = rules.get("tax_here_not_present")
    if rule is not None:
        start = add_months(month, 1 - int(param(rule, "months")))
        absent = Q(enterprise__building__isnull=True) | Q(enterprise__status="moved_out")
        absent |= ~Q(enterprise__building__area_path__startswith=p)
        rows = (
            records.filter(period__gte=start, period__lte=month, tax_paid_here=True, tax_paid__gt=0)
            .filter(absent)
            .values("enterprise_id", "enterprise__credit_code", "enterprise__area_path",
                    "enterprise__status", "enterprise__registered_address")
            .annotate(tax=Sum("tax_paid"), months=Count("id"), last=Max("period"))
        )  # fmt: skip
        det.queries += 1
        for r in rows:
            moved = r["enterprise__status"] == "moved_out"
            _trip(det, "tax_here_not_present", Trip(
                key=_ent_key(r["enterprise__credit_code"]),
                severity=TRIGGERS["tax_here_not_present"].severity,
                title=f"税在地不在：近{param(rule, 'months')}个月在本街道纳税 {_num(r['tax'])} 万元，"
                      + ("企业已迁出" if moved else "街道内无实际经营楼幢"),
                evidence={"tax_paid_here": _num(r["tax"]), "months_paid": r["months"],
                          "last_period": r["last"].strftime("%Y-%m"),
                          "registered_address": r["enterprise__registered_address"],
                          "business_building": None, "status": r["enterprise__status"]},
                area_path=r["enterprise__area_path"], enterprise_id=r["enterprise_id"],
                value=_num(r["tax"]),
            ))  # fmt: skip

    # 2 地在税不在: doing business in a building of the street, tax registered or paid elsewhere.
    rule = rules.get("present_tax_elsewhere")
    if rule is not None:
        start = add_months(month, 1 - int(param(rule, "months")))
        present = here.filter(building__area_path__startswith=p, status__in=LIVE)
        district = street.parent.code if street.parent_id and street.parent else ""
        elsewhere = (
            present.exclude(tax_region_code="")
            .exclude(tax_region_code__startswith=street.code)
            .exclude(tax_region_code=district)
        )
        found: dict[int, dict[str, Any]] = {}
        for r in elsewhere.values("id", "credit_code", "area_path", "tax_region_code", "building__name"):
            found[r["id"]] = {**r, "months_elsewhere": 0, "tax_elsewhere": None}
        paid = (
            TaxRecord.objects.filter(enterprise__in=present, period__gte=start, period__lte=month,
                                     tax_paid_here=False)
            .values("enterprise_id", "enterprise__credit_code", "enterprise__area_path",
                    "enterprise__tax_region_code", "enterprise__building__name")
            .annotate(n=Count("id"), tax=Sum("tax_paid"))
        )  # fmt: skip
        for r in paid:
            row = found.setdefault(r["enterprise_id"], {
                "id": r["enterprise_id"], "credit_code": r["enterprise__credit_code"],
                "area_path": r["enterprise__area_path"], "tax_region_code": r["enterprise__tax_region_code"],
                "building__name": r["enterprise__building__name"]})  # fmt: skip
            row["months_elsewhere"], row["tax_elsewhere"] = r["n"], _num(r["tax"])
        det.queries += 2
        for r in found.values():
            months = r.get("months_elsewhere", 0)
            reason = (f"税务登记地 {r['tax_region_code']}" if r["tax_region_code"] not in ("", street.code)
                      else "") + (f"，近期{months}个月税款缴往外地" if months else "")  # fmt: skip
            _trip(det, "present_tax_elsewhere", Trip(
                key=_ent_key(r["credit_code"]), severity=TRIGGERS["present_tax_elsewhere"].severity,
                title=f"地在税不在：在{r['building__name']}经营，{reason.lstrip('，')}",
                evidence={"business_building": r["building__name"], "tax_region_code": r["tax_region_code"],
                          "street_code": street.code, "months_paid_elsewhere": months,
                          "tax_paid_elsewhere": r.get("tax_elsewhere")},
                area_path=r["area_path"], enterprise_id=r["id"],
            ))  # fmt: skip

    # 3 高管变动: an executive took office or left within the window (founding appointments excluded).
    rule = rules.get("executive_changed")
    if rule is not None:
        lo = since(rule)
        rows = (
            Executive.objects.filter(enterprise__area_path__startswith=p)
            .filter(
                Q(end_date__gt=lo, end_date__lte=as_of)
                | Q(start_date__gt=lo, start_date__lte=as_of)
                & (Q(enterprise__established_on__isnull=True)
                   | Q(start_date__gt=F("enterprise__established_on")))
            )
            .values("enterprise_id", "enterprise__credit_code", "enterprise__area_path", "name", "position",
                    "start_date", "end_date")
            .order_by("enterprise_id", "start_date")
        )  # fmt: skip
        det.queries += 1
        positions = dict(Executive.POSITIONS)
        changes: dict[int, dict[str, dict[str, Any]]] = defaultdict(dict)
        meta: dict[int, tuple[str, str]] = {}
        for r in rows:
            meta[r["enterprise_id"]] = (r["enterprise__credit_code"], r["enterprise__area_path"])
            change = changes[r["enterprise_id"]].setdefault(
                r["position"], {"position": positions.get(r["position"], r["position"]), "old": None,
                                "new": None, "on": None})  # fmt: skip
            if r["end_date"] is not None and lo < r["end_date"] <= as_of:
                change["old"] = r["name"]
                change["on"] = max(change["on"] or "", r["end_date"].isoformat())
            if lo < r["start_date"] <= as_of:
                change["new"] = r["name"]
                change["on"] = max(change["on"] or "", r["start_date"].isoformat())
        for eid, by_position in changes.items():
            items = sorted(by_position.values(), key=lambda c: c["position"])
            text = "；".join(f"{c['position']} {c['old'] or '—'} → {c['new'] or '—'}" for c in items)
            _trip(det, "executive_changed", Trip(
                key=_ent_key(meta[eid][0]), severity=TRIGGERS["executive_changed"].severity,
                title=f"高管变动：{text}", evidence={"changes": items}, area_path=meta[eid][1],
                enterprise_id=eid,
            ))  # fmt: skip

    # 4 地址变动: the registered address or the business building changed (the change log's before/after).
    rule = rules.get("address_changed")
    if rule is not None:
        lo = since(rule)
        begin = timezone.make_aware(dt.datetime.combine(lo + dt.timedelta(days=1), dt.time.min))
        end = timezone.make_aware(dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time.min))
        blank = Value("", output_field=TextField())
        entries = (
            ChangeLogEntry.objects.filter(
                content_type=ContentType.objects.get_for_model(Enterprise), action="update",
                at__gte=begin, at__lt=end, area_path__startswith=p,
            )
            .annotate(
                addr0=Coalesce(KT("before__registered_address"), blank),
                addr1=Coalesce(KT("after__registered_address"), blank),
                bld0=Coalesce(KT("before__building_id"), blank),
                bld1=Coalesce(KT("after__building_id"), blank),
            )
            .filter(~Q(addr0=F("addr1")) | ~Q(bld0=F("bld1")))
            .values("object_id", "at", "addr0", "addr1", "bld0", "bld1", "area_path")
            .order_by("object_id", "at", "id")
        )  # fmt: skip
        det.queries += 1
        net: dict[int, dict[str, Any]] = {}
        for r in entries:
            eid = int(r["object_id"])
            row = net.setdefault(eid, {"addr0": r["addr0"], "bld0": r["bld0"]})
            row.update(addr1=r["addr1"], bld1=r["bld1"], at=r["at"], area_path=r["area_path"])
        net = {k: v for k, v in net.items() if (v["addr0"], v["bld0"]) != (v["addr1"], v["bld1"])}
        if net:
            ids = {int(v[b]) for v in net.values() for b in ("bld0", "bld1") if str(v[b]).isdigit()}
            names = dict(Building.objects.filter(pk__in=ids).values_list("pk", "name"))
            codes = dict(Enterprise.objects.filter(pk__in=list(net)).values_list("pk", "credit_code"))
            paths = dict(Enterprise.objects.filter(pk__in=list(net)).values_list("pk", "area_path"))
            det.queries += 3
            for eid, v in net.items():
                if eid not in codes:
                    continue  # deleted since
                old_b = names.get(int(v["bld0"])) if str(v["bld0"]).isdigit() else None
                new_b = names.get(int(v["bld1"])) if str(v["bld1"]).isdigit() else None
                what = []
                if v["addr0"] != v["addr1"]:
                    what.append(f"注册地址 {v['addr0'] or '—'} → {v['addr1'] or '—'}")
                if v["bld0"] != v["bld1"]:
                    what.append(f"经营楼幢 {old_b or '—'} → {new_b or '—'}")
                _trip(det, "address_changed", Trip(
                    key=_ent_key(codes[eid]), severity=TRIGGERS["address_changed"].severity,
                    title="地址变动：" + "；".join(what),
                    evidence={"old_address": v["addr0"], "new_address": v["addr1"], "old_building": old_b,
                              "new_building": new_b, "changed_on": v["at"].date().isoformat()},
                    area_path=paths[eid] or v["area_path"], enterprise_id=eid,
                ))  # fmt: skip

    # 5 楼宇税收变动: a building's tax paid here this month vs the same month last year.
    rule = rules.get("building_tax_change")
    if rule is not None:
        limit = Decimal(str(param(rule, "threshold_pct"))) / 100
        base = Decimal(str(param(rule, "min_base")))
        now0 = Coalesce(F("now"), Value(Decimal(0)))
        rows = (
            _yoy(TaxRecord.objects.filter(tax_paid_here=True, enterprise__building__area_path__startswith=p),
                 "tax_paid", month, "enterprise__building_id", "enterprise__building__code",
                 "enterprise__building__name", "enterprise__building__area_path")
            .filter(prev__gt=0, prev__gte=base)
            .filter(Q(now__isnull=True) | Q(now__gt=F("prev") * (1 + limit))
                    | Q(now__lt=F("prev") * (1 - limit)))
            .annotate(now0=now0)
        )  # fmt: skip
        det.queries += 1
        for r in rows:
            pct = _pct(r["now0"], r["prev"])
            if abs(pct) <= float(limit) * 100:
                continue  # rounding in the database's arithmetic: the exact comparison decides
            _trip(det, "building_tax_change", Trip(
                key=f"building:{r['enterprise__building__code']}",
                severity="major" if pct < 0 else "minor",
                title=f"楼宇税收变动：{r['enterprise__building__name']} {month:%Y-%m} "
                      f"税收 {_num(r['now0'])} 万元，同比{'下降' if pct < 0 else '上升'} {abs(pct)}%",
                evidence={"building": r["enterprise__building__name"], "month": f"{month:%Y-%m}",
                          "tax_now": _num(r["now0"]), "tax_last_year": _num(r["prev"]), "change_pct": pct},
                area_path=r["enterprise__building__area_path"], value=pct,
            ))  # fmt: skip

    # 6 经营异常: this month's revenue vs the same month last year below the threshold (−15 %).
    rule = rules.get("revenue_drop")
    if rule is not None:
        factor = 1 + Decimal(str(param(rule, "threshold_pct"))) / 100
        rows = (
            _yoy(records.filter(enterprise__status__in=LIVE), "revenue", month, "enterprise_id",
                 "enterprise__credit_code", "enterprise__area_path")
            .filter(prev__gt=0, now__isnull=False, now__lt=F("prev") * factor)
        )  # fmt: skip
        det.queries += 1
        threshold = float(param(rule, "threshold_pct"))
        for r in rows:
            pct = _pct(r["now"], r["prev"])
            if (float(r["now"]) - float(r["prev"])) / float(r["prev"]) * 100 >= threshold:
                continue
            _trip(det, "revenue_drop", Trip(
                key=_ent_key(r["enterprise__credit_code"]), severity=TRIGGERS["revenue_drop"].severity,
                title=f"经营异常：{month:%Y-%m} 营收 {_num(r['now'])} 万元，同比下降 {abs(pct)}%"
                      f"（去年同期 {_num(r['prev'])} 万元）",
                evidence={"month": f"{month:%Y-%m}", "revenue_now": _num(r["now"]),
                          "revenue_last_year": _num(r["prev"]), "change_pct": pct},
                area_path=r["enterprise__area_path"], enterprise_id=r["enterprise_id"], value=pct,
            ))  # fmt: skip

    # 7 新增企业: established within the window.
    rule = rules.get("new_enterprise")
    if rule is not None:
        rows = here.filter(established_on__gt=since(rule), established_on__lte=as_of, status__in=LIVE).values(
            "id", "credit_code", "area_path", "established_on", "industry", "building__name"
        )
        det.queries += 1
        for r in rows:
            _trip(det, "new_enterprise", Trip(
                key=_ent_key(r["credit_code"]), severity=TRIGGERS["new_enterprise"].severity,
                title=f"新增企业：{r['established_on']:%Y-%m-%d} 成立，{industries.get(r['industry'], '')}",
                evidence={"established_on": r["established_on"].isoformat(), "industry": r["industry"],
                          "business_building": r["building__name"]},
                area_path=r["area_path"], enterprise_id=r["id"],
            ))  # fmt: skip

    # 8 政策匹配: the enterprise meets every criterion of a policy in force.
    rule = rules.get("policy_match")
    if rule is not None:
        matched: dict[int, dict[str, Any]] = {}
        for policy in SupportPolicy.objects.valid_on(as_of).order_by("name"):
            det.queries += 1
            for r in _policy_rows(policy, here.filter(status__in=LIVE), records, month):
                row = matched.setdefault(r["id"], {"credit_code": r["credit_code"],
                                                   "area_path": r["area_path"], "policies": []})  # fmt: skip
                row["policies"].append({"policy": policy.name, "issued_by": policy.issued_by,
                                        "matched": _matched(policy.criteria, r, industries)})  # fmt: skip
        det.queries += 1
        for eid, row in matched.items():
            _trip(det, "policy_match", Trip(
                key=_ent_key(row["credit_code"]), severity=TRIGGERS["policy_match"].severity,
                title="政策匹配：符合" + "、".join(f"《{p['policy']}》" for p in row["policies"]),
                evidence={"policies": row["policies"]}, area_path=row["area_path"], enterprise_id=eid,
            ))  # fmt: skip


def _policy_rows(policy: SupportPolicy, live: Any, records: Any, month: dt.date) -> list[dict[str, Any]]:
    c = policy.criteria or {}
    filters: dict[str, Any] = {}
    if c.get("industries"):
        filters["industry__in"] = c["industries"]
    lookups = (("min_registered_capital", "registered_capital__gte"),
               ("max_registered_capital", "registered_capital__lte"),
               ("min_employees", "employees__gte"), ("max_employees", "employees__lte"))  # fmt: skip
    for key, lookup in lookups:
        if c.get(key) is not None:
            filters[lookup] = c[key]
    columns = ("id", "credit_code", "area_path", "industry", "registered_capital", "employees")
    if c.get("min_revenue_growth_pct") is None:
        return list(live.filter(**filters).values(*columns))
    factor = 1 + Decimal(str(c["min_revenue_growth_pct"])) / 100
    prefixed = Q(**{f"enterprise__{k}": v for k, v in filters.items()})
    rows = (
        _yoy(records.filter(enterprise__in=live).filter(prefixed), "revenue", month,
             *[f"enterprise__{k}" if k != "id" else "enterprise_id" for k in columns])
        .filter(prev__gt=0, now__isnull=False, now__gte=F("prev") * factor)
    )  # fmt: skip
    out = []
    for r in rows:
        row = {k: r["enterprise_id" if k == "id" else f"enterprise__{k}"] for k in columns}
        row["growth_pct"] = _pct(r["now"], r["prev"])
        out.append(row)
    return out


def _matched(criteria: dict[str, Any], row: dict[str, Any], industries: dict[str, str]) -> dict[str, Any]:
    """The criteria the enterprise met, each with the enterprise's own figure."""
    out: dict[str, Any] = {}
    if criteria.get("industries"):
        out["industry"] = f"{row['industry']} {industries.get(row['industry'], '')}"
    if "min_revenue_growth_pct" in criteria:
        out["revenue_growth_pct"] = row.get("growth_pct")
    if "min_registered_capital" in criteria or "max_registered_capital" in criteria:
        out["registered_capital"] = _num(row["registered_capital"])
    if "min_employees" in criteria or "max_employees" in criteria:
        out["employees"] = row["employees"]
    return out


# --- writing alarms ------------------------------------------------------------------------------
def write_alarms(rules: dict[str, AlertRule], det: Detected, at: dt.datetime) -> dict[str, int]:
    """Raise or update an alarm per trip and clear the ones whose condition is over; an alarm whose
    numbers did not change is only stamped as seen. One transaction per rule."""
    counts = {"raised": 0, "updated": 0, "unchanged": 0, "cleared": 0}
    for name, rule in rules.items():
        trips = det.trips.get(name, {})
        active = {a.source_key: a for a in Alarm.objects.filter(rule=rule, status=Alarm.ACTIVE)}
        new_ids = [t.enterprise_id for k, t in trips.items() if k not in active and t.enterprise_id]
        enterprises = Enterprise.objects.select_related("building").in_bulk(new_ids)
        unchanged: list[int] = []
        with transaction.atomic():
            for key, trip in trips.items():
                alarm = active.get(key)
                if alarm is not None and alarms.unchanged(alarm, trip.severity, trip.evidence):
                    unchanged.append(alarm.pk)
                    continue
                alarms.raise_or_update(
                    rule, key, trip.severity, at=at, area_path=trip.area_path, value=trip.value,
                    title=trip.title, evidence=trip.evidence,
                    enterprise=enterprises.get(trip.enterprise_id) if trip.enterprise_id else None,
                )  # fmt: skip
                counts["raised" if alarm is None else "updated"] += 1
            for key in active.keys() - trips.keys() - _not_filed(name, active, trips, det.month):
                locked = alarms.active_alarm(rule, key)
                if locked is not None:
                    alarms.clear(locked, at=at, note="条件不再成立 / condition no longer holds")
                    counts["cleared"] += 1
            for i in range(0, len(unchanged), 500):
                Alarm.objects.filter(pk__in=unchanged[i : i + 500]).update(last_seen_at=at)
        counts["unchanged"] += len(unchanged)
    return counts


def _not_filed(name: str, active: dict[str, Alarm], trips: dict[str, Trip], month: dt.date) -> set[str]:
    """Revenue-drop alarms of enterprises that have not filed `month` yet: unknown, so kept as they are
    (a late filing must not clear the alarm and raise a second visit case when it arrives)."""
    if name != "revenue_drop":
        return set()
    stale = {a.enterprise_id: key for key, a in active.items() if key not in trips and a.enterprise_id}
    if not stale:
        return set()
    filed = set(
        TaxRecord.objects.filter(enterprise_id__in=list(stale), period=month).values_list(
            "enterprise_id", flat=True
        )
    )
    return {key for eid, key in stale.items() if eid not in filed}


def evaluate_enterprises(month: Any = None, *, as_of: dt.date | None = None) -> dict[str, Any]:
    """Evaluate the eight triggers for `month` ("YYYY-MM"; default: the latest month with filings, at
    most the month before today — see `latest_filed_month`) and
    raise/clear their alarms. `as_of` (default: today, or the month's last day for a past month) ends
    the look-back windows of the event triggers. Returns counts and the time of each phase."""
    today = clock.today()
    first = parse_month(month) if month is not None else latest_filed_month(today)
    if as_of is None:
        as_of = min(today, month_end(first)) if month is not None else today
    rules = ensure_rules()
    t0 = time.perf_counter()
    det = detect(rules, first, as_of)
    t1 = time.perf_counter()
    counts = write_alarms(rules, det, clock.now())
    t2 = time.perf_counter()
    return {
        "month": f"{first:%Y-%m}",
        "as_of": as_of.isoformat(),
        "tripped": {name: len(det.trips.get(name, {})) for name in rules},
        **counts,
        "detect_seconds": round(t1 - t0, 3),
        "write_seconds": round(t2 - t1, 3),
    }


__all__ = [
    "TRIGGERS",
    "Detected",
    "Trip",
    "check_criteria",
    "detect",
    "ensure_rules",
    "evaluate_enterprises",
    "registry_param_problems",
    "write_alarms",
]
