"""The outbox and the in-app inbox."""

from __future__ import annotations

from django.conf import settings
from django.db import models

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

    def __str__(self) -> str:
        return self.subject
