"""Emergency mode under /api/v1/emergency/: declare an incident, read its board, its people of
special care and its cameras, broadcast an instruction, list a worker's tasks and mark them.
Thin: every rule is in zhizhi/cockpit/emergency/services.py; errors are the platform's bilingual
problem lists (400 bad input, 403 not allowed, 404 not in your area)."""

from typing import Any

from django.http import HttpRequest
from ninja.responses import Status
from pydantic import Field

from zhizhi.api import app_router
from zhizhi.api_common import ERRORS, StrictInput, acting
from zhizhi.cockpit.emergency import services
from zhizhi.cockpit.emergency.models import EvacuationTask, Incident

router = app_router("emergency")
OK = {200: dict[str, Any], **ERRORS}
CREATED = {200: dict[str, Any], 201: dict[str, Any], **ERRORS}


def incident_out(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.pk,
        "number": incident.number,
        "kind": incident.kind,
        "title": incident.title,
        "status": incident.status,
        "occurred_at": incident.occurred_at,
        "declared_at": incident.declared_at,
        "closed_at": incident.closed_at,
        "location": incident.location,
        "lng": incident.lng,
        "lat": incident.lat,
        "area_mode": incident.area_mode,
        "radius_m": incident.radius_m,
        "area": incident.area,
        "totals": {
            "buildings": incident.buildings_total,
            "houses": incident.houses_total,
            "households": incident.households_total,
            "residents": incident.residents_total,
            "vulnerable": incident.vulnerable_total,
        },
    }


def task_out(task: EvacuationTask) -> dict[str, Any]:
    return {
        "id": task.pk,
        "incident": task.incident_id,
        "seq": task.seq,
        "building": task.house.building.name,
        "building_code": task.house.building.code,
        "unit": task.house.unit,
        "floor": task.house.floor,
        "room": task.house.room,
        "residents": task.residents,
        "vulnerable": task.vulnerable,
        "priority": task.priority,
        "status": task.status,
        "assignee": task.assignee_id,
        "marked_at": task.marked_at,
    }


class DeclareIn(StrictInput):
    kind: str = Field(..., description="collapse / fire / flood / gas_leak / other")
    area_mode: str = Field(..., description="polygon / radius / buildings")
    title: str = ""
    occurred_at: str | None = Field(None, description="ISO 8601; empty = now")
    location: str = ""
    lng: float | None = None
    lat: float | None = None
    note: str = ""
    polygon: dict[str, Any] | str | None = Field(None, description="GeoJSON Polygon (area_mode=polygon)")
    center_lng: float | None = None
    center_lat: float | None = None
    radius_m: float | None = Field(None, description="metres (area_mode=radius)")
    building_ids: list[int] | None = Field(None, description="building ids (area_mode=buildings)")
    request_id: str = Field("", description="a retry with the same id returns the same incident")


@router.post("/incidents/", response=CREATED, operation_id="emergency_declare")
def declare(request: HttpRequest, payload: DeclareIn) -> Any:
    """启动应急 Declare an incident over an area: tasks per household, assigned and notified at once."""
    user = request.auth  # type: ignore[attr-defined]
    with acting(request):
        result = services.declare_incident(user, **payload.model_dump())
    body = {
        **incident_out(result.incident),
        "created": result.created,
        "warnings": [w.as_dict() for w in result.warnings],
    }
    return Status(201 if result.created else 200, body)


@router.get("/incidents/", response=OK, operation_id="emergency_list")
def list_incidents(request: HttpRequest) -> dict[str, Any]:
    """应急事件 Incidents the caller commands, or holds tasks in."""
    user = request.auth  # type: ignore[attr-defined]
    rows = services.incidents_for(user).order_by("-declared_at")[:200]
    return {"items": [incident_out(i) for i in rows]}


@router.get("/incidents/{int:incident_id}", response=OK, operation_id="emergency_board")
def board(request: HttpRequest, incident_id: int) -> dict[str, Any]:
    """指挥看板 Progress: households and people of special care done / total, the clock, help
    requests, per-building progress (command centre only)."""
    user = request.auth  # type: ignore[attr-defined]
    incident = services.get_incident(user, incident_id)
    services.require_commander(user, incident)
    return {
        **incident_out(incident),
        "counts": services.board_counts(incident),
        "elapsed_seconds": int(services.elapsed(incident).total_seconds()),
        "golden_seconds": services.GOLDEN_MINUTES * 60,
        "buildings": services.affected_buildings(incident),
        "help": services.help_rows(incident),
        "overlapping": [{"id": i.pk, "number": i.number} for i in services.overlapping(incident)],
    }


