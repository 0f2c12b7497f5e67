"""The inbox and staff broadcasts under /api/v1/notify/ (docs/broadcast.md): read one's messages and
mark them read; send a broadcast and read its receipts. Thin: the rules are in notify/broadcast.py;
errors are the platform's bilingual problem lists (400 bad input, 403 not allowed, 404 not yours)."""

from typing import Any

from django.http import Http404, HttpRequest
from ninja.responses import Status
from pydantic import Field

from zhizhi.api import app_router
from zhizhi.api_common import ERRORS, StrictInput, acting
from zhizhi.notify import broadcast as bc
from zhizhi.notify.models import Broadcast, InboxMessage
from zhizhi.notify.services import unread_count
from zhizhi.orgs.models import OrgUnit, User
from zhizhi.problems import Invalid, Problem

router = app_router("notify")
OK = {200: dict[str, Any], **ERRORS}
CREATED = {200: dict[str, Any], 201: dict[str, Any], **ERRORS}
MAX_LIMIT = 500


def message_out(m: InboxMessage) -> dict[str, Any]:
    return {
        "id": m.pk,
        "subject": m.subject,
        "body": m.body,
        "link": m.link,
        "created_at": m.created_at,
        "read_at": m.read_at,
        "broadcast": bc.broadcast_id_of(m),
    }


def broadcast_out(b: Broadcast) -> dict[str, Any]:
    return {
        "id": b.pk,
        "subject": b.subject,
        "body": b.body,
        "link": b.link,
        "channels": b.channels,
        "sender": b.sender_id,
        "created_at": b.created_at,
        "request_id": b.request_id,
        "incident_ref": b.incident_ref,
        "audience": b.audience,
    }


@router.get("/inbox", response=OK, operation_id="notify_inbox")
def inbox(request: HttpRequest, unread: bool = False, limit: int = 50) -> dict[str, Any]:
    """我的站内信 The caller's inbox, newest first (`unread=true` for the unread ones)."""
    user = request.auth  # type: ignore[attr-defined]
    qs = InboxMessage.objects.filter(user=user)
    if unread:
        qs = qs.filter(read_at__isnull=True)
    items = [message_out(m) for m in qs[: max(1, min(limit, MAX_LIMIT))]]
    return {"unread": unread_count(user), "items": items}


@router.post("/inbox/{int:message_id}/read", response=OK, operation_id="notify_inbox_read")
def read_message(request: HttpRequest, message_id: int) -> dict[str, Any]:
    """标记已读 Mark one message read (and its broadcast receipt); repeating it changes nothing."""
    user = request.auth  # type: ignore[attr-defined]
    message = InboxMessage.objects.filter(pk=message_id, user=user).first()
    if message is None:
        raise Http404
    bc.mark_read(user, message)
    message.refresh_from_db()
    return message_out(message)


@router.post("/inbox/read-all", response=OK, operation_id="notify_inbox_read_all")
def read_all(request: HttpRequest) -> dict[str, Any]:
    """全部标为已读 Mark every unread message read."""
    return {"marked": bc.mark_all_read(request.auth)}  # type: ignore[attr-defined]


class BroadcastIn(StrictInput):
    subject: str
    body: str = ""
    link: str = ""
    users: list[str] = Field(default_factory=list, description="usernames")
    roles: list[str] = Field(default_factory=list, description="street_leader, dispatcher, grid_worker …")
    units: list[str] = Field(default_factory=list, description="org unit codes (their sub-units too)")
    all_staff: bool = False
    channels: list[str] = Field(default_factory=lambda: ["inbox"], description="inbox, sms, dingtalk, wecom")
    request_id: str = Field("", description="a retry with the same id returns the first broadcast")
    incident_ref: str = ""


def _lookup(payload: BroadcastIn) -> tuple[list[User], list[OrgUnit]]:
    problems: list[Problem] = []
    users = list(User.objects.filter(username__in=payload.users))
    missing = sorted(set(payload.users) - {u.username for u in users})
    if missing:
        problems.append(
            Problem("user_unknown", "没有这些用户", "No such users", field="users", value=missing)
        )
    units = list(OrgUnit.objects.filter(code__in=payload.units))
    unknown = sorted(set(payload.units) - {u.code for u in units})
    if unknown:
        problems.append(
            Problem(
                "unit_unknown", "没有这些单位编码", "No such org unit codes", field="units", value=unknown
            )
        )
    if problems:
        raise Invalid(problems)
    return users, units


@router.post("/broadcasts", response=CREATED, operation_id="notify_broadcast_send")
def send(request: HttpRequest, payload: BroadcastIn) -> Any:
    """群发通知 Send a broadcast: 201 sent, 200 the same request id seen before (nothing sent again)."""
    user = request.auth  # type: ignore[attr-defined]
    users, units = _lookup(payload)
    seen = (
        bool(payload.request_id) and Broadcast.objects.filter(request_id=payload.request_id.strip()).exists()
    )
    with acting(request):
        b = bc.send_broadcast(
            user,
            subject=payload.subject,
            body=payload.body,
            recipients=users,
            roles=payload.roles,
            units=units,
            all_staff=payload.all_staff,
            channels=payload.channels,
            link=payload.link,
            request_id=payload.request_id,
            incident_ref=payload.incident_ref,
        )
    return Status(200 if seen else 201, {**broadcast_out(b), "total": b.total})


@router.get("/broadcasts", response=OK, operation_id="notify_broadcast_list")
def list_broadcasts(request: HttpRequest, incident_ref: str = "", limit: int = 50) -> dict[str, Any]:
    """已发通知 Broadcasts the caller may see (leaders, dispatchers, admins: all; others: their own)."""
    qs = bc.visible_broadcasts(request.auth)  # type: ignore[attr-defined]
    if incident_ref:
        qs = qs.filter(incident_ref=incident_ref)
    return {"items": [{**broadcast_out(b), "total": b.total} for b in qs[: max(1, min(limit, MAX_LIMIT))]]}


@router.get("/broadcasts/{int:broadcast_id}", response=OK, operation_id="notify_broadcast_receipts")
def receipts(request: HttpRequest, broadcast_id: int) -> dict[str, Any]:
    """回执 Who has it and who has read it."""
    b = bc.visible_broadcasts(request.auth).filter(pk=broadcast_id).first()  # type: ignore[attr-defined]
    if b is None:
        raise Http404
    return {**broadcast_out(b), "receipts": bc.receipts(b)}
