"""Emergency instructions through the outbox: the audience (all staff, units, roles), bad input,
idempotent retries, and an SMS gateway (a real loopback HTTP server) down during the broadcast and
back later: nothing lost, nothing sent twice, read receipts right all along."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from tests.factories import Street
from tests.fakes import FakeGateway
from tests.test_emergency import buildings, declare, populate
from zhizhi import clock
from zhizhi.cockpit.emergency import services
from zhizhi.cockpit.emergency.models import IncidentEvent
from zhizhi.notify import broadcast as notify_broadcast
from zhizhi.notify import services as notify
from zhizhi.notify.models import InboxMessage, OutboxMessage
from zhizhi.problems import Forbidden, Invalid

pytestmark = pytest.mark.django_db

START = timezone.make_aware(dt.datetime(2026, 8, 28, 9, 30))


STAFF = {"leader", "dispatcher", "dept", "community_a", "grid_a1", "grid_b1", "volunteer"}


def test_broadcast_while_the_sms_gateway_is_down_is_delivered_later_with_right_receipts(
    street: Street, gateway: FakeGateway
) -> None:
    populate(street)
    for name, phone in (("grid_a1", "13900001111"), ("community_a", "13900002222")):
        user = street.users[name]
        user.set_sensitive("phone", phone)
        user.save()
    gateway.down = True
    with clock.frozen_at(START):
        incident = declare(street, building_ids=buildings(street, "A1")).incident
        item = services.broadcast(
            street.users["dispatcher"],
            incident,
            subject="立即疏散",
            body="建国北路塌陷，请立即赶到疏散范围组织撤离",
            channels=["sms", "dingtalk"],
            request_id="b-1",
        )
        # Every staff account, not the resident; tied to the incident.
        assert item.total == len(STAFF) and item.incident_ref == f"emergency.incident:{incident.pk}"
        assert list(services.broadcasts_of(incident)) == [item]
        sms = OutboxMessage.objects.filter(cause=notify_broadcast.cause_of(item), channel="sms")
        assert sms.count() == 2  # only the two with a phone
        counts = notify.deliver_due()
    # The inbox is ours and always up; SMS (the two task notices, the two instructions) and the robot
    # wait for the gateway.
    assert counts == {"sent": len(STAFF) + 2, "retry": 5, "dead": 0}
    assert not gateway.received
    rows = {r.name: r for r in services.receipts(item)}
    assert set(rows) == {"领导", "坐席", "区域发展办员", "A社工", "A1网格员", "B1网格员", "志愿者"}
    assert all(r.delivered_at is not None and r.read_at is None for r in rows.values())
    assert rows["A1网格员"].sms == "pending"
    # The grid worker reads it on the phone while the gateway is still down.
    message = InboxMessage.objects.get(
        user=street.users["grid_a1"], outbox_key__startswith=f"broadcast:{item.pk}:"
    )
    with clock.frozen_at(START + dt.timedelta(minutes=2)):
        notify_broadcast.mark_read(street.users["grid_a1"], message)
    assert services.receipt_counts(item) == {"recipients": len(STAFF), "delivered": len(STAFF), "read": 1}
    # The gateway comes back; the outbox retry sends each SMS once.
    gateway.down = False
    with clock.frozen_at(START + dt.timedelta(minutes=30)):
        assert notify.deliver_due()["sent"] == 5
        assert notify.deliver_due()["sent"] == 0
    texts = sorted(
        r["body"]["phone"]
        for r in gateway.received
        if r["path"] == "/sms" and "请立即赶到" in r["body"]["text"]
    )
    assert texts == ["13900001111", "13900002222"]
    assert [r["path"] for r in gateway.received].count("/robot") == 1
    rows = {r.name: r for r in services.receipts(item)}
    assert rows["A1网格员"].sms == "sent" and rows["A1网格员"].read_at == START + dt.timedelta(minutes=2)
    assert rows["A社工"].read_at is None and rows["领导"].sms == ""
    assert services.receipt_counts(item)["read"] == 1
    # A retry of the same broadcast request sends nothing new.
    again = services.broadcast(
        street.users["dispatcher"], incident, subject="立即疏散", body="…", request_id="b-1"
    )
    assert again.pk == item.pk
    assert IncidentEvent.objects.filter(incident=incident, kind="broadcast").count() == 1


def test_broadcast_to_chosen_units_or_roles(street: Street) -> None:
    populate(street)
    incident = declare(street, building_ids=buildings(street, "A1")).incident
    dispatcher = street.users["dispatcher"]
    by_role = services.broadcast(
        dispatcher, incident, subject="网格员集合", body="到A1楼下集合", to_all=False, roles=["grid_worker"]
    )
    assert {r.name for r in services.receipts(by_role)} == {"A1网格员", "B1网格员"}
    assert by_role.audience["roles"] == ["grid_worker"] and not by_role.audience["all_staff"]
    # Community A's committee and (as its sub-unit) nobody else: the A1 grid unit is not a child here.
    by_unit = services.broadcast(
        dispatcher, incident, subject="社区待命", body="…", to_all=False, unit_ids=[street.units["A"].pk]
    )
    assert {r.name for r in services.receipts(by_unit)} == {"A社工"}


@pytest.mark.parametrize(
    ("params", "code", "fld"),
    [
        ({"subject": "", "body": "x"}, "required", "subject"),
        ({"subject": "x", "body": "y", "channels": ["pigeon"]}, "channel_unknown", "channels"),
        ({"subject": "x", "body": "y", "channels": ["wecom"]}, "channel_not_configured", "channels"),
        ({"subject": "x", "body": "y", "to_all": False}, "no_recipients", "recipients"),
        ({"subject": "x", "body": "y", "to_all": False, "unit_ids": [987654]}, "unit_unknown", "units"),
        ({"subject": "x", "body": "y", "to_all": False, "unit_ids": ["abc"]}, "unit", "units"),
        ({"subject": "x", "body": "y", "to_all": False, "roles": ["astronaut"]}, "role_unknown", "roles"),
    ],
)
def test_bad_broadcasts_are_refused_in_both_languages(
    street: Street, params: dict, code: str, fld: str
) -> None:
    populate(street)
    incident = declare(street, building_ids=buildings(street, "A1")).incident
    before = OutboxMessage.objects.count()
    with pytest.raises(Invalid) as refused:
        services.broadcast(street.users["dispatcher"], incident, **params)
    problem = next(p for p in refused.value.problems if p.code == code)
    assert problem.field == fld and problem.zh and problem.en
    assert OutboxMessage.objects.count() == before
    assert not services.broadcasts_of(incident).exists()


def test_only_the_command_centre_broadcasts(street: Street) -> None:
    populate(street)
    incident = declare(street, building_ids=buildings(street, "A1")).incident
    for name in ("grid_a1", "community_a", "dept"):
        with pytest.raises(Forbidden):
            services.broadcast(street.users[name], incident, subject="x", body="y")
