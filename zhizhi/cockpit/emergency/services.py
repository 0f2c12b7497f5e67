"""Emergency mode's rules: declare an incident over an area, list who is in it (people of special
care first), assign one evacuation task per household to the workers of its grid, broadcast
instructions, mark households from the phone, raise help requests, and read the board.

Who may do what (the incident is street-wide for the command centre; workers see their own tasks):
- declare, broadcast, close, read the board and the whole list of people of special care: the
  street leader, the command centre (dispatcher) and an administrator, within their area;
- a grid worker or community worker: their own tasks; may mark a household of a grid they serve;
  a community worker sees the people of special care of their own community only.

Declaration is set-based (a few queries and bulk inserts whatever the size of the area), so 10,000
households are listed, assigned and notified in seconds.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Q, QuerySet, Sum
from django.utils.dateparse import parse_datetime

from zhizhi import clock, live
from zhizhi.cockpit.emergency import area as areas
from zhizhi.cockpit.emergency.models import (
    EvacuationTask,
    HelpRequest,
    Incident,
    IncidentBuilding,
    IncidentEvent,
)
from zhizhi.geo.models import Building, Region
from zhizhi.notify import broadcast as notify_broadcast
from zhizhi.notify import services as notify_services
from zhizhi.notify.models import Broadcast as NotifyBroadcast
from zhizhi.notify.models import BroadcastRecipient, OutboxMessage
from zhizhi.orgs.models import OrgUnit, User
from zhizhi.people.models import CareTag, House, Person, Residency
from zhizhi.permissions import reveal, scope_paths
from zhizhi.problems import Forbidden, Invalid, Problem

CHANNEL = "emergency"  # the live event channel of the boards
COMMAND_ROLES = ("street_leader", "dispatcher")
WORKER_ROLES = ("grid_worker", "community_worker")
STAFF_ROLES = ("street_leader", "dispatcher", "dept_staff", "community_worker", "grid_worker")
BROADCAST_CHANNELS = ("inbox", "sms", "dingtalk", "wecom")
GOLDEN_MINUTES = 10
ELDERLY_AGE = 80  # listed as 高龄 from the birth date even when nobody has tagged them yet
ELDERLY_BY_AGE = "elderly_by_age"
KIND_LABELS = {**dict(CareTag.KINDS), ELDERLY_BY_AGE: "高龄(按出生日期)"}
PRIORITY = {**CareTag.PRIORITY, ELDERLY_BY_AGE: CareTag.PRIORITY["elderly_80"]}
OUTCOME_LABELS = dict(EvacuationTask.STATUSES)


def _problem(code: str, zh: str, en: str, fld: str = "", value: Any = None) -> Problem:
    return Problem(code, zh, en, field=fld, value=value)


# --- who may ------------------------------------------------------------------------------------
def is_commander(user: Any) -> bool:
    return bool(
        user is not None
        and getattr(user, "is_authenticated", False)
        and (user.is_superuser or getattr(user, "role", "") in COMMAND_ROLES)
    )


def _in_scope(user: Any, path: str) -> bool:
    """Whether `path` lies under one of the user's regions."""
    if user.is_superuser:
        return True
    return any(path.startswith(p) for p in scope_paths(user) if p)


def _touches(user: Any, path: str) -> bool:
    """Whether the user's area and `path` overlap (either contains the other)."""
    if user.is_superuser:
        return True
    return any(p and (path.startswith(p) or p.startswith(path)) for p in scope_paths(user))


def incidents_for(user: Any) -> QuerySet[Incident]:
    """The incidents a user may open: a commander's area, or those where the user has a task."""
    if user is None or not getattr(user, "is_authenticated", False):
        return Incident.objects.none()
    if user.is_superuser:
        return Incident.objects.all()
    q = Q(pk__in=EvacuationTask.objects.filter(assignee=user).values("incident_id"))
    if is_commander(user):
        for path in scope_paths(user):
            q |= Q(area_path__startswith=path)
    return Incident.objects.filter(q)


def get_incident(user: Any, pk: int) -> Incident:
    incident = incidents_for(user).select_related("street", "declared_by").filter(pk=pk).first()
    if incident is None:
        from django.http import Http404

        raise Http404("应急事件不存在或不在您的辖区内 / No such incident in your area")
    return incident


def require_commander(user: Any, incident: Incident | None = None) -> None:
    if not is_commander(user) or (incident is not None and not _in_scope(user, incident.area_path)):
        raise Forbidden(
            "只有街道领导、指挥中心坐席或管理员可以执行此操作",
            "Only the street leader, the command centre or an administrator may do this",
        )


# --- declaring ----------------------------------------------------------------------------------
@dataclass
class Declared:
    incident: Incident
    created: bool
    warnings: list[Problem] = field(default_factory=list)


def _streets_in_scope(user: Any) -> list[tuple[Region, Any]]:
    """The streets the user commands, each with its shape (its boundary, else its grids' union)."""
    streets = Region.objects.filter(level=Region.STREET)
    if not user.is_superuser:
        q = Q(pk__in=[])
        for path in scope_paths(user):
            q |= Q(path__startswith=path) | Q(path=path)
        # A user whose area is one community still belongs to that community's street.
        for path in scope_paths(user):
            parts = [p for p in path.strip("/").split("/") if p]
            for depth in range(1, len(parts)):
                q |= Q(path="/" + "/".join(parts[:depth]) + "/")
        streets = streets.filter(q)
    out = []
    for street in streets:
        geom = areas.boundary_of([street.boundary]) if street.boundary else None
        if geom is None:
            geom = areas.boundary_of(
                Region.objects.filter(path__startswith=street.path, level=Region.GRID).values_list(
                    "boundary", flat=True
                )
            )
        if geom is not None:
            out.append((street, geom))
    return out


def _scope_buildings(user: Any) -> QuerySet[Building]:
    return Building.objects.visible_to(user) if not user.is_superuser else Building.objects.all()


