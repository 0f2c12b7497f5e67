"""Side effects of case actions: who is told what, through the transactional outbox.

Called by services.py inside the action's transaction, so a rolled-back action leaves no message.
Each message key is built from the timeline event's id, so a retried delivery or a repeated
request never sends the same message twice.

Recipients:
- the assignee (inbox + SMS) on dispatch, rework, urge; inbox on SLA yellow;
- with no assignee yet, every active member of the handling unit (inbox);
- the unit's supervisors (`services.supervisors_of`) on extension requests and SLA red (inbox + SMS);
- the dispatchers whose area covers the case on returns and finishes (to verify);
- escalation level 1 → the unit's supervisors, 2 → the street command centre (dispatchers),
  3 → the street leaders;
- the reporter by SMS on register, finish and the return-visit invitation (with the rating link);
  the outbox row names "case:<id>:reporter" and the phone is decrypted only at delivery.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings

from zhizhi.cases.models import Case, CaseEvent
from zhizhi.notify.services import enqueue, notify_user
from zhizhi.orgs.models import User

BOTH = ("inbox", "sms")


def case_link(case: Case) -> str:
    return f"/cases/{case.pk}/"


def rate_link(case: Case) -> str:
    """The reporter's rating page (回访评价); ZHIZHI_SITE_URL makes it absolute for SMS."""
    return f"{getattr(settings, 'ZHIZHI_SITE_URL', '').rstrip('/')}/cases/rate/{case.rate_token}/"


def _send(
    users: Iterable[Any],
    case: Case,
    event: CaseEvent,
    purpose: str,
    subject: str,
    body: str,
    channels: tuple[str, ...] = ("inbox",),
) -> int:
    sent = 0
    for user in {u.pk: u for u in users if u is not None}.values():
        notify_user(
            user,
            subject,
            body,
            key=f"case{case.pk}:e{event.pk}:{purpose}:u{user.pk}",
            link=case_link(case),
            cause=f"cases.case:{case.pk}",
            channels=channels,
        )
        sent += 1
    return sent


def _handlers(case: Case) -> list[Any]:
    if case.assignee_id:
        return [case.assignee]
    if case.unit_id:
        return list(User.objects.filter(org_unit_id=case.unit_id, is_active=True))
    return []


def to_handlers(case: Case, event: CaseEvent, purpose: str, subject: str, body: str, sms: bool = True) -> int:
    channels = BOTH if (sms and case.assignee_id) else ("inbox",)
    return _send(_handlers(case), case, event, purpose, subject, body, channels)


def to_reporter(case: Case, event: CaseEvent, purpose: str, body: str, link: str = "") -> None:
    if case.reporter_user_id:
        _send([case.reporter_user], case, event, purpose, f"案件{case.number}", body)
    if case.reporter_phone_enc:
        # The number stays encrypted on the case; the outbox names the case and the notify
        # worker decrypts it for the gateway at delivery (`reporter_phone_for`).
        enqueue(
            "sms",
            f"case:{case.pk}:reporter",
            body,
            key=f"case{case.pk}:e{event.pk}:{purpose}:reporter",
            link=link,
            cause=f"cases.case:{case.pk}",
        )


def reporter_phone_for(message: Any) -> str:
    """Resolve an outbox recipient "case:<id>:reporter" to the reporter's phone (delivery only)."""
    from zhizhi.notify.adapters import DeliveryError

    try:
        case_id = int(message.recipient.split(":")[1])
    except (IndexError, ValueError):
        raise DeliveryError(f"bad case recipient {message.recipient!r}") from None
    case = Case.objects.filter(pk=case_id).only("reporter_phone_enc").first()
    if case is None or not case.reporter_phone_enc:
        raise DeliveryError(f"case {case_id} has no reporter phone")
    return case.decrypt_sensitive("reporter_phone")


def dispatchers_for(case: Case) -> list[Any]:
    parts = [p for p in case.area_path.split("/") if p]
    prefixes = ["/" + "/".join(parts[:i]) + "/" for i in range(1, len(parts) + 1)]
    return list(User.objects.filter(role="dispatcher", is_active=True, regions__path__in=prefixes).distinct())


def leaders_for(case: Case) -> list[Any]:
    parts = [p for p in case.area_path.split("/") if p]
    prefixes = ["/" + "/".join(parts[:i]) + "/" for i in range(1, len(parts) + 1)]
    return list(
        User.objects.filter(role="street_leader", is_active=True, regions__path__in=prefixes).distinct()
    )


def _supervisors(case: Case) -> list[Any]:
    from zhizhi.cases.services import supervisors_of

    return list(supervisors_of(case.unit)) if case.unit_id else []


