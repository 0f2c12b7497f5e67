"""The one transition table of a case: (from status, action) → to status(es), and who may do it.

Every service action looks itself up here; nothing else decides whether an action is legal. An
action with several targets (visit → visited or unsatisfied) lets the service pick by its input.
`to` equal to `from` means the action leaves the status alone (urge, escalate, arrive …).

Who ("who" column), checked against the actor by `services.actor_may`:
    dispatcher  指挥中心坐席 (role dispatcher) and street leaders
    assignee    the case's assignee (承办人)
    unit_member a member of the handling (lead) unit
    task_member a member of an assisting unit of a 联办 case
    supervisor  a supervisor of the handling unit (see services.supervisors_of), street leaders
    reporter    the person who reported it (by the rating link) — only for the return visit
    staff       any staff member who can see the case (register a patrol report)
    system      the platform itself (auto-dispatch, SLA escalation)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Transition:
    source: str
    action: str
    targets: tuple[str, ...]
    who: tuple[str, ...]
    zh: str


OPEN = ("dispatched", "handling", "extension_pending")
ACTIVE = ("reported", "registered", "dispatched", "returned", "handling", "extension_pending", "deferred")
HANDLERS = ("assignee", "unit_member")
DESK = ("dispatcher", "supervisor")


def _rows() -> list[Transition]:
    rows = [
        # Intake: "" is a case that does not exist yet.
        Transition("", "report", ("reported",), ("staff", "reporter", "system"), "受理"),
        Transition("", "register", ("registered",), ("dispatcher", "staff", "system"), "立案"),
        Transition("reported", "register", ("registered",), ("dispatcher",), "立案"),
        Transition("reported", "reject", ("cancelled",), ("dispatcher",), "注销"),
        Transition("registered", "reject", ("cancelled",), ("dispatcher",), "注销"),
        Transition("returned", "reject", ("cancelled",), ("dispatcher",), "注销"),
        # Dispatch and sign-for.
        Transition("registered", "dispatch", ("dispatched",), ("dispatcher", "system"), "派遣"),
        Transition("returned", "redispatch", ("dispatched",), ("dispatcher",), "重新派遣"),
        Transition("dispatched", "redispatch", ("dispatched",), ("dispatcher",), "改派"),
        Transition("dispatched", "sign", ("handling",), HANDLERS, "签收"),
        Transition("dispatched", "return", ("returned",), HANDLERS, "退单"),
        Transition("handling", "return", ("returned",), HANDLERS, "退单"),
        # Handling.
        Transition("handling", "arrive", ("handling",), (*HANDLERS, "task_member"), "到场"),
        Transition("handling", "followup", ("handling",), HANDLERS, "跟进"),
        Transition("handling", "finish_task", ("handling",), ("task_member",), "协办完成"),
        Transition("handling", "request_extension", ("extension_pending",), HANDLERS, "申请延期"),
        Transition("extension_pending", "approve_extension", ("handling",), ("supervisor",), "同意延期"),
        Transition("extension_pending", "deny_extension", ("handling",), ("supervisor",), "不同意延期"),
        Transition("handling", "defer", ("deferred",), ("supervisor", "dispatcher"), "缓办"),
        Transition("deferred", "resume", ("handling",), ("supervisor", "dispatcher"), "恢复办理"),
        Transition("handling", "finish", ("finished",), HANDLERS, "办结"),
        Transition("extension_pending", "finish", ("finished",), HANDLERS, "办结"),
        # Verification, close, return visit.
        Transition("finished", "verify_pass", ("closed",), DESK, "核查通过结案"),
        Transition("finished", "verify_fail", ("handling",), DESK, "核查不通过返工"),
        Transition("closed", "visit", ("visited", "unsatisfied"), ("dispatcher", "reporter"), "回访"),
        Transition("unsatisfied", "reopen", ("handling",), ("supervisor",), "重办"),
        Transition("unsatisfied", "close_with_explanation", ("visited",), ("supervisor",), "说明后结案"),
    ]
    # Supervision on every open status: no change of status.
    for status in ("registered", *OPEN, "returned", "deferred"):
        rows.append(Transition(status, "urge", (status,), DESK, "督办"))
    for status in ("registered", *OPEN, "returned"):
        rows.append(Transition(status, "escalate", (status,), (*DESK, "system"), "升级"))
    for status in ("reported", "registered", "dispatched", "returned", "handling"):
        rows.append(Transition(status, "merge", ("merged",), ("dispatcher",), "合并"))
    return rows


TABLE: dict[tuple[str, str], Transition] = {(t.source, t.action): t for t in _rows()}
ACTIONS: tuple[str, ...] = tuple(dict.fromkeys(t.action for t in TABLE.values()))
STATUSES: tuple[str, ...] = tuple(dict.fromkeys(s for t in TABLE.values() for s in (t.source, *t.targets)))
LABELS: dict[str, str] = {t.action: t.zh for t in TABLE.values()}


def find(status: str, action: str) -> Transition | None:
    return TABLE.get((status, action))


def allowed_actions(status: str) -> list[str]:
    """Actions the table allows from `status` (whoever the actor is)."""
    return [t.action for t in TABLE.values() if t.source == status]