def _parse_time(value: Any, problems: list[Problem]) -> dt.datetime:
    now = clock.now()
    if value in (None, ""):
        return now
    moment = value if isinstance(value, dt.datetime) else parse_datetime(str(value).strip())
    if moment is None:
        problems.append(
            _problem(
                "occurred_at_format",
                "发生时间格式不对，应为 2026-08-28 09:30",
                "The time is not a date and time such as 2026-08-28 09:30",
                "occurred_at",
                str(value),
            )
        )
        return now
    if moment.tzinfo is None:
        from django.utils import timezone

        moment = timezone.make_aware(moment)
    if moment > now + dt.timedelta(minutes=5):
        problems.append(
            _problem(
                "occurred_at_future",
                "发生时间晚于现在",
                "The time of the incident is in the future",
                "occurred_at",
                moment.isoformat(),
            )
        )
    elif moment < now - dt.timedelta(days=7):
        problems.append(
            _problem(
                "occurred_at_old",
                "发生时间早于7天前：应急模式用于正在发生的事件",
                "The incident happened more than 7 days ago: emergency mode is for what is happening now",
                "occurred_at",
                moment.isoformat(),
            )
        )
    return moment


def declare_incident(
    actor: Any,
    *,
    kind: str,
    area_mode: str,
    title: str = "",
    occurred_at: Any = None,
    location: str = "",
    lng: Any = None,
    lat: Any = None,
    note: str = "",
    polygon: Any = None,
    center_lng: Any = None,
    center_lat: Any = None,
    radius_m: Any = None,
    building_ids: list[Any] | None = None,
    request_id: str = "",
) -> Declared:
    """启动应急: validate the incident, fix its area, and in one transaction create it with one
    evacuation task per household, the assignment, the workers' notifications and the timeline.
    The same `request_id` again returns the incident it created."""
    require_commander(actor)
    request_id = (request_id or "").strip()[:64]
    if request_id:
        existing = Incident.objects.filter(request_id=request_id).first()
        if existing is not None:
            return Declared(existing, False)
    problems: list[Problem] = []
    if kind not in dict(Incident.KINDS):
        problems.append(
            _problem(
                "kind",
                "请选择事件类型：塌陷、火灾、内涝、燃气泄漏或其他",
                "Choose the kind: collapse, fire, flood, gas leak or other",
                "kind",
                kind,
            )
        )
    moment = _parse_time(occurred_at, problems)
    point: tuple[float, float] | None = None
    if lng not in (None, "") or lat not in (None, ""):
        try:
            from zhizhi import validators

            point = validators.coordinates(lng, lat, field="location")
        except Invalid as exc:
            problems.extend(exc.problems)
    title = (title or "").strip()
    location = (location or "").strip()
    if len(title) > 100:
        problems.append(
            _problem("title_long", "标题最多100字", "The title is at most 100 characters", "title")
        )
    if len(location) > 200:
        problems.append(
            _problem("location_long", "地点最多200字", "The location is at most 200 characters", "location")
        )
    scope_buildings = list(_scope_buildings(actor).values_list("pk", "lng", "lat"))
    try:
        area = areas.parse_area(
            area_mode,
            polygon=polygon,
            center_lng=center_lng,
            center_lat=center_lat,
            radius_m=radius_m,
            building_ids=building_ids,
            buildings_by_id={pk: (x, y) for pk, x, y in scope_buildings},
        )
    except Invalid as exc:
        problems.extend(exc.problems)
        raise Invalid(problems) from None
    # Which of the declarer's streets the area lies in (the one it overlaps most).
    overlaps = [
        (geom.intersection(area.geometry).area, street, geom) for street, geom in _streets_in_scope(actor)
    ]
    overlaps = [o for o in overlaps if o[0] > 0]
    if not overlaps:
        problems.append(
            _problem(
                "area_outside",
                "疏散范围不在您管辖的街道内",
                "The evacuation area lies outside the street you command",
                "area",
            )
        )
    if problems:
        raise Invalid(problems)
    _, street, _geom = max(overlaps, key=lambda o: o[0])
    if area.building_ids is not None:
        building_ids_in = area.building_ids
    else:
        inside = areas.points_inside(area.geometry, scope_buildings)
        building_ids_in = list(
            Building.objects.filter(pk__in=inside, grid__path__startswith=street.path).values_list(
                "pk", flat=True
            )
        )
    if point is None and area.center is not None:
        point = area.center
    if point is None:
        c = area.geometry.centroid
        point = (round(c.x, 6), round(c.y, 6))
    if not title:
        label = dict(Incident.KINDS).get(kind, "")
        title = f"{location or street.name}{label}"[:100]
    for attempt in range(3):
        try:
            with transaction.atomic():
                return _create(
                    actor,
                    street=street,
                    kind=kind,
                    title=title,
                    occurred_at=moment,
                    location=location,
                    point=point,
                    note=note,
                    area=area,
                    building_ids=building_ids_in,
                    request_id=request_id,
                )
        except IntegrityError:
            # A concurrent retry with the same request id won the race: answer with its incident.
            if request_id:
                existing = Incident.objects.filter(request_id=request_id).first()
                if existing is not None:
                    return Declared(existing, False)
            # Otherwise two declarations took the same number at once: take the next one.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _next_number(day: dt.date) -> str:
    prefix = f"YJ{day:%Y%m%d}"
    last = (
        Incident.objects.filter(number__startswith=prefix)
        .order_by("-number")
        .values_list("number", flat=True)
    ).first()
    seq = int(last[len(prefix) :]) + 1 if last else 1
    return f"{prefix}{seq:03d}"


@dataclass
class Household:
    house_id: int
    building_id: int
    grid_id: int
    community_id: int
    unit: int
    floor: int
    room: str
    code: str
    persons: set[int] = field(default_factory=set)
    vulnerable: set[int] = field(default_factory=set)
    priority: int = 0


