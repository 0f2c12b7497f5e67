"""Staff broadcasts (群发通知) with read receipts.

`send_broadcast` resolves the audience (named users, roles, org units with their sub-units, or all
active staff), writes one BroadcastRecipient per person and one outbox row per person per channel
in one transaction, set-based (bulk inserts), so a send to thousands of staff is a handful of
statements and nothing is half-sent. Delivery is the outbox's job (`services.deliver_due`): SMS to
a user carries "user:<id>" and the phone is decrypted only at delivery. DingTalk/WeCom are group
robots, so those channels get one row per configured robot, not one per person.

Receipts: an inbox copy's key is `broadcast:<id>:u<user>:inbox`, so opening it in the inbox marks
the recipient read (`mark_read`); `delivered_at` is filled from the outbox rows that were sent
(`sync_delivery`, run by `receipts`).

Who may send: street leaders, dispatchers and admins to anyone (only they may send to all staff);
department and community staff to the people they reach (their regions, their unit and its
sub-units); nobody else.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import DateTimeField, Q, QuerySet, Value
from django.db.models.functions import Coalesce

from zhizhi import clock, live
from zhizhi.notify import services
from zhizhi.notify.models import Broadcast, BroadcastRecipient, InboxMessage, OutboxMessage
from zhizhi.orgs.models import OrgUnit, User
from zhizhi.permissions import ROLES, scope_paths
from zhizhi.problems import Forbidden, Invalid, Problem

CHANNELS = dict(Broadcast.CHANNELS)
ROBOT_SETTINGS = {"dingtalk": "ZHIZHI_DINGTALK_WEBHOOKS", "wecom": "ZHIZHI_WECOM_WEBHOOKS"}
# May broadcast to anyone, including all staff at once.
FULL_ROLES = ("street_leader", "dispatcher")
# May broadcast to the people they reach.
SCOPED_ROLES = ("dept_staff", "community_worker")
# "All staff": every active account with a staff role (residents are not staff).
STAFF_ROLES = tuple(code for code, _ in ROLES if code != "resident")
MAX_BODY = 4000
BATCH = 1000
_INBOX_KEY = re.compile(r"^broadcast:(\d+):u(\d+):inbox$")
CAUSE_PREFIX = "notify.broadcast:"


def cause_of(broadcast: Broadcast | int) -> str:
    """The outbox `cause` of a broadcast's rows."""
    pk = broadcast if isinstance(broadcast, int) else broadcast.pk
    return f"{CAUSE_PREFIX}{pk}"


def inbox_key(broadcast_id: int, user_id: int) -> str:
    return f"broadcast:{broadcast_id}:u{user_id}:inbox"


def broadcast_id_of(message: InboxMessage) -> int | None:
    """The broadcast an inbox message came from, or None for any other message."""
    match = _INBOX_KEY.match(message.outbox_key)
    return int(match.group(1)) if match else None


def may_broadcast(actor: Any) -> bool:
    return bool(
        actor is not None
        and actor.is_authenticated
        and (actor.is_superuser or getattr(actor, "role", "") in FULL_ROLES + SCOPED_ROLES)
    )


def may_broadcast_all(actor: Any) -> bool:
    return bool(actor is not None and (actor.is_superuser or getattr(actor, "role", "") in FULL_ROLES))


def may_see_all(actor: Any) -> bool:
    """Leaders, dispatchers and admins see every broadcast's receipts; others only their own."""
    return may_broadcast_all(actor)


def unit_tree(unit_ids: Iterable[int]) -> set[int]:
    ids = {int(i) for i in unit_ids}
    frontier = set(ids)
    while frontier:
        children = set(OrgUnit.objects.filter(parent_id__in=frontier).values_list("pk", flat=True)) - ids
        ids |= children
        frontier = children
    return ids


def reach_q(actor: Any) -> Q | None:
    """Whom `actor` may broadcast to: None means everyone."""
    if may_broadcast_all(actor):
        return None
    q = Q(pk__in=[])
    for path in scope_paths(actor):
        if path:
            q |= Q(regions__path__startswith=path)
    if actor.org_unit_id:
        q |= Q(org_unit_id__in=unit_tree([actor.org_unit_id]))
    return q


