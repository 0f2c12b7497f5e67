"""The outbox and the in-app inbox."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from zhizhi import clock


class OutboxMessage(models.Model):
    """One message to one recipient on one channel. Written in the same transaction as its cause."""

    CHANNELS = [
        ("inbox", "站内信"),
        ("sms", "短信"),
        ("dingtalk", "钉钉/浙政钉"),
        ("wecom", "企业微信"),
        ("email", "邮件"),
    ]
    PENDING, SENDING, SENT, DEAD = "pending", "sending", "sent", "dead"
    STATUSES = [(PENDING, "待发送"), (SENDING, "发送中"), (SENT, "已发送"), (DEAD, "发送失败")]

    channel = models.CharField("渠道", max_length=16, choices=CHANNELS)
    recipient = models.CharField(
        "接收方", max_length=200, help_text="user id, phone number, webhook name or e-mail"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    subject = models.CharField("标题", max_length=200, blank=True, default="")
    body = models.TextField("内容")
    link = models.CharField("链接", max_length=300, blank=True, default="")
    idempotency_key = models.CharField(max_length=120, unique=True)
    status = models.CharField("状态", max_length=10, choices=STATUSES, default=PENDING)
    attempts = models.PositiveSmallIntegerField("尝试次数", default=0)
    next_attempt_at = models.DateTimeField(default=clock.now)
    lease_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=clock.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    # What caused it (e.g. "cases.case:42"), so a case page can show its deliveries.
    cause = models.CharField(max_length=80, blank=True, default="", db_index=True)

    class Meta:
        indexes = [models.Index(fields=["status", "next_attempt_at"])]
        ordering = ["-created_at", "-id"]
        verbose_name = "待发通知"
        verbose_name_plural = "待发通知"

    def __str__(self) -> str:
        return f"{self.get_channel_display()} → {self.recipient}: {self.subject or self.body[:20]}"


class InboxMessage(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="inbox")
    subject = models.CharField("标题", max_length=200)
    body = models.TextField("内容", blank=True, default="")
    link = models.CharField("链接", max_length=300, blank=True, default="")
    outbox_key = models.CharField(max_length=120, unique=True)
    created_at = models.DateTimeField(default=clock.now, db_index=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "站内信"
        verbose_name_plural = "站内信"
        # The navigation bar counts the unread messages on every page: only those rows are indexed.
        indexes = [models.Index(fields=["user"], condition=Q(read_at__isnull=True), name="inbox_unread_idx")]

    def __str__(self) -> str:
        return self.subject


class Broadcast(models.Model):
    """A message from a staff member to many staff at once (通知公告/紧急通知), with read receipts.

    Rules live in broadcast.py. Each recipient gets one outbox row per channel; the inbox copy's
    key names the broadcast, so opening it marks the BroadcastRecipient read."""

    CHANNELS = [("inbox", "站内信"), ("sms", "短信"), ("dingtalk", "钉钉/浙政钉"), ("wecom", "企业微信")]

    subject = models.CharField("标题", max_length=200)
    body = models.TextField("内容", blank=True, default="")
    link = models.CharField("链接", max_length=300, blank=True, default="")
    channels = models.JSONField("渠道", default=list)
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name="发送人",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField("发送时间", default=clock.now, db_index=True)
    # A retried send with the same request id returns this broadcast instead of sending again.
    request_id = models.CharField(max_length=64, unique=True)
    # Set by emergency mode (e.g. "emergency.incident:7") so an incident lists its broadcasts.
    incident_ref = models.CharField("关联事件", max_length=64, blank=True, default="", db_index=True)
    # What the sender chose (roles, unit codes, user count, all staff), shown on the detail page.
    audience = models.JSONField("发送范围", default=dict, blank=True)
    total = models.PositiveIntegerField("接收人数", default=0)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "群发通知"
        verbose_name_plural = "群发通知"

    def __str__(self) -> str:
        return self.subject

    def channel_labels(self) -> str:
        names = dict(self.CHANNELS)
        return "、".join(str(names.get(c, c)) for c in self.channels)


class BroadcastRecipient(models.Model):
    """One staff member's copy of a broadcast: when it first reached them and when they read it."""

    broadcast = models.ForeignKey(Broadcast, on_delete=models.CASCADE, related_name="recipients")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    delivered_at = models.DateTimeField("送达时间", null=True, blank=True)
    read_at = models.DateTimeField("阅读时间", null=True, blank=True)

    class Meta:
        ordering = ["broadcast", "id"]
        verbose_name = "通知接收人"
        verbose_name_plural = "通知接收人"
        constraints = [
            models.UniqueConstraint(fields=["broadcast", "user"], name="notify_broadcast_recipient_once")
        ]
        indexes = [models.Index(fields=["broadcast", "read_at"], name="notify_bcast_read")]

    def __str__(self) -> str:
        return f"{self.broadcast_id}→{self.user_id}"
