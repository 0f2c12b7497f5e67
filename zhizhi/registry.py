"""Declarations of the registries (what columns each has, its natural key, its own rules) and the
one pipeline that creates and updates their rows.

Pages, the API, Excel/CSV import and export, and the generic test battery all read these
declarations, so a registry is declared once. A `Registry` lives in its app's services.py and is
registered with `register()`.

raw value ──parse (per column)──▶ clean value ──rules (per registry)──▶ assign ──▶ save
                                   every problem collected, nothing written on any problem
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, models, transaction

from zhizhi import validators
from zhizhi.permissions import can
from zhizhi.problems import Forbidden, Invalid, Problem

EMPTY = (None, "")


@dataclass
class Ref:
    """A foreign key written by its natural key (e.g. a building by its code)."""

    model: type[models.Model]
    key: str  # field on the target model, e.g. "code"
    label_zh: str = ""
    # Function from the written value to the lookup value (e.g. hashing an ID number).
    transform: Callable[[str], str] | None = None
    # For composite keys: a function from the written value to the row (or None).
    resolve: Callable[[str], Any] | None = None
    # How the row is written back on export (defaults to getattr(row, key)).
    write: Callable[[Any], str] | None = None

    def natural(self, row: Any) -> str:
        if row is None:
            return ""
        if self.write is not None:
            return self.write(row)
        return str(getattr(row, self.key))


@dataclass
class Column:
    name: str  # attribute on the model (the id of a ref, the plain name of a sensitive field)
    zh: str
    en: str
    kind: str = "str"  # str int decimal float date bool choice ref sensitive credit_code json
    required: bool = False
    ref: Ref | None = None
    help_zh: str = ""
    not_future: bool = False

    def header(self) -> str:
        return self.zh


@dataclass
class Registry:
    key: str  # app_label.model_name
    model: type[models.Model]
    zh: str
    en: str
    columns: list[Column]
    natural_key: tuple[str, ...]
    search: tuple[str, ...] = ()
    filters: tuple[str, ...] = ()
    list_columns: tuple[str, ...] = ()
    # Cross-field rules: (values, instance or None) -> problems.
    rules: Callable[[dict[str, Any], Any], list[Problem]] | None = None
    # Called inside the transaction after a row is saved (e.g. a residency moves its person's grid).
    after_save: Callable[[Any, bool], None] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    def by_header(self) -> dict[str, Column]:
        """Columns by every name a spreadsheet may use: Chinese header, English header, field name."""
        out: dict[str, Column] = {}
        for col in self.columns:
            for alias in (col.zh, col.en, col.name):
                out[alias.strip().lower()] = col
        return out

    # --- natural key --------------------------------------------------------------------------
    def natural_key_filter(self, values: dict[str, Any]) -> dict[str, Any] | None:
        lookup: dict[str, Any] = {}
        for name in self.natural_key:
            col = self.column(name)
            value = values.get(name)
            if value in EMPTY:
                return None
            if col.kind == "sensitive":
                lookup[f"{name}_hash"] = self.model.hash_for(name, value)  # type: ignore[attr-defined]
            elif col.kind == "ref":
                lookup[f"{name}_id"] = value.pk if isinstance(value, models.Model) else value
            else:
                lookup[name] = value
        return lookup

    def find_existing(self, values: dict[str, Any]) -> Any:
        lookup = self.natural_key_filter(values)
        if lookup is None:
            return None
        return self.model._default_manager.filter(**lookup).first()


_REGISTRIES: dict[str, Registry] = {}


def register(reg: Registry) -> Registry:
    _REGISTRIES[reg.key] = reg
    return reg


def registries() -> dict[str, Registry]:
    # Importing the services modules registers their registries.
    from zhizhi.enterprises import services as _e  # noqa: F401
    from zhizhi.geo import services as _g  # noqa: F401
    from zhizhi.orgs import services as _o  # noqa: F401
    from zhizhi.people import services as _p  # noqa: F401

    return _REGISTRIES


def get(key: str) -> Registry:
    return registries()[key]


def for_model(model: type[models.Model]) -> Registry:
    return get(model._meta.label_lower)


# --- parsing ----------------------------------------------------------------------------------
def _choice(col: Column, reg: Registry, value: Any) -> str:
    field_obj = reg.model._meta.get_field(col.name)
    choices = list(getattr(field_obj, "choices", None) or [])
    text = str(value).strip()
    for code, label in choices:
        if text == str(code) or text == str(label):
            return str(code)
    allowed = "、".join(str(label) for _, label in choices)
    raise Invalid(
        [
            Problem(
                "choice",
                f"「{text}」不是可选值",
                f"'{text}' is not one of the allowed values",
                field=col.name,
                value=text,
                expected_zh=allowed,
                expected_en=allowed,
            )
        ]
    )


def parse_value(
    reg: Registry, col: Column, value: Any, cache: dict | None = None, today: dt.date | None = None
) -> Any:
    if isinstance(value, str):
        value = value.strip()
    if value in EMPTY:
        return None
    kind = col.kind
    try:
        if kind == "str":
            text = str(value)
            max_length = getattr(reg.model._meta.get_field(col.name), "max_length", None)
            if max_length and len(text) > max_length:
                raise Invalid(
                    [
                        Problem(
                            "too_long",
                            f"超过{max_length}个字",
                            f"Longer than {max_length} characters",
                            field=col.name,
                            value=text[:40],
                        )
                    ]
                )
            return text
        if kind == "int":
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            return int(str(value))
        if kind == "float":
            return float(value)
        if kind == "decimal":
            return decimal.Decimal(str(value))
        if kind == "bool":
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "是", "y", "t"):
                return True
            if text in ("0", "false", "no", "否", "n", "f"):
                return False
            raise ValueError(text)
        if kind == "date":
            return validators.date(value, col.name, not_future=col.not_future, today=today)
        if kind == "choice":
            return _choice(col, reg, value)
        if kind == "sensitive":
            if col.name == "id_number":
                return validators.id_number(value, col.name)
            if col.name == "phone":
                return validators.phone(value, col.name)
            return str(value)
        if kind == "credit_code":
            return validators.credit_code(value, col.name)
        if kind == "json":
            return value
        if kind == "ref":
            assert col.ref is not None
            key = str(value).strip()
            if isinstance(value, float) and value.is_integer():
                key = str(int(value))
            lookup_value = col.ref.transform(key) if col.ref.transform else key
            cache_key = (col.ref.model, lookup_value)
            if cache is not None and cache_key in cache:
                found = cache[cache_key]
            else:
                if col.ref.resolve is not None:
                    found = col.ref.resolve(key)
                else:
                    found = col.ref.model._default_manager.filter(**{col.ref.key: lookup_value}).first()
                if cache is not None:
                    cache[cache_key] = found
            if found is None:
                raise Invalid(
                    [
                        Problem(
                            "ref_missing",
                            f"找不到{col.ref.label_zh or col.zh}「{key}」",
                            f"No {col.en} '{key}' exists",
                            field=col.name,
                            value=key,
                        )
                    ]
                )
            return found
    except Invalid as exc:
        for p in exc.problems:
            p.field = col.name
        raise
    except (ValueError, TypeError, decimal.InvalidOperation):
        expected = {
            "int": ("整数", "a whole number"),
            "float": ("数字", "a number"),
            "decimal": ("数字", "a number"),
            "bool": ("是/否", "yes/no"),
        }.get(kind, ("", ""))
        raise Invalid(
            [
                Problem(
                    "type",
                    f"「{value}」格式不对",
                    f"'{value}' has the wrong type",
                    field=col.name,
                    value=str(value),
                    expected_zh=expected[0],
                    expected_en=expected[1],
                )
            ]
        ) from None
    raise ValueError(f"unknown column kind {kind}")


def parse(
    reg: Registry,
    raw: dict[str, Any],
    *,
    partial: bool = False,
    cache: dict | None = None,
    today: dt.date | None = None,
) -> tuple[dict[str, Any], list[Problem]]:
    """Turn raw input (strings, numbers) into clean values; collect every problem."""
    from zhizhi import clock

    today = today or clock.today()
    values: dict[str, Any] = {}
    problems: list[Problem] = []
    for col in reg.columns:
        if col.name not in raw:
            if col.required and not partial:
                problems.append(
                    Problem("required", f"「{col.zh}」必填", f"'{col.en}' is required", field=col.name)
                )
            continue
        try:
            value = parse_value(reg, col, raw[col.name], cache, today)
        except Invalid as exc:
            problems.extend(exc.problems)
            continue
        if value is None and col.required:
            problems.append(
                Problem("required", f"「{col.zh}」必填", f"'{col.en}' is required", field=col.name)
            )
            continue
        values[col.name] = value
    return values, problems


def assign(reg: Registry, instance: Any, values: dict[str, Any]) -> None:
    for name, value in values.items():
        col = reg.column(name)
        if col.kind == "sensitive":
            instance.set_sensitive(name, value or "")
            continue
        if value is None and col.kind != "ref":
            # Clearing an optional column: NOT NULL text stores "", other NOT NULL fields keep their
            # value (or default) instead of failing at the database (same rule as the importer).
            model_field = reg.model._meta.get_field(name)
            if not model_field.null:
                if isinstance(model_field, models.CharField | models.TextField) and not model_field.choices:
                    value = ""
                else:
                    continue
        setattr(instance, name, value)


# --- writing ----------------------------------------------------------------------------------
def _scoped(reg: Registry) -> Any:
    return reg.model._default_manager


def _check_problems(reg: Registry, values: dict[str, Any], instance: Any, problems: list[Problem]) -> None:
    if not problems and reg.rules is not None:
        problems.extend(reg.rules(values, instance))
    if problems:
        raise Invalid(problems)


def create(reg: Registry, actor: Any, raw: dict[str, Any]) -> Any:
    """Create one row from raw input, as `actor`. The new row must land inside the actor's scope."""
    if not can(actor, "add", reg.model):
        raise Forbidden()
    values, problems = parse(reg, raw)
    if not problems and reg.natural_key and reg.find_existing(values) is not None:
        keys = "、".join(reg.column(k).zh for k in reg.natural_key)
        problems.append(
            Problem(
                "duplicate",
                f"已存在相同{keys}的记录",
                f"A record with the same {keys} exists",
                field=reg.natural_key[0],
            )
        )
    _check_problems(reg, values, None, problems)
    instance = reg.model()
    assign(reg, instance, values)
    try:
        with transaction.atomic():
            instance.save()
            if reg.after_save:
                reg.after_save(instance, True)
            if not _scoped(reg).visible_to(actor, "add").filter(pk=instance.pk).exists():
                raise Forbidden("不能在您的辖区之外新增记录", "You cannot add a record outside your area")
    except IntegrityError as exc:
        raise Invalid(
            [Problem("integrity", "与已有记录冲突", f"Conflicts with an existing record: {exc}")]
        ) from exc
    return instance


def update(reg: Registry, actor: Any, instance: Any, raw: dict[str, Any], version: int | None) -> Any:
    """Change a row the actor may change; `version` is the one the actor read (stale → Conflict)."""
    if not _scoped(reg).visible_to(actor, "change").filter(pk=instance.pk).exists():
        raise Forbidden()
    values, problems = parse(reg, raw, partial=True)
    if not problems and any(k in values for k in reg.natural_key):
        merged = {k: values.get(k, getattr(instance, k, None)) for k in reg.natural_key}
        other = reg.find_existing(merged) if all(k in values for k in reg.natural_key) else None
        if other is not None and other.pk != instance.pk:
            problems.append(
                Problem(
                    "duplicate",
                    "已存在相同编号的记录",
                    "Another record has the same key",
                    field=reg.natural_key[0],
                )
            )
    _check_problems(reg, values, instance, problems)
    if version is not None:
        instance.expect_version(version)
    assign(reg, instance, values)
    with transaction.atomic():
        instance.save()
        if reg.after_save:
            reg.after_save(instance, False)
        if not _scoped(reg).visible_to(actor, "change").filter(pk=instance.pk).exists():
            raise Forbidden("不能把记录移到您的辖区之外", "You cannot move a record outside your area")
    return instance