def households_in(building_ids: list[int], on: dt.date | None = None) -> dict[int, Household]:
    """Houses with current residents in these buildings, with their people of special care:
    two queries whatever the number of buildings."""
    day = on or clock.today()
    current = Residency.objects.current(day).filter(
        house__building_id__in=building_ids, person__status="active"
    )
    out: dict[int, Household] = {}
    rows = current.values_list(
        "house_id",
        "person_id",
        "house__building_id",
        "house__building__grid_id",
        "house__building__grid__parent_id",
        "house__unit",
        "house__floor",
        "house__room",
        "house__building__code",
    )
    for house_id, person_id, b_id, g_id, c_id, unit, floor, room, code in rows:
        h = out.get(house_id)
        if h is None:
            h = out[house_id] = Household(house_id, b_id, g_id, c_id, unit, floor, room, code)
        h.persons.add(person_id)
    if not out:
        return out
    person_house = {p: h for h in out.values() for p in h.persons}
    kinds = _care_kinds(current.values("person_id"), day)
    for person_id, person_kinds in kinds.items():
        h = person_house.get(person_id)
        if h is None:
            continue
        h.vulnerable.add(person_id)
        h.priority = max(h.priority, *(PRIORITY.get(k, 0) for k in person_kinds))
    return out


def _care_kinds(person_ids: Any, day: dt.date) -> dict[int, list[str]]:
    """person → care kinds (highest priority first), counting people aged 80+ as 高龄 even untagged."""
    kinds: dict[int, list[str]] = defaultdict(list)
    for person_id, kind in CareTag.objects.filter(person_id__in=person_ids).values_list("person_id", "kind"):
        kinds[person_id].append(kind)
    # Born on or before this day eighty years ago (29 February falls back to the 28th).
    cutoff = day.replace(year=day.year - ELDERLY_AGE, day=min(day.day, 28) if day.month == 2 else day.day)
    for person_id in Person.objects.filter(pk__in=person_ids, birth_date__lte=cutoff).values_list(
        "pk", flat=True
    ):
        if "elderly_80" not in kinds[person_id]:
            kinds[person_id].append(ELDERLY_BY_AGE)
    return {p: sorted(k, key=lambda x: -PRIORITY.get(x, 0)) for p, k in kinds.items() if k}


def workers_for(grid_ids: set[int]) -> tuple[dict[int, list[int]], dict[int, list[int]], dict[int, str]]:
    """Grid workers per grid and community (social) workers per community, with their names."""
    grid_workers: dict[int, list[int]] = defaultdict(list)
    social: dict[int, list[int]] = defaultdict(list)
    names: dict[int, str] = {}
    grids = dict(Region.objects.filter(pk__in=grid_ids).values_list("pk", "parent_id"))
    community_ids = {c for c in grids.values() if c}
    rows = (
        User.objects.filter(is_active=True, role="grid_worker", regions__in=list(grid_ids))
        .values_list("pk", "regions", "full_name", "username")
        .order_by("pk")
    )
    for pk, region, full, username in rows:
        if pk not in grid_workers[region]:
            grid_workers[region].append(pk)
        names[pk] = full or username
    rows = (
        User.objects.filter(is_active=True, role="community_worker")
        .filter(Q(regions__in=list(community_ids)) | Q(org_unit__region__in=list(community_ids)))
        .values_list("pk", "regions", "org_unit__region", "full_name", "username")
        .order_by("pk")
    )
    for pk, region, unit_region, full, username in rows:
        community = region if region in community_ids else unit_region
        if community in community_ids and pk not in social[community]:
            social[community].append(pk)
        names[pk] = full or username
    return grid_workers, social, names


def _open_load(user_ids: set[int]) -> Counter[int]:
    """Open evacuation tasks each worker already holds in active incidents."""
    rows = (
        EvacuationTask.objects.filter(
            assignee_id__in=list(user_ids),
            status__in=(EvacuationTask.PENDING, "needs_help"),
            incident__status=Incident.ACTIVE,
        )
        .values_list("assignee_id")
        .annotate(n=Count("pk"))
    )
    return Counter(dict(rows))