# --- per action -------------------------------------------------------------------------------
def after_register(case: Case, event: CaseEvent) -> None:
    to_reporter(
        case, event, "registered", f"【智治】您反映的问题已受理，案件编号{case.number}，我们将尽快处理。"
    )


def after_dispatch(case: Case, event: CaseEvent) -> None:
    due = f"，请于{case.stage_due_at:%m-%d %H:%M}前签收" if case.stage == "sign" and case.stage_due_at else ""
    to_handlers(case, event, "dispatched", f"新派案件 {case.number}", f"{case.title}{due}")
    for task in case.tasks.filter(role="assist").select_related("assignee"):
        users = (
            [task.assignee]
            if task.assignee_id
            else list(User.objects.filter(org_unit_id=task.unit_id, is_active=True))
        )
        _send(users, case, event, f"assist{task.pk}", f"联办协办 {case.number}", case.title)


def after_return(case: Case, event: CaseEvent) -> None:
    _send(
        dispatchers_for(case),
        case,
        event,
        "returned",
        f"退单 {case.number}",
        f"{case.return_reason}：{event.note}",
    )


def after_extension_request(case: Case, event: CaseEvent) -> None:
    _send(_supervisors(case), case, event, "extension", f"延期申请 {case.number}", event.note or case.title)


def after_extension_decision(case: Case, event: CaseEvent) -> None:
    word = "同意" if event.action == "approve_extension" else "不同意"
    to_handlers(case, event, "extension_decided", f"延期申请已{word} {case.number}", event.note, sms=False)


def after_finish(case: Case, event: CaseEvent) -> None:
    to_reporter(
        case, event, "finished", f"【智治】您反映的问题（编号{case.number}）已办结：{case.result[:60]}"
    )
    _send(dispatchers_for(case), case, event, "to_verify", f"待核查 {case.number}", case.title)


def after_close(case: Case, event: CaseEvent) -> None:
    link = rate_link(case)
    to_reporter(
        case, event, "visit_invite", f"【智治】案件{case.number}已结案，请为办理结果评价：{link}", link=link
    )


def after_rework(case: Case, event: CaseEvent) -> None:
    to_handlers(case, event, "rework", f"返工 {case.number}", event.note or case.title)


def after_urge(case: Case, event: CaseEvent) -> None:
    to_handlers(case, event, "urge", f"督办 {case.number}", event.note or case.title)


def after_escalate(case: Case, event: CaseEvent) -> None:
    level = case.escalation_level
    users = {1: _supervisors, 2: dispatchers_for, 3: leaders_for}.get(level, dispatchers_for)(case)
    label = dict(Case.ESCALATION_LEVELS).get(level, "")
    subject = f"升级至{label} {case.number}"
    _send(users, case, event, f"escalate{level}", subject, event.note or case.title, BOTH)
    if level >= 2:
        # The command centre's group robots (ZHIZHI_CASE_ROBOTS = {"dingtalk": "<robot name>", …}).
        for channel, robot in getattr(settings, "ZHIZHI_CASE_ROBOTS", {}).items():
            enqueue(
                channel,
                robot,
                f"{case.title}（{event.note}）" if event.note else case.title,
                key=f"case{case.pk}:e{event.pk}:robot:{channel}",
                subject=subject,
                link=case_link(case),
                cause=f"cases.case:{case.pk}",
            )


def sla_warned(case: Case, event: CaseEvent) -> None:
    to_handlers(
        case, event, "sla_yellow", f"即将超时 {case.number}", f"{case.title}（{case.stage}）", sms=False
    )


def sla_overdue(case: Case, event: CaseEvent) -> None:
    to_handlers(case, event, "sla_red", f"已超时 {case.number}", f"{case.title}（{case.stage}）", sms=False)
    _send(_supervisors(case), case, event, "sla_red_sup", f"下属案件超时 {case.number}", case.title, BOTH)


AFTER: dict[str, Callable[[Case, CaseEvent], None]] = {
    "register": after_register,
    "dispatch": after_dispatch,
    "redispatch": after_dispatch,
    "return": after_return,
    "request_extension": after_extension_request,
    "approve_extension": after_extension_decision,
    "deny_extension": after_extension_decision,
    "finish": after_finish,
    "verify_pass": after_close,
    "verify_fail": after_rework,
    "reopen": after_rework,
    "urge": after_urge,
    "escalate": after_escalate,
}


def after(case: Case, event: CaseEvent) -> None:
    handler = AFTER.get(event.action)
    if handler is not None:
        handler(case, event)
