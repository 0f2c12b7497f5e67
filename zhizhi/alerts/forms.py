"""The rule editor's guided form: POST fields ↔ a rule's data (params built from the fields of its kind).

Each kind has its own fields — a threshold's ladder of rungs (above/below, limit, for_seconds, severity)
and its clear condition; a rate's delta and window; a silence rule's window and quiet hours; registry and
list-match rules a JSON textarea. A value that is not a number is passed on as typed, so
`rules.check_params` reports it at its place ("params.ladder[1]") like any other bad parameter; nothing
is checked twice in two ways.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.http import QueryDict

from zhizhi.alerts.models import Device
from zhizhi.alerts.rule_models import Alarm, AlertRule
from zhizhi.problems import Problem

RUNGS = 4  # rows of the ladder the form offers (empty rows are ignored)
SEVERITIES = Alarm.SEVERITIES
DIRECTIONS = [("above", "高于"), ("below", "低于")]
JSON_KINDS = (AlertRule.REGISTRY, AlertRule.LIST_MATCH)
# The form's text fields, by name (the rungs are rung-<i>-direction/limit/for_seconds/severity).
TEXT_FIELDS = (
    "code", "name", "kind", "device_kind", "category_code", "version", "params_json", "severity", "delta",
    "within_seconds", "clear_delta", "silent_seconds", "quiet_start", "quiet_end", "clear_direction",
    "clear_limit", "clear_for_seconds", "deescalate_after_seconds",
)  # fmt: skip


def _number(raw: str) -> Any:
    """An int or float from the text; the text itself when it is not one (check_params reports it)."""
    text = (raw or "").strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number


def _flag(post: QueryDict, name: str) -> bool:
    return post.get(name) in ("on", "1", "true", "yes")


@dataclass
class Rung:
    direction: str = "above"
    limit: str = ""
    for_seconds: str = "0"
    severity: str = "major"
    errors: list[str] = field(default_factory=list)


@dataclass
class RuleForm:
    """What the editor shows: the values (as typed) and the errors placed by field."""

    values: dict[str, Any]
    rungs: list[Rung]
    errors: dict[str, list[str]] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)

    def place(self, problems: list[Problem]) -> None:
        """Put each problem at its field: a rung row, a params key, a base field, or the top."""
        for p in problems:
            where = p.field or ""
            if where.startswith("params.ladder[") and "]" in where:
                index = int(where[len("params.ladder[") : where.index("]")])
                if 0 <= index < len(self.rungs):
                    self.rungs[index].errors.append(p.message)
                    continue
            key = where.removeprefix("params.") if where.startswith("params.") else where
            as_json = self.values.get("kind") in JSON_KINDS
            if as_json and where.startswith("params"):
                key = "params_json"
            if key == "params" and not as_json:
                self.general.append(p.message)
                continue
            if key == "clear" or key.startswith("clear."):
                key = "clear_limit"  # never "clear": a template would call dict.clear on the lookup
            if key:
                self.errors.setdefault(key, []).append(p.message)
            else:
                self.general.append(p.message)


def blank_form() -> RuleForm:
    values = {
        "code": "",
        "name": "",
        "kind": AlertRule.THRESHOLD,
        "device_kind": "",
        "category_code": "",
        "creates_case": False,
        "enabled": True,
        "params_json": "{}",
        "version": "",
    }
    return RuleForm(values=values, rungs=[Rung() for _ in range(RUNGS)])


def form_for(rule: AlertRule) -> RuleForm:
    """The editor filled from a stored rule."""
    params = dict(rule.params or {})
    values: dict[str, Any] = {
        "code": rule.code,
        "name": rule.name,
        "kind": rule.kind,
        "device_kind": rule.device_kind,
        "category_code": rule.category_code,
        "creates_case": rule.creates_case,
        "enabled": rule.enabled,
        "version": rule.version,
        "params_json": json.dumps(params, ensure_ascii=False, indent=2),
        "severity": params.get("severity", ""),
        "delta": params.get("delta", ""),
        "within_seconds": params.get("within_seconds", ""),
        "clear_delta": params.get("clear_delta", ""),
        "silent_seconds": params.get("silent_seconds", ""),
    }
    quiet = params.get("quiet_hours") or ["", ""]
    values["quiet_start"], values["quiet_end"] = [*list(quiet), "", ""][:2]
    clear = params.get("clear") or {}
    values["clear_direction"] = "above" if "above" in clear else "below"
    values["clear_limit"] = clear.get("above", clear.get("below", ""))
    values["clear_for_seconds"] = clear.get("for_seconds", "")
    values["deescalate_after_seconds"] = params.get("deescalate_after_seconds", "")
    rungs = []
    for step in params.get("ladder") or []:
        if not isinstance(step, dict):
            continue
        direction = "below" if "below" in step else "above"
        limit, held = str(step.get(direction, "")), str(step.get("for_seconds", 0))
        rungs.append(Rung(direction, limit, held, step.get("severity", "major")))
    rungs += [Rung() for _ in range(max(RUNGS - len(rungs), 1))]
    return RuleForm(values=values, rungs=rungs)


def parse(post: QueryDict) -> tuple[RuleForm, dict[str, Any], list[Problem]]:
    """The form as typed, the rule data it means, and the problems found while reading it (bad JSON)."""
    kind = post.get("kind", "")
    values: dict[str, Any] = {k: post.get(k, "") for k in TEXT_FIELDS}
    values["creates_case"] = _flag(post, "creates_case")
    values["enabled"] = _flag(post, "enabled")
    rungs = [
        Rung(
            post.get(f"rung-{i}-direction", "above"),
            post.get(f"rung-{i}-limit", ""),
            post.get(f"rung-{i}-for_seconds", "0"),
            post.get(f"rung-{i}-severity", "major"),
        )
        for i in range(int(post.get("rungs", RUNGS) or RUNGS))
    ]
    problems: list[Problem] = []
    params: Any = {}
    if kind == AlertRule.THRESHOLD:
        # Only filled rows count; the kept rows are renumbered so errors point at what is shown.
        rungs = [r for r in rungs if r.limit.strip()]
        ladder = []
        for r in rungs:
            direction = r.direction if r.direction in ("above", "below") else "above"
            step: dict[str, Any] = {direction: _number(r.limit)}
            step["for_seconds"] = _number(r.for_seconds or "0")
            step["severity"] = r.severity
            ladder.append(step)
        params = {"ladder": ladder}
        if values["clear_limit"].strip():
            way = values["clear_direction"] if values["clear_direction"] in ("above", "below") else "below"
            params["clear"] = {
                way: _number(values["clear_limit"]),
                "for_seconds": _number(values["clear_for_seconds"] or "0"),
            }
        if str(values["deescalate_after_seconds"]).strip():
            params["deescalate_after_seconds"] = _number(values["deescalate_after_seconds"])
        rungs += [Rung() for _ in range(max(RUNGS - len(rungs), 1))]
    elif kind == AlertRule.RATE:
        params = {"delta": _number(values["delta"]), "within_seconds": _number(values["within_seconds"])}
        if values["clear_delta"].strip():
            params["clear_delta"] = _number(values["clear_delta"])
    elif kind in (AlertRule.MISSING, AlertRule.INACTIVITY):
        if values["silent_seconds"].strip():
            params["silent_seconds"] = _number(values["silent_seconds"])
        if values["quiet_start"].strip() or values["quiet_end"].strip():
            params["quiet_hours"] = [values["quiet_start"].strip(), values["quiet_end"].strip()]
    else:
        try:
            params = json.loads(values["params_json"] or "{}")
        except ValueError as exc:
            problems.append(
                Problem(
                    "bad_json",
                    f"参数不是合法的 JSON（第 {getattr(exc, 'lineno', '?')} 行）",
                    f"Params are not valid JSON (line {getattr(exc, 'lineno', '?')})",
                    field="params",
                )
            )
            params = None
    if kind in (AlertRule.RATE, AlertRule.MISSING, AlertRule.INACTIVITY) and values["severity"]:
        params["severity"] = values["severity"]
    data = {
        "code": values["code"],
        "name": values["name"],
        "kind": kind,
        "device_kind": values["device_kind"],
        "category_code": values["category_code"],
        "creates_case": values["creates_case"],
        "enabled": values["enabled"],
        "params": params,
    }
    return RuleForm(values=values, rungs=rungs), data, problems


def device_kind_choices() -> list[tuple[str, str]]:
    return [("", "全部设备"), *Device.KINDS]
