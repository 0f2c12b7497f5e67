"""The shared base model and the platform-wide tables (change log, reveal log, permissions, API tokens).

Every registry model inherits `ZhizhiModel` and so gets, without writing anything:
- created/updated stamps and the acting user;
- an optimistic version: a save based on a stale read raises `Conflict` instead of erasing
  the other person's change;
- a change-log row with before/after on every save;
- an `area_path` ("/district/street/community/grid/") that `objects.visible_to(user)` filters on.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import models, transaction

from zhizhi import clock, crypto
from zhizhi.context import current_actor, current_request_id
from zhizhi.problems import Conflict


def jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return "<binary>"
    return value


class ZhizhiQuerySet(models.QuerySet):
    def visible_to(self, user: Any, action: str = "view") -> ZhizhiQuerySet:
        """The rows `user` may see (or change, reveal, export …): the only way pages and APIs read."""
        from zhizhi.permissions import restrict

        return restrict(self, user, action)


class ZhizhiModel(models.Model):
    created_at = models.DateTimeField(default=clock.now, editable=False)
    updated_at = models.DateTimeField(default=clock.now, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    version = models.PositiveIntegerField(default=1, editable=False)
    area_path = models.CharField(max_length=160, blank=True, default="", db_index=True, editable=False)

    objects = ZhizhiQuerySet.as_manager()

    # Fields that never enter the change log (ciphertexts and lookup hashes).
    CHANGELOG_SKIP_SUFFIXES: ClassVar[tuple[str, ...]] = ("_enc", "_hash")

    class Meta:
        abstract = True

    # --- area scope -------------------------------------------------------------------------
    def compute_area_path(self) -> str:
        """Where this row lives in the region tree. Subclasses derive it from their grid/parent."""
        return self.area_path

    # --- change tracking ----------------------------------------------------------------------
    @classmethod
    def from_db(cls, db: Any, field_names: Any, values: Any) -> Any:
        instance = super().from_db(db, field_names, values)
        instance._loaded = dict(zip(field_names, values, strict=False))
        return instance

    @classmethod
    def logged_fields(cls) -> list[models.Field]:
        return [
            f
            for f in cls._meta.concrete_fields
            if not f.name.endswith(cls.CHANGELOG_SKIP_SUFFIXES)
            and f.name not in ("created_at", "updated_at", "created_by", "updated_by", "version")
        ]

    def snapshot(self) -> dict[str, Any]:
        return {f.attname: jsonable(getattr(self, f.attname)) for f in self.logged_fields()}

    def _loaded_snapshot(self) -> dict[str, Any] | None:
        loaded = getattr(self, "_loaded", None)
        if loaded is None:
            return None
        return {
            f.attname: jsonable(loaded.get(f.attname)) for f in self.logged_fields() if f.attname in loaded
        }

    def expect_version(self, version: int) -> None:
        """Declare which version the caller edited; a save on a newer row then raises Conflict."""
        loaded = getattr(self, "_loaded", None) or {}
        self._loaded = {**loaded, "version": int(version)}

    def save(self, *args: Any, **kwargs: Any) -> None:
        actor = current_actor()
        adding = self._state.adding
        self.area_path = self.compute_area_path()
        self.updated_at = clock.now()
        if actor is not None:
            self.updated_by = actor
            if adding:
                self.created_by = actor
        with transaction.atomic():
            before = None
            if not adding:
                expected = (getattr(self, "_loaded", None) or {}).get("version", self.version)
                # Compare-and-set on the version: the row lock makes concurrent saves queue up and the
                # loser sees a version it did not read.
                won = (
                    type(self)._base_manager.filter(pk=self.pk, version=expected).update(version=expected + 1)
                )
                if not won:
                    current = (
                        type(self)._base_manager.filter(pk=self.pk).values_list("version", flat=True).first()
                    )
                    raise Conflict(current)
                self.version = expected + 1
                before = self._loaded_snapshot()
            super().save(*args, **kwargs)
            after = self.snapshot()
            if before != after:
                ChangeLogEntry.record(self, "create" if adding else "update", before, after)
        self._loaded = {**{f.attname: getattr(self, f.attname) for f in self._meta.concrete_fields}}


class SensitiveMixin:
    """Encrypted personal fields. Each name in SENSITIVE has three columns: <name>_enc (AES-GCM),
    <name>_hash (keyed hash for exact lookup) and <name>_masked (what pages show). The plaintext is
    never kept on the instance: it is decrypted only by `zhizhi.permissions.reveal`, which logs it."""

    SENSITIVE: ClassVar[dict[str, tuple[Callable[[str], str], Callable[[str], str]]]] = {}

    def set_sensitive(self, name: str, value: str | None) -> None:
        normalize, mask = self.SENSITIVE[name]
        clean = normalize(value or "")
        setattr(self, f"{name}_enc", crypto.encrypt(clean))
        setattr(self, f"{name}_hash", crypto.lookup_hash(clean))
        setattr(self, f"{name}_masked", mask(clean) if clean else "")

    def decrypt_sensitive(self, name: str) -> str:
        return crypto.decrypt(getattr(self, f"{name}_enc"))

    @classmethod
    def hash_for(cls, name: str, value: str) -> str:
        normalize, _ = cls.SENSITIVE[name]
        return crypto.lookup_hash(normalize(value))


ID_NUMBER = (crypto.normalize_id_number, crypto.mask_id_number)
PHONE = (crypto.normalize_phone, crypto.mask_phone)


class ChangeLogEntry(models.Model):
    ACTIONS = [("create", "新增"), ("update", "修改"), ("delete", "删除"), ("import", "导入")]
    at = models.DateTimeField(default=clock.now, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    request_id = models.CharField(max_length=64, blank=True, default="")
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=200, blank=True, default="")
    action = models.CharField(max_length=16, choices=ACTIONS)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    area_path = models.CharField(max_length=160, blank=True, default="", db_index=True)

    objects = ZhizhiQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["content_type", "object_id", "at"])]
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.action} {self.object_repr}"

    @classmethod
    def entry_for(
        cls, obj: models.Model, action: str, before: dict | None, after: dict | None
    ) -> ChangeLogEntry:
        return cls(
            actor=current_actor(),
            request_id=current_request_id(),
            content_type=ContentType.objects.get_for_model(type(obj)),
            object_id=str(obj.pk),
            object_repr=str(obj)[:200],
            action=action,
            before=before,
            after=after,
            area_path=getattr(obj, "area_path", ""),
        )

    @classmethod
    def record(cls, obj: models.Model, action: str, before: dict | None, after: dict | None) -> None:
        cls.entry_for(obj, action, before, after).save()

    @classmethod
    def record_many(cls, rows: Iterable[tuple[models.Model, str, dict | None, dict | None]]) -> None:
        """Bulk form used by imports: one INSERT for many rows."""
        cls.objects.bulk_create([cls.entry_for(*row) for row in rows], batch_size=2000)


class RevealLog(models.Model):
    """Every time a person saw a protected value in clear: who, what, when, why."""

    at = models.DateTimeField(default=clock.now, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reveals")
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=200, blank=True, default="")
    field = models.CharField(max_length=64)
    purpose = models.CharField(max_length=200)
    ip = models.GenericIPAddressField(null=True, blank=True)
    area_path = models.CharField(max_length=160, blank=True, default="", db_index=True)

    objects = ZhizhiQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor} {self.object_repr}.{self.field}"


class ObjectPermission(models.Model):
    """A grant: these roles / units / users may do these actions on these models, within constraints.

    `constraints` is a Django lookup dict (or a list of dicts, OR-ed) whose values may name the
    user's scope: "$scope" expands to each of the user's region paths, "$user" to the user's id,
    "$org_unit" to the user's unit id. Example: {"area_path__startswith": "$scope"}.
    """

    ACTIONS = ["view", "add", "change", "delete", "import", "export", "reveal"]

    name = models.CharField(max_length=100, unique=True)
    description = models.CharField(max_length=200, blank=True, default="")
    enabled = models.BooleanField(default=True)
    object_types = models.JSONField(help_text='["people.person", …] or ["*"]')
    actions = models.JSONField(help_text='["view", "change", …]')
    constraints = models.JSONField(null=True, blank=True)
    roles = models.JSONField(default=list, blank=True, help_text='role codes, e.g. ["grid_worker"]')
    users = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="object_permissions")
    org_units = models.ManyToManyField("orgs.OrgUnit", blank=True, related_name="object_permissions")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class APIToken(models.Model):
    """A token for integrations. Only a hash is stored; the token is shown once when created."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=clock.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    enabled = models.BooleanField(default=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class ImportJob(models.Model):
    """One Excel/CSV upload being imported by the worker: its progress, its problems, its counts.

    The uploaded bytes stay in the row only until the import finishes (then they are erased), so
    any worker host can read them and no spreadsheet of personal data lingers on a disk."""

    STATUSES = [("pending", "排队中"), ("running", "导入中"), ("done", "已完成"), ("failed", "未导入")]

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="import_jobs")
    registry = models.CharField("登记簿", max_length=64)
    filename = models.CharField("文件名", max_length=200)
    data = models.BinaryField(default=b"", editable=False)
    status = models.CharField("状态", max_length=16, choices=STATUSES, default="pending", db_index=True)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    problems = models.JSONField(default=list, blank=True)
    message = models.TextField(blank=True, default="")
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=clock.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.registry} {self.filename} ({self.status})"

    @property
    def percent(self) -> int:
        if self.status == "done":
            return 100
        return int(self.done * 100 / self.total) if self.total else 0

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed")


class LiveEvent(models.Model):
    """One change a live screen should show at once (see zhizhi/live.py); purged after two days."""

    channel = models.CharField(max_length=40)
    area_path = models.CharField(max_length=160, blank=True, default="")
    at = models.DateTimeField(default=clock.now, db_index=True)
    payload = models.JSONField(default=dict)

    class Meta:
        verbose_name = "实时事件"
        verbose_name_plural = "实时事件"
        indexes = [models.Index(fields=["channel", "id"], name="zhizhi_liveevent_channel_id")]

    def __str__(self) -> str:
        return f"{self.pk} {self.channel}"