def _create(
    actor: Any,
    *,
    street: Region,
    kind: str,
    title: str,
    occurred_at: dt.datetime,
    location: str,
    point: tuple[float, float],
    note: str,
    area: areas.Area,
    building_ids: list[int],
    request_id: str,
) -> Declared:
    now = clock.now()
    households = households_in(building_ids)
    # Vulnerable households first, the most fragile first; then building, unit, floor, room.
    ordered = sorted(
        households.values(), key=lambda h: (-h.priority, -len(h.vulnerable), h.code, h.unit, h.floor, h.room)
    )
    per_building: dict[int, list[int]] = {b: [0, 0, 0] for b in building_ids}
    for h in ordered:
        row = per_building.setdefault(h.building_id, [0, 0, 0])
        row[0] += 1
        row[1] += len(h.persons)
        row[2] += len(h.vulnerable)
    incident = Incident(
        number=_next_number(clock.today()),
        kind=kind,
        title=title,
        occurred_at=occurred_at,
        declared_at=now,
        declared_by=actor,
        location=location,
        lng=point[0],
        lat=point[1],
        note=note or "",
        street=street,
        area_mode=area.mode,
        radius_m=area.radius_m,
        area=area.geojson,
        request_id=request_id or None,
        buildings_total=len(per_building),
        houses_total=House.objects.filter(building_id__in=building_ids).count(),
        households_total=len(ordered),
        residents_total=sum(len(h.persons) for h in ordered),
        vulnerable_total=sum(len(h.vulnerable) for h in ordered),
    )
    incident.save()
    IncidentBuilding.objects.bulk_create(
        [
            IncidentBuilding(
                incident=incident, building_id=b, households=r[0], residents=r[1], vulnerable=r[2]
            )
            for b, r in per_building.items()
        ],
        batch_size=1000,
    )
    grid_workers, social, _names = workers_for({h.grid_id for h in ordered})
    everyone = {u for v in grid_workers.values() for u in v} | {u for v in social.values() for u in v}
    load = _open_load(everyone)
    paths = dict(Region.objects.filter(pk__in={h.grid_id for h in ordered}).values_list("pk", "path"))
    rows: list[tuple[Any, ...]] = []
    per_user: dict[int, list[int]] = defaultdict(lambda: [0, 0])  # worker → [households, vulnerable]
    unassigned: Counter[int] = Counter()
    stamp = connection.ops.adapt_datetimefield_value(now)
    for seq, h in enumerate(ordered, start=1):
        pool = grid_workers.get(h.grid_id, []) + [
            u for u in social.get(h.community_id, []) if u not in grid_workers.get(h.grid_id, [])
        ]
        # Least-loaded within the grid's pool; ties go round the pool in its order.
        assignee = min(pool, key=lambda u: (load[u], pool.index(u))) if pool else None
        if assignee is not None:
            load[assignee] += 1
            per_user[assignee][0] += 1
            per_user[assignee][1] += 1 if h.vulnerable else 0
        else:
            unassigned[h.grid_id] += 1
        rows.append(
            (
                incident.pk,
                h.house_id,
                h.building_id,
                h.grid_id,
                assignee,
                seq,
                h.priority,
                len(h.persons),
                len(h.vulnerable),
                EvacuationTask.PENDING,
                stamp if assignee else None,
                "",
                paths.get(h.grid_id, street.path),
            )
        )
    insert_tasks(rows)
    _notify_assignees(incident, per_user)
    warnings: list[Problem] = []
    if not ordered:
        warnings.append(
            _problem(
                "no_residents",
                "疏散范围内没有登记的现住居民：事件已启动，但没有生成撤离任务",
                "No registered residents live in the area: the incident is declared without evacuation tasks",
                "area",
            )
        )
    if unassigned:
        names = dict(Region.objects.filter(pk__in=list(unassigned)).values_list("pk", "name"))
        listed = "、".join(f"{names.get(g, g)}({n}户)" for g, n in unassigned.items())
        warnings.append(
            _problem(
                "unassigned",
                f"以下网格没有网格员或社工，任务未分派：{listed}",
                f"These grids have no grid worker or community worker; their tasks are unassigned: {listed}",
                "assignee",
                sum(unassigned.values()),
            )
        )
    IncidentEvent.objects.bulk_create(
        [
            IncidentEvent(
                incident=incident,
                at=now,
                kind="declared",
                actor=actor,
                text=f"启动应急：{incident.title}（{incident.get_area_mode_display()}，{len(per_building)}幢楼）",
                data={
                    "area_mode": area.mode,
                    "radius_m": area.radius_m,
                    "buildings": len(per_building),
                    "households": len(ordered),
                    "residents": incident.residents_total,
                    "vulnerable": incident.vulnerable_total,
                    "warnings": [w.code for w in warnings],
                },
            ),
            IncidentEvent(
                incident=incident,
                at=now,
                kind="assigned",
                actor=actor,
                text=f"分派撤离任务{len(rows) - sum(unassigned.values())}户给{len(per_user)}名工作人员",
                data={
                    "tasks": len(rows),
                    "unassigned": sum(unassigned.values()),
                    "by_worker": {str(u): n[0] for u, n in per_user.items()},
                },
            ),
        ]
    )
    live.publish(
        CHANNEL,
        {"incident": incident.pk, "type": "declared", "number": incident.number},
        area_path=street.path,
    )
    return Declared(incident, True, warnings)


TASK_COLUMNS = (
    "incident_id",
    "house_id",
    "building_id",
    "grid_id",
    "assignee_id",
    "seq",
    "priority",
    "residents",
    "vulnerable",
    "status",
    "assigned_at",
    "note",
    "area_path",
)