def _recipient_ids(
    actor: Any,
    recipients: Iterable[Any] | None,
    roles: list[str] | None,
    units: list[Any] | None,
    all_staff: bool,
    problems: list[Problem],
) -> list[int]:
    active = User.objects.filter(is_active=True)
    reach = reach_q(actor)
    chosen = Q(pk__in=[])
    named: set[int] = set()
    for r in recipients or []:
        named.add(int(getattr(r, "pk", r)))
    if named:
        chosen |= Q(pk__in=named)
        if reach is not None:
            allowed = set(active.filter(reach, pk__in=named).values_list("pk", flat=True))
            outside = sorted(named - allowed)
            if outside:
                names = list(User.objects.filter(pk__in=outside).values_list("username", flat=True)[:20])
                problems.append(
                    Problem(
                        "recipient_out_of_scope",
                        f"有{len(outside)}名接收人不在您的管辖范围内",
                        f"{len(outside)} recipient(s) are outside your area",
                        field="recipients",
                        value=names,
                    )
                )
    known_roles = dict(ROLES)
    bad_roles = [r for r in roles or [] if r not in known_roles]
    if bad_roles:
        problems.append(
            Problem(
                "role_unknown",
                "未知的角色",
                "Unknown role",
                field="roles",
                value=bad_roles,
                expected_zh="、".join(f"{k}（{v}）" for k, v in ROLES),
                expected_en=", ".join(known_roles),
            )
        )
    if roles:
        chosen |= Q(role__in=[r for r in roles if r in known_roles])
    unit_ids = [int(getattr(u, "pk", u)) for u in units or []]
    if unit_ids:
        chosen |= Q(org_unit_id__in=unit_tree(unit_ids))
    if all_staff:
        if not may_broadcast_all(actor):
            raise Forbidden(
                "只有街道领导、指挥中心坐席和管理员可以向全体人员发送通知",
                "Only street leaders, dispatchers and admins may broadcast to all staff",
            )
        chosen |= Q(role__in=STAFF_ROLES)
    qs = active.filter(chosen)
    if reach is not None:
        qs = qs.filter(reach)
    ids = sorted(set(qs.values_list("pk", flat=True)))
    if not ids and not any(p.field in ("recipients", "roles") for p in problems):
        problems.append(
            Problem(
                "no_recipients",
                "没有接收人：请选择人员、角色、单位或全体人员",
                "No recipients: choose people, roles, units or all staff",
                field="recipients",
            )
        )
    return ids


def _robots(channel: str) -> list[str]:
    return sorted(getattr(settings, ROBOT_SETTINGS[channel], {}) or {})


def _check(subject: str, body: str, channels: list[str], link: str, request_id: str) -> list[Problem]:
    problems: list[Problem] = []
    if not subject:
        problems.append(Problem("required", "请填写标题", "A subject is required", field="subject"))
    elif len(subject) > 200:
        problems.append(
            Problem(
                "too_long",
                "标题不超过200字",
                "Subject: at most 200 characters",
                field="subject",
                value=len(subject),
            )
        )
    if len(body) > MAX_BODY:
        problems.append(
            Problem(
                "too_long",
                f"内容不超过{MAX_BODY}字（现有{len(body)}字）",
                f"Body: at most {MAX_BODY} characters (got {len(body)})",
                field="body",
                value=len(body),
            )
        )
    if not channels:
        problems.append(
            Problem("required", "请至少选择一个渠道", "Choose at least one channel", field="channels")
        )
    unknown = [c for c in channels if c not in CHANNELS]
    if unknown:
        problems.append(
            Problem(
                "channel_unknown",
                "未知的通知渠道",
                "Unknown channel",
                field="channels",
                value=unknown,
                expected_zh="、".join(f"{k}（{v}）" for k, v in CHANNELS.items()),
                expected_en=", ".join(CHANNELS),
            )
        )
    for channel in ROBOT_SETTINGS:
        if channel in channels and not _robots(channel):
            problems.append(
                Problem(
                    "channel_not_configured",
                    f"尚未配置{CHANNELS[channel]}群机器人",
                    f"No {channel} group robot is configured",
                    field="channels",
                    value=channel,
                    expected_zh=f"在设置 {ROBOT_SETTINGS[channel]} 中配置群机器人",
                    expected_en=f"configure a robot in {ROBOT_SETTINGS[channel]}",
                )
            )
    if link and not (
        link.startswith(("http://", "https://")) or (link.startswith("/") and not link.startswith("//"))
    ):
        problems.append(
            Problem(
                "link",
                "链接须为站内路径（以 / 开头）或 http(s) 地址",
                "The link must be a site path (starting with /) or an http(s) address",
                field="link",
                value=link[:80],
            )
        )
    elif len(link) > 300:
        problems.append(Problem("too_long", "链接不超过300字", "Link: at most 300 characters", field="link"))
    if len(request_id) > 64:
        problems.append(
            Problem("too_long", "请求编号不超过64字", "request_id: at most 64 characters", field="request_id")
        )
    return problems


