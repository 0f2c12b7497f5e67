"""The API under /api/v1/: one NinjaAPI and the one router registry.

Each app's api.py calls `register_registry(key, plural)` for its registries (the generic
list/get/create/update/import/export endpoints come from zhizhi/api_common.py) and may add its
own endpoints to `app_router(app)`. Routes, e.g.: /api/v1/people/persons/, /api/v1/geo/regions/.
Docs (OpenAPI, Swagger UI) at /api/v1/docs.
"""

from __future__ import annotations

import importlib

from ninja import NinjaAPI, Router

from zhizhi import registry
from zhizhi.api_common import AUTH, install_error_handlers, registry_router

api = NinjaAPI(
    title="智治 Zhizhi API",
    version="1",
    description=(
        "基层智治平台接口。认证：`Authorization: Bearer <令牌>` 或 `X-API-Token`，浏览器可用登录会话。"
        " Grassroots governance API. Auth: Bearer token or X-API-Token header; browser session works too."
        " See docs/api.md."
    ),
    urls_namespace="api",
    auth=AUTH,
)
install_error_handlers(api)

# app label → its router; registry key → (app, plural) as mounted (docs and tests read this).
APP_ROUTERS: dict[str, Router] = {}
REGISTRY_ROUTES: dict[str, tuple[str, str]] = {}
REGISTRY_ROUTERS: dict[str, Router] = {}

# The apps whose api.py modules register routers, in the order they appear in the docs.
API_APPS = ("geo", "people", "enterprises", "orgs", "cases", "intake", "alerts")
API_APPS += ("cockpit",)  # the big screen's board JSON (zhizhi/cockpit/api.py)
API_APPS += ("cockpit.emergency",)  # zhizhi/cockpit/emergency/api.py → /api/v1/emergency/
API_APPS += ("notify",)  # zhizhi/notify/api.py → /api/v1/notify/ (inbox, broadcasts)


def app_router(app: str) -> Router:
    if app not in APP_ROUTERS:
        APP_ROUTERS[app] = Router()
    return APP_ROUTERS[app]


def register_registry(key: str, plural: str) -> Router:
    """Mount the generic endpoints of registry `key` at /api/v1/<app>/<plural>/."""
    reg = registry.get(key)
    app = key.split(".")[0]
    router = registry_router(reg, plural, f"{app}/{plural}")
    app_router(app).add_router(f"/{plural}/", router)
    REGISTRY_ROUTES[key] = (app, plural)
    REGISTRY_ROUTERS[key] = router
    return router


def path_for(key: str) -> str:
    """The list URL of a registry, e.g. "/api/v1/people/persons/"."""
    app, plural = REGISTRY_ROUTES[key]
    return f"/api/v1/{app}/{plural}/"


def _mount() -> None:
    for app in API_APPS:
        importlib.import_module(f"zhizhi.{app}.api")
    for app, router in APP_ROUTERS.items():
        api.add_router(f"/{app}/", router)


_mount()
