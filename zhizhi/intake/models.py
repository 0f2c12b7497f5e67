"""Intake from every channel: the channel messages behind cases and the intake side tables.

A ChannelMessage is one (channel, external id) as delivered by a channel: receiving it again
changes nothing and returns the same case. Rules live in services.py.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

import zhizhi.clock
from zhizhi import clock


class ChannelMessage(models.Model):
    """One message from one channel; (channel, external_id) is delivered at most once."""

    channel = models.CharField("渠道", max_length=16)
    # A sub-source inside the channel (12345, 市长信箱, a camera platform…): callbacks are per source.
    source = models.CharField("来源系统", max_length=32, blank=True, default="")
    external_id = models.CharField("外部编号", max_length=64)
    case = models.ForeignKey(
        "cases.Case", verbose_name="案件", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    payload = models.JSONField("原始内容", default=dict, blank=True)
    received_at = models.DateTimeField("接收时间", default=clock.now)
    # Repeated deliveries (and camera events collapsed into this message) are counted, not stored.
    count = models.PositiveIntegerField("次数", default=1)
    last_seen = models.DateTimeField("最近接收", default=clock.now)
    # Set when the case's result has been handed to this channel (once per message).
    fed_back_at = models.DateTimeField("已反馈时间", null=True, blank=True, db_index=True)
    # A follow link's secret (resident reports): the reporter's view of the case.
    follow_token = models.CharField(max_length=48, blank=True, default="", db_index=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name = "渠道消息"
        verbose_name_plural = "渠道消息"
        constraints = [
            models.UniqueConstraint(fields=["channel", "external_id"], name="intake_channel_external")
        ]
        indexes = [models.Index(fields=["fed_back_at", "case"], name="intake_feedback_pending")]

    def __str__(self) -> str:
        return f"{self.channel}:{self.external_id}"


class ColumnMapping(models.Model):
    """How one upstream system's export columns map to our work-order fields (saved per source)."""

    source = models.CharField("来源系统", max_length=32, unique=True)
    mapping = models.JSONField("列映射", default=dict)
    updated_at = models.DateTimeField(default=clock.now)

    class Meta:
        verbose_name = "导入列映射"
        verbose_name_plural = "导入列映射"

    def __str__(self) -> str:
        return self.source


class SourceEndpoint(models.Model):
    """An upstream hotline/mailbox system: where its results are called back (empty: export only)."""

    source = models.CharField("来源系统", max_length=32, unique=True)
    name = models.CharField("名称", max_length=100, blank=True, default="")
    callback_url = models.URLField("回调地址", max_length=300, blank=True, default="")

    class Meta:
        verbose_name = "上游系统"
        verbose_name_plural = "上游系统"

    def __str__(self) -> str:
        return self.name or self.source


class Camera(models.Model):
    """A camera of a video/AI platform: its code resolves to a location and grid."""

    code = models.CharField("编码", max_length=64, unique=True)
    name = models.CharField("名称", max_length=100)
    lng = models.FloatField("经度")
    lat = models.FloatField("纬度")
    grid = models.ForeignKey(
        "geo.Region", verbose_name="网格", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    snapshot_url = models.URLField("抓拍地址", max_length=300, blank=True, default="")
    stream_url = models.CharField("视频流地址", max_length=300, blank=True, default="")
    enabled = models.BooleanField("启用", default=True)
    # Where the camera looks (emergency mode shows cameras facing an incident area, not only inside it):
    # compass degrees clockwise from north; empty for a dome camera that sees all round.
    heading = models.PositiveSmallIntegerField(
        "朝向(度)", null=True, blank=True, validators=[MaxValueValidator(359)]
    )
    fov_deg = models.PositiveSmallIntegerField(
        "视场角(度)", default=90, validators=[MinValueValidator(1), MaxValueValidator(360)]
    )
    range_m = models.PositiveSmallIntegerField(
        "可视距离(米)", default=60, validators=[MinValueValidator(1), MaxValueValidator(2000)]
    )

    class Meta:
        ordering = ["code"]
        verbose_name = "摄像头"
        verbose_name_plural = "摄像头"

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class CameraEventType(models.Model):
    """An AI event type (垃圾满溢, 车辆违停…) → the responsibility-list item it is filed under."""

    name = models.CharField("事件类型", max_length=50, unique=True)
    category = models.ForeignKey(
        "cases.Category", verbose_name="权责清单事项", on_delete=models.CASCADE, related_name="+"
    )

    class Meta:
        ordering = ["name"]
        verbose_name = "视频事件类型"
        verbose_name_plural = "视频事件类型"

    def __str__(self) -> str:
        return self.name


class PhoneCode(models.Model):
    """A verification code sent to a reporter's phone (stored hashed, expires, limited attempts)."""

    phone_hash = models.CharField(max_length=64, db_index=True)
    # Encrypted, for the SMS gateway only (resolved at delivery, like the cases' reporter phones).
    phone_enc = models.TextField(blank=True, default="")
    code_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=clock.now)
    expires_at = models.DateTimeField()
    attempts = models.PositiveSmallIntegerField(default=0)
    used = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.phone_hash[:8]} {self.created_at:%Y-%m-%d %H:%M}"


class RateCounter(models.Model):
    """Hits of one key (phone hash or IP) in one fixed window: the intake rate limit."""

    key = models.CharField(max_length=100)
    window_start = models.DateTimeField()
    hits = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["key", "window_start"], name="intake_rate_window")]

    def __str__(self) -> str:
        return f"{self.key} {self.hits}"


class SuggestionLog(models.Model):  # one row per suggestion shown, and the dispatcher's correction
    case = models.ForeignKey("cases.Case", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    text = models.TextField()
    suggested = models.ForeignKey(
        "cases.Category", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    confidence = models.FloatField(default=0)
    top3 = models.JSONField(default=list)
    chosen = models.ForeignKey(
        "cases.Category", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    corrected = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=zhizhi.clock.now)

    def __str__(self) -> str:
        return f"{self.case_id} {self.suggested_id}→{self.chosen_id}"


class TopicProposal(models.Model):  # a keyword topic turned into a 红茶议事会 proposal
    title = models.CharField(max_length=200)
    keywords = models.JSONField(default=list)
    community = models.ForeignKey(
        "geo.Region", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    message_count = models.PositiveIntegerField(default=0)
    case_ids = models.JSONField(default=list)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=zhizhi.clock.now)
    status = models.CharField(max_length=16, default="proposed")

    def __str__(self) -> str:
        return self.title
