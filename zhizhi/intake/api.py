"""Intake endpoints under /api/v1/intake/: work-order push, camera events, results export."""

from zhizhi.api import app_router

router = app_router("intake")
