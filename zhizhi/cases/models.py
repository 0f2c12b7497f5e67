"""The responsibility list (权责清单) and cases: the data of the closed loop.

Rules live in services.py / transitions.py / routing.py / sla.py; these classes only hold rows.
A case's SLA columns describe its *current stage* only (sign, on-site, reinforcement, follow-up,
handling), so the minute sweep is one indexed range query over `stage_warn_at` / `stage_due_at`.
"""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q

from zhizhi import clock
from zhizhi.models import PHONE, SensitiveMixin, ZhizhiModel

# The statuses whose deadlines run (transitions.OPEN; repeated here because transitions imports
# nothing from models and the partial indexes below must name them literally).
SWEPT = ("dispatched", "handling", "extension_pending")
TIME_UNITS = [("work_hours", "工作小时"), ("work_days", "工作日"), ("calendar_minutes", "自然分钟")]


class Category(models.Model):
    """A node of the responsibility list: 大类 (no parent) or 小类 (leaf, carries the rules)."""

    KINDS = [("event", "事件"), ("component", "部件")]
    RESPONSIBILITY = [("territorial", "属地"), ("department", "部门"), ("joint", "联办")]
    ASSIGN_RULES = [("grid_worker", "网格员"), ("on_duty", "值班人员"), ("least_loaded", "最少在办")]

    code = models.CharField("编码", max_length=20, unique=True)
    name = models.CharField("名称", max_length=100)
    kind = models.CharField("类别", max_length=16, choices=KINDS, default="event")
    parent = models.ForeignKey(
        "self", verbose_name="大类", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    keywords = models.JSONField("关键词", default=list, blank=True)
    register_criteria = models.TextField("立案标准", blank=True, default="")
    close_criteria = models.TextField("结案标准", blank=True, default="")
    responsibility = models.CharField(
        "责任方式", max_length=16, choices=RESPONSIBILITY, default="territorial"
    )
    department = models.ForeignKey(
        "orgs.OrgUnit",
        verbose_name="责任部门",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="lead_categories",
    )
    assisting = models.ManyToManyField(
        "orgs.OrgUnit", verbose_name="协办单位", blank=True, related_name="assisting_categories"
    )
    assign_rule = models.CharField("派给谁", max_length=16, choices=ASSIGN_RULES, default="grid_worker")
    # Limits are [amount, unit] pairs, unit one of TIME_UNITS; all counted from dispatch (派遣).
    sign_limit = models.JSONField("签收时限", null=True, blank=True)
    onsite_limit = models.JSONField("到场时限", null=True, blank=True)
    reinforce_limit = models.JSONField("增援时限", null=True, blank=True)
    followup_limit = models.JSONField("跟进时限", null=True, blank=True)
    handle_limit = models.JSONField("办理时限", null=True, blank=True)
    urgent = models.BooleanField("紧急", default=False)
    photo_required = models.BooleanField("办结须附照片", default=False)
    dedup_distance_m = models.PositiveIntegerField("合并距离(米)", default=50)
    active = models.BooleanField("启用", default=True)

    class Meta:
        ordering = ["code"]
        verbose_name = "权责清单事项"
        verbose_name_plural = "权责清单"

    def __str__(self) -> str:
        return f"{self.code} {self.name}"

    @property
    def is_leaf(self) -> bool:
        return self.parent_id is not None


class DutyRoster(models.Model):
    """Who is on duty for a unit on a day (the `on_duty` assignment rule reads it)."""

    unit = models.ForeignKey(
        "orgs.OrgUnit", verbose_name="单位", on_delete=models.CASCADE, related_name="duty_roster"
    )
    user = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name="值班人", on_delete=models.CASCADE)
    date = models.DateField("日期", db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["unit", "user", "date"], name="duty_unique")]
        ordering = ["-date", "unit"]
        verbose_name = "值班表"
        verbose_name_plural = "值班表"

    def __str__(self) -> str:
        return f"{self.date} {self.unit} {self.user}"