def _area_of(actor: Any) -> str:
    paths = scope_paths(actor) if actor is not None and not actor.is_superuser else []
    return paths[0] if len(paths) == 1 else ""


def send_broadcast(
    actor: Any,
    *,
    subject: str,
    body: str,
    recipients: Iterable[Any] | None = None,
    roles: list[str] | None = None,
    units: list[Any] | None = None,
    all_staff: bool = False,
    channels: list[str] | tuple[str, ...] = ("inbox",),
    link: str = "",
    request_id: str = "",
    incident_ref: str = "",
) -> Broadcast:
    """Send one broadcast; a retry with the same `request_id` returns the first one unchanged."""
    if not may_broadcast(actor):
        raise Forbidden("您的角色不能群发通知", "Your role may not send broadcasts")
    subject = (subject or "").strip()
    body = (body or "").strip()
    link = (link or "").strip()
    request_id = (request_id or "").strip()
    recipients = list(recipients or [])  # read twice below; a generator would be empty the second time
    chosen = list(dict.fromkeys(str(c).strip() for c in channels or [] if str(c).strip()))
    if request_id:
        prior = Broadcast.objects.filter(request_id=request_id).first()
        if prior is not None:
            return _same_sender(prior, actor)
    problems = _check(subject, body, chosen, link, request_id)
    user_ids = _recipient_ids(actor, recipients, roles, units, all_staff, problems)
    if problems:
        raise Invalid(problems)
    unit_codes = list(
        OrgUnit.objects.filter(pk__in=[getattr(u, "pk", u) for u in units or []]).values_list(
            "code", flat=True
        )
    )
    audience = {
        "users": len({getattr(r, "pk", r) for r in recipients or []}),
        "roles": list(roles or []),
        "units": unit_codes,
        "all_staff": bool(all_staff),
    }
    try:
        with transaction.atomic():
            broadcast = Broadcast.objects.create(
                subject=subject,
                body=body,
                link=link,
                channels=chosen,
                sender=actor,
                request_id=request_id or uuid.uuid4().hex,
                incident_ref=(incident_ref or "")[:64],
                audience=audience,
                total=len(user_ids),
            )
            _fan_out(broadcast, user_ids)
            live.publish(
                "broadcast",
                {
                    "event": "sent",
                    "id": broadcast.pk,
                    "subject": subject,
                    "total": len(user_ids),
                    "incident_ref": broadcast.incident_ref,
                },
                area_path=_area_of(actor),
            )
    except IntegrityError:
        # The same request id sent by a concurrent request a moment ago.
        prior = Broadcast.objects.filter(request_id=request_id).first() if request_id else None
        if prior is None:
            raise
        return _same_sender(prior, actor)
    transaction.on_commit(services._kick_worker)
    return broadcast


def _same_sender(prior: Broadcast, actor: Any) -> Broadcast:
    if prior.sender_id != actor.pk:
        raise Invalid(
            [
                Problem(
                    "request_id_used",
                    "该请求编号已被他人使用",
                    "This request id was used by someone else",
                    field="request_id",
                    value=prior.request_id,
                )
            ]
        )
    return prior


