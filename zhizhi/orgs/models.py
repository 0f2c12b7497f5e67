"""Org units and staff users."""

from __future__ import annotations

from typing import ClassVar

from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models

from zhizhi.models import PHONE, SensitiveMixin, ZhizhiModel
from zhizhi.permissions import ROLES


class OrgUnit(ZhizhiModel):
    KINDS = [
        ("street_office", "街道科室"),
        ("command_centre", "指挥中心"),
        ("community", "社区"),
        ("grid", "网格"),
        ("outside_dept", "职能部门"),
        ("volunteer_team", "志愿者队伍"),
    ]

    code = models.CharField("编码", max_length=40, unique=True)
    name = models.CharField("名称", max_length=100)
    kind = models.CharField("类型", max_length=20, choices=KINDS)
    parent = models.ForeignKey(
        "self",
        verbose_name="上级单位",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="children",
    )
    region = models.ForeignKey(
        "geo.Region",
        verbose_name="服务区域",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="units",
    )
    duty = models.TextField("职责", blank=True, default="")
    active = models.BooleanField("启用", default=True)

    class Meta:
        ordering = ["kind", "code"]
        verbose_name = "组织单位"
        verbose_name_plural = "组织单位"

    def __str__(self) -> str:
        return self.name

    def compute_area_path(self) -> str:
        return self.region.path if self.region_id else ""


class User(SensitiveMixin, AbstractUser):
    SENSITIVE: ClassVar = {"phone": PHONE}

    full_name = models.CharField("姓名", max_length=50, blank=True, default="")
    role = models.CharField("角色", max_length=20, choices=ROLES, blank=True, default="")
    org_unit = models.ForeignKey(
        OrgUnit,
        verbose_name="所在单位",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="members",
    )
    regions = models.ManyToManyField("geo.Region", verbose_name="服务区域", blank=True, related_name="staff")
    phone_enc = models.TextField(blank=True, default="")
    phone_hash = models.CharField(max_length=64, blank=True, default="", db_index=True)
    phone_masked = models.CharField("手机", max_length=20, blank=True, default="")

    objects: ClassVar[UserManager] = UserManager()

    class Meta:
        verbose_name = "用户"
        verbose_name_plural = "用户"

    def __str__(self) -> str:
        return self.full_name or self.username

    def scope_paths(self) -> list[str]:
        """The region paths this user serves: their regions, else their unit's region."""
        paths = [p for p in self.regions.values_list("path", flat=True)]
        if not paths and self.org_unit_id and self.org_unit and self.org_unit.region_id:
            paths = [self.org_unit.region.path]
        return paths
