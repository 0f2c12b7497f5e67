"""The demo street's extra layers beyond registries and case history: devices and alert rules,
enterprise-trigger data, indicators and rollups, cameras … (`manage.py demo_extras`, run by `make demo`).

Each entry names a loader `module:function` taking the street `Region` and returning counts. A loader
is idempotent: run twice, it adds nothing the second time (it checks for its own rows first).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

# (name, "module:function"), run in this order. Append new layers at the end.
LOADERS: list[tuple[str, str]] = [
    ("devices", "zhizhi.alerts.devices_demo:load"),
    ("enterprise_triggers", "zhizhi.alerts.enterprise_demo:load"),
    ("police110", "zhizhi.intake.police110_demo:load"),
    ("broadcasts", "zhizhi.notify.demo:load"),
    ("care", "zhizhi.alerts.care_demo:load"),
    ("indicators", "zhizhi.cockpit.demo:load"),
    ("emergency", "zhizhi.cockpit.emergency.demo:load"),
]


def run(street: Any, only: list[str] | None = None) -> dict[str, dict[str, int]]:
    results: dict[str, dict[str, int]] = {}
    for name, target in LOADERS:
        if only and name not in only:
            continue
        module, _, func = target.partition(":")
        results[name] = getattr(import_module(module), func)(street) or {}
    return results