def insert_tasks(rows: list[tuple[Any, ...]]) -> None:
    """Task rows (values in TASK_COLUMNS order), set-based: COPY on PostgreSQL, multi-row INSERTs of
    up to 1,000 rows elsewhere. Building thousands of model instances and compiling bulk_create
    batches cost more than the database does; on PostgreSQL even the client's parsing of one huge
    parameterised INSERT does, which COPY avoids."""
    if not rows:
        return
    qn = connection.ops.quote_name
    # Table and column names are the model's own; every value is a parameter (or COPY data).
    table, columns = qn(EvacuationTask._meta.db_table), ", ".join(qn(c) for c in TASK_COLUMNS)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        width = len(TASK_COLUMNS)
        chunk = max(1, min(1000, (connection.features.max_query_params or 65535) // width))
        head = f"INSERT INTO {table} ({columns}) VALUES "  # noqa: S608
        one = "(" + ", ".join(["%s"] * width) + ")"
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            cursor.execute(head + ", ".join([one] * len(part)), [v for row in part for v in row])


def _to_staff(
    incident: Incident, user_id: int, subject: str, body: str, link: str, key: str, channel: str = "inbox"
) -> OutboxMessage:
    """An outbox row to a staff member about the incident; `key` names what it is about."""
    return OutboxMessage(
        channel=channel,
        recipient=f"user:{user_id}",
        user_id=user_id,
        subject=subject,
        body=body,
        link=link,
        idempotency_key=f"emergency:{incident.pk}:{key}:{channel}",
        cause=f"emergency.incident:{incident.pk}",
    )


def _notify_assignees(incident: Incident, per_user: dict[int, list[int]]) -> None:
    if not per_user:
        return
    phones = set(
        User.objects.filter(pk__in=list(per_user)).exclude(phone_enc="").values_list("pk", flat=True)
    )
    link = f"/emergency/{incident.pk}/mine/"
    subject = f"【紧急】{incident.number} 撤离任务"
    rows = []
    for user_id, (households, vulnerable) in per_user.items():
        body = (
            f"{incident.title}：请立即组织撤离您负责的{households}户"
            f"（其中重点人群{vulnerable}户，优先撤离）。打开 {link} 逐户标记。"
        )
        for channel in ("inbox", "sms") if user_id in phones else ("inbox",):
            rows.append(_to_staff(incident, user_id, subject, body, link, f"tasks:user:{user_id}", channel))
    notify_services.enqueue_many(rows)


# --- who is in the area ---------------------------------------------------------------------------
def affected_buildings(incident: Incident) -> list[dict[str, Any]]:
    """Per building: households, residents and people of special care, and the progress so far."""
    done = dict(
        EvacuationTask.objects.filter(incident=incident, status__in=EvacuationTask.DONE)
        .values_list("building_id")
        .annotate(n=Count("pk"))
    )
    rows = IncidentBuilding.objects.filter(incident=incident).select_related("building", "building__grid")
    out = [
        {
            "id": r.building_id,
            "code": r.building.code,
            "name": r.building.name,
            "grid": r.building.grid.name,
            "lng": r.building.lng,
            "lat": r.building.lat,
            "households": r.households,
            "residents": r.residents,
            "vulnerable": r.vulnerable,
            "done": done.get(r.building_id, 0),
        }
        for r in rows
    ]
    return sorted(out, key=lambda r: (-r["households"], r["code"]))


@dataclass
class CarePerson:
    person_id: int
    name: str
    age: int
    gender: str
    phone_masked: str
    kinds: list[str]
    priority: int
    building: str
    building_code: str
    unit: int
    floor: int
    room: str
    grid: str
    task_id: int | None
    task_status: str
    assignee: str
    grid_workers: list[str]
    social_workers: list[str]

    @property
    def kind_labels(self) -> list[str]:
        return [KIND_LABELS.get(k, k) for k in self.kinds]

    @property
    def status_label(self) -> str:
        return OUTCOME_LABELS.get(self.task_status, self.task_status)


def care_list(user: Any, incident: Incident) -> list[CarePerson]:
    """The people of special care living in the area's households, most fragile first, with their
    building / unit / floor / room, the household's task, and the responsible workers.

    The command centre sees the whole list; a grid or community worker only the people of the
    area they serve, and nothing (403) when the incident does not touch it."""
    restrict_to: list[str] | None = None
    if not is_commander(user):
        if getattr(user, "role", "") not in WORKER_ROLES:
            raise Forbidden(
                "您的角色不能查看重点人群名单", "Your role may not see the list of people of special care"
            )
        touched = set(EvacuationTask.objects.filter(incident=incident).values_list("area_path", flat=True))
        restrict_to = [p for p in scope_paths(user) if p and any(t.startswith(p) for t in touched)]
        if not restrict_to:
            raise Forbidden(
                "该事件的疏散范围不在您的辖区内",
                "The incident's evacuation area is outside the area you serve",
            )
    elif not _in_scope(user, incident.area_path):
        raise Forbidden("该事件不在您的辖区内", "The incident is outside your area")
    tasks_qs = EvacuationTask.objects.filter(incident=incident, vulnerable__gt=0)
    if restrict_to is not None:
        q = Q(pk__in=[])
        for path in restrict_to:
            q |= Q(area_path__startswith=path)
        tasks_qs = tasks_qs.filter(q)
    tasks = {
        t.house_id: t for t in tasks_qs.select_related("house__building", "grid", "assignee").order_by("seq")
    }
    if not tasks:
        return []
    day = clock.today()
    residencies = Residency.objects.current(day).filter(house_id__in=list(tasks), person__status="active")
    kinds = _care_kinds(residencies.values("person_id"), day)
    people = {
        p.pk: p
        for p in Person.objects.filter(pk__in=list(kinds)).only(
            "pk", "name", "gender", "birth_date", "phone_masked"
        )
    }
    grid_workers, social, names = workers_for({t.grid_id for t in tasks.values()})
    communities = dict(
        Region.objects.filter(pk__in={t.grid_id for t in tasks.values()}).values_list("pk", "parent_id")
    )
    out = []
    for person_id, house_id in residencies.filter(person_id__in=list(kinds)).values_list(
        "person_id", "house_id"
    ):
        p, t = people.get(person_id), tasks[house_id]
        if p is None:
            continue
        k = kinds[person_id]
        out.append(
            CarePerson(
                person_id=person_id,
                name=p.name,
                age=p.age,
                gender=p.get_gender_display(),
                phone_masked=p.phone_masked,
                kinds=k,
                priority=PRIORITY.get(k[0], 0),
                building=t.house.building.name,
                building_code=t.house.building.code,
                unit=t.house.unit,
                floor=t.house.floor,
                room=t.house.room,
                grid=t.grid.name,
                task_id=t.pk,
                task_status=t.status,
                assignee=str(t.assignee) if t.assignee else "",
                grid_workers=[names[u] for u in grid_workers.get(t.grid_id, [])],
                social_workers=[names[u] for u in social.get(communities.get(t.grid_id) or 0, [])],
            )
        )
    out.sort(key=lambda c: (-c.priority, -len(c.kinds), c.building_code, c.unit, c.floor, c.room, c.name))
    return out


def reveal_phones(
    user: Any, incident: Incident, person_ids: list[int], ip: str | None = None
) -> dict[int, str]:
    """Phones of people in the incident's list, each reveal logged with the purpose
    "emergency <number>". People the user may not reveal are left out (the caller shows that)."""
    allowed = {c.person_id for c in care_list(user, incident)}
    # A worker's own households also count (not only people of special care).
    allowed |= (
        set(
            Residency.objects.current()
            .filter(house_id__in=tasks_for(user, incident).values("house_id"))
            .values_list("person_id", flat=True)
        )
        if not is_commander(user)
        else set()
    )
    out: dict[int, str] = {}
    for person in Person.objects.filter(pk__in=[p for p in person_ids if p in allowed]):
        try:
            value = reveal(user, person, "phone", incident.purpose, ip=ip)
        except Forbidden:
            continue
        out[person.pk] = value
    if out:
        IncidentEvent.objects.create(
            incident=incident,
            kind="reveal",
            actor=user,
            text=f"查看{len(out)}人联系电话",
            data={"people": sorted(out)},
        )
    return out


# --- broadcast ----------------------------------------------------------------------------------
def incident_ref(incident: Incident) -> str:
    """How the platform's broadcasts (zhizhi/notify/broadcast.py) name this incident."""
    return f"emergency.incident:{incident.pk}"


def broadcasts_of(incident: Incident) -> QuerySet[NotifyBroadcast]:
    return NotifyBroadcast.objects.filter(incident_ref=incident_ref(incident)).order_by("created_at", "id")


def broadcast(
    actor: Any,
    incident: Incident,
    *,
    subject: str,
    body: str,
    to_all: bool = True,
    unit_ids: list[Any] | None = None,
    roles: list[str] | None = None,
    channels: list[str] | None = None,
    request_id: str = "",
) -> NotifyBroadcast:
    """发布指令: the platform's staff broadcast (outbox, read receipts) tied to this incident.
    The inbox is always one of the channels: it is where read receipts come from."""
    require_commander(actor, incident)
    if incident.status != Incident.ACTIVE:
        raise Invalid([_problem("incident_closed", "应急事件已结束", "The incident is closed", "status")])
    chosen = ["inbox", *[c for c in (channels or []) if c != "inbox"]]
    units: list[Any] = []
    problems: list[Problem] = []
    for raw in unit_ids or []:
        try:
            units.append(int(raw))
        except (TypeError, ValueError):
            problems.append(
                _problem("unit", f"单位编号无效：{raw}", f"Not a unit id: {raw}", "units", str(raw))
            )
    missing = set(units) - set(OrgUnit.objects.filter(pk__in=units).values_list("pk", flat=True))
    if missing:
        problems.append(
            _problem(
                "unit_unknown",
                f"单位不存在：{sorted(missing)}",
                f"No such unit: {sorted(missing)}",
                "units",
                ",".join(map(str, sorted(missing))),
            )
        )
    if problems:
        raise Invalid(problems)
    with transaction.atomic():
        item = notify_broadcast.send_broadcast(
            actor,
            subject=subject,
            body=body,
            roles=list(roles or []),
            units=units,
            all_staff=to_all,
            channels=chosen,
            link=f"/emergency/{incident.pk}/mine/",
            request_id=request_id,
            incident_ref=incident_ref(incident),
        )
        _, created = IncidentEvent.objects.get_or_create(
            request_id=f"broadcast:{item.pk}",
            defaults={
                "incident": incident,
                "kind": "broadcast",
                "actor": actor,
                "text": f"发布指令「{item.subject}」给{item.total}人（{'、'.join(item.channels)}）",
                "data": {"broadcast": item.pk, "recipients": item.total, "channels": item.channels},
            },
        )
        if created:
            live.publish(
                CHANNEL,
                {"incident": incident.pk, "type": "broadcast", "broadcast": item.pk},
                area_path=incident.area_path,
            )
    return item


@dataclass
class Receipt:
    user_id: int
    name: str
    role: str
    unit: str
    delivered_at: dt.datetime | None
    read_at: dt.datetime | None
    sms: str  # "", pending, sending, sent, dead


def receipts(item: NotifyBroadcast) -> list[Receipt]:
    """Everyone the instruction went to: when it reached them, when they read it, and their SMS."""
    notify_broadcast.sync_delivery(item)
    sms = dict(
        OutboxMessage.objects.filter(
            cause=notify_broadcast.cause_of(item), channel="sms", user__isnull=False
        ).values_list("user_id", "status")
    )
    rows = BroadcastRecipient.objects.filter(broadcast=item).select_related("user", "user__org_unit")
    return [
        Receipt(
            user_id=r.user_id,
            name=str(r.user),
            role=r.user.get_role_display(),
            unit=str(r.user.org_unit) if r.user.org_unit else "",
            delivered_at=r.delivered_at,
            read_at=r.read_at,
            sms=sms.get(r.user_id, ""),
        )
        for r in rows.order_by("read_at", "user_id")
    ]


def receipt_counts(item: NotifyBroadcast) -> dict[str, int]:
    notify_broadcast.sync_delivery(item)
    rows = BroadcastRecipient.objects.filter(broadcast=item)
    return {
        "recipients": item.total,
        "delivered": rows.filter(delivered_at__isnull=False).count(),
        "read": rows.filter(read_at__isnull=False).count(),
    }


# --- the field ------------------------------------------------------------------------------------
def tasks_for(user: Any, incident: Incident) -> QuerySet[EvacuationTask]:
    """A worker's own tasks in this incident (the phone page)."""
    return EvacuationTask.objects.filter(incident=incident, assignee=user)


def _may_mark(user: Any, task: EvacuationTask) -> bool:
    if is_commander(user):
        return _in_scope(user, task.incident.area_path)
    if task.assignee_id == user.pk:
        return True
    return getattr(user, "role", "") in WORKER_ROLES and _in_scope(user, task.area_path)


def board_counts(incident: Incident, building_id: int | None = None) -> dict[str, Any]:
    tasks = EvacuationTask.objects.filter(incident=incident)
    agg = tasks.aggregate(
        done=Count("pk", filter=Q(status__in=EvacuationTask.DONE)),
        vulnerable_done=Sum("vulnerable", filter=Q(status__in=EvacuationTask.DONE)),
        help=Count("pk", filter=Q(status="needs_help")),
        unassigned=Count("pk", filter=Q(assignee__isnull=True)),
    )
    out = {
        "households_done": agg["done"] or 0,
        "households_total": incident.households_total,
        "vulnerable_done": agg["vulnerable_done"] or 0,
        "vulnerable_total": incident.vulnerable_total,
        "needs_help": agg["help"] or 0,
        "unassigned": agg["unassigned"] or 0,
    }
    if building_id is not None:
        out["building"] = {
            "id": building_id,
            "done": tasks.filter(building_id=building_id, status__in=EvacuationTask.DONE).count(),
        }
    return out


def mark_task(
    actor: Any, task_id: int, status: str, *, note: str = "", request_id: str = ""
) -> EvacuationTask:
    """Mark a household 已撤离 / 无人在家 / 拒绝撤离 / 需要协助. The same mark twice is one event;
    需要协助 raises a help request to the command centre."""
    if status not in dict(EvacuationTask.OUTCOMES):
        raise Invalid(
            [
                _problem(
                    "outcome",
                    "请选择：已撤离、无人在家、拒绝撤离或需要协助",
                    "Choose: evacuated, nobody home, refused or needs help",
                    "status",
                    status,
                )
            ]
        )
    request_id = (request_id or "").strip()[:64]
    with transaction.atomic():
        task = (
            EvacuationTask.objects.select_for_update()
            .select_related("incident", "house__building", "grid")
            .filter(pk=task_id)
            .first()
        )
        if task is None:
            from django.http import Http404

            raise Http404("撤离任务不存在 / No such task")
        if not _may_mark(actor, task):
            raise Forbidden(
                "该住户不在您负责的网格，不能标记",
                "This household is not in a grid you serve; you may not mark it",
            )
        incident = task.incident
        if incident.status != Incident.ACTIVE:
            raise Invalid([_problem("incident_closed", "应急事件已结束", "The incident is closed", "status")])
        # A client's request id counts for this task only (another task's id never hides a mark).
        event_key = f"mark:{task.pk}:{request_id[:40]}" if request_id else None
        if event_key and IncidentEvent.objects.filter(request_id=event_key).exists():
            return task
        if task.status == status:
            return task  # the same mark again (a double tap, a retried request): nothing new
        before = task.status
        now = clock.now()
        task.status = status
        task.marked_at = now
        task.marked_by = actor
        task.note = (note or "")[:200]
        task.save(update_fields=["status", "marked_at", "marked_by", "note"])
        where = f"{task.house.building.name}{task.house.unit}单元{task.house.room}室"
        IncidentEvent.objects.create(
            incident=incident,
            at=now,
            kind="marked",
            actor=actor,
            task=task,
            text=f"{where}：{OUTCOME_LABELS[status]}",
            data={"from": before, "to": status, "note": task.note},
            request_id=event_key,
        )
        help_item = None
        if status == "needs_help":
            help_item = HelpRequest.objects.create(
                incident=incident,
                task=task,
                raised_by=actor,
                raised_at=now,
                note=task.note,
                area_path=task.area_path,
            )
            IncidentEvent.objects.create(
                incident=incident,
                at=now,
                kind="help",
                actor=actor,
                task=task,
                text=f"{where}需要协助：{task.note}",
            )
            _notify_dispatchers(incident, help_item, where)
        elif before == "needs_help":
            HelpRequest.objects.filter(task=task, resolved_at__isnull=True).update(
                resolved_at=now, resolved_by=actor
            )
        payload: dict[str, Any] = {
            "incident": incident.pk,
            "type": "marked",
            "task": task.pk,
            "status": status,
            "status_label": OUTCOME_LABELS[status],
            **board_counts(incident, task.building_id),
        }
        if help_item is not None:
            payload["help"] = {
                "id": help_item.pk,
                "where": where,
                "note": help_item.note,
                "by": str(actor),
                "at": now.isoformat(),
            }
        live.publish(CHANNEL, payload, area_path=task.area_path)
    return task


def assign_task(actor: Any, incident: Incident, task_id: int, user_id: Any) -> EvacuationTask:
    """Give a household to another worker (a grid without workers, a worker who cannot go): the
    command centre only; the worker is notified and the timeline says who moved it."""
    require_commander(actor, incident)
    try:
        uid = int(user_id)
    except (TypeError, ValueError):
        raise Invalid(
            [_problem("assignee", "请选择工作人员", "Choose a worker", "assignee", str(user_id))]
        ) from None
    worker = User.objects.filter(pk=uid, is_active=True, role__in=(*WORKER_ROLES, *COMMAND_ROLES)).first()
    if worker is None or not _touches(worker, incident.area_path):
        raise Invalid(
            [
                _problem(
                    "assignee_unknown",
                    "该人员不存在、已停用，或不是本街道的网格员、社工或指挥中心人员",
                    "No such active grid worker, community worker or command-centre user in this street",
                    "assignee",
                    uid,
                )
            ]
        )
    with transaction.atomic():
        task = (
            EvacuationTask.objects.select_for_update()
            .select_related("house__building")
            .filter(pk=task_id, incident=incident)
            .first()
        )
        if task is None:
            from django.http import Http404

            raise Http404("撤离任务不存在 / No such task")
        if task.assignee_id == worker.pk:
            return task
        before = task.assignee_id
        now = clock.now()
        task.assignee = worker
        task.assigned_at = now
        task.save(update_fields=["assignee", "assigned_at"])
        where = f"{task.house.building.name}{task.house.unit}单元{task.house.room}室"
        IncidentEvent.objects.create(
            incident=incident,
            at=now,
            kind="assigned",
            actor=actor,
            task=task,
            text=f"{where}改派给{worker}",
            data={"from": before, "to": worker.pk},
        )
        link = f"/emergency/{incident.pk}/mine/"
        subject = f"【紧急】{incident.number} 新增撤离住户"
        body = f"{incident.title}：请撤离{where}。打开 {link} 标记。"
        key = f"task:{task.pk}:at:{now.timestamp():.6f}"
        notify_services.enqueue_many([_to_staff(incident, worker.pk, subject, body, link, key)])
    return task


def reassign_choices(incident: Incident) -> list[tuple[int, str]]:
    """Who a household may be given to: the street's grid and community workers, by name."""
    path = incident.area_path
    users = (
        User.objects.filter(is_active=True, role__in=WORKER_ROLES)
        .filter(Q(regions__path__startswith=path) | Q(org_unit__region__path__startswith=path))
        .distinct()
        .order_by("role", "username")
    )
    return [(u.pk, f"{u}（{u.get_role_display()}）") for u in users]


def _notify_dispatchers(incident: Incident, item: HelpRequest, where: str) -> None:
    parts = [p for p in incident.area_path.strip("/").split("/") if p]
    ancestors = ["/" + "/".join(parts[:d]) + "/" for d in range(1, len(parts) + 1)]
    users = (
        User.objects.filter(is_active=True, role="dispatcher")
        .filter(Q(regions__path__in=ancestors) | Q(org_unit__region__path__in=ancestors))
        .distinct()
    )
    link = f"/emergency/{incident.pk}/"
    subject = f"【需要协助】{incident.number} {where}"
    body = f"{item.raised_by}：{where}需要协助。{item.note}"
    notify_services.enqueue_many(
        [_to_staff(incident, u.pk, subject, body, link, f"help:{item.pk}:user:{u.pk}") for u in users]
    )


def resolve_help(actor: Any, incident: Incident, help_id: int) -> HelpRequest:
    require_commander(actor, incident)
    with transaction.atomic():
        item = HelpRequest.objects.select_for_update().filter(pk=help_id, incident=incident).first()
        if item is None:
            from django.http import Http404

            raise Http404("协助请求不存在 / No such help request")
        if item.resolved_at is None:
            item.resolved_at = clock.now()
            item.resolved_by = actor
            item.save(update_fields=["resolved_at", "resolved_by"])
            IncidentEvent.objects.create(
                incident=incident, kind="help_resolved", actor=actor, task=item.task, text="协助请求已处理"
            )
            live.publish(
                CHANNEL,
                {"incident": incident.pk, "type": "help_resolved", "help": item.pk},
                area_path=incident.area_path,
            )
    return item


def close_incident(actor: Any, incident: Incident) -> Incident:
    require_commander(actor, incident)
    with transaction.atomic():
        locked = Incident.objects.select_for_update().get(pk=incident.pk)
        if locked.status == Incident.ACTIVE:
            locked.status = Incident.CLOSED
            locked.closed_at = clock.now()
            locked.save()
            IncidentEvent.objects.create(incident=locked, kind="closed", actor=actor, text="结束应急")
            live.publish(CHANNEL, {"incident": locked.pk, "type": "closed"}, area_path=locked.area_path)
    return locked


# --- the board ---------------------------------------------------------------------------------------
def elapsed(incident: Incident) -> dt.timedelta:
    end = incident.closed_at or clock.now()
    return end - incident.declared_at


def overlapping(incident: Incident) -> list[Incident]:
    """Other active incidents sharing households with this one (each keeps its own tasks)."""
    houses = EvacuationTask.objects.filter(incident=incident).values("house_id")
    ids = (
        EvacuationTask.objects.filter(house_id__in=houses)
        .exclude(incident=incident)
        .values_list("incident_id", flat=True)
        .distinct()
    )
    return list(Incident.objects.filter(pk__in=list(ids)).order_by("declared_at"))


def open_help(incident: Incident) -> QuerySet[HelpRequest]:
    return (
        HelpRequest.objects.filter(incident=incident, resolved_at__isnull=True)
        .select_related("task__house__building", "raised_by")
        .order_by("raised_at")
    )


def cameras_for(incident: Incident) -> list[dict[str, Any]]:
    """Cameras standing in the area or looking into it, nearest to the centre first."""
    from shapely.geometry import shape

    from zhizhi.intake.models import Camera

    geom = shape(incident.area)
    minx, miny, maxx, maxy = geom.bounds
    dlng, dlat = areas.metres_to_degrees(2000, (miny + maxy) / 2)
    near = Camera.objects.filter(
        enabled=True, lng__gte=minx - dlng, lng__lte=maxx + dlng, lat__gte=miny - dlat, lat__lte=maxy + dlat
    )
    out = []
    centre = geom.centroid
    for cam in near:
        how = areas.camera_sees(geom, cam)
        if how:
            out.append(
                {
                    "id": cam.pk,
                    "code": cam.code,
                    "name": cam.name,
                    "lng": cam.lng,
                    "lat": cam.lat,
                    "heading": cam.heading,
                    "fov_deg": cam.fov_deg,
                    "range_m": cam.range_m,
                    "how": how,
                    "snapshot_url": cam.snapshot_url,
                    "stream_url": cam.stream_url,
                    "_d": (cam.lng - centre.x) ** 2 + (cam.lat - centre.y) ** 2,
                }
            )
    out.sort(key=lambda c: c.pop("_d"))
    return out


def timeline(incident: Incident) -> list[dict[str, Any]]:
    """The after-action timeline: incident events, then each task's assignment and outcome."""
    rows: list[dict[str, Any]] = []
    for e in IncidentEvent.objects.filter(incident=incident).select_related("actor").order_by("at", "id"):
        rows.append(
            {
                "at": e.at,
                "kind": e.get_kind_display(),
                "actor": str(e.actor) if e.actor else "",
                "text": e.text,
            }
        )
    return rows


def task_rows(incident: Incident) -> list[dict[str, Any]]:
    tasks = (
        EvacuationTask.objects.filter(incident=incident)
        .select_related("house__building", "grid", "assignee", "marked_by")
        .order_by("seq")
    )
    return [
        {
            "seq": t.seq,
            "building": t.house.building.name,
            "unit": t.house.unit,
            "floor": t.house.floor,
            "room": t.house.room,
            "grid": t.grid.name,
            "residents": t.residents,
            "vulnerable": t.vulnerable,
            "assignee": str(t.assignee) if t.assignee else "",
            "assigned_at": t.assigned_at,
            "status": OUTCOME_LABELS[t.status],
            "marked_at": t.marked_at,
            "marked_by": str(t.marked_by) if t.marked_by else "",
            "minutes": round((t.marked_at - incident.declared_at).total_seconds() / 60, 1)
            if t.marked_at
            else None,
            "note": t.note,
        }
        for t in tasks
    ]


def help_rows(incident: Incident) -> list[dict[str, Any]]:
    items = (
        HelpRequest.objects.filter(incident=incident)
        .select_related("task__house__building", "raised_by", "resolved_by")
        .order_by("raised_at", "id")
    )
    return [
        {
            "raised_at": h.raised_at,
            "where": f"{h.task.house.building.name}{h.task.house.unit}单元{h.task.house.room}室",
            "by": str(h.raised_by),
            "note": h.note,
            "resolved_at": h.resolved_at,
            "resolved_by": str(h.resolved_by) if h.resolved_by else "",
        }
        for h in items
    ]


@dataclass
class HouseholdPerson:
    person_id: int
    name: str
    age: int
    phone_masked: str
    kinds: list[str]

    @property
    def kind_labels(self) -> list[str]:
        return [KIND_LABELS.get(k, k) for k in self.kinds]


def household_people(tasks: list[EvacuationTask]) -> dict[int, list[HouseholdPerson]]:
    """Who lives today in each task's house (people of special care first): the worker's door list."""
    by_house = {t.house_id: t.pk for t in tasks}
    if not by_house:
        return {}
    day = clock.today()
    residencies = Residency.objects.current(day).filter(house_id__in=list(by_house), person__status="active")
    kinds = _care_kinds(residencies.values("person_id"), day)
    out: dict[int, list[HouseholdPerson]] = defaultdict(list)
    for house_id, p in (
        (r.house_id, r.person)
        for r in residencies.select_related("person").only(
            "house_id", "person__name", "person__birth_date", "person__phone_masked", "person__gender"
        )
    ):
        out[by_house[house_id]].append(
            HouseholdPerson(p.pk, p.name, p.age, p.phone_masked, kinds.get(p.pk, []))
        )
    for people in out.values():
        people.sort(key=lambda h: (-(PRIORITY.get(h.kinds[0], 0) if h.kinds else 0), h.name))
    return dict(out)
