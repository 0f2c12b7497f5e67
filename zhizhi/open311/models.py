"""Open311 GeoReport v2: integrator keys, the extra questions of a service, and the requests
received through the standard (each maps to one case once registered)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from zhizhi import clock


class IntegratorKey(models.Model):
    """An integrator's api_key. Only a hash is kept; the key is shown once when issued."""

    name = models.CharField("对接方", max_length=100)
    prefix = models.CharField("密钥前缀", max_length=12)
    key_hash = models.CharField(max_length=64, unique=True)
    # Blank: valid for the platform's own jurisdiction_id only (settings.ZHIZHI_OPEN311_JURISDICTION).
    jurisdiction_id = models.CharField("辖区标识", max_length=100, blank=True, default="")
    enabled = models.BooleanField("启用", default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField("签发时间", default=clock.now)
    last_used_at = models.DateTimeField("最近使用", null=True, blank=True)
    revoked_at = models.DateTimeField("吊销时间", null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "Open311 对接密钥"
        verbose_name_plural = "Open311 对接密钥"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class ServiceAttribute(models.Model):
    """One extra question of a service (GeoReport v2 service definition `attribute`)."""

    DATATYPES = [
        ("string", "短文本"),
        ("number", "数字"),
        ("datetime", "日期时间"),
        ("text", "长文本"),
        ("singlevaluelist", "单选"),
        ("multivaluelist", "多选"),
    ]

    category = models.ForeignKey(
        "cases.Category", verbose_name="小类", on_delete=models.CASCADE, related_name="open311_attributes"
    )
    code = models.CharField("编码", max_length=50)
    datatype = models.CharField("数据类型", max_length=16, choices=DATATYPES, default="string")
    required = models.BooleanField("必填", default=False)
    # False: informational text only, the client shows it and sends no value (spec `variable`).
    variable = models.BooleanField("需填写", default=True)
    order = models.PositiveSmallIntegerField("顺序", default=1)
    description = models.CharField("问题", max_length=300)
    datatype_description = models.CharField("填写说明", max_length=300, blank=True, default="")
    # [{"key": "...", "name": "..."}] for the two list datatypes.
    values = models.JSONField("选项", default=list, blank=True)

    class Meta:
        ordering = ["category", "order", "id"]
        constraints = [models.UniqueConstraint(fields=["category", "code"], name="open311_attribute_code")]
        verbose_name = "Open311 服务问题"
        verbose_name_plural = "Open311 服务问题"

    def __str__(self) -> str:
        return f"{self.category_id}:{self.code}"


class ServiceRequestToken(models.Model):
    """A service request received through Open311: the spec's token, what the client sent that the
    case has no column for, and the case it became (GET tokens/{token} answers with it)."""

    token = models.CharField(max_length=40, unique=True)
    key = models.ForeignKey(IntegratorKey, on_delete=models.PROTECT, related_name="requests")
    case = models.OneToOneField(
        "cases.Case", null=True, blank=True, on_delete=models.PROTECT, related_name="open311_request"
    )
    service_code = models.CharField(max_length=20)
    account_id = models.CharField(max_length=100, blank=True, default="")
    device_id = models.CharField(max_length=100, blank=True, default="")
    media_url = models.URLField(max_length=500, blank=True, default="")
    attributes = models.JSONField(default=dict, blank=True)
    # sha256 of (key, reporter, service, place, text): the same POST within a minute is one request.
    fingerprint = models.CharField(max_length=64, db_index=True)
    created_at = models.DateTimeField(default=clock.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "Open311 服务请求"
        verbose_name_plural = "Open311 服务请求"

    def __str__(self) -> str:
        return self.token
