"""Enterprises, their executives, and periodic tax and revenue records."""

from __future__ import annotations

from django.db import models

from zhizhi.models import ZhizhiModel


class Enterprise(ZhizhiModel):
    STATUSES = [
        ("active", "存续"),
        ("operating", "在业"),
        ("moved_out", "迁出"),
        ("revoked", "吊销"),
        ("cancelled", "注销"),
    ]
    INDUSTRIES = [
        ("A", "农、林、牧、渔业"),
        ("C", "制造业"),
        ("E", "建筑业"),
        ("F", "批发和零售业"),
        ("G", "交通运输、仓储和邮政业"),
        ("H", "住宿和餐饮业"),
        ("I", "信息传输、软件和信息技术服务业"),
        ("J", "金融业"),
        ("K", "房地产业"),
        ("L", "租赁和商务服务业"),
        ("M", "科学研究和技术服务业"),
        ("O", "居民服务、修理和其他服务业"),
        ("P", "教育"),
        ("Q", "卫生和社会工作"),
        ("R", "文化、体育和娱乐业"),
    ]

    name = models.CharField("名称", max_length=200)
    credit_code = models.CharField("统一社会信用代码", max_length=18, unique=True)
    legal_representative = models.CharField("法定代表人", max_length=50)
    registered_address = models.CharField("注册地址", max_length=200)
    building = models.ForeignKey(
        "geo.Building",
        verbose_name="实际经营楼幢",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="enterprises",
    )
    house = models.ForeignKey(
        "people.House",
        verbose_name="实际经营房屋",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="enterprises",
    )
    grid = models.ForeignKey(
        "geo.Region",
        verbose_name="所属网格",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="enterprises",
    )
    industry = models.CharField("行业", max_length=2, choices=INDUSTRIES)
    status = models.CharField("状态", max_length=16, choices=STATUSES, default="operating")
    established_on = models.DateField("成立日期", null=True, blank=True)
    registered_capital = models.DecimalField(
        "注册资本(万元)", max_digits=14, decimal_places=2, null=True, blank=True
    )
    employees = models.PositiveIntegerField("从业人数", null=True, blank=True)
    tax_region_code = models.CharField("税务登记地区划代码", max_length=12, blank=True, default="")

    class Meta:
        ordering = ["name"]
        verbose_name = "企业"
        verbose_name_plural = "企业"

    def __str__(self) -> str:
        return self.name

    def compute_area_path(self) -> str:
        if self.grid_id:
            return self.grid.path
        if self.building_id:
            return self.building.area_path
        return self.area_path


class Executive(ZhizhiModel):
    POSITIONS = [
        ("legal_rep", "法定代表人"),
        ("chair", "董事长"),
        ("gm", "总经理"),
        ("director", "董事"),
        ("supervisor", "监事"),
        ("cfo", "财务负责人"),
    ]
    enterprise = models.ForeignKey(Enterprise, on_delete=models.CASCADE, related_name="executives")
    name = models.CharField("姓名", max_length=50)
    position = models.CharField("职务", max_length=16, choices=POSITIONS)
    start_date = models.DateField("任职日期")
    end_date = models.DateField("离任日期", null=True, blank=True)

    class Meta:
        ordering = ["enterprise", "-start_date"]
        verbose_name = "高管"
        verbose_name_plural = "高管"

    def __str__(self) -> str:
        return f"{self.name}（{self.get_position_display()}）"

    def compute_area_path(self) -> str:
        return self.enterprise.area_path


class TaxRecord(ZhizhiModel):
    """One month of an enterprise's revenue and the tax it paid in this street (万元)."""

    enterprise = models.ForeignKey(Enterprise, on_delete=models.CASCADE, related_name="tax_records")
    period = models.DateField("所属期（月初）")
    revenue = models.DecimalField("营业收入(万元)", max_digits=14, decimal_places=2)
    tax_paid = models.DecimalField("纳税额(万元)", max_digits=14, decimal_places=2)
    tax_paid_here = models.BooleanField("在本街道纳税", default=True)

    class Meta:
        ordering = ["enterprise", "period"]
        verbose_name = "税收记录"
        verbose_name_plural = "税收记录"
        constraints = [
            models.UniqueConstraint(fields=["enterprise", "period"], name="tax_record_once_per_month")
        ]

    def __str__(self) -> str:
        return f"{self.enterprise} {self.period:%Y-%m}"

    def compute_area_path(self) -> str:
        return self.enterprise.area_path
