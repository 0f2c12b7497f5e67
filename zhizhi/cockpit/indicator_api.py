"""Indicator definitions under /api/v1/cockpit/indicators: list, one, create, change (optimistic
version: a stale change answers 409) and the source catalogue. Thin: the check and the save are
`services.save_indicator`, the same as the form, the admin and the import."""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest
from ninja.responses import Status
from pydantic import Field

from zhizhi.api import app_router
from zhizhi.api_common import ERRORS, StrictInput, acting, required_version
from zhizhi.cockpit import services
from zhizhi.cockpit.forms import catalog
from zhizhi.cockpit.models import Indicator
from zhizhi.problems import Forbidden

router = app_router("cockpit")
OK = {200: dict[str, Any], **ERRORS}
LIST = {200: list[dict[str, Any]], **ERRORS}
CREATED = {201: dict[str, Any], **ERRORS}


def _reader(request: HttpRequest) -> Any:
    user = request.auth  # type: ignore[attr-defined]
    if not services.can_read_indicators(user):
        raise Forbidden("无权查看指标", "You may not see the indicators")
    return user


def _indicator(pk: int) -> Indicator:
    ind = Indicator.objects.filter(pk=pk).first()
    if ind is None:
        raise Http404()
    return ind


class IndicatorIn(StrictInput):
    code: str = Field(..., description="指标编码 unique code")
    name: str
    unit: str = ""
    scene: str = Field("overview", description="overview / safety / livelihood / industry")
    description: str = ""
    source: str = Field(..., description="数据来源 a registered source (GET /cockpit/indicator-sources)")
    params: Any = Field(default_factory=dict, description='筛选条件 filters, e.g. {"channel": ["hotline"]}')
    window: str = Field(
        "day", description="now / day / month / days30 / year / month_last_year / year_last_year"
    )
    aggregation: str = Field("count", description="count / sum / avg / ratio / growth")
    measure: str = ""
    denominator_source: str = ""
    denominator_params: Any = Field(default_factory=dict)
    denominator_window: str = ""
    breakdown_level: str = Field("grid", description="street / community / grid")
    threshold_green: float | None = None
    threshold_red: float | None = None
    target: float | None = None
    higher_is_better: bool = True
    order: int = 0
    enabled: bool = True


class IndicatorPatch(StrictInput):
    version: int | None = Field(None, description="读到的版本 the version you read (or If-Match)")
    name: str | None = None
    unit: str | None = None
    scene: str | None = None
    description: str | None = None
    source: str | None = None
    params: Any = None
    window: str | None = None
    aggregation: str | None = None
    measure: str | None = None
    denominator_source: str | None = None
    denominator_params: Any = None
    denominator_window: str | None = None
    breakdown_level: str | None = None
    threshold_green: float | None = None
    threshold_red: float | None = None
    target: float | None = None
    higher_is_better: bool | None = None
    order: int | None = None
    enabled: bool | None = None


@router.get("/indicators", response=LIST, operation_id="cockpit_indicators_list", tags=["cockpit"])
def list_indicators(request: HttpRequest, scene: str = "") -> list[dict[str, Any]]:
    """指标定义 Indicator definitions (optionally of one scene)."""
    _reader(request)
    qs = Indicator.objects.all()
    if scene:
        qs = qs.filter(scene=scene)
    return [services.indicator_out(i) for i in qs]


@router.get("/indicator-sources", response=LIST, operation_id="cockpit_indicator_sources", tags=["cockpit"])
def list_sources(request: HttpRequest) -> list[dict[str, Any]]:
    """数据来源 The registered sources: kind, windows, measures, filters and their values."""
    _reader(request)
    return catalog()


@router.get("/indicators/{int:pk}", response=OK, operation_id="cockpit_indicators_get", tags=["cockpit"])
def get_indicator(request: HttpRequest, pk: int) -> dict[str, Any]:
    _reader(request)
    return services.indicator_out(_indicator(pk))


@router.post("/indicators", response=CREATED, operation_id="cockpit_indicators_create", tags=["cockpit"])
def create_indicator(request: HttpRequest, payload: IndicatorIn) -> Any:
    """新增指标 Create an indicator; every problem is reported at its field, in Chinese and English."""
    with acting(request):
        ind = services.save_indicator(request.auth, payload.model_dump())  # type: ignore[attr-defined]
    return Status(201, services.indicator_out(ind))


@router.patch("/indicators/{int:pk}", response=OK, operation_id="cockpit_indicators_update", tags=["cockpit"])
def update_indicator(request: HttpRequest, pk: int, payload: IndicatorPatch) -> dict[str, Any]:
    """修改指标 Change some fields. Send the `version` you read (body or If-Match): stale → 409."""
    ind = _indicator(pk)
    raw = payload.model_dump(exclude_unset=True)
    version = required_version(request, raw)
    with acting(request):
        saved = services.save_indicator(request.auth, raw, ind, version)  # type: ignore[attr-defined]
    return services.indicator_out(saved)