def _fan_out(broadcast: Broadcast, user_ids: list[int]) -> None:
    BroadcastRecipient.objects.bulk_create(
        [BroadcastRecipient(broadcast=broadcast, user_id=uid) for uid in user_ids], batch_size=BATCH
    )
    cause = cause_of(broadcast)
    now = clock.now()
    sms_text = f"【{broadcast.subject}】{broadcast.body}".strip()
    rows: list[OutboxMessage] = []

    def row(channel: str, recipient: str, key: str, user_id: int | None, text: str) -> OutboxMessage:
        return OutboxMessage(
            channel=channel,
            recipient=recipient,
            user_id=user_id,
            subject=broadcast.subject,
            body=text,
            link=broadcast.link,
            idempotency_key=key,
            cause=cause,
            created_at=now,
            next_attempt_at=now,
        )

    if "inbox" in broadcast.channels:
        rows += [
            row("inbox", f"user:{uid}", inbox_key(broadcast.pk, uid), uid, broadcast.body) for uid in user_ids
        ]
    if "sms" in broadcast.channels:
        # Only people with a phone on file; the rest are counted as "no_phone" in the receipts.
        with_phone = User.objects.filter(pk__in=user_ids).exclude(phone_enc="").values_list("pk", flat=True)
        rows += [
            row("sms", f"user:{uid}", f"broadcast:{broadcast.pk}:u{uid}:sms", uid, sms_text)
            for uid in with_phone.iterator(chunk_size=BATCH)
        ]
    for channel in ROBOT_SETTINGS:
        if channel in broadcast.channels:
            for name in _robots(channel):
                digest = hashlib.sha256(name.encode()).hexdigest()[:16]
                rows.append(
                    row(channel, name, f"broadcast:{broadcast.pk}:r{digest}:{channel}", None, broadcast.body)
                )
    OutboxMessage.objects.bulk_create(rows, batch_size=BATCH)


def sync_delivery(broadcast: Broadcast | int, user_id: int | None = None) -> int:
    """Stamp `delivered_at` from the outbox rows that reached each recipient (first channel wins)."""
    broadcast_id = broadcast if isinstance(broadcast, int) else broadcast.pk
    if user_id is not None:
        first = (
            OutboxMessage.objects.filter(
                cause=cause_of(broadcast_id), user_id=user_id, status=OutboxMessage.SENT
            )
            .order_by("sent_at")
            .values_list("sent_at", flat=True)
            .first()
        )
        if first is None:
            return 0
        return BroadcastRecipient.objects.filter(
            broadcast_id=broadcast_id, user_id=user_id, delivered_at__isnull=True
        ).update(delivered_at=first)
    return sync_deliveries([broadcast_id])


def sync_deliveries(broadcast_ids: list[int]) -> int:
    """`sync_delivery` of several broadcasts (a page of the list) in one statement."""
    if not broadcast_ids:
        return 0
    # One grouped pass over the broadcasts' outbox rows joined to their recipients (UPDATE … FROM,
    # in PostgreSQL and SQLite ≥ 3.33): a correlated subquery per recipient would rescan every row
    # of a broadcast for each person, quadratic in the audience (4 s for 5,000 people).
    recipient = connection.ops.quote_name(BroadcastRecipient._meta.db_table)
    outbox = connection.ops.quote_name(OutboxMessage._meta.db_table)
    marks = ", ".join(["%s"] * len(broadcast_ids))
    sql = f"""
        UPDATE {recipient} SET delivered_at = firsts.first_sent
        FROM (
            SELECT cause, user_id, MIN(sent_at) AS first_sent FROM {outbox}
            WHERE cause IN ({marks}) AND status = %s AND user_id IS NOT NULL GROUP BY cause, user_id
        ) AS firsts
        WHERE {recipient}.broadcast_id IN ({marks}) AND {recipient}.user_id = firsts.user_id
          AND firsts.cause = %s || CAST({recipient}.broadcast_id AS TEXT)
          AND {recipient}.delivered_at IS NULL
    """  # noqa: S608 - only table names and placeholders are interpolated
    params: list[str | int] = [
        *map(cause_of, broadcast_ids),
        OutboxMessage.SENT,
        *broadcast_ids,
        CAUSE_PREFIX,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.rowcount or 0)


