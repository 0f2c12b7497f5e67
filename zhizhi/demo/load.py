"""Writing a demo `Plan` to the database with bulk inserts, in one transaction.

bulk_create bypasses `ZhizhiModel.save()`, so this module sets what save() would have set: the
area path of every row, the stamps and actor, and one summary change-log row per registry (not one
per row: 15,000 "created" entries would bury every real change). The injected errors are written
as they are, without validation, because they stand for legacy rows that predate validation.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.contrib.auth.hashers import make_password
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from shapely.geometry import shape

from zhizhi import clock
from zhizhi.demo.plan import Plan
from zhizhi.enterprises.models import Enterprise, Executive, TaxRecord
from zhizhi.geo import spatial
from zhizhi.geo.models import Building, Region
from zhizhi.models import ChangeLogEntry
from zhizhi.orgs.models import OrgUnit, User
from zhizhi.orgs.services import grant_department_domain
from zhizhi.people.models import CareTag, House, Person, Residency
from zhizhi.permissions import ensure_default_permissions

BATCH = 1000


def street_exists(code: str) -> bool:
    return Region.objects.filter(code=code, level=Region.STREET).exists()


@transaction.atomic
def load_plan(plan: Plan) -> dict[str, int]:
    """Write every row of `plan`; returns the number of rows per registry."""
    ensure_default_permissions()
    now = clock.now()
    # One PBKDF2 run per distinct password (190 staff sharing one cost one hash), run in threads:
    # hashlib releases the GIL, and ten hashes are otherwise several seconds of the load.
    distinct = sorted({s.password for s in plan.staff})
    with ThreadPoolExecutor(max_workers=4) as pool:
        hashes = dict(zip(distinct, pool.map(make_password, distinct), strict=True))

    def password(raw: str) -> str:
        return hashes[raw]

    admin_row = next(s for s in plan.staff if s.superuser)
    admin = User.objects.filter(username=admin_row.username).first()
    if admin is None:
        admin = User(username=admin_row.username, full_name=admin_row.full_name, is_superuser=True)
        admin.is_staff = True
        admin.password = password(admin_row.password)
        admin.save()
    stamps: dict[str, Any] = {"created_at": now, "updated_at": now, "created_by": admin, "updated_by": admin}

    # --- regions, level by level so parents have keys ---------------------------------------------
    regions: dict[str, Region] = {
        r.code: r for r in Region.objects.filter(code__in=[x.code for x in plan.regions])
    }
    for level in ("district", "street", "community", "grid"):
        batch = []
        for row in plan.regions:
            if row.level != level or row.code in regions:
                continue
            parent = regions[row.parent] if row.parent else None
            path = f"{parent.path if parent else '/'}{row.code}/"
            center = shape(row.boundary).representative_point() if row.boundary else None
            batch.append(
                Region(
                    level=level,
                    code=row.code,
                    name=row.name,
                    parent=parent,
                    path=path,
                    area_path=path,
                    boundary=row.boundary,
                    center_lng=center.x if center else None,
                    center_lat=center.y if center else None,
                    **stamps,
                )
            )
        for region in Region.objects.bulk_create(batch, batch_size=BATCH):
            regions[region.code] = region

    # --- org units and staff ------------------------------------------------------------------------
    units: dict[str, OrgUnit] = {}
    for with_parent in (False, True):
        batch_units = [
            OrgUnit(
                code=u.code,
                name=u.name,
                kind=u.kind,
                parent=units[u.parent] if u.parent else None,
                region=regions[u.region] if u.region else None,
                area_path=regions[u.region].path if u.region else "",
                **stamps,
            )
            for u in plan.org_units
            if bool(u.parent) == with_parent
        ]
        for unit in OrgUnit.objects.bulk_create(batch_units, batch_size=BATCH):
            units[unit.code] = unit
    for unit in units.values():
        if unit.kind in ("street_office", "command_centre", "outside_dept"):
            grant_department_domain(unit)

    users = []
    for s in plan.staff:
        if s.superuser:
            continue
        user = User(
            username=s.username,
            full_name=s.full_name,
            role=s.role,
            org_unit=units[s.unit] if s.unit else None,
            password=password(s.password),
        )
        if s.phone:
            user.set_sensitive("phone", s.phone)
        users.append(user)
    users = User.objects.bulk_create(users, batch_size=BATCH)
    by_name = {u.username: u for u in users}
    through = User.regions.through
    through.objects.bulk_create(
        [
            through(user_id=by_name[s.username].pk, region_id=regions[code].pk)
            for s in plan.staff
            if not s.superuser
            for code in s.regions
        ],
        batch_size=BATCH,
    )

    # --- buildings, people, houses, residencies, care tags ------------------------------------------
    buildings = {
        b.code: b
        for b in Building.objects.bulk_create(
            [
                Building(
                    code=b.code,
                    name=b.name,
                    address=b.address,
                    kind=b.kind,
                    lng=b.lng,
                    lat=b.lat,
                    grid=regions[b.grid],
                    units=b.units,
                    floors=b.floors,
                    built_year=b.built_year,
                    area_path=regions[b.grid].path,
                    **stamps,
                )
                for b in plan.buildings
            ],
            batch_size=BATCH,
        )
    }
    people = []
    for p in plan.people:
        person = Person(
            name=p.name,
            gender=p.gender,
            birth_date=p.birth_date,
            population_type=p.population_type,
            status=p.status,
            origin=p.origin,
            grid=regions[p.grid],
            note=p.note,
            area_path=regions[p.grid].path,
            **stamps,
        )
        person.set_sensitive("id_number", p.id_number)
        person.set_sensitive("phone", p.phone)
        people.append(person)
    people = Person.objects.bulk_create(people, batch_size=BATCH)
    houses = House.objects.bulk_create(
        [
            House(
                building=buildings[h.building],
                unit=h.unit,
                floor=h.floor,
                room=h.room,
                area_m2=h.area_m2,
                use=h.use,
                owner=people[h.owner] if h.owner is not None else None,
                area_path=buildings[h.building].area_path,
                **stamps,
            )
            for h in plan.houses
        ],
        batch_size=BATCH,
    )
    Residency.objects.bulk_create(
        [
            Residency(
                person=people[r.person],
                house=houses[r.house],
                relation=r.relation,
                start_date=r.start_date,
                end_date=r.end_date,
                area_path=houses[r.house].area_path,
                **stamps,
            )
            for r in plan.residencies
        ],
        batch_size=BATCH,
    )
    CareTag.objects.bulk_create(
        [
            CareTag(
                person=people[t.person],
                kind=t.kind,
                level=t.level,
                source=t.source,
                verified_on=t.verified_on,
                area_path=people[t.person].area_path,
                **stamps,
            )
            for t in plan.care_tags
        ],
        batch_size=BATCH,
    )

    # --- enterprises ----------------------------------------------------------------------------------
    enterprises = Enterprise.objects.bulk_create(
        [
            Enterprise(
                name=e.name,
                credit_code=e.credit_code,
                legal_representative=e.legal_representative,
                registered_address=e.registered_address,
                building=buildings[e.building] if e.building else None,
                house=houses[e.house] if e.house is not None else None,
                grid=regions[e.grid],
                industry=e.industry,
                status=e.status,
                established_on=e.established_on,
                registered_capital=e.registered_capital,
                employees=e.employees,
                tax_region_code=e.tax_region_code,
                area_path=regions[e.grid].path,
                **stamps,
            )
            for e in plan.enterprises
        ],
        batch_size=BATCH,
    )
    Executive.objects.bulk_create(
        [
            Executive(
                enterprise=enterprises[x.enterprise],
                name=x.name,
                position=x.position,
                start_date=x.start_date,
                end_date=x.end_date,
                area_path=enterprises[x.enterprise].area_path,
                **stamps,
            )
            for x in plan.executives
        ],
        batch_size=BATCH,
    )
    TaxRecord.objects.bulk_create(
        [
            TaxRecord(
                enterprise=enterprises[t.enterprise],
                period=t.period,
                revenue=t.revenue,
                tax_paid=t.tax_paid,
                tax_paid_here=t.tax_paid_here,
                area_path=enterprises[t.enterprise].area_path,
                **stamps,
            )
            for t in plan.tax_records
        ],
        batch_size=BATCH,
    )

    counts = {
        "geo.region": len(plan.regions),
        "geo.building": len(plan.buildings),
        "people.house": len(plan.houses),
        "people.person": len(plan.people),
        "people.residency": len(plan.residencies),
        "people.caretag": len(plan.care_tags),
        "enterprises.enterprise": len(plan.enterprises),
        "enterprises.executive": len(plan.executives),
        "enterprises.taxrecord": len(plan.tax_records),
        "orgs.orgunit": len(plan.org_units),
    }
    models = {
        "geo.region": Region,
        "geo.building": Building,
        "people.house": House,
        "people.person": Person,
        "people.residency": Residency,
        "people.caretag": CareTag,
        "enterprises.enterprise": Enterprise,
        "enterprises.executive": Executive,
        "enterprises.taxrecord": TaxRecord,
        "orgs.orgunit": OrgUnit,
    }
    street_path = regions[plan.regions[1].code].path
    ChangeLogEntry.objects.bulk_create(
        [
            ChangeLogEntry(
                at=now,
                actor=admin,
                content_type=ContentType.objects.get_for_model(models[key]),
                object_id="demo",
                object_repr=f"演示数据载入 demo data loaded: {n} 行 rows",
                action="import",
                after={"rows": n, "seed": plan.seed, "scale": plan.scale},
                area_path=street_path,
            )
            for key, n in counts.items()
        ]
    )
    transaction.on_commit(spatial.invalidate)
    spatial.invalidate()
    return counts
