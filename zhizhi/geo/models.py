"""The region tree and buildings. Coordinates are WGS-84 (longitude, latitude) throughout;
GCJ-02 input is converted at the edge (see zhizhi/geo/coords.py)."""

from __future__ import annotations

from django.db import models

from zhizhi.models import ZhizhiModel


class Region(ZhizhiModel):
    """A node of the tree. Codes: district 6 digits (GB/T 2260), street 9 (GB/T 10114),
    community 12, grid 15 (the community code plus a 3-digit sequence, CJ/T style)."""

    DISTRICT, STREET, COMMUNITY, GRID = "district", "street", "community", "grid"
    LEVELS = [(DISTRICT, "区"), (STREET, "街道"), (COMMUNITY, "社区"), (GRID, "网格")]
    CODE_LENGTHS = {DISTRICT: 6, STREET: 9, COMMUNITY: 12, GRID: 15}
    PARENT_LEVEL = {STREET: DISTRICT, COMMUNITY: STREET, GRID: COMMUNITY}

    level = models.CharField("层级", max_length=16, choices=LEVELS, db_index=True)
    code = models.CharField("编码", max_length=20, unique=True)
    name = models.CharField("名称", max_length=100)
    parent = models.ForeignKey(
        "self", verbose_name="上级", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    path = models.CharField(max_length=160, unique=True, editable=False)
    boundary = models.JSONField("边界(GeoJSON)", null=True, blank=True)
    center_lng = models.FloatField(null=True, blank=True, editable=False)
    center_lat = models.FloatField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["path"]
        verbose_name = "区域"
        verbose_name_plural = "区域"

    def __str__(self) -> str:
        return self.name

    def compute_area_path(self) -> str:
        parent_path = self.parent.path if self.parent_id else "/"
        self.path = f"{parent_path}{self.code}/"
        return self.path


class Building(ZhizhiModel):
    """楼幢: a building standing in one grid."""

    KINDS = [
        ("residential", "住宅"),
        ("commercial", "商业"),
        ("office", "办公"),
        ("mixed", "混合"),
        ("public", "公共"),
    ]

    code = models.CharField("楼幢编码", max_length=40, unique=True)
    name = models.CharField("名称", max_length=100)
    address = models.CharField("地址", max_length=200)
    kind = models.CharField("类型", max_length=16, choices=KINDS, default="residential")
    lng = models.FloatField("经度")
    lat = models.FloatField("纬度")
    grid = models.ForeignKey(
        Region, verbose_name="所属网格", on_delete=models.PROTECT, related_name="buildings"
    )
    units = models.PositiveSmallIntegerField("单元数", default=1)
    floors = models.PositiveSmallIntegerField("层数", default=1)
    built_year = models.PositiveSmallIntegerField("建成年份", null=True, blank=True)

    class Meta:
        ordering = ["code"]
        verbose_name = "楼幢"
        verbose_name_plural = "楼幢"

    def __str__(self) -> str:
        return self.name

    def compute_area_path(self) -> str:
        return self.grid.path
