"""Errors a person can act on: what is wrong, where (row, column, field), in Chinese and English.

Services raise `Invalid` with a list of `Problem`s (all of them, not the first one) or
`Conflict` when a record changed under the caller. Views, the API and imports render them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Problem:
    code: str
    zh: str
    en: str
    field: str = ""
    row: int | None = None
    column: str = ""
    value: Any = None
    expected_zh: str = ""
    expected_en: str = ""

    @property
    def message(self) -> str:
        """Both languages in one line, for logs, the command line and simple pages."""
        where = []
        if self.row is not None:
            where.append(f"第{self.row}行 row {self.row}")
        if self.column:
            where.append(f"列 column「{self.column}」")
        elif self.field:
            where.append(f"字段 field「{self.field}」")
        head = ", ".join(where)
        text = f"{self.zh} / {self.en}"
        if self.expected_zh or self.expected_en:
            text += f"（应为 expected: {self.expected_zh} / {self.expected_en}）"
        return f"{head}: {text}" if head else text

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["message"] = self.message
        if data["value"] is not None and not isinstance(data["value"], str | int | float | bool):
            data["value"] = str(data["value"])
        return data


@dataclass
class Invalid(Exception):
    """One or more problems with the input; nothing was written."""

    problems: list[Problem] = field(default_factory=list)

    def __str__(self) -> str:
        return "; ".join(p.message for p in self.problems)

    def by_field(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for p in self.problems:
            out.setdefault(p.field or "__all__", []).append(p.message)
        return out


def invalid(code: str, zh: str, en: str, **where: Any) -> Invalid:
    return Invalid([Problem(code, zh, en, **where)])


class Conflict(Exception):
    """The record changed since the caller read it: the later save must not erase the earlier one."""

    def __init__(self, current_version: int | None = None) -> None:
        self.current_version = current_version
        super().__init__(
            "此记录已被他人修改，请刷新后重试 / This record was changed by someone else; reload and try again"
        )


class Forbidden(Exception):
    """The actor may not do this (rendered as 403, or 404 when the object is out of scope)."""

    def __init__(self, zh: str = "无权执行此操作", en: str = "You are not allowed to do this") -> None:
        self.zh, self.en = zh, en
        super().__init__(f"{zh} / {en}")