def receipts(broadcast: Broadcast) -> dict[str, Any]:
    """Who got it and who read it: totals, the unread people, and the outbox rows per channel."""
    sync_delivery(broadcast)
    rows = BroadcastRecipient.objects.filter(broadcast=broadcast)
    total = rows.count()
    delivered = rows.filter(delivered_at__isnull=False).count()
    read = rows.filter(read_at__isnull=False).count()
    # Plain rows, not model instances: thousands of unread people cost a fraction of the time.
    unread_users = [
        {
            "id": uid,
            "username": username,
            "name": full_name or username,
            "unit": unit or "",
            "delivered": at is not None,
        }
        for uid, username, full_name, unit, at in rows.filter(read_at__isnull=True)
        .order_by("user_id")
        .values_list("user_id", "user__username", "user__full_name", "user__org_unit__name", "delivered_at")
    ]
    by_channel: dict[str, dict[str, int]] = {}
    for channel in broadcast.channels:
        by_channel[channel] = {"total": 0, "sent": 0, "pending": 0, "sending": 0, "dead": 0}
    for channel, status, n in _status_counts(broadcast):
        counts = by_channel.setdefault(
            channel, {"total": 0, "sent": 0, "pending": 0, "sending": 0, "dead": 0}
        )
        counts[status] = n
        counts["total"] += n
    if "sms" in by_channel:
        by_channel["sms"]["no_phone"] = total - by_channel["sms"]["total"]
    return {
        "total": total,
        "delivered": delivered,
        "read": read,
        "unread": total - read,
        "unread_users": unread_users,
        "by_channel": by_channel,
    }


def _status_counts(broadcast: Broadcast) -> list[tuple[str, str, int]]:
    from django.db.models import Count

    return [
        (r["channel"], r["status"], r["n"])
        for r in OutboxMessage.objects.filter(cause=cause_of(broadcast))
        .values("channel", "status")
        .annotate(n=Count("id"))
        .order_by()
    ]


def mark_read(user: Any, item: InboxMessage | Broadcast) -> None:
    """The user read this inbox message or broadcast: stamp both copies once (repeats change nothing)."""
    now = clock.now()
    if isinstance(item, InboxMessage):
        if item.user_id != user.pk:
            raise Forbidden("这不是您的消息", "This is not your message")
        broadcast_id = broadcast_id_of(item)
        inbox = InboxMessage.objects.filter(pk=item.pk)
    elif isinstance(item, Broadcast):
        broadcast_id = item.pk
        inbox = InboxMessage.objects.filter(user=user, outbox_key=inbox_key(item.pk, user.pk))
    else:
        raise TypeError(f"cannot mark {type(item).__name__} read")
    with transaction.atomic():
        inbox.filter(read_at__isnull=True).update(read_at=now)
        if broadcast_id is None:
            return
        # Delivered when the outbox says so; reading it without a stamp (a race) means delivered now.
        sync_delivery(broadcast_id, user.pk)
        changed = BroadcastRecipient.objects.filter(
            broadcast_id=broadcast_id, user_id=user.pk, read_at__isnull=True
        ).update(read_at=now, delivered_at=Coalesce("delivered_at", Value(now, output_field=DateTimeField())))
        if changed:
            sender_area = ""
            b = Broadcast.objects.filter(pk=broadcast_id).select_related("sender").first()
            if b is not None and b.sender is not None:
                sender_area = _area_of(b.sender)
            live.publish(
                "broadcast",
                {
                    "event": "read",
                    "id": broadcast_id,
                    "read": BroadcastRecipient.objects.filter(
                        broadcast_id=broadcast_id, read_at__isnull=False
                    ).count(),
                    "incident_ref": b.incident_ref if b else "",
                },
                area_path=sender_area,
            )


def mark_all_read(user: Any) -> int:
    """Every unread inbox message of `user` read at once, with the receipts of their broadcasts."""
    now = clock.now()
    unread = InboxMessage.objects.filter(user=user, read_at__isnull=True)
    with transaction.atomic():
        ids = {
            int(m.group(1))
            for key in unread.filter(outbox_key__startswith="broadcast:").values_list("outbox_key", flat=True)
            if (m := _INBOX_KEY.match(key))
        }
        changed = unread.update(read_at=now)
        for broadcast_id in ids:
            sync_delivery(broadcast_id, user.pk)
        BroadcastRecipient.objects.filter(broadcast_id__in=ids, user_id=user.pk, read_at__isnull=True).update(
            read_at=now, delivered_at=Coalesce("delivered_at", Value(now, output_field=DateTimeField()))
        )
    return changed


def visible_broadcasts(user: Any) -> QuerySet[Broadcast]:
    """Broadcasts whose receipts `user` may see: all for leaders/dispatchers/admins, else their own."""
    qs = Broadcast.objects.select_related("sender")
    if may_see_all(user):
        return qs
    return qs.filter(sender=user)


def received_by(user: Any, broadcast_id: int) -> BroadcastRecipient | None:
    return BroadcastRecipient.objects.filter(broadcast_id=broadcast_id, user_id=user.pk).first()