class HolidayOverride(models.Model):
    """An admin's correction of the holiday calendar: this date is (not) a working day."""

    date = models.DateField("日期", unique=True)
    is_workday = models.BooleanField("是否工作日", default=False)
    name = models.CharField("名称", max_length=50, blank=True, default="")

    class Meta:
        ordering = ["date"]
        verbose_name = "节假日调整"
        verbose_name_plural = "节假日调整"

    def __str__(self) -> str:
        return f"{self.date} {'班' if self.is_workday else '休'} {self.name}"


class CaseSequence(models.Model):
    """The last case number handed out per day (locked row, so numbers never repeat)."""

    day = models.CharField(max_length=8, unique=True)
    last = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.day}: {self.last}"


class Case(SensitiveMixin, ZhizhiModel):
    SENSITIVE: ClassVar = {"reporter_phone": PHONE}

    STATUSES = [
        ("reported", "待立案"),
        ("registered", "待派遣"),
        ("dispatched", "待签收"),
        ("returned", "已退单"),
        ("handling", "处置中"),
        ("extension_pending", "延期审批中"),
        ("deferred", "缓办"),
        ("finished", "已办结"),
        ("closed", "已结案"),
        ("unsatisfied", "回访不满意"),
        ("visited", "已回访"),
        ("cancelled", "已注销"),
        ("merged", "已合并"),
    ]
    CHANNELS = [
        ("patrol", "网格巡查"),
        ("hotline", "12345热线"),
        ("mailbox", "信箱"),
        ("web", "网页/小程序"),
        ("open311", "Open311"),
        ("camera", "视频AI"),
        ("iot", "物联感知"),
        ("alert", "数据预警"),
        ("police110", "110非警务警情"),
        ("petition", "信访"),
        ("mayor", "市长信箱"),
        ("dispatcher", "坐席录入"),
    ]
    SLA_LEVELS = [("green", "正常"), ("yellow", "预警"), ("red", "超时")]
    SATISFACTION = [("satisfied", "满意"), ("basic", "基本满意"), ("unsatisfied", "不满意")]
    ESCALATION_LEVELS = [(0, "网格"), (1, "社区"), (2, "街道指挥中心"), (3, "区")]

    number = models.CharField("案件编号", max_length=20, unique=True)
    title = models.CharField("标题", max_length=200)
    description = models.TextField("描述", max_length=4000, blank=True, default="")
    category = models.ForeignKey(
        Category, verbose_name="类别", null=True, blank=True, on_delete=models.PROTECT, related_name="cases"
    )
    category_certain = models.BooleanField("类别确定", default=True)
    # Without a category, the keyword match of the responsibility list (the dispatcher confirms).
    suggested_category = models.ForeignKey(
        Category, verbose_name="建议类别", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField("状态", max_length=20, choices=STATUSES, default="reported")
    channel = models.CharField("来源渠道", max_length=16, choices=CHANNELS, default="dispatcher")
    external_id = models.CharField("外部编号", max_length=64, blank=True, default="")
    lng = models.FloatField("经度", null=True, blank=True)
    lat = models.FloatField("纬度", null=True, blank=True)
    address = models.CharField("地址", max_length=200, blank=True, default="")
    grid = models.ForeignKey(
        "geo.Region", verbose_name="网格", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    unit = models.ForeignKey(
        "orgs.OrgUnit",
        verbose_name="承办单位",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="cases",
    )
    suggested_unit = models.ForeignKey(
        "orgs.OrgUnit",
        verbose_name="建议承办单位",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name="承办人",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_cases",
    )
    reporter_name = models.CharField("反映人", max_length=50, blank=True, default="")
    reporter_phone_enc = models.TextField(blank=True, default="")
    reporter_phone_hash = models.CharField(max_length=64, blank=True, default="", db_index=True)
    reporter_phone_masked = models.CharField("反映人电话", max_length=20, blank=True, default="")
    reporter_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The secret in the reporter's rating link (回访评价链接).
    rate_token = models.CharField(max_length=40, blank=True, default="", db_index=True)
    urgent = models.BooleanField("紧急", default=False)
    duplicate_of = models.ForeignKey(
        "self",
        verbose_name="合并到",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="duplicates",
    )
    result = models.TextField("办理结果", blank=True, default="")
    satisfaction = models.CharField("满意度", max_length=12, choices=SATISFACTION, blank=True, default="")
    return_reason = models.CharField("退单原因", max_length=20, blank=True, default="")
    rework_count = models.PositiveSmallIntegerField("返工次数", default=0)
    extension_count = models.PositiveSmallIntegerField("延期次数", default=0)
    # A pending extension request {amount, unit, reason, by, late}; approved ones are appended to
    # `extensions` ([amount, unit] pairs) and move the handling deadline.
    extension_request = models.JSONField(null=True, blank=True)
    extensions = models.JSONField(default=list, blank=True)

    # One time column per state (stamped by the action that enters it; first time wins for KPIs
    # except where a rework re-enters it, see services.STAMPS).
    reported_at = models.DateTimeField("受理时间", default=clock.now)
    registered_at = models.DateTimeField("立案时间", null=True, blank=True)
    dispatched_at = models.DateTimeField("派遣时间", null=True, blank=True)
    returned_at = models.DateTimeField("退单时间", null=True, blank=True)
    signed_at = models.DateTimeField("签收时间", null=True, blank=True)
    onsite_at = models.DateTimeField("到场时间", null=True, blank=True)
    reinforced_at = models.DateTimeField("增援到位时间", null=True, blank=True)
    followed_up_at = models.DateTimeField("跟进时间", null=True, blank=True)
    deferred_at = models.DateTimeField("缓办时间", null=True, blank=True)
    finished_at = models.DateTimeField("办结时间", null=True, blank=True)
    verified_at = models.DateTimeField("核查时间", null=True, blank=True)
    closed_at = models.DateTimeField("结案时间", null=True, blank=True)
    visited_at = models.DateTimeField("回访时间", null=True, blank=True)
    cancelled_at = models.DateTimeField("注销时间", null=True, blank=True)
    merged_at = models.DateTimeField("合并时间", null=True, blank=True)

    # SLA of the current stage only. Every limit counts from `sla_start_at` (dispatch, or the
    # moment of a rework), shifted by the time spent deferred.
    sla_start_at = models.DateTimeField("时限起算", null=True, blank=True)
    # The category's limits as they were at dispatch ({stage: [amount, unit]}), so a later edit of
    # the responsibility list does not move the deadlines of cases already under way.
    limits = models.JSONField("时限快照", default=dict, blank=True)
    stage = models.CharField("当前时限环节", max_length=16, blank=True, default="")
    stage_started_at = models.DateTimeField(null=True, blank=True)
    stage_warn_at = models.DateTimeField("预警时间", null=True, blank=True)
    stage_due_at = models.DateTimeField("环节时限", null=True, blank=True)
    sla_level = models.CharField("时限状态", max_length=8, choices=SLA_LEVELS, default="green")
    escalation_level = models.PositiveSmallIntegerField("升级层级", choices=ESCALATION_LEVELS, default=0)
    escalate_at = models.DateTimeField("自动升级时间", null=True, blank=True)
    paused_seconds = models.PositiveIntegerField("缓办累计秒数", default=0)
    # The same pauses measured in working minutes: working-time deadlines move by this much.
    paused_work_minutes = models.FloatField("缓办累计工作分钟", default=0)
    due_at = models.DateTimeField("办理时限", null=True, blank=True)
    overdue = models.BooleanField("曾超时", default=False)

    class Meta:
        ordering = ["-reported_at", "-id"]
        verbose_name = "案件"
        verbose_name_plural = "案件"
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "external_id"], condition=~Q(external_id=""), name="case_channel_external"
            )
        ]
        indexes = [
            models.Index(fields=["status", "stage_due_at"], name="case_status_due"),
            models.Index(fields=["status", "stage_warn_at"], name="case_status_warn"),
            models.Index(fields=["escalate_at"], name="case_escalate_at"),
            # What the sweep looks for is only the cases not yet coloured: partial indexes keep
            # its range scans short even when many cases have long been red.
            models.Index(
                fields=["stage_warn_at"],
                condition=Q(sla_level="green", status__in=SWEPT),
                name="case_sweep_warn",
            ),
            models.Index(
                fields=["stage_due_at"],
                condition=Q(sla_level__in=("green", "yellow"), status__in=SWEPT),
                name="case_sweep_due",
            ),
            models.Index(fields=["unit", "status"], name="case_unit_status"),
            models.Index(fields=["assignee", "status"], name="case_assignee_status"),
        ]

    def __str__(self) -> str:
        return f"{self.number} {self.title}"

    def compute_area_path(self) -> str:
        if self.grid is not None:
            return self.grid.path
        if self.unit is not None and self.unit.region is not None:
            return self.unit.region.path
        return self.area_path


