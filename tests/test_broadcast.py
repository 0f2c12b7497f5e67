"""Staff broadcasts: audience resolution (users, roles, unit trees, all staff), who may send to whom,
bilingual validation with nothing half-sent, idempotent retries, set-based fan-out, read receipts
through the inbox, an SMS gateway that is down and comes back, and the inbox and broadcast pages."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.factories import PASSWORD, Street
from tests.fakes import FakeGateway
from tests.pg import at_once
from zhizhi import clock
from zhizhi.models import LiveEvent
from zhizhi.notify import broadcast as bc
from zhizhi.notify import services
from zhizhi.notify.models import Broadcast, BroadcastRecipient, InboxMessage, OutboxMessage
from zhizhi.orgs.models import OrgUnit, User
from zhizhi.orgs.services import create_staff
from zhizhi.problems import Forbidden, Invalid

pytestmark = pytest.mark.django_db

START = timezone.make_aware(dt.datetime(2026, 11, 23, 9, 0))


def usernames(broadcast: Broadcast) -> set[str]:
    return set(broadcast.recipients.values_list("user__username", flat=True))


def phone(user: User, number: str) -> None:
    user.set_sensitive("phone", number)
    user.save()


def test_audience_is_the_union_of_users_roles_and_unit_trees(street: Street) -> None:
    u = street.users
    # A grid unit under community A's unit: choosing the community unit reaches its grid unit too.
    OrgUnit.objects.filter(pk=street.units["A1"].pk).update(parent=street.units["A"])
    b = bc.send_broadcast(
        u["dispatcher"],
        subject="防汛会议",
        body="今晚七点开会",
        recipients=(x for x in [u["dept"]]),  # any iterable
        roles=["volunteer"],
        units=[street.units["A"]],
    )
    assert usernames(b) == {"dept", "volunteer", "community_a", "grid_a1"}
    assert b.total == 4 and b.channels == ["inbox"]
    assert b.audience == {"users": 1, "roles": ["volunteer"], "units": ["C-A"], "all_staff": False}
    rows = OutboxMessage.objects.filter(cause=bc.cause_of(b))
    assert rows.count() == 4 and set(rows.values_list("channel", flat=True)) == {"inbox"}
    assert set(rows.values_list("user__username", flat=True)) == usernames(b)


def test_all_staff_is_every_active_staff_account_but_not_residents(street: Street) -> None:
    u = street.users
    User.objects.filter(pk=u["volunteer"].pk).update(is_active=False)
    b = bc.send_broadcast(u["leader"], subject="全员通知", body="", all_staff=True)
    assert usernames(b) == {"leader", "dispatcher", "dept", "community_a", "grid_a1", "grid_b1"}


def test_only_leaders_dispatchers_and_admins_broadcast_to_all_staff(street: Street) -> None:
    u = street.users
    for name in ("dept", "community_a"):
        with pytest.raises(Forbidden):
            bc.send_broadcast(u[name], subject="全员", body="", all_staff=True)
    for name in ("grid_a1", "volunteer", "resident"):  # may not broadcast at all
        with pytest.raises(Forbidden):
            bc.send_broadcast(u[name], subject="通知", body="", recipients=[u["leader"]])
    assert bc.send_broadcast(u["admin"], subject="全员", body="", all_staff=True).total == 7
    assert not Broadcast.objects.filter(sender__username__in=["dept", "community_a", "grid_a1"]).exists()


def test_community_staff_reach_only_their_area(street: Street) -> None:
    u = street.users
    # A role chosen by a community worker means the holders of that role in their community.
    b = bc.send_broadcast(u["community_a"], subject="巡查", body="", roles=["grid_worker"])
    assert usernames(b) == {"grid_a1"}
    # Naming someone outside their area is refused, with who, and nothing is written.
    with pytest.raises(Invalid) as err:
        bc.send_broadcast(u["community_a"], subject="巡查", body="", recipients=[u["grid_a1"], u["grid_b1"]])
    problem = err.value.problems[0]
    assert (problem.code, problem.field, problem.value) == (
        "recipient_out_of_scope",
        "recipients",
        ["grid_b1"],
    )
    assert "管辖范围" in problem.zh and "outside your area" in problem.en
    assert Broadcast.objects.count() == 1
    # The same choice by a dispatcher reaches everyone with the role.
    assert usernames(bc.send_broadcast(u["dispatcher"], subject="巡查", body="", roles=["grid_worker"])) == {
        "grid_a1",
        "grid_b1",
    }


def test_bad_input_reports_every_field_in_both_languages_and_writes_nothing(street: Street) -> None:
    with pytest.raises(Invalid) as err:
        bc.send_broadcast(
            street.users["dispatcher"],
            subject="  ",
            body="x" * 4001,
            roles=["mayor"],
            channels=["inbox", "fax"],
            link="javascript:alert(1)",
        )
    by_field = {p.field: p for p in err.value.problems}
    assert set(by_field) == {"subject", "body", "roles", "channels", "link"}
    assert by_field["channels"].value == ["fax"] and "sms" in by_field["channels"].expected_en
    assert all(p.zh and p.en for p in err.value.problems)
    with pytest.raises(Invalid) as err:
        bc.send_broadcast(street.users["dispatcher"], subject="通知", body="", recipients=[])
    assert [(p.code, p.field) for p in err.value.problems] == [("no_recipients", "recipients")]
    assert not Broadcast.objects.exists() and not BroadcastRecipient.objects.exists()
    assert not OutboxMessage.objects.exists()


def test_robot_channel_must_be_configured_then_gets_one_row_per_group(street: Street, gateway) -> None:  # type: ignore[no-untyped-def]
    u = street.users
    with pytest.raises(Invalid) as err:
        bc.send_broadcast(u["dispatcher"], subject="通知", body="", roles=["grid_worker"], channels=["wecom"])
    assert [(p.code, p.field, p.value) for p in err.value.problems] == [
        ("channel_not_configured", "channels", "wecom")
    ]
    b = bc.send_broadcast(
        u["dispatcher"], subject="通知", body="正文", roles=["grid_worker"], channels=["inbox", "dingtalk"]
    )
    robot = OutboxMessage.objects.get(cause=bc.cause_of(b), channel="dingtalk")
    assert (robot.recipient, robot.user_id) == ("指挥中心群", None)
    services.deliver_due()
    assert [r["path"] for r in gateway.received] == ["/robot"]
    assert bc.receipts(b)["by_channel"]["dingtalk"] == {
        "total": 1,
        "sent": 1,
        "pending": 0,
        "sending": 0,
        "dead": 0,
    }


def test_retry_with_the_same_request_id_sends_nothing_new(street: Street) -> None:
    u = street.users
    first = bc.send_broadcast(u["leader"], subject="通知", body="a", roles=["grid_worker"], request_id="r-1")
    again = bc.send_broadcast(u["leader"], subject="通知", body="a", roles=["grid_worker"], request_id="r-1")
    assert again.pk == first.pk
    assert Broadcast.objects.count() == 1 and OutboxMessage.objects.count() == 2
    with pytest.raises(Invalid) as err:
        bc.send_broadcast(u["dispatcher"], subject="通知", body="a", roles=["grid_worker"], request_id="r-1")
    assert err.value.problems[0].field == "request_id"


def test_read_receipts_follow_delivery_and_reading(street: Street) -> None:
    u = street.users
    with clock.frozen_at(START):
        b = bc.send_broadcast(
            u["dispatcher"],
            subject="台风预警",
            body="请做好准备",
            roles=["grid_worker"],
            incident_ref="drill:1",
        )
        before = bc.receipts(b)
    assert (before["total"], before["delivered"], before["read"]) == (2, 0, 0)
    assert {x["username"] for x in before["unread_users"]} == {"grid_a1", "grid_b1"}
    with clock.frozen_at(START + dt.timedelta(seconds=5)):
        assert services.deliver_due()["sent"] == 2
    mine = InboxMessage.objects.get(user=u["grid_a1"])
    assert (mine.subject, mine.body, bc.broadcast_id_of(mine)) == ("台风预警", "请做好准备", b.pk)
    with clock.frozen_at(START + dt.timedelta(minutes=3)):
        bc.mark_read(u["grid_a1"], mine)
    with clock.frozen_at(START + dt.timedelta(minutes=9)):
        bc.mark_read(u["grid_a1"], mine)  # again: the first reading time stays
        bc.mark_read(u["grid_a1"], b)
    after = bc.receipts(b)
    assert (after["total"], after["delivered"], after["read"]) == (2, 2, 1)
    assert [x["username"] for x in after["unread_users"]] == ["grid_b1"]
    row = BroadcastRecipient.objects.get(broadcast=b, user=u["grid_a1"])
    assert row.read_at == START + dt.timedelta(minutes=3)
    assert row.delivered_at == START + dt.timedelta(seconds=5)
    # The one who has not read it was stamped delivered by the receipts' grouped pass.
    other = BroadcastRecipient.objects.get(broadcast=b, user=u["grid_b1"])
    assert (other.delivered_at, other.read_at) == (START + dt.timedelta(seconds=5), None)
    assert InboxMessage.objects.get(pk=mine.pk).read_at == START + dt.timedelta(minutes=3)
    # Reading the broadcast itself (e.g. from its page) marks the inbox copy too.
    bc.mark_read(u["grid_b1"], b)
    assert services.unread_count(u["grid_b1"]) == 0 and bc.receipts(b)["read"] == 2
    # Someone else's message is not theirs to mark.
    with pytest.raises(Forbidden):
        bc.mark_read(u["grid_b1"], mine)
    # The cockpit's live channel saw the send and each first reading, not the repeats.
    events = list(LiveEvent.objects.filter(channel="broadcast").values_list("payload", flat=True))
    assert [(e["event"], e.get("read")) for e in events] == [("sent", None), ("read", 1), ("read", 2)]
    assert events[0]["incident_ref"] == "drill:1"


def test_sms_gateway_down_then_back_delivers_once_and_receipts_stay_right(street: Street, gateway) -> None:  # type: ignore[no-untyped-def]
    u = street.users
    phone(u["grid_a1"], "13900001111")
    phone(u["grid_b1"], "13900002222")
    # community_a has no phone: no SMS row, counted as no_phone.
    gateway.down = True
    with clock.frozen_at(START):
        b = bc.send_broadcast(
            u["dispatcher"],
            subject="停水通知",
            body="明日停水",
            recipients=[u["grid_a1"], u["grid_b1"], u["community_a"]],
            channels=["inbox", "sms"],
            request_id="water-1",
        )
    moment = START
    while moment < START + dt.timedelta(minutes=30):
        with clock.frozen_at(moment):
            services.deliver_due()
            # A retried send during the outage changes nothing.
            bc.send_broadcast(u["dispatcher"], subject="停水通知", body="明日停水", recipients=[u["grid_a1"]],
                              channels=["inbox", "sms"], request_id="water-1")  # fmt: skip
        if moment == START + dt.timedelta(minutes=10):
            bc.mark_read(u["grid_a1"], InboxMessage.objects.get(user=u["grid_a1"]))
        moment += dt.timedelta(minutes=5)
        during = bc.receipts(b)
        # The inbox does not depend on the gateway: everyone has it, one has read it.
        assert (during["total"], during["delivered"]) == (3, 3)
        assert during["read"] == (1 if moment > START + dt.timedelta(minutes=10) else 0)
        sms = during["by_channel"]["sms"]
        assert (sms["total"], sms["sent"], sms["no_phone"]) == (2, 0, 1)
    assert not gateway.received
    failed = OutboxMessage.objects.filter(cause=bc.cause_of(b), channel="sms")
    assert all(m.attempts >= 3 and m.last_error == "HTTP 503" for m in failed)
    gateway.down = False
    with clock.frozen_at(START + dt.timedelta(hours=2)):
        assert services.deliver_due()["sent"] == 2
        assert services.deliver_due()["sent"] == 0
    texts = sorted((r["body"]["phone"], r["body"]["text"]) for r in gateway.received)
    assert texts == [("13900001111", "【停水通知】明日停水"), ("13900002222", "【停水通知】明日停水")]
    assert len({r["key"] for r in gateway.received}) == 2
    # The outbox keeps the user reference, never the phone number.
    assert set(failed.values_list("recipient", flat=True)) == {
        f"user:{u['grid_a1'].pk}",
        f"user:{u['grid_b1'].pk}",
    }
    final = bc.receipts(b)
    assert final["by_channel"]["sms"]["sent"] == 2 and final["read"] == 1 and final["delivered"] == 3


def test_a_broadcast_to_thousands_is_set_based(street: Street) -> None:
    unit = OrgUnit.objects.create(code="VOL", name="志愿者队伍", kind="volunteer_team")
    User.objects.bulk_create(
        [
            User(username=f"v{i:04d}", role="volunteer", org_unit=unit, phone_enc="x" if i % 2 else "")
            for i in range(2500)
        ]
    )
    with CaptureQueriesContext(connection) as queries:
        b = bc.send_broadcast(
            street.users["leader"], subject="集结", body="", units=[unit], channels=["inbox", "sms"]
        )
    sql = [q["sql"] for q in queries.captured_queries]
    inserts = [s for s in sql if s.startswith('INSERT INTO "notify_')]
    # No statement per recipient: a fixed number of look-ups, and multi-row inserts (the batch size
    # is the backend's: SQLite takes fewer rows per statement than PostgreSQL).
    assert len(sql) - len(inserts) <= 12
    assert (2500 + 2500 + 1250) / (len(inserts) - 1) >= 50
    assert b.total == 2500
    assert OutboxMessage.objects.filter(cause=bc.cause_of(b), channel="inbox").count() == 2500
    assert OutboxMessage.objects.filter(cause=bc.cause_of(b), channel="sms").count() == 1250
    assert bc.receipts(b)["by_channel"]["sms"]["no_phone"] == 1250


# --- pages ---------------------------------------------------------------------------------------
def client_for(username: str) -> Client:
    client = Client()
    assert client.login(username=username, password=PASSWORD)
    return client


def test_inbox_page_lists_opens_marks_read_and_shows_the_count_in_the_nav(street: Street) -> None:
    u = street.users
    b = bc.send_broadcast(u["dispatcher"], subject="演练通知", body="周五上午演练", roles=["grid_worker"],
                          link="/cases/")  # fmt: skip
    services.notify_user(u["grid_a1"], "新案件", "请签收", key="case:9:dispatch")
    services.deliver_due()
    client = client_for("grid_a1")
    page = client.get("/inbox/").content.decode()
    assert "演练通知" in page and "新案件" in page
    assert 'id="inbox-unread">2<' in page
    message = InboxMessage.objects.get(user=u["grid_a1"], subject="演练通知")
    opened = client.get(f"/inbox/{message.pk}/").content.decode()
    assert "周五上午演练" in opened and 'href="/cases/"' in opened
    assert 'id="inbox-unread">1<' in opened
    assert BroadcastRecipient.objects.get(broadcast=b, user=u["grid_a1"]).read_at is not None
    client.get(f"/inbox/{message.pk}/")  # again: nothing changes
    assert bc.receipts(b)["read"] == 1
    # Another person's message is not found, and reading it marks nothing.
    assert client_for("grid_b1").get(f"/inbox/{message.pk}/").status_code == 404
    # Mark all read: the other broadcast's receipt too.
    other = bc.send_broadcast(u["dispatcher"], subject="第二条", body="", recipients=[u["grid_a1"]])
    services.deliver_due()
    assert client.post("/inbox/read-all/").status_code == 302
    assert services.unread_count(u["grid_a1"]) == 0
    assert bc.receipts(other)["read"] == 1 and bc.receipts(b)["read"] == 1
    assert Client().get("/inbox/").status_code == 302


def test_broadcast_pages_send_list_and_receipts_by_role(street: Street) -> None:
    u = street.users
    client = client_for("dispatcher")
    form = client.get("/notify/broadcasts/new/")
    assert form.status_code == 200 and "all_staff" in form.content.decode()
    bad = client.post("/notify/broadcasts/new/", {"subject": "", "channels": ["inbox"], "request_id": "f-1"})
    assert bad.status_code == 400
    text = bad.content.decode()
    assert "请填写标题" in text and "A subject is required" in text and "No recipients" in text
    ok = client.post(
        "/notify/broadcasts/new/",
        {"subject": "夜间值班", "body": "今晚加强巡查", "roles": ["grid_worker"], "channels": ["inbox"],
         "request_id": "f-2"},
    )  # fmt: skip
    b = Broadcast.objects.get(request_id="f-2")
    assert ok.status_code == 302 and ok.url == f"/notify/broadcasts/{b.pk}/"
    # A double submit of the same form sends nothing new.
    again = {"subject": "夜间值班", "roles": ["grid_worker"], "channels": ["inbox"], "request_id": "f-2"}
    client.post("/notify/broadcasts/new/", again)
    assert Broadcast.objects.count() == 1
    services.deliver_due()
    bc.mark_read(u["grid_a1"], b)
    listing = client.get("/notify/broadcasts/").content.decode()
    assert "夜间值班" in listing and 'data-read="1"' in listing and 'data-total="2"' in listing
    detail = client.get(f"/notify/broadcasts/{b.pk}/").content.decode()
    assert "A1网格员" in detail and "B1网格员" in detail and 'id="unread-count">1<' in detail
    # The community worker sees only the broadcasts they sent, and cannot choose all staff.
    community = client_for("community_a")
    assert "夜间值班" not in community.get("/notify/broadcasts/").content.decode()
    assert community.get(f"/notify/broadcasts/{b.pk}/").status_code == 404
    assert "all_staff" not in community.get("/notify/broadcasts/new/").content.decode()
    refused = community.post(
        "/notify/broadcasts/new/", {"subject": "x", "all_staff": "1", "channels": ["inbox"]}
    )
    assert refused.status_code == 403 and not Broadcast.objects.filter(sender=u["community_a"]).exists()
    # A grid worker may not send; as a recipient they read the broadcast itself, which marks it read.
    grid = client_for("grid_b1")
    assert grid.get("/notify/broadcasts/new/").status_code == 403
    mine = grid.get(f"/notify/broadcasts/{b.pk}/")
    assert (
        mine.status_code == 200
        and "今晚加强巡查" in mine.content.decode()
        and "unread-users" not in mine.content.decode()
    )
    assert bc.receipts(b)["read"] == 2


def test_community_worker_sends_within_their_area_from_the_page(street: Street) -> None:
    create_staff(
        username="grid_a2",
        full_name="A2网格员",
        role="grid_worker",
        password=PASSWORD,
        regions=[street.grids["A2"]],
    )
    client = client_for("community_a")
    form = {"subject": "入户走访", "roles": ["grid_worker"], "channels": ["inbox"], "request_id": "c-1"}
    answer = client.post("/notify/broadcasts/new/", form)
    assert answer.status_code == 302
    assert usernames(Broadcast.objects.get(request_id="c-1")) == {"grid_a1", "grid_a2"}


def test_demo_layer_sends_three_notices_with_receipts_once(street: Street) -> None:
    from zhizhi.notify import demo

    with clock.frozen_at(START):
        first = demo.load(street.street)
        again = demo.load(street.street)
    assert first["broadcasts"] == 3 and again == {"broadcasts": 0, "read": 0}
    totals = [bc.receipts(b) for b in Broadcast.objects.order_by("request_id")]
    assert [t["total"] for t in totals] == [3, 2, 4]  # grid+community; grid; grid+community+volunteer
    assert sum(t["read"] for t in totals) == first["read"] and all(
        t["delivered"] == t["total"] for t in totals
    )


# --- API -----------------------------------------------------------------------------------------
def api_client(user: User) -> Client:
    from zhizhi.permissions import create_token

    raw, _ = create_token(user, "test")
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw}")


def test_api_sends_once_reads_receipts_and_marks_read(street: Street) -> None:
    u = street.users
    desk = api_client(u["dispatcher"])
    body = {"subject": "防台", "body": "检查下水道", "roles": ["grid_worker"], "units": ["G-A1"],
            "request_id": "api-1", "incident_ref": "emergency.incident:3"}  # fmt: skip
    first = desk.post("/api/v1/notify/broadcasts", body, content_type="application/json")
    assert first.status_code == 201 and first.json()["total"] == 2
    again = desk.post("/api/v1/notify/broadcasts", body, content_type="application/json")
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    bad = desk.post(
        "/api/v1/notify/broadcasts",
        {"subject": "", "units": ["NOPE"], "users": ["ghost"], "channels": ["fax"]},
        content_type="application/json",
    )
    assert bad.status_code == 400
    assert {e["field"] for e in bad.json()["errors"]} == {"units", "users"}  # looked up before anything else
    bad = desk.post(
        "/api/v1/notify/broadcasts", {"subject": "", "channels": ["fax"]}, content_type="application/json"
    )
    assert {e["field"] for e in bad.json()["errors"]} == {"subject", "channels", "recipients"}
    assert all(e["zh"] and e["en"] for e in bad.json()["errors"])
    services.deliver_due()
    worker = api_client(u["grid_a1"])
    inbox = worker.get("/api/v1/notify/inbox?unread=true").json()
    assert inbox["unread"] == 1 and inbox["items"][0]["broadcast"] == first.json()["id"]
    message_id = inbox["items"][0]["id"]
    assert worker.post(f"/api/v1/notify/inbox/{message_id}/read").json()["read_at"] is not None
    assert api_client(u["grid_b1"]).post(f"/api/v1/notify/inbox/{message_id}/read").status_code == 404
    report = desk.get(f"/api/v1/notify/broadcasts/{first.json()['id']}").json()["receipts"]
    assert (report["total"], report["delivered"], report["read"]) == (2, 2, 1)
    assert [x["username"] for x in report["unread_users"]] == ["grid_b1"]
    listed = desk.get("/api/v1/notify/broadcasts?incident_ref=emergency.incident:3").json()["items"]
    assert [b["id"] for b in listed] == [first.json()["id"]]
    # Scope: a community worker sees neither the list entry nor the receipts of someone else's broadcast;
    # a grid worker may not send.
    community = api_client(u["community_a"])
    assert community.get("/api/v1/notify/broadcasts").json()["items"] == []
    assert community.get(f"/api/v1/notify/broadcasts/{first.json()['id']}").status_code == 404
    refused = worker.post(
        "/api/v1/notify/broadcasts", {"subject": "x", "all_staff": True}, content_type="application/json"
    )
    assert refused.status_code == 403 and "errors" in refused.json()
    assert worker.post("/api/v1/notify/inbox/read-all").json() == {"marked": 0}


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_with_one_request_id_send_once(street: Street) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs real concurrent connections (PostgreSQL)")

    def run() -> int:
        b = bc.send_broadcast(
            street.users["dispatcher"],
            subject="集合",
            body="",
            roles=["grid_worker"],
            request_id="same-1",
        )
        return b.pk

    got = at_once(run, 4)
    assert len(set(got)) == 1 and len(got) == 4
    assert Broadcast.objects.count() == 1 and OutboxMessage.objects.count() == 2


def test_sms_gateway_not_listening_then_back(street: Street, settings) -> None:  # type: ignore[no-untyped-def]
    u = street.users
    phone(u["grid_a1"], "13900003333")
    gone = FakeGateway()
    settings.ZHIZHI_SMS_URL = gone.url + "/sms"
    gone.close()  # nothing listens on that port now: connection refused
    with clock.frozen_at(START):
        b = bc.send_broadcast(
            u["dispatcher"],
            subject="演练",
            body="十点集合",
            recipients=[u["grid_a1"]],
            channels=["inbox", "sms"],
        )
        assert services.deliver_due() == {"sent": 1, "retry": 1, "dead": 0}  # the inbox lands, SMS waits
    sms = OutboxMessage.objects.get(cause=bc.cause_of(b), channel="sms")
    assert sms.status == OutboxMessage.PENDING and "refused" in sms.last_error.lower()
    assert bc.receipts(b)["delivered"] == 1  # the inbox copy counts as delivered
    back = FakeGateway()
    try:
        settings.ZHIZHI_SMS_URL = back.url + "/sms"
        with clock.frozen_at(START + dt.timedelta(minutes=5)):
            assert services.deliver_due()["sent"] == 1
            assert services.deliver_due()["sent"] == 0
        assert [r["body"]["phone"] for r in back.received] == ["13900003333"]
    finally:
        back.close()
