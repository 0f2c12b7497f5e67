"""The case lifecycle: every (status, action) pair of the transition table, allowed and refused;
idempotent repeats; who may act; concurrent dispatch; photos; the outbox in the same transaction;
the API's 201/403/404/409 answers."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection, transaction
from django.test import Client

from tests.factories import PASSWORD
from tests.pg import at_once
from tests.test_cases_support import A1, PNG, CaseMaker, loop_fixture  # noqa: F401
from zhizhi.cases import services, transitions
from zhizhi.cases.models import Case, CaseEvent
from zhizhi.notify.models import OutboxMessage
from zhizhi.problems import Forbidden, Invalid

ALL_STATUSES = [s for s in transitions.STATUSES if s]
# Actions the API takes (report is creation only).
ALL_ACTIONS = [a for a in transitions.ACTIONS if a != "report"]

# Who performs each action in the table test, and with what input.
ACTOR = {
    "register": "dispatcher",
    "reject": "dispatcher",
    "dispatch": "dispatcher",
    "redispatch": "dispatcher",
    "sign": "handler",
    "return": "handler",
    "arrive": "handler",
    "followup": "handler",
    "finish_task": "scjg",
    "request_extension": "handler",
    "approve_extension": "community_a",
    "deny_extension": "community_a",
    "defer": "community_a",
    "resume": "community_a",
    "finish": "handler",
    "verify_pass": "dispatcher",
    "verify_fail": "dispatcher",
    "visit": "dispatcher",
    "reopen": "community_a",
    "close_with_explanation": "community_a",
    "urge": "dispatcher",
    "escalate": "dispatcher",
    "merge": "dispatcher",
}


def payload(loop: CaseMaker, case: Case, action: str) -> dict[str, Any]:
    if action == "reject":
        return {"reason": "不属于立案范围"}
    if action in ("dispatch", "redispatch"):
        return {"unit": case.unit.code if case.unit else "G-A1"}
    if action == "return":
        return {"reason": "权属不清"}
    if action == "arrive":
        return {"lng": A1[0], "lat": A1[1]}
    if action in ("followup", "verify_fail", "reopen", "close_with_explanation", "urge"):
        return {"note": "说明情况"}
    if action == "finish_task":
        return {"result": "协办已完成"}
    if action == "request_extension":
        return {"amount": 1, "reason": "材料未齐"}
    if action == "defer":
        return {"reason": "等待条件"}
    if action == "finish":
        return {
            "result": "已处理",
            "photos": [loop.photo(case, "grid_a1" if case.unit_id != loop.street.units["CG"].pk else "cg")],
        }
    if action == "visit":
        return {"satisfaction": "满意"}
    if action == "merge":
        other = loop.new(category_certain=False)
        return {"into": other.number}
    return {}


@pytest.mark.parametrize("status", ALL_STATUSES)
def test_every_action_from_every_status(loop: CaseMaker, status: str) -> None:
    """From `status`, each action of the table succeeds (landing in one of its targets) and each
    other action is refused with the list of actions allowed now."""
    failures = []
    for action in ALL_ACTIONS:
        category = "0104" if action == "finish_task" else "0102"
        case = loop.at(status, category)
        assert case.status == status
        who = ACTOR[action]
        row = transitions.find(status, action)
        actor = loop.handler(category) if who == "handler" else loop.user(who)
        if row is None:
            # Refusals are checked as someone who can see the case (else it would be a 404).
            actor = loop.user("dispatcher")
        events_before = CaseEvent.objects.filter(case=case).count()
        try:
            data = payload(loop, case, action)
            after = services.perform(actor, case.pk, action, **data)
        except services.IllegalAction as exc:
            if row is not None:
                failures.append(f"{status}×{action}: refused but the table allows it")
            assert exc.allowed == services.allowed_now(actor, case)
            assert exc.problem.zh and exc.problem.en
            assert CaseEvent.objects.filter(case=case).count() == events_before
            continue
        if row is None:
            failures.append(f"{status}×{action}: allowed but not in the table")
            continue
        # The event of this action says where it went (a register may be followed at once by the
        # system's auto-dispatch, which is its own event).
        event = CaseEvent.objects.filter(case=case, action=action, from_status=status).last()
        if event is None or event.to_status not in row.targets:
            failures.append(f"{status}×{action}: event {event and event.to_status}, table says {row.targets}")
        after.refresh_from_db()
        assert after.status in (*row.targets, "dispatched")
    assert not failures, "\n".join(failures)


def test_table_covers_every_status_and_action() -> None:
    targets = {t for row in transitions.TABLE.values() for t in row.targets}
    sources = {row.source for row in transitions.TABLE.values()}
    final = {"cancelled", "merged", "visited"}
    assert targets - {"reported", "registered"} <= sources | final
    assert set(ACTOR) == set(ALL_ACTIONS) == set(services.ACTION_FUNCTIONS)


def test_wrong_person_is_forbidden_for_every_allowed_row(loop: CaseMaker) -> None:
    """The QYFZB staff member sees the street's cases but holds no relation to them: every row
    that does not admit plain staff is refused with Forbidden, and nothing is written."""
    outsider = loop.user("dept")
    checked = 0
    for (status, action), row in transitions.TABLE.items():
        if not status or "staff" in row.who:
            continue
        case = loop.at(status, "0104" if action == "finish_task" else "0102")
        events = CaseEvent.objects.filter(case=case).count()
        with pytest.raises(Forbidden):
            services.perform(outsider, case.pk, action, **payload(loop, case, action))
        assert CaseEvent.objects.filter(case=case).count() == events
        checked += 1
    assert checked > 30


def test_out_of_scope_is_not_found(loop: CaseMaker) -> None:
    case = loop.at("dispatched")
    with pytest.raises(services.NotFound):
        services.sign_for(loop.user("grid_b1"), case.pk)
    with pytest.raises(services.NotFound):
        services.get_case(loop.user("grid_b1"), case.pk)


def test_same_request_twice_is_one_event(loop: CaseMaker) -> None:
    case = loop.at("dispatched")
    g = loop.user("grid_a1")
    first = services.sign_for(g, case.pk, request_id="req-1")
    again = services.perform(g, case.pk, "sign", request_id="req-1")
    assert first.status == again.status == "handling"
    assert CaseEvent.objects.filter(case=case, action="sign").count() == 1
    # Without the key the repeat is an illegal action, answered with what is allowed now.
    with pytest.raises(services.IllegalAction) as err:
        services.sign_for(g, case.pk)
    assert "finish" in err.value.allowed and "sign" not in err.value.allowed
    # The same key for another action is a client bug, not a silent success.
    with pytest.raises(Invalid):
        services.perform(g, case.pk, "followup", note="跟进", request_id="req-1")


def test_register_twice_with_request_id_or_external_id(loop: CaseMaker) -> None:
    a = loop.new(request_id="form-7")
    b = loop.new(request_id="form-7")
    assert a.pk == b.pk
    c = loop.new(channel="hotline", external_id="12345-001")
    d = loop.new(channel="hotline", external_id="12345-001")
    assert c.pk == d.pk
    assert Case.objects.count() == 2


def test_finish_needs_photo_when_category_says_so(loop: CaseMaker) -> None:
    case = loop.at("handling")
    with pytest.raises(Invalid) as err:
        services.finish_case(loop.user("grid_a1"), case.pk, result="已清理")
    assert err.value.problems[0].code == "photo_required"
    with pytest.raises(Invalid):
        services.finish_case(loop.user("grid_a1"), case.pk, result="")
    photo = loop.photo(case)
    done = services.finish_case(loop.user("grid_a1"), case.pk, result="已清理", photos=[photo])
    assert done.status == "finished"
    assert CaseEvent.objects.get(case=case, action="finish").photos == [photo]


def test_photo_must_be_an_image_within_the_limit(loop: CaseMaker, settings: Any) -> None:
    case = loop.at("handling")
    g = loop.user("grid_a1")
    with pytest.raises(Invalid) as err:
        services.add_photo(g, case.pk, name="x.jpg", data=b"%PDF-1.4 not an image")
    assert err.value.problems[0].code == "photo_type"
    settings.ZHIZHI_PHOTO_MAX_BYTES = 100
    with pytest.raises(Invalid) as err:
        services.add_photo(g, case.pk, name="big.png", data=PNG + b"\0" * 200)
    assert err.value.problems[0].code == "photo_too_large"
    assert services.photo_type(b"RIFF\0\0\0\0WEBPVP8 ") == "image/webp"
    assert services.photo_type(b"\xff\xd8\xff\xe0") == "image/jpeg"


def test_photo_of_another_case_is_refused(loop: CaseMaker) -> None:
    one, two = loop.at("handling"), loop.at("handling")
    foreign = loop.photo(two)
    with pytest.raises(Invalid) as err:
        services.finish_case(loop.user("grid_a1"), one.pk, result="好了", photos=[foreign])
    assert err.value.problems[0].code == "photo_unknown"


def test_extension_after_the_deadline_is_allowed_and_flagged_late(loop: CaseMaker) -> None:
    import datetime as dt

    from zhizhi import clock

    case = loop.at("handling")
    due = case.due_at
    with clock.frozen_at(due + dt.timedelta(hours=1)):
        asked = services.request_extension(loop.user("grid_a1"), case.pk, amount=2, reason="雨天无法施工")
        assert asked.extension_request["late"] is True
        with pytest.raises(Forbidden):  # never approved by the one who asked
            services.approve_extension(loop.user("grid_a1"), case.pk)
        done = services.approve_extension(loop.user("community_a"), case.pk, note="同意")
    assert done.status == "handling" and done.extension_count == 1
    assert done.due_at > due
    ev = CaseEvent.objects.get(case=case, action="approve_extension")
    assert ev.data["late"] is True


def test_return_needs_a_known_reason_and_goes_back_to_the_dispatcher(loop: CaseMaker) -> None:
    case = loop.at("dispatched")
    with pytest.raises(Invalid):
        services.return_case(loop.user("grid_a1"), case.pk, reason="不想办")
    back = services.return_case(loop.user("grid_a1"), case.pk, reason="职能交叉", note="应由城管处理")
    assert back.status == "returned" and back.return_reason == "职能交叉"
    inbox = OutboxMessage.objects.filter(cause=f"cases.case:{case.pk}", user=loop.user("dispatcher"))
    assert inbox.filter(subject__startswith="退单").exists()
    with pytest.raises(services.IllegalAction):
        services.dispatch_case(loop.user("dispatcher"), case.pk, unit="CG")
    again = services.redispatch_case(loop.user("dispatcher"), case.pk, unit="CG")
    assert again.status == "dispatched" and again.unit.code == "CG" and again.assignee == loop.user("cg")


def test_unsatisfied_visit_then_reopen_or_explain(loop: CaseMaker) -> None:
    case = loop.at("unsatisfied")
    assert case.satisfaction == "unsatisfied"
    reopened = services.reopen_case(loop.user("community_a"), case.pk, note="重新处理")
    assert reopened.status == "handling" and reopened.rework_count == 1 and reopened.finished_at is None
    other = loop.at("unsatisfied")
    with pytest.raises(Invalid):
        services.close_with_explanation(loop.user("community_a"), other.pk, note="")
    closed = services.close_with_explanation(loop.user("community_a"), other.pk, note="已按政策解释")
    assert closed.status == "visited"


def test_reporter_rates_with_the_link_token(loop: CaseMaker) -> None:
    case = loop.at("closed")
    with pytest.raises(services.NotFound):
        services.visit_case(None, case.pk, satisfaction="满意", rate_token="wrong")
    rated = services.visit_case(None, case.pk, satisfaction="基本满意", rate_token=case.rate_token)
    assert rated.status == "visited" and rated.satisfaction == "basic"


def test_merge_into_itself_or_a_closed_case_is_refused(loop: CaseMaker) -> None:
    case = loop.at("registered")
    with pytest.raises(Invalid):
        services.merge_case(loop.user("dispatcher"), case.pk, into=case.number)
    gone = loop.at("cancelled")
    with pytest.raises(Invalid):
        services.merge_case(loop.user("dispatcher"), case.pk, into=gone.number)
    target = loop.at("handling")
    merged = services.merge_case(loop.user("dispatcher"), case.pk, into=target.number)
    assert merged.status == "merged" and merged.duplicate_of == target


def test_timeline_is_append_only(loop: CaseMaker) -> None:
    case = loop.at("handling")
    event = CaseEvent.objects.filter(case=case).first()
    assert event is not None
    with pytest.raises(TypeError):
        event.note = "改写"
        event.save()
    with pytest.raises(TypeError):
        CaseEvent.objects.filter(case=case).update(note="改写")
    with pytest.raises(TypeError):
        CaseEvent.objects.filter(case=case).delete()
    actions = list(CaseEvent.objects.filter(case=case).values_list("action", flat=True))
    assert actions == ["register", "dispatch", "sign"]


# --- the outbox -----------------------------------------------------------------------------------
def test_reporter_sms_on_register_finish_and_visit_invitation(loop: CaseMaker) -> None:
    case = loop.new(reporter_name="张女士", reporter_phone="13812345678")
    assert case.reporter_phone_masked == "138****5678"
    assert "13812345678" not in str(Case.objects.filter(pk=case.pk).values().first())
    sms = OutboxMessage.objects.filter(
        cause=f"cases.case:{case.pk}", channel="sms", recipient=f"case:{case.pk}:reporter"
    )
    assert sms.count() == 1
    g = loop.user("grid_a1")
    services.sign_for(g, case.pk)
    loop.finish(Case.objects.get(pk=case.pk), g)
    services.verify_case(loop.user("dispatcher"), case.pk, passed=True)
    bodies = list(sms.order_by("id").values_list("body", flat=True))
    assert len(bodies) == 3
    assert "已受理" in bodies[0] and "已办结" in bodies[1]
    invite = sms.order_by("id").last()
    assert invite is not None and case.rate_token in invite.link
    # The assignee was told in the inbox when the case was dispatched to them.
    assert OutboxMessage.objects.filter(cause=f"cases.case:{case.pk}", channel="inbox", user=g).exists()


def test_reporter_phone_is_revealed_only_with_a_logged_purpose(loop: CaseMaker) -> None:
    from zhizhi.models import RevealLog
    from zhizhi.permissions import reveal

    case = loop.new(reporter_phone="13812345678")
    assert reveal(loop.user("dispatcher"), case, "reporter_phone", purpose="回访联系反映人") == "13812345678"
    assert RevealLog.objects.filter(actor=loop.user("dispatcher"), field="reporter_phone").count() == 1
    with pytest.raises(Forbidden):
        reveal(loop.user("grid_a1"), case, "reporter_phone", purpose="想看看")


def test_reporter_sms_reaches_the_gateway_without_the_number_at_rest(loop: CaseMaker, settings: Any) -> None:
    """Through the loopback SMS gateway: the gateway gets the number, the outbox never holds it."""
    from tests.fakes import FakeGateway
    from zhizhi.notify.services import deliver_due

    gateway = FakeGateway()
    settings.ZHIZHI_SMS_URL = gateway.url + "/sms"
    try:
        case = loop.new(reporter_phone="13812345678")
        deliver_due()
        assert [m["body"]["phone"] for m in gateway.received] == ["13812345678"]
        assert "已受理" in gateway.received[0]["body"]["text"]
        row = OutboxMessage.objects.get(cause=f"cases.case:{case.pk}", channel="sms")
        assert row.status == "sent" and row.recipient == f"case:{case.pk}:reporter"
        assert not OutboxMessage.objects.filter(recipient__contains="13812345678").exists()
        assert not OutboxMessage.objects.filter(body__contains="13812345678").exists()
    finally:
        gateway.close()


def test_outbox_rows_roll_back_with_the_action(loop: CaseMaker) -> None:
    case = loop.at("dispatched")
    before = OutboxMessage.objects.count()
    with pytest.raises(RuntimeError), transaction.atomic():
        services.urge_case(loop.user("dispatcher"), case.pk, note="请尽快")
        assert OutboxMessage.objects.count() > before
        raise RuntimeError("the request failed after the action")
    assert OutboxMessage.objects.count() == before
    assert not CaseEvent.objects.filter(case=case, action="urge").exists()


# --- two dispatchers at once ------------------------------------------------------------------
@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_two_dispatchers_at_the_same_moment_exactly_one_wins(street: Any) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs two real connections with row locks (PostgreSQL); SQLite serialises writers")
    from tests.test_cases_support import LIST, add_loop_units
    from zhizhi.orgs.services import create_staff

    services.ensure_case_permissions()
    add_loop_units(street)
    services.load_responsibility_list(LIST, None)
    second = create_staff(
        username="dispatcher2",
        full_name="坐席2",
        role="dispatcher",
        password=PASSWORD,
        org_unit=street.units["street"],
        regions=[street.street],
    )
    case = services.register_case(
        street.users["dispatcher"],
        title="并发派遣",
        category="0102",
        lng=A1[0],
        lat=A1[1],
        category_certain=False,
    )
    assert case.status == "registered"
    barrier = threading.Barrier(2)
    results: dict[str, Any] = {}

    def run(name: str, user: Any, unit: str) -> None:
        try:
            barrier.wait()
            services.dispatch_case(user, case.pk, unit=unit)
            results[name] = "won"
        except services.IllegalAction as exc:
            results[name] = exc
        finally:
            connection.close()

    threads = [
        threading.Thread(target=run, args=("one", street.users["dispatcher"], "G-A1")),
        threading.Thread(target=run, args=("two", second, "CG")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [k for k, v in results.items() if v == "won"]
    lost = [v for v in results.values() if v != "won"]
    assert len(won) == 1 and len(lost) == 1
    assert "redispatch" in lost[0].allowed  # the loser is told what it can do now
    assert CaseEvent.objects.filter(case_id=case.pk, action="dispatch").count() == 1


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_the_same_hotline_ticket_twice_at_once_is_one_case(street: Any) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs two real connections (PostgreSQL); SQLite serialises writers")
    services.ensure_case_permissions()

    def run() -> int:
        case = services.register_case(
            street.users["dispatcher"],
            title="热线来电：路灯不亮",
            lng=A1[0],
            lat=A1[1],
            channel="hotline",
            external_id="12345-20261123-0042",
        )
        return case.pk

    got = at_once(run, 2)
    assert len(got) == 2 and got[0] == got[1]
    assert Case.objects.filter(external_id="12345-20261123-0042").count() == 1


# --- the API ------------------------------------------------------------------------------------
def client_for(loop: CaseMaker, key: str) -> Client:
    c = Client()
    assert c.login(username=key, password=PASSWORD)
    return c


def test_api_register_get_act_and_409(loop: CaseMaker) -> None:
    d = client_for(loop, "dispatcher")
    r = d.post(
        "/api/v1/cases/",
        {
            "title": "小区门口垃圾堆积",
            "category": "0102",
            "lng": A1[0],
            "lat": A1[1],
            "reporter_phone": "13900001111",
        },
        content_type="application/json",
    )
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["status"] == "dispatched" and body["unit"]["key"] == "G-A1"
    assert body["reporter_phone_masked"] == "139****1111"
    assert [e["action"] for e in body["timeline"]] == ["register", "dispatch"]
    case_id = body["id"]

    g = client_for(loop, "grid_a1")
    url = f"/api/v1/cases/{case_id}/actions/"
    r = g.post(url + "sign", {"request_id": "k1"}, content_type="application/json")
    assert r.status_code == 200 and r.json()["status"] == "handling"
    r = g.post(url + "sign", {"request_id": "k1"}, content_type="application/json")
    assert r.status_code == 200  # the same request again: the same answer, no second event
    r = g.post(url + "sign", {}, content_type="application/json")
    assert r.status_code == 409
    assert r.json()["errors"][0]["code"] == "illegal_action"
    # docs/cases.md shows this answer.
    assert r.json()["allowed_actions"] == ["return", "arrive", "followup", "request_extension", "finish"]

    r = g.post(f"/api/v1/cases/{case_id}/photos", {"file": _upload("a.txt", b"hello")})
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "photo_type"
    r = g.post(f"/api/v1/cases/{case_id}/photos", {"file": _upload("a.png", PNG)})
    assert r.status_code == 201
    photo = r.json()["id"]
    r = g.post(url + "finish", {"result": "已清运"}, content_type="application/json")
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "photo_required"
    r = g.post(url + "finish", {"result": "已清运", "photos": [photo]}, content_type="application/json")
    assert r.status_code == 200 and r.json()["status"] == "finished"

    # Someone in the area but not on the case: 403; someone outside the area: 404.
    r = client_for(loop, "dept").post(url + "verify_pass", {}, content_type="application/json")
    assert r.status_code == 403
    r = client_for(loop, "grid_b1").get(f"/api/v1/cases/{case_id}")
    assert r.status_code == 404
    r = d.post(url + "fly", {}, content_type="application/json")
    assert r.status_code == 400

    listing = d.get("/api/v1/cases/?status=finished&category=01&unit=G-A1").json()
    assert listing["count"] == 1 and listing["results"][0]["number"] == body["number"]
    assert d.get("/api/v1/cases/?sla_level=red").json()["count"] == 0
    assert client_for(loop, "grid_b1").get("/api/v1/cases/").json()["count"] == 0
    tree = d.get("/api/v1/cases/categories/").json()
    assert [c["code"] for c in tree["categories"]] == ["01", "09"]


def test_api_token_auth(loop: CaseMaker) -> None:
    from zhizhi.permissions import create_token

    raw, _ = create_token(loop.user("dispatcher"), "test")
    r = Client().post(
        "/api/v1/cases/",
        {"title": "无类别的反映", "lng": A1[0], "lat": A1[1]},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )
    assert r.status_code == 201
    assert r.json()["status"] == "registered" and r.json()["suggested_unit"]["key"] == "G-A1"
    assert Client().get("/api/v1/cases/").status_code == 401


def test_api_resident_reports_and_rates_by_link(loop: CaseMaker) -> None:
    r = client_for(loop, "resident").post(
        "/api/v1/cases/",
        {"title": "楼道灯坏了", "lng": A1[0], "lat": A1[1], "channel": "web"},
        content_type="application/json",
    )
    assert r.status_code == 201 and r.json()["status"] == "reported"
    case = loop.at("closed")
    anonymous = Client()
    assert anonymous.get("/api/v1/cases/rate/not-a-real-token-at-all").status_code == 404
    page = anonymous.get(f"/api/v1/cases/rate/{case.rate_token}").json()
    assert page["can_rate"] is True and page["number"] == case.number
    url = f"/api/v1/cases/rate/{case.rate_token}"
    r = anonymous.post(url, {"satisfaction": "满意", "note": "很快"}, content_type="application/json")
    assert r.status_code == 200 and r.json()["status"] == "visited"
    r = anonymous.post(url, {"satisfaction": "不满意"}, content_type="application/json")
    assert r.status_code == 409
    event = CaseEvent.objects.get(case=case, action="visit")
    assert event.actor is None and event.data["by"] == "reporter"


def _upload(name: str, data: bytes) -> Any:
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data)
