"""The outbox: in-app inbox, SMS and robot webhooks over real loopback HTTP, retries with backoff,
idempotency keys, a gateway that is down for an hour, and a worker killed mid-delivery."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from tests.factories import Street
from tests.fakes import FakeGateway
from zhizhi import clock
from zhizhi.notify import services
from zhizhi.notify.models import InboxMessage, OutboxMessage

pytestmark = pytest.mark.django_db

START = timezone.make_aware(dt.datetime(2026, 11, 23, 9, 0))


def test_inbox_sms_and_robot_are_delivered_once(street: Street, gateway: FakeGateway) -> None:
    worker = street.users["grid_a1"]
    worker.set_sensitive("phone", "13900001111")
    worker.save()
    with clock.frozen_at(START):
        services.notify_user(
            worker, "新案件", "请签收案件 Z001", key="case:1:dispatch", channels=("inbox", "sms")
        )
        services.notify_user(
            worker, "新案件", "请签收案件 Z001", key="case:1:dispatch", channels=("inbox", "sms")
        )
        services.enqueue("dingtalk", "指挥中心群", "案件 Z001 已派遣", key="case:1:robot")
        assert OutboxMessage.objects.count() == 3
        assert services.deliver_due() == {"sent": 3, "retry": 0, "dead": 0}
        assert services.deliver_due() == {"sent": 0, "retry": 0, "dead": 0}
    inbox = InboxMessage.objects.get()
    assert (inbox.user, inbox.subject) == (worker, "新案件")
    sms = next(r for r in gateway.received if r["path"] == "/sms")
    assert sms["body"]["phone"] == "13900001111" and "Z001" in sms["body"]["text"]
    # The phone is decrypted for the gateway only: the outbox keeps the user reference.
    assert OutboxMessage.objects.get(channel="sms").recipient == f"user:{worker.pk}"
    robot = next(r for r in gateway.received if r["path"] == "/robot")
    assert robot["body"]["msgtype"] == "text"
    assert services.unread_count(worker) == 1 and services.mark_read(worker, inbox.pk)
    assert services.unread_count(worker) == 0


def test_gateway_down_for_an_hour_then_back_loses_nothing_and_sends_once(
    street: Street, gateway: FakeGateway
) -> None:
    gateway.down = True
    moment = START
    with clock.frozen_at(moment):
        for i in range(5):
            services.enqueue("sms", f"1390000{i:04d}", f"通知{i}", key=f"n:{i}")
    attempts = 0
    while moment < START + dt.timedelta(hours=1):
        with clock.frozen_at(moment):
            services.deliver_due()
        attempts += 1
        moment += dt.timedelta(minutes=5)
    assert not gateway.received
    assert set(OutboxMessage.objects.values_list("status", flat=True)) == {OutboxMessage.PENDING}
    assert 3 <= OutboxMessage.objects.first().attempts <= 8  # backoff, not one try per sweep  # type: ignore[union-attr]
    gateway.down = False
    with clock.frozen_at(START + dt.timedelta(hours=3)):
        assert services.deliver_due()["sent"] == 5
        assert services.deliver_due()["sent"] == 0
    assert sorted(r["body"]["text"] for r in gateway.received) == [f"通知{i}" for i in range(5)]


def test_worker_killed_mid_delivery_is_retried_after_the_lease_and_not_duplicated(
    street: Street, gateway: FakeGateway
) -> None:
    with clock.frozen_at(START):
        message = services.enqueue("sms", "13900002222", "撤离通知", key="drill:1")
        claimed = services._claim(10)  # the worker took the row …
        assert claimed == [message.pk]
        # … the gateway got it, then the worker died before recording success.
        from zhizhi.notify.adapters import ADAPTERS

        ADAPTERS["sms"].deliver(OutboxMessage.objects.get(pk=message.pk))
        assert services.deliver_due()["sent"] == 0  # still leased to the dead worker
    with clock.frozen_at(START + services.LEASE + dt.timedelta(seconds=1)):
        assert services.deliver_due()["sent"] == 1
    assert len(gateway.received) == 1
    assert OutboxMessage.objects.get().status == OutboxMessage.SENT


def test_unconfigured_gateway_retries_then_gives_up(street: Street, settings) -> None:  # type: ignore[no-untyped-def]
    settings.ZHIZHI_SMS_URL = ""
    with clock.frozen_at(START):
        services.enqueue("sms", "13900003333", "x", key="x:1")
    moment = START
    for _ in range(services.MAX_ATTEMPTS):
        with clock.frozen_at(moment):
            services.deliver_due()
        moment += dt.timedelta(hours=2)
    message = OutboxMessage.objects.get()
    assert message.status == OutboxMessage.DEAD and "no gateway" in message.last_error
