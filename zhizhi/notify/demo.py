"""Demo layer "broadcasts": three staff notices of the last days with their inbox copies delivered
and about two thirds of them read, so /notify/broadcasts/ shows receipts at once.

Idempotent: each notice has a fixed request id (a second run sends nothing and reads nothing new).
"""

from __future__ import annotations

import datetime as dt
import random

from zhizhi import clock
from zhizhi.geo.models import Region
from zhizhi.notify import broadcast as bc
from zhizhi.notify import services
from zhizhi.notify.models import Broadcast, BroadcastRecipient, InboxMessage
from zhizhi.orgs.models import User

NOTICES = [
    (
        "street_leader",
        "demo-bc-1",
        3,
        "本周五防汛演练",
        "周五上午9点各社区组织防汛演练，网格员到岗。",
        ["grid_worker", "community_worker"],
    ),
    (
        "dispatcher",
        "demo-bc-2",
        1,
        "垃圾分类专项检查",
        "本周起对沿街商铺开展垃圾分类检查，请网格员配合。",
        ["grid_worker"],
    ),
    (
        "street_leader",
        "demo-bc-3",
        0,
        "寒潮预警：关注独居老人",
        "今晚起气温骤降，请走访辖区独居、高龄老人。",
        ["grid_worker", "community_worker", "volunteer"],
    ),
]


def load(street: Region) -> dict[str, int]:
    rng = random.Random(7)
    counts = {"broadcasts": 0, "read": 0}
    for role, request_id, days_ago, subject, body, roles in NOTICES:
        if Broadcast.objects.filter(request_id=request_id).exists():
            continue
        sender = User.objects.filter(role=role, is_active=True).order_by("id").first()
        if sender is None:
            continue
        sent_at = clock.now() - dt.timedelta(days=days_ago, hours=2)
        with clock.frozen_at(sent_at):
            b = bc.send_broadcast(sender, subject=subject, body=body, roles=roles, request_id=request_id)
            services.deliver_due(limit=5000)
        counts["broadcasts"] += 1
        share = 0.4 if days_ago == 0 else 0.7
        # Readings stamped in bulk (mark_read would also announce each one on the live bus, which a
        # replayed history should not): the inbox copy and the receipt get the same time.
        bc.sync_delivery(b)
        messages = list(InboxMessage.objects.filter(outbox_key__startswith=f"broadcast:{b.pk}:u"))
        receipts = {r.user_id: r for r in BroadcastRecipient.objects.filter(broadcast=b)}
        read_messages, read_receipts = [], []
        for message in messages:
            if rng.random() < share and message.user_id in receipts:
                at = min(sent_at + dt.timedelta(minutes=rng.randrange(5, 600)), clock.now())
                message.read_at = at
                receipts[message.user_id].read_at = at
                read_messages.append(message)
                read_receipts.append(receipts[message.user_id])
        InboxMessage.objects.bulk_update(read_messages, ["read_at"], batch_size=500)
        BroadcastRecipient.objects.bulk_update(read_receipts, ["read_at"], batch_size=500)
        counts["read"] += len(read_receipts)
    return counts
