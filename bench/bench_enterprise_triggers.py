"""The 八必访 enterprise triggers over N enterprises with 24 months of tax records each (default
100,000 enterprises → 2.4 million tax records), in a throwaway database (SQLite by default,
`--db postgres` for the PostgreSQL database `bench_ent`, created and dropped here).

Rows are generated in the database (INSERT … SELECT over the enterprises and a 24-row month list), with
a known share of each trigger: every 97th enterprise's revenue falls 30 % in the latest month, every
211th has no building, every 223rd is registered in another district, every 101st paid last month's tax
elsewhere, every 307th changed its legal representative 10 days ago, every 401st moved (a change-log
row), every 503rd was founded 10 days ago, every 50th building's tax fell 30 %; three support policies.

Timed (best of 3 for the read-only parts):
  detect      `enterprise_triggers.detect` — all eight triggers, the ORM's set-based queries
  sql         the same eight comparisons as hand-written SQL, in the same run (the baseline)
  write       `write_alarms` on a fresh table: raising every alarm (rules without cases here: a
              visit case per alarm is the case core's cost, measured in bench_cases.py)
  rerun       the whole `evaluate_enterprises` again: nothing changed, so nothing is written

Prints figures and ratios; never asserts timings.
Run: .venv/bin/python bench/bench_enterprise_triggers.py [--enterprises 100000] [--db sqlite|postgres]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import best_of, run_child_shown  # noqa: E402

PG_NAME = "bench_ent"
STREET, DISTRICT = "330105001", "330105"
COMMUNITIES, GRIDS_PER, BUILDINGS_PER = 10, 10, 20  # 100 grids, 2,000 buildings


def build(n: int, vendor: str, latest: dt.date, today: dt.date) -> None:
    from django.db import connection, transaction

    from zhizhi.alerts.enterprise_models import SupportPolicy
    from zhizhi.alerts.enterprise_triggers import add_months
    from zhizhi.enterprises.models import Enterprise
    from zhizhi.geo.models import Building, Region

    now = dt.datetime.now(dt.UTC)
    district = Region.objects.create(level="district", code=DISTRICT, name="拱墅区")
    street = Region.objects.create(level="street", code=STREET, name="小河街道", parent=district)
    grids = []
    for c in range(COMMUNITIES):
        comm = Region.objects.create(level="community", code=f"{STREET}{c + 1:03d}", name=f"社区{c}",
                                     parent=street)  # fmt: skip
        for g in range(GRIDS_PER):
            code = f"{comm.code}{g + 1:03d}"
            grids.append(Region(level="grid", code=code, name=f"网格{c}-{g}", parent=comm,
                                path=f"{comm.path}{code}/", area_path=""))  # fmt: skip
    for g in grids:
        g.area_path = g.path
    Region.objects.bulk_create(grids)
    grids = list(Region.objects.filter(level="grid").order_by("code"))
    buildings = [
        Building(
            code=f"B{i:05d}",
            name=f"{i}幢",
            address=f"测试路{i}号",
            lng=120.1,
            lat=30.3,
            grid=g,
            area_path=g.path,
            units=1,
            floors=10,
        )
        for i, g in enumerate(g for g in grids for _ in range(BUILDINGS_PER))
    ]
    Building.objects.bulk_create(buildings)
    buildings = list(Building.objects.order_by("code"))
    old = dt.date(2010, 1, 1)
    new = today - dt.timedelta(days=10)
    industries = [code for code, _ in Enterprise.INDUSTRIES]
    rows = []
    for i in range(1, n + 1):
        b = buildings[i % len(buildings)]
        rows.append(Enterprise(
            name=f"企业{i}", credit_code=f"91330105{i:09d}X", legal_representative=f"法人{i}",
            registered_address=f"测试路{i}号", building=None if i % 211 == 0 else b, grid_id=b.grid_id,
            industry=industries[i % len(industries)], status="operating",
            established_on=new if i % 503 == 0 else old, registered_capital=(i % 1000) + 10,
            employees=(i % 300) + 1, tax_region_code="330106" if i % 223 == 0 else STREET,
            area_path=b.area_path, created_at=now, updated_at=now,
        ))  # fmt: skip
    t0 = time.perf_counter()
    with transaction.atomic():
        Enterprise.objects.bulk_create(rows, batch_size=5000)
    print(f"  {n:,} enterprises in {time.perf_counter() - t0:.1f} s", flush=True)

    def lit(d: dt.date) -> str:
        return f"DATE '{d.isoformat()}'" if vendor == "postgresql" else f"'{d.isoformat()}'"

    months = " UNION ALL ".join(
        f"SELECT {lit(add_months(latest, -23 + k))} AS period, {k} AS k" for k in range(24)
    )
    # Revenue: a base per enterprise, growing −5 … +15 % a year; every 97th falls 30 % in the last month.
    revenue = (
        "(10 + e.id % 200) * (1.0 + ((e.id * 13) % 21 - 5) / 100.0 * m.k / 12.0)"
        " * (CASE WHEN e.id % 97 = 0 AND m.k = 23 THEN 0.7 ELSE 1.0 END)"
    )
    # Tax: 5 % of revenue; in every 50th building it fell to 3.5 % in the last month (a building trip).
    rate = "(CASE WHEN e.building_id % 50 = 0 AND m.k = 23 THEN 0.035 ELSE 0.05 END)"
    here = "CASE WHEN e.id % 101 = 0 AND m.k = 23 THEN {f} ELSE {t} END".format(
        t="TRUE" if vendor == "postgresql" else "1", f="FALSE" if vendor == "postgresql" else "0"
    )
    t0 = time.perf_counter()

    def modulo(sql: str) -> str:  # a literal % next to %s placeholders is written %%
        return sql.replace(" % ", " %% ")

    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(
            modulo(
                "INSERT INTO enterprises_taxrecord (created_at, updated_at, version, area_path,"
                " enterprise_id, period, revenue, tax_paid, tax_paid_here)"
                f" SELECT %s, %s, 1, e.area_path, e.id, m.period, ROUND(CAST({revenue} AS NUMERIC), 2),"
                f" ROUND(CAST({revenue} * {rate} AS NUMERIC), 2), {here}"
                f" FROM enterprises_enterprise e CROSS JOIN ({months}) m"
            ),
            [now, now],
        )
        cur.execute(
            modulo(
                "INSERT INTO enterprises_executive (created_at, updated_at, version, area_path,"
                " enterprise_id, name, position, start_date, end_date)"
                " SELECT %s, %s, 1, e.area_path, e.id, e.legal_representative, 'legal_rep',"
                " e.established_on,"
                " CASE WHEN e.id % 307 = 0 THEN %s END FROM enterprises_enterprise e"
            ),
            [now, now, today - dt.timedelta(days=11)],
        )
        cur.execute(
            modulo(
                "INSERT INTO enterprises_executive (created_at, updated_at, version, area_path,"
                " enterprise_id, name, position, start_date)"
                " SELECT %s, %s, 1, e.area_path, e.id, '新法人', 'legal_rep', %s"
                " FROM enterprises_enterprise e"
                " WHERE e.id % 307 = 0"
            ),
            [now, now, today - dt.timedelta(days=10)],
        )
    print(f"  {n * 24:,} tax records and {n + n // 307:,} executives in {time.perf_counter() - t0:.1f} s",
          flush=True)  # fmt: skip
    from django.contrib.contenttypes.models import ContentType

    from zhizhi.models import ChangeLogEntry

    ct = ContentType.objects.get_for_model(Enterprise)
    moved = Enterprise.objects.filter(pk__in=range(401, n + 1, 401)).values(
        "pk", "name", "area_path", "registered_address", "building_id"
    )
    ChangeLogEntry.objects.bulk_create([
        ChangeLogEntry(at=now - dt.timedelta(days=3), content_type=ct, object_id=str(r["pk"]),
                       object_repr=r["name"], action="update", area_path=r["area_path"],
                       before={"registered_address": "旧址路1号", "building_id": r["building_id"]},
                       after={"registered_address": r["registered_address"], "building_id": r["building_id"]})
        for r in moved
    ])  # fmt: skip
    for p in (
        {"name": "成长奖励", "criteria": {"industries": ["I"], "min_revenue_growth_pct": 12}},
        {"name": "稳岗补贴", "criteria": {"industries": ["F", "H"], "max_employees": 5}},
        {"name": "技改补助", "criteria": {"industries": ["C"], "min_registered_capital": 990,
                                          "min_revenue_growth_pct": 10}},
    ):  # fmt: skip
        SupportPolicy.objects.create(valid_from=dt.date(2020, 1, 1), **p)
    with connection.cursor() as cur:
        cur.execute("ANALYZE")


def plain_sql(vendor: str, month: dt.date, as_of: dt.date) -> dict[str, int]:
    """The eight comparisons as hand-written SQL: how many sources each finds."""
    from django.db import connection
    from django.utils import timezone

    from zhizhi.alerts.enterprise_models import SupportPolicy
    from zhizhi.alerts.enterprise_triggers import add_months

    p = f"/{DISTRICT}/{STREET}/%"
    start = add_months(month, -2)
    last_year = add_months(month, -12)
    since = as_of - dt.timedelta(days=30)
    pg = vendor == "postgresql"
    yes = "TRUE" if pg else "1"
    no = "FALSE" if pg else "0"
    js = (lambda c, k: f"{c}->>'{k}'") if pg else (lambda c, k: f"json_extract({c}, '$.{k}')")
    rev = (
        "SELECT t.enterprise_id, SUM(CASE WHEN t.period = %s THEN t.revenue END) AS now,"
        " SUM(CASE WHEN t.period = %s THEN t.revenue END) AS prev FROM enterprises_taxrecord t"
        " JOIN enterprises_enterprise e ON e.id = t.enterprise_id"
        " WHERE e.area_path LIKE %s AND e.status IN ('operating', 'active') AND t.period IN (%s, %s)"
        " GROUP BY t.enterprise_id"
    )
    queries: dict[str, tuple[str, list[Any]]] = {
        "tax_here_not_present": (
            "SELECT COUNT(DISTINCT t.enterprise_id) FROM enterprises_taxrecord t"
            " JOIN enterprises_enterprise e ON e.id = t.enterprise_id"
            " LEFT JOIN geo_building b ON b.id = e.building_id"
            f" WHERE e.area_path LIKE %s AND t.period BETWEEN %s AND %s AND t.tax_paid_here = {yes}"
            " AND t.tax_paid > 0 AND (e.building_id IS NULL OR e.status = 'moved_out'"
            " OR b.area_path NOT LIKE %s)",
            [p, start, month, p],
        ),
        "present_tax_elsewhere": (
            "SELECT COUNT(*) FROM enterprises_enterprise e JOIN geo_building b ON b.id = e.building_id"
            " WHERE e.area_path LIKE %s AND b.area_path LIKE %s AND e.status IN ('operating', 'active')"
            " AND ((e.tax_region_code <> '' AND e.tax_region_code NOT LIKE %s AND e.tax_region_code <> %s)"
            " OR EXISTS (SELECT 1 FROM enterprises_taxrecord t WHERE t.enterprise_id = e.id"
            f" AND t.period BETWEEN %s AND %s AND t.tax_paid_here = {no}))",
            [p, p, STREET + "%", DISTRICT, start, month],
        ),
        "executive_changed": (
            "SELECT COUNT(DISTINCT x.enterprise_id) FROM enterprises_executive x"
            " JOIN enterprises_enterprise e ON e.id = x.enterprise_id WHERE e.area_path LIKE %s"
            " AND ((x.end_date > %s AND x.end_date <= %s) OR (x.start_date > %s AND x.start_date <= %s"
            " AND (e.established_on IS NULL OR x.start_date > e.established_on)))",
            [p, since, as_of, since, as_of],
        ),
        "address_changed": (
            "SELECT COUNT(DISTINCT c.object_id) FROM zhizhi_changelogentry c"
            " JOIN django_content_type ct ON ct.id = c.content_type_id"
            " WHERE ct.app_label = 'enterprises' AND ct.model = 'enterprise' AND c.action = 'update'"
            " AND c.at >= %s AND c.at < %s AND c.area_path LIKE %s"
            f" AND (COALESCE({js('c.before', 'registered_address')}, '')"
            f" <> COALESCE({js('c.after', 'registered_address')}, '')"
            f" OR COALESCE({js('c.before', 'building_id')}, '')"
            f" <> COALESCE({js('c.after', 'building_id')}, ''))",
            [
                timezone.make_aware(dt.datetime.combine(since + dt.timedelta(days=1), dt.time.min)),
                timezone.make_aware(dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time.min)),
                p,
            ],
        ),
        "building_tax_change": (
            "SELECT COUNT(*) FROM (SELECT e.building_id, SUM(CASE WHEN t.period = %s THEN t.tax_paid END)"
            " AS now, SUM(CASE WHEN t.period = %s THEN t.tax_paid END) AS prev FROM enterprises_taxrecord t"
            " JOIN enterprises_enterprise e ON e.id = t.enterprise_id"
            " JOIN geo_building b ON b.id = e.building_id"
            f" WHERE b.area_path LIKE %s AND t.tax_paid_here = {yes}"
            " AND t.period IN (%s, %s) GROUP BY e.building_id) s"
            " WHERE s.prev >= 1 AND (s.now IS NULL OR s.now > s.prev * 1.2 OR s.now < s.prev * 0.8)",
            [month, last_year, p, month, last_year],
        ),
        "revenue_drop": (
            f"SELECT COUNT(*) FROM ({rev}) s WHERE s.prev > 0 AND s.now < s.prev * 0.85",
            [month, last_year, p, month, last_year],
        ),
        "new_enterprise": (
            "SELECT COUNT(*) FROM enterprises_enterprise e WHERE e.area_path LIKE %s"
            " AND e.established_on > %s AND e.established_on <= %s AND e.status IN ('operating', 'active')",
            [p, since, as_of],
        ),
    }
    out: dict[str, int] = {}
    with connection.cursor() as cur:
        for name, (sql, params) in queries.items():
            cur.execute(sql, params)
            out[name] = cur.fetchone()[0]
        matched: set[int] = set()
        for policy in SupportPolicy.objects.order_by("name"):
            c = policy.criteria
            where = ["e.area_path LIKE %s", "e.status IN ('operating', 'active')"]
            params: list[Any] = [p]
            if c.get("industries"):
                where.append("e.industry IN (" + ", ".join(["%s"] * len(c["industries"])) + ")")
                params += c["industries"]
            for key, cond in (("min_registered_capital", "e.registered_capital >= %s"),
                              ("max_employees", "e.employees <= %s")):  # fmt: skip
                if key in c:
                    where.append(cond)
                    params.append(c[key])
            if "min_revenue_growth_pct" in c:
                sql = (
                    "SELECT s.enterprise_id FROM (SELECT t.enterprise_id,"
                    " SUM(CASE WHEN t.period = %s THEN t.revenue END) AS now,"
                    " SUM(CASE WHEN t.period = %s THEN t.revenue END) AS prev FROM enterprises_taxrecord t"
                    " JOIN enterprises_enterprise e ON e.id = t.enterprise_id WHERE " + " AND ".join(where)
                    + " AND t.period IN (%s, %s) GROUP BY t.enterprise_id) s"
                    " WHERE s.prev > 0 AND s.now >= s.prev * %s"
                )  # fmt: skip
                cur.execute(sql, [month, last_year, *params, month, last_year,
                                  1 + c["min_revenue_growth_pct"] / 100])  # fmt: skip
            else:
                cur.execute("SELECT e.id FROM enterprises_enterprise e WHERE " + " AND ".join(where), params)
            matched |= {r[0] for r in cur.fetchall()}
        out["policy_match"] = len(matched)
    return out


def run(n: int) -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from zhizhi import clock
    from zhizhi.alerts import enterprise_triggers as et
    from zhizhi.alerts.rule_models import Alarm, AlertRule

    vendor = connection.vendor
    today = clock.today()
    month = et.default_month(today)
    t0 = time.perf_counter()
    call_command("migrate", "--no-input", verbosity=0)
    print(f"database {vendor}: migrated in {time.perf_counter() - t0:.1f} s", flush=True)
    build(n, vendor, month, today)
    rules = et.ensure_rules()
    AlertRule.objects.filter(pk__in=[r.pk for r in rules.values()]).update(creates_case=False)
    rules = et.ensure_rules()

    detect_s, det = best_of(lambda: et.detect(rules, month, today))
    sql_s, counts = best_of(lambda: plain_sql(vendor, month, today))
    t0 = time.perf_counter()
    written = et.write_alarms(rules, det, clock.now())
    write_s = time.perf_counter() - t0
    rerun_s, rerun = best_of(lambda: et.evaluate_enterprises(month, as_of=today), repeat=1)

    print(f"\n{'trigger':<24}{'ORM trips':>10}{'SQL trips':>10}")
    same = True
    for name in et.TRIGGERS:
        mine = len(det.trips.get(name, {}))
        same &= mine == counts[name]
        print(f"{name:<24}{mine:>10,}{counts[name]:>10,}{'' if mine == counts[name] else '  ≠'}")
    print(f"\nsame sources found by both: {'yes' if same else 'NO'}; aggregate queries: {det.queries}")
    print(f"detect (ORM, 8 triggers)   {detect_s:7.2f} s")
    print(f"plain SQL (same 8)         {sql_s:7.2f} s   ORM / SQL = {detect_s / sql_s:.2f}")
    print(f"write {written['raised']:,} new alarms      {write_s:7.2f} s   "
          f"({written['raised'] / max(write_s, 1e-9):,.0f} alarms/s, no cases)")  # fmt: skip
    print(f"re-run, nothing changed    {rerun_s:7.2f} s   (unchanged {rerun['unchanged']:,}, raised "
          f"{rerun['raised']}, cleared {rerun['cleared']})")  # fmt: skip
    print(f"detect + write, first run  {detect_s + write_s:7.2f} s for {n:,} enterprises "
          f"({Alarm.objects.count():,} alarms)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--enterprises", type=int, default=100_000)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run(args.enterprises)
        return
    print(
        f"八必访 enterprise triggers, {args.enterprises:,} enterprises × 24 months on {args.db}, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (other work shares the machine)",
        flush=True,
    )
    child_args = [f"--enterprises={args.enterprises}"]
    sys.exit(run_child_shown(__file__, args.db, PG_NAME, child_args, prefix="zhizhi-bench-ent-"))


if __name__ == "__main__":
    main()
