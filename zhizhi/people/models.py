"""Houses, residents, residencies (person ↔ house over time) and care tags."""

from __future__ import annotations

from typing import ClassVar

from django.db import models
from django.db.models import Q

from zhizhi import clock
from zhizhi.models import ID_NUMBER, PHONE, SensitiveMixin, ZhizhiModel, ZhizhiQuerySet


class House(ZhizhiModel):
    """房屋: one room/flat in a building, identified by (building, unit, room)."""

    USES = [("owner", "自住"), ("rented", "出租"), ("commercial", "商用"), ("vacant", "空置")]

    building = models.ForeignKey(
        "geo.Building", verbose_name="楼幢", on_delete=models.PROTECT, related_name="houses"
    )
    unit = models.PositiveSmallIntegerField("单元", default=1)
    floor = models.SmallIntegerField("楼层")
    room = models.CharField("房号", max_length=20)
    area_m2 = models.DecimalField("面积(㎡)", max_digits=8, decimal_places=2, null=True, blank=True)
    use = models.CharField("用途", max_length=16, choices=USES, default="owner")
    owner = models.ForeignKey(
        "people.Person",
        verbose_name="产权人",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_houses",
    )

    class Meta:
        ordering = ["building", "unit", "floor", "room"]
        verbose_name = "房屋"
        verbose_name_plural = "房屋"
        constraints = [models.UniqueConstraint(fields=["building", "unit", "room"], name="house_unique_room")]

    def __str__(self) -> str:
        return f"{self.building.name}{self.unit}单元{self.room}室"

    def compute_area_path(self) -> str:
        return self.building.area_path


class PersonQuerySet(ZhizhiQuerySet):
    def with_id_number(self, id_number: str) -> PersonQuerySet:
        """Exact lookup by ID number through the keyed hash: no decryption of the table."""
        return self.filter(id_number_hash=Person.hash_for("id_number", id_number))

    def with_phone(self, phone: str) -> PersonQuerySet:
        return self.filter(phone_hash=Person.hash_for("phone", phone))


class Person(SensitiveMixin, ZhizhiModel):
    """实有人口: a resident. ID number and phone are stored encrypted; pages see masks."""

    SENSITIVE: ClassVar = {"id_number": ID_NUMBER, "phone": PHONE}
    GENDERS = [("M", "男"), ("F", "女")]
    POPULATION_TYPES = [
        ("registered", "户籍"),
        ("resident", "常住"),
        ("floating", "流动"),
        ("overseas", "境外"),
    ]
    STATUSES = [("active", "在册"), ("moved_out", "迁出"), ("deceased", "死亡")]

    name = models.CharField("姓名", max_length=50, db_index=True)
    gender = models.CharField("性别", max_length=1, choices=GENDERS)
    birth_date = models.DateField("出生日期")
    id_number_enc = models.TextField(blank=True, default="")
    id_number_hash = models.CharField(max_length=64, blank=True, default="", db_index=True)
    id_number_masked = models.CharField("身份证号", max_length=24, blank=True, default="")
    phone_enc = models.TextField(blank=True, default="")
    phone_hash = models.CharField(max_length=64, blank=True, default="", db_index=True)
    phone_masked = models.CharField("手机号", max_length=20, blank=True, default="")
    population_type = models.CharField(
        "人口类型", max_length=16, choices=POPULATION_TYPES, default="registered"
    )
    status = models.CharField("状态", max_length=16, choices=STATUSES, default="active", db_index=True)
    origin = models.CharField("来源地", max_length=100, blank=True, default="")
    grid = models.ForeignKey(
        "geo.Region",
        verbose_name="所属网格",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="residents",
    )
    note = models.TextField("备注", blank=True, default="")

    objects = PersonQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        verbose_name = "居民"
        verbose_name_plural = "居民"

    def __str__(self) -> str:
        return self.name

    def compute_area_path(self) -> str:
        return self.grid.path if self.grid_id else ""

    @property
    def age(self) -> int:
        today = clock.today()
        b = self.birth_date
        return today.year - b.year - ((today.month, today.day) < (b.month, b.day))


class ResidencyQuerySet(ZhizhiQuerySet):
    def current(self, on=None) -> ResidencyQuerySet:  # type: ignore[no-untyped-def]
        day = on or clock.today()
        return self.filter(Q(start_date__lte=day) | Q(start_date__isnull=True)).filter(
            Q(end_date__isnull=True) | Q(end_date__gt=day)
        )


class Residency(ZhizhiModel):
    """A person living in a house, with a relation, from a date to a date (open = still there)."""

    RELATIONS = [("head", "户主"), ("family", "家庭成员"), ("tenant", "租户"), ("lodger", "借住")]

    person = models.ForeignKey(
        Person, verbose_name="居民", on_delete=models.CASCADE, related_name="residencies"
    )
    house = models.ForeignKey(
        House, verbose_name="房屋", on_delete=models.PROTECT, related_name="residencies"
    )
    relation = models.CharField("关系", max_length=16, choices=RELATIONS)
    start_date = models.DateField("起始日期", null=True, blank=True)
    end_date = models.DateField("截止日期", null=True, blank=True)

    objects = ResidencyQuerySet.as_manager()

    class Meta:
        ordering = ["-start_date", "id"]
        verbose_name = "居住关系"
        verbose_name_plural = "居住关系"
        indexes = [models.Index(fields=["house", "end_date"]), models.Index(fields=["person", "end_date"])]

    def __str__(self) -> str:
        return f"{self.person} @ {self.house}"

    def compute_area_path(self) -> str:
        return self.house.area_path


class CareTag(ZhizhiModel):
    """重点人群 tag on a person, with where it came from and when it was last verified."""

    KINDS = [
        ("widowed_alone", "孤寡"),
        ("living_alone", "独居"),
        ("disabled", "残疾"),
        ("elderly_80", "高龄"),
        ("bedridden", "卧床"),
        ("min_allowance", "低保"),
        ("extreme_hardship", "特困"),
        ("special_care", "优抚"),
        ("veteran", "退役军人"),
    ]
    # Higher first: the order in which emergency lists and visits take people.
    PRIORITY = {
        "bedridden": 9,
        "widowed_alone": 8,
        "disabled": 7,
        "living_alone": 6,
        "elderly_80": 5,
        "extreme_hardship": 4,
        "min_allowance": 3,
        "special_care": 2,
        "veteran": 1,
    }
    SOURCES = [
        ("civil_affairs", "民政"),
        ("disabled_fed", "残联"),
        ("visit", "社区走访"),
        ("veterans", "退役军人事务"),
        ("import", "导入"),
    ]

    person = models.ForeignKey(
        Person, verbose_name="居民", on_delete=models.CASCADE, related_name="care_tags"
    )
    kind = models.CharField("类别", max_length=20, choices=KINDS)
    level = models.CharField("等级", max_length=20, blank=True, default="", help_text="残疾等级：一级…四级")
    source = models.CharField("来源", max_length=20, choices=SOURCES, default="visit")
    verified_on = models.DateField("核实日期", null=True, blank=True)
    note = models.CharField("备注", max_length=200, blank=True, default="")

    class Meta:
        ordering = ["person", "kind"]
        verbose_name = "关怀标签"
        verbose_name_plural = "关怀标签"
        constraints = [models.UniqueConstraint(fields=["person", "kind"], name="care_tag_once_per_kind")]

    def __str__(self) -> str:
        return f"{self.person} {self.get_kind_display()}"

    def compute_area_path(self) -> str:
        return self.person.area_path