@router.get("/incidents/{int:incident_id}/vulnerable", response=OK, operation_id="emergency_vulnerable")
def vulnerable(request: HttpRequest, incident_id: int) -> dict[str, Any]:
    """重点人群 People of special care in the area, most fragile first (phones masked)."""
    user = request.auth  # type: ignore[attr-defined]
    incident = services.get_incident(user, incident_id) if services.is_commander(user) else None
    if incident is None:
        incident = Incident.objects.filter(pk=incident_id).first()
        if incident is None:
            from django.http import Http404

            raise Http404()
    rows = services.care_list(user, incident)
    return {
        "items": [
            {
                "person": r.person_id,
                "name": r.name,
                "age": r.age,
                "kinds": r.kinds,
                "kind_labels": r.kind_labels,
                "building": r.building,
                "unit": r.unit,
                "floor": r.floor,
                "room": r.room,
                "phone_masked": r.phone_masked,
                "task": r.task_id,
                "task_status": r.task_status,
                "assignee": r.assignee,
                "grid_workers": r.grid_workers,
                "social_workers": r.social_workers,
            }
            for r in rows
        ]
    }


@router.get("/incidents/{int:incident_id}/cameras", response=OK, operation_id="emergency_cameras")
def cameras(request: HttpRequest, incident_id: int) -> dict[str, Any]:
    """摄像头 Cameras inside the area or facing it, nearest first."""
    user = request.auth  # type: ignore[attr-defined]
    incident = services.get_incident(user, incident_id)
    services.require_commander(user, incident)
    return {"items": services.cameras_for(incident)}


class BroadcastIn(StrictInput):
    subject: str
    body: str
    to_all: bool = True
    units: list[int] = []
    roles: list[str] = []
    channels: list[str] = Field(default_factory=lambda: ["inbox"], description="inbox is always included")
    request_id: str = ""


@router.post("/incidents/{int:incident_id}/broadcasts", response=CREATED, operation_id="emergency_broadcast")
def broadcast(request: HttpRequest, incident_id: int, payload: BroadcastIn) -> Any:
    """发布指令 An instruction to all staff or chosen units / roles, with read receipts."""
    user = request.auth  # type: ignore[attr-defined]
    incident = services.get_incident(user, incident_id)
    with acting(request):
        item = services.broadcast(
            user,
            incident,
            subject=payload.subject,
            body=payload.body,
            to_all=payload.to_all,
            unit_ids=list(payload.units),
            roles=list(payload.roles),
            channels=list(payload.channels),
            request_id=payload.request_id,
        )
    return Status(201, {"id": item.pk, "total": item.total, **services.receipt_counts(item)})


@router.get("/incidents/{int:incident_id}/tasks", response=OK, operation_id="emergency_my_tasks")
def my_tasks(request: HttpRequest, incident_id: int) -> dict[str, Any]:
    """我的撤离任务 The caller's own households in this incident, in evacuation order."""
    user = request.auth  # type: ignore[attr-defined]
    incident = services.get_incident(user, incident_id)
    rows = services.tasks_for(user, incident).select_related("house__building").order_by("seq")
    return {"items": [task_out(t) for t in rows]}


class MarkIn(StrictInput):
    status: str = Field(..., description="evacuated / not_home / refused / needs_help")
    note: str = ""
    request_id: str = ""


@router.post("/tasks/{int:task_id}/mark", response=OK, operation_id="emergency_mark")
def mark(request: HttpRequest, task_id: int, payload: MarkIn) -> dict[str, Any]:
    """标记住户 已撤离 / 无人在家 / 拒绝撤离 / 需要协助 (the same mark twice is one event)."""
    user = request.auth  # type: ignore[attr-defined]
    with acting(request):
        task = services.mark_task(
            user, task_id, payload.status, note=payload.note, request_id=payload.request_id
        )
    task = EvacuationTask.objects.select_related("house__building").get(pk=task.pk)
    return task_out(task)


class AssignIn(StrictInput):
    assignee: int = Field(
        ..., description="用户 id of a grid worker, community worker or command-centre user"
    )


@router.post(
    "/incidents/{int:incident_id}/tasks/{int:task_id}/assign", response=OK, operation_id="emergency_assign"
)
def assign(request: HttpRequest, incident_id: int, task_id: int, payload: AssignIn) -> dict[str, Any]:
    """改派 Give a household to another worker (command centre only); the worker is notified."""
    user = request.auth  # type: ignore[attr-defined]
    incident = services.get_incident(user, incident_id)
    with acting(request):
        task = services.assign_task(user, incident, task_id, payload.assignee)
    return task_out(task)