class CaseTask(models.Model):
    """One unit's share of a 联办 case: the lead task and one per assisting unit."""

    ROLES = [("lead", "主办"), ("assist", "协办")]
    STATUSES = [("open", "待签收"), ("signed", "办理中"), ("done", "已完成")]

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="tasks")
    unit = models.ForeignKey("orgs.OrgUnit", verbose_name="单位", on_delete=models.PROTECT, related_name="+")
    role = models.CharField("角色", max_length=8, choices=ROLES)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="case_tasks"
    )
    status = models.CharField("状态", max_length=8, choices=STATUSES, default="open")
    signed_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    result = models.TextField(blank=True, default="")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["case", "unit"], name="case_task_unit")]
        ordering = ["case", "role", "id"]
        verbose_name = "联办任务"
        verbose_name_plural = "联办任务"

    def __str__(self) -> str:
        return f"{self.case_id} {self.get_role_display()} {self.unit}"


class CaseEventQuerySet(models.QuerySet):
    def update(self, **kwargs: object) -> int:
        raise TypeError("CaseEvent is append-only")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise TypeError("CaseEvent is append-only")


class CaseEvent(models.Model):
    """The append-only timeline: one row per action, never updated or deleted."""

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="events")
    at = models.DateTimeField(default=clock.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    action = models.CharField(max_length=32)
    from_status = models.CharField(max_length=20, blank=True, default="")
    to_status = models.CharField(max_length=20, blank=True, default="")
    note = models.TextField(blank=True, default="")
    photos = models.JSONField(default=list, blank=True)
    lng = models.FloatField(null=True, blank=True)
    lat = models.FloatField(null=True, blank=True)
    data = models.JSONField(default=dict, blank=True)
    request_id = models.CharField(max_length=64, blank=True, default="")

    objects = CaseEventQuerySet.as_manager()

    class Meta:
        ordering = ["at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["case", "request_id"], condition=~Q(request_id=""), name="case_event_request_once"
            )
        ]
        indexes = [models.Index(fields=["case", "at"]), models.Index(fields=["action", "at"])]
        verbose_name = "案件时间线"
        verbose_name_plural = "案件时间线"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.action}"

    def save(self, *args: object, **kwargs: object) -> None:
        if self.pk is not None:
            raise TypeError("CaseEvent is append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        raise TypeError("CaseEvent is append-only")


def photo_path(instance: CasePhoto, filename: str) -> str:
    return f"cases/{clock.now():%Y/%m}/{instance.sha256[:2]}/{instance.sha256}{instance.extension}"


class CasePhoto(models.Model):
    """A photo attached to a case (at report, on site, at finish). Checked by its bytes, not its name."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="photos")
    file = models.FileField(upload_to=photo_path, max_length=200)
    content_type = models.CharField(max_length=20)
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    original_name = models.CharField(max_length=200, blank=True, default="")
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    uploaded_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["uploaded_at", "id"]
        verbose_name = "案件照片"
        verbose_name_plural = "案件照片"

    def __str__(self) -> str:
        return self.original_name or self.sha256[:12]

    @property
    def extension(self) -> str:
        return {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp"}.get(self.content_type, "")
