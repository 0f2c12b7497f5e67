"""What every API endpoint shares: authentication, the error format, and the generic registry router.

`registry_router(reg, plural)` builds list/get/create/update/import/export (and reveal, for models
with protected fields) from a `zhizhi.registry.Registry` declaration, so no registry is copied by
hand. Every read goes through `Model.objects.visible_to(user, action)`; an object outside the
caller's area answers 404, never data.

Error bodies always have the same shape, a list of bilingual problems:
    {"errors": [{"code": "...", "zh": "...", "en": "...", "field": "...", "message": "zh / en", ...}]}
"""

# No `from __future__ import annotations` here: django-ninja reads the parameter annotations of the
# views built in `registry_router`, and those name schemas that exist only inside that function.

import datetime as dt
import decimal
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError
from django.db.models import ForeignKey, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from ninja import File, NinjaAPI, Query, Router, Schema
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.files import UploadedFile
from ninja.responses import Status
from ninja.security import APIKeyCookie, APIKeyHeader, HttpBearer
from ninja.utils import check_csrf
from pydantic import ConfigDict, Field, create_model

from zhizhi import registry
from zhizhi.context import acting_as, current_request_id
from zhizhi.permissions import can, reveal, user_for_token
from zhizhi.problems import Conflict, Forbidden, Invalid, Problem
from zhizhi.registry import EMPTY, Column, Registry

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
IDEMPOTENCY_SECONDS = 24 * 3600
SAFE_METHODS = ("GET", "HEAD", "OPTIONS", "TRACE")


# --- authentication ---------------------------------------------------------------------------
class BearerToken(HttpBearer):
    """`Authorization: Bearer zz_…` — tokens from `manage.py create_api_token`."""

    def authenticate(self, request: HttpRequest, token: str) -> Any:
        return _token_user(request, token)


class HeaderToken(APIKeyHeader):
    """`X-API-Token: zz_…` for clients that cannot set Authorization."""

    param_name = "X-API-Token"

    def authenticate(self, request: HttpRequest, key: str | None) -> Any:
        return _token_user(request, key or "")


class CsrfFailed(Exception):
    pass


class BrowserSession(APIKeyCookie):
    """The logged-in browser (Django session). Unsafe methods need the CSRF token, as pages do.

    Unlike ninja's SessionAuth the CSRF check runs only once a session user is found, so an
    anonymous request gets 401 (not a CSRF 403) and token clients never meet CSRF."""

    param_name = settings.SESSION_COOKIE_NAME

    def _get_key(self, request: HttpRequest) -> str | None:
        return request.COOKIES.get(self.param_name)

    def authenticate(self, request: HttpRequest, key: str | None) -> Any:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        if request.method not in SAFE_METHODS and check_csrf(request) is not None:
            raise CsrfFailed()
        return user


def _token_user(request: HttpRequest, raw: str) -> Any:
    user = user_for_token(raw.strip())
    if user is not None:
        # Token requests pass the session middleware as anonymous; the rest of the request
        # (change log, reveal log) must see the token's owner.
        request.user = user
    return user


AUTH = [BearerToken(), HeaderToken(), BrowserSession()]


def acting(request: HttpRequest) -> Any:
    """Attribute the changes of this request to its authenticated user (token or session)."""
    return acting_as(request.auth, current_request_id() or None)  # type: ignore[attr-defined]


# --- errors -----------------------------------------------------------------------------------
def problem_body(*problems: Problem, **extra: Any) -> dict[str, Any]:
    return {"errors": [p.as_dict() for p in problems], **extra}


def install_error_handlers(api: NinjaAPI) -> None:
    def respond(request: HttpRequest, status: int, body: dict[str, Any]) -> HttpResponse:
        return api.create_response(request, body, status=status)

    def on_invalid(request: HttpRequest, exc: Invalid) -> HttpResponse:
        return respond(request, 400, problem_body(*exc.problems))

    def on_forbidden(request: HttpRequest, exc: Forbidden) -> HttpResponse:
        return respond(request, 403, problem_body(Problem("forbidden", exc.zh, exc.en)))

    def on_conflict(request: HttpRequest, exc: Conflict) -> HttpResponse:
        p = Problem(
            "conflict",
            "此记录已被他人修改，请重新读取后再改",
            "This record was changed by someone else; read it again and retry",
            field="version",
            value=exc.current_version,
        )
        return respond(request, 409, problem_body(p, current_version=exc.current_version))

    def on_not_found(request: HttpRequest, exc: Exception) -> HttpResponse:
        p = Problem("not_found", "记录不存在或不在您的辖区内", "Not found, or outside your area")
        return respond(request, 404, problem_body(p))

    def on_unauthenticated(request: HttpRequest, exc: Exception) -> HttpResponse:
        p = Problem(
            "unauthenticated",
            "请先登录，或在请求头中提供 API 令牌",
            "Log in, or send an API token (Authorization: Bearer … or X-API-Token)",
        )
        response = respond(request, 401, problem_body(p))
        response["WWW-Authenticate"] = 'Bearer realm="zhizhi"'
        return response

    def on_csrf(request: HttpRequest, exc: Exception) -> HttpResponse:
        p = Problem(
            "csrf",
            "CSRF 校验失败，请刷新页面后重试",
            "CSRF check failed; reload the page (or use an API token)",
        )
        return respond(request, 403, problem_body(p))

    def on_schema(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
        problems = []
        for err in exc.errors:
            loc = [str(x) for x in err.get("loc", ()) if x not in ("body", "payload", "query", "params")]
            name = ".".join(loc)
            if err.get("type") == "extra_forbidden":
                problems.append(
                    Problem(
                        "unknown_field",
                        f"未知字段「{name}」",
                        f"Unknown field '{name}'",
                        field=name,
                    )
                )
            else:
                problems.append(
                    Problem("schema", f"「{name}」格式不对", f"'{name}': {err.get('msg', '')}", field=name)
                )
        return respond(request, 400, problem_body(*problems))

    def on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
        p = Problem("http", str(exc), str(exc))
        return respond(request, exc.status_code, problem_body(p))

    def on_integrity(request: HttpRequest, exc: IntegrityError) -> HttpResponse:
        # The registry's rules should catch every conflict first; a database constraint is the
        # last line (e.g. two concurrent creates of the same natural key).
        p = Problem(
            "integrity", "与已有记录冲突，未保存", "Conflicts with an existing record; nothing was saved"
        )
        return respond(request, 400, problem_body(p))

    handlers: list[tuple[type[Exception], Callable[..., HttpResponse]]] = [
        (Invalid, on_invalid),
        (IntegrityError, on_integrity),
        (Forbidden, on_forbidden),
        (Conflict, on_conflict),
        (Http404, on_not_found),
        (AuthenticationError, on_unauthenticated),
        (CsrfFailed, on_csrf),
        (NinjaValidationError, on_schema),
        (HttpError, on_http_error),
    ]
    for exc_class, handler in handlers:
        api.add_exception_handler(exc_class, handler)


class ProblemOut(Schema):
    code: str
    zh: str
    en: str
    field: str = ""
    row: int | None = None
    column: str = ""
    value: Any = None
    expected_zh: str = ""
    expected_en: str = ""
    message: str


class ErrorsOut(Schema):
    errors: list[ProblemOut]
    current_version: int | None = None


ERRORS = {400: ErrorsOut, 401: ErrorsOut, 403: ErrorsOut, 404: ErrorsOut, 409: ErrorsOut}


# --- output -----------------------------------------------------------------------------------
class RefOut(Schema):
    id: int
    key: str
    name: str


_PLAIN_TYPES: dict[str, Any] = {
    "str": str,
    "credit_code": str,
    "int": int,
    "float": float,
    "decimal": decimal.Decimal,
    "date": dt.date,
    "bool": bool,
    "choice": str,
    "json": Any,
}

# Fields a registry model has that are not columns on purpose: stamps, scope and the stored forms
# of protected values. Used by the battery's "every field is declared" test too.
INTERNAL_FIELDS = {"id", "created_at", "updated_at", "created_by", "updated_by", "version", "area_path"}
INTERNAL_SUFFIXES = ("_enc", "_hash", "_masked")


def ref_out(col: Column, target: Any, hidden: bool = False) -> dict[str, Any] | None:
    if target is None:
        return None
    assert col.ref is not None
    if hidden:
        return {"id": target.pk, "key": "", "name": ""}
    return {"id": target.pk, "key": col.ref.natural(target), "name": str(target)}


def serialize(
    reg: Registry, obj: Any, hidden: set[tuple[str, Any]] | frozenset = frozenset()
) -> dict[str, Any]:
    """One row as the API shows it: masks for protected values, refs as {id, key, name}.

    `hidden` holds (column, id) of referenced people the caller may not see: only their id shows."""
    out: dict[str, Any] = {"id": obj.pk, "version": obj.version, "updated_at": obj.updated_at}
    for col in reg.columns:
        if col.kind == "sensitive":
            out[f"{col.name}_masked"] = getattr(obj, f"{col.name}_masked", "")
        elif col.kind == "ref":
            target_id = getattr(obj, f"{col.name}_id", None)
            out[col.name] = ref_out(col, getattr(obj, col.name), (col.name, target_id) in hidden)
        elif col.kind == "choice":
            code = getattr(obj, col.name)
            out[col.name] = code
            out[f"{col.name}_label"] = getattr(obj, f"get_{col.name}_display")() if code else None
        else:
            out[col.name] = getattr(obj, col.name)
    return out


def serialize_rows(reg: Registry, user: Any, objs: list[Any]) -> list[dict[str, Any]]:
    """Rows for `user`. A reference to a person outside the user's area (a house owner living
    elsewhere) shows only its id: the name of someone you may not see is personal data too."""
    hidden: set[tuple[str, Any]] = set()
    for col in reg.columns:
        if col.kind != "ref" or col.ref is None or not getattr(col.ref.model, "SENSITIVE", None):
            continue
        ids = {getattr(o, f"{col.name}_id") for o in objs} - {None}
        if not ids:
            continue
        seen = set(
            col.ref.model.objects.visible_to(user, "view")  # type: ignore[attr-defined]
            .filter(pk__in=ids)
            .values_list("pk", flat=True)
        )
        hidden.update((col.name, pk) for pk in ids - seen)
    return [serialize(reg, o, hidden) for o in objs]


def _schema_name(reg: Registry, suffix: str) -> str:
    return "".join(part.capitalize() for part in reg.key.split(".")) + suffix


def output_schema(reg: Registry) -> type[Schema]:
    fields: dict[str, Any] = {
        "id": (int, ...),
        "version": (int, Field(..., description="乐观锁版本号；修改时原样带回 / send back when changing")),
        "updated_at": (dt.datetime, ...),
    }
    for col in reg.columns:
        doc = f"{col.zh} / {col.en}"
        if col.kind == "sensitive":
            fields[f"{col.name}_masked"] = (str, Field("", description=f"{doc}（脱敏 masked）"))
        elif col.kind == "ref":
            fields[col.name] = (RefOut | None, Field(None, description=doc))
        elif col.kind == "choice":
            fields[col.name] = (str | None, Field(None, description=f"{doc}（代码 code）"))
            fields[f"{col.name}_label"] = (str | None, Field(None, description=f"{doc}（名称 label）"))
        else:
            fields[col.name] = (_PLAIN_TYPES[col.kind] | None, Field(None, description=doc))
    return create_model(_schema_name(reg, "Out"), __base__=Schema, **fields)


class StrictInput(Schema):
    # An unknown field is an error, not silently dropped: a typo must not look like a save.
    model_config = ConfigDict(extra="forbid")


def input_schema(reg: Registry, *, with_version: bool) -> type[Schema]:
    """The same raw values an import accepts: codes or Chinese labels, natural keys, plaintext."""
    fields: dict[str, Any] = {}
    for col in reg.columns:
        hint = {
            "ref": f"{col.ref.label_zh if col.ref else ''} natural key",
            "choice": "code or label / 代码或名称",
            "sensitive": "plaintext, validated / 明文，校验后加密保存",
        }.get(col.kind, col.kind)
        required = "必填 required; " if col.required else ""
        fields[col.name] = (Any, Field(None, description=f"{col.zh} / {col.en} ({required}{hint})"))
    if with_version:
        fields["version"] = (
            int | None,
            Field(None, description="读取时的版本号（或用 If-Match 头）/ the version you read (or If-Match)"),
        )
    return create_model(
        _schema_name(reg, "Update" if with_version else "Create"), __base__=StrictInput, **fields
    )


# --- reading ----------------------------------------------------------------------------------
def select_for(reg: Registry) -> list[str]:
    """Joins that serializing a page needs: each ref, and the refs' own required foreign keys
    (a house's key and name need its building)."""
    joins = []
    for col in reg.columns:
        if col.kind != "ref" or col.ref is None:
            continue
        joins.append(col.name)
        for f in col.ref.model._meta.concrete_fields:
            if isinstance(f, ForeignKey) and not f.null:
                joins.append(f"{col.name}__{f.name}")
    return joins


def visible(reg: Registry, user: Any, action: str = "view") -> QuerySet:
    return reg.model.objects.visible_to(user, action).select_related(*select_for(reg))  # type: ignore[attr-defined]


def require(user: Any, action: str, reg: Registry) -> None:
    if not can(user, action, reg.model):
        raise Forbidden()


def get_visible(reg: Registry, user: Any, pk: int) -> Any:
    """The row if the user may see it; 404 otherwise (never whether it exists)."""
    require(user, "view", reg)
    obj = visible(reg, user).filter(pk=pk).first()
    if obj is None:
        raise Http404()
    return obj


LIST_PARAMS = ("q", "ordering", "limit", "offset")


def orderable(reg: Registry) -> list[str]:
    return ["id", "updated_at"] + [c.name for c in reg.columns if c.kind not in ("sensitive", "json")]


def filtered(reg: Registry, qs: QuerySet, params: dict[str, str], ignore: tuple[str, ...] = ()) -> QuerySet:
    """Apply `q` (search), the registry's filters (exact; refs by natural key) and `ordering`."""
    unknown = sorted(set(params) - set(reg.filters) - set(LIST_PARAMS) - set(ignore))
    if unknown:
        allowed = "、".join((*reg.filters, *LIST_PARAMS))
        raise Invalid(
            [
                Problem(
                    "unknown_filter",
                    f"不支持的查询参数「{name}」",
                    f"Unknown query parameter '{name}'",
                    field=name,
                    expected_zh=allowed,
                    expected_en=allowed.replace("、", ", "),
                )
                for name in unknown
            ]
        )
    q = (params.get("q") or "").strip()
    if q and reg.search:
        cond = Q()
        for name in reg.search:
            cond |= Q(**{f"{name}__icontains": q})
        qs = qs.filter(cond)
    problems: list[Problem] = []
    for name in reg.filters:
        raw = params.get(name)
        if raw in EMPTY:
            continue
        col = reg.column(name)
        try:
            value = registry.parse_value(reg, col, raw)
        except Invalid as exc:
            if col.kind == "ref" and all(p.code == "ref_missing" for p in exc.problems):
                # An unknown key filters to nothing rather than answering "does not exist": the
                # difference would tell a caller which ID numbers exist outside their area.
                return qs.none()
            problems.extend(exc.problems)
            continue
        qs = qs.filter(**{name: value})
    if problems:
        raise Invalid(problems)
    ordering = [o.strip() for o in (params.get("ordering") or "").split(",") if o.strip()]
    allowed_order = orderable(reg)
    for o in ordering:
        if o.lstrip("-") not in allowed_order:
            raise Invalid(
                [
                    Problem(
                        "ordering",
                        f"不能按「{o}」排序",
                        f"Cannot order by '{o}'",
                        field="ordering",
                        expected_zh="、".join(allowed_order),
                        expected_en=", ".join(allowed_order),
                    )
                ]
            )
    if ordering:
        qs = qs.order_by(*ordering, "pk")
    return qs


def page(
    request: HttpRequest, qs: QuerySet, to_rows: Callable[[list[Any]], list[dict]], limit: int, offset: int
) -> dict:
    limit = max(1, min(int(limit), MAX_LIMIT))
    offset = max(0, int(offset))
    count = qs.count()
    rows = to_rows(list(qs[offset : offset + limit]))

    def link(new_offset: int) -> str:
        query = request.GET.copy()
        query["limit"] = str(limit)
        query["offset"] = str(new_offset)
        return request.build_absolute_uri(request.path + "?" + urlencode(sorted(query.items())))

    return {
        "count": count,
        "next": link(offset + limit) if offset + limit < count else None,
        "previous": link(max(0, offset - limit)) if offset > 0 else None,
        "results": rows,
    }


def version_from(request: HttpRequest, raw: dict[str, Any]) -> int | None:
    """The version the client read: body field `version`, else the If-Match header."""
    version = raw.pop("version", None)
    if version is None:
        header = (request.headers.get("If-Match") or "").strip()
        if header.startswith("W/"):
            header = header[2:]
        header = header.strip('"')
        if header and header != "*":
            try:
                version = int(header)
            except ValueError:
                raise Invalid(
                    [Problem("version", "If-Match 应为版本号", "If-Match must be a version number")]
                ) from None
    return int(version) if version is not None else None


def required_version(request: HttpRequest, raw: dict[str, Any]) -> int:
    """`version_from`, for edits that must say which version they change: none given → 400."""
    version = version_from(request, raw)
    if version is None:
        raise Invalid(
            [
                Problem(
                    "version_required",
                    "请提供读到的版本号 version（或 If-Match），以免覆盖他人的修改",
                    "Send the version you read (body or If-Match) so no one else's edit is overwritten",
                    field="version",
                )
            ]
        )
    return version


# --- the generic registry router --------------------------------------------------------------
def registry_router(reg: Registry, plural: str, url_prefix: str) -> Router:
    """list / get / create / update / import / export (and reveal) for one registry."""
    tag = f"{reg.zh} {reg.en}"
    router = Router(tags=[tag])
    Out = output_schema(reg)
    Create = input_schema(reg, with_version=False)
    Update = input_schema(reg, with_version=True)
    Page = create_model(
        _schema_name(reg, "Page"),
        __base__=Schema,
        count=(int, ...),
        next=(str | None, None),
        previous=(str | None, None),
        results=(list[Out], ...),  # type: ignore[valid-type]
    )
    list_fields: dict[str, Any] = {
        "q": (str | None, Field(None, description="搜索 search: " + ", ".join(reg.search))),
        "ordering": (
            str | None,
            Field(None, description="排序 e.g. `name` or `-updated_at`: " + ", ".join(orderable(reg))),
        ),
        "limit": (int, Field(DEFAULT_LIMIT, ge=1, description=f"每页条数 page size (max {MAX_LIMIT})")),
        "offset": (int, Field(0, ge=0)),
    }
    for name in reg.filters:
        col = reg.column(name)
        how = "natural key / 编码" if col.kind == "ref" else ("code or label" if col.kind == "choice" else "")
        list_fields[name] = (str | None, Field(None, description=f"{col.zh} / {col.en} {how}".strip()))
    ListParams = create_model(_schema_name(reg, "ListParams"), __base__=Schema, **list_fields)
    ExportParams = create_model(
        _schema_name(reg, "ExportParams"),
        __base__=Schema,
        format=(str, Field("xlsx", pattern="^(xlsx|csv)$")),
        **{k: v for k, v in list_fields.items() if k not in ("limit", "offset")},
    )
    op = f"{url_prefix.strip('/').replace('/', '_').replace('-', '_')}"

    def to_dict(request: HttpRequest, obj: Any) -> dict[str, Any]:
        return serialize_rows(reg, request.auth, [obj])[0]  # type: ignore[attr-defined]

    @router.get("/", response={200: Page, **ERRORS}, operation_id=f"{op}_list", url_name=f"{op}_list")
    def list_rows(request: HttpRequest, params: Query[ListParams]):  # type: ignore[valid-type]
        """列表 List: paginated, searchable, filterable; only rows in your area."""
        user = request.auth  # type: ignore[attr-defined]
        require(user, "view", reg)
        qs = filtered(reg, visible(reg, user), request.GET.dict())
        return page(request, qs, lambda objs: serialize_rows(reg, user, objs), params.limit, params.offset)  # type: ignore[attr-defined]

    @router.get(
        "/export", response={200: None, **ERRORS}, operation_id=f"{op}_export", url_name=f"{op}_export"
    )
    def export_rows(request: HttpRequest, params: Query[ExportParams]):  # type: ignore[valid-type]
        """导出 Export as xlsx or csv (same filters as the list), in the import's format."""
        from zhizhi import exchange

        user = request.auth  # type: ignore[attr-defined]
        require(user, "export", reg)
        qs = filtered(reg, visible(reg, user, "export"), request.GET.dict(), ignore=("format",))
        result = exchange.export_rows(reg, user, qs, params.format)  # type: ignore[attr-defined]
        return _file_response(result, reg, params.format)  # type: ignore[attr-defined]

    @router.post(
        "/import", response={200: dict, **ERRORS}, operation_id=f"{op}_import", url_name=f"{op}_import"
    )
    def import_rows(request: HttpRequest, file: File[UploadedFile]):
        """导入 Import an xlsx/csv file: all rows are checked first; all or nothing is written."""
        from zhizhi import exchange

        user = request.auth  # type: ignore[attr-defined]
        require(user, "import", reg)
        with acting(request):
            result = exchange.import_file(reg, user, file, file.name or "upload")
        return _jsonable_result(result)

    @router.get("/{id}/", response={200: Out, **ERRORS}, operation_id=f"{op}_get", url_name=f"{op}_detail")
    def get_row(request: HttpRequest, id: int, response: HttpResponse):
        """一条 One row (404 when it does not exist or is outside your area). ETag = version."""
        obj = get_visible(reg, request.auth, id)  # type: ignore[attr-defined]
        response["ETag"] = f'"{obj.version}"'
        return to_dict(request, obj)

    @router.post(
        "/", response={200: Out, 201: Out, **ERRORS}, operation_id=f"{op}_create", url_name=f"{op}_create"
    )
    def create_row(request: HttpRequest, payload: Create):  # type: ignore[valid-type]
        """新增 Create from raw values (as in an import). `Idempotency-Key` makes retries safe."""
        user = request.auth  # type: ignore[attr-defined]
        require(user, "add", reg)
        idem = (request.headers.get("Idempotency-Key") or "").strip()
        cache_key = f"zhizhi:api:idem:{user.pk}:{reg.key}:{idem}" if idem else ""
        if cache_key:
            done = cache.get(cache_key)
            if done is not None:
                obj = visible(reg, user).filter(pk=done).first()
                if obj is not None:
                    return Status(200, to_dict(request, obj))
        raw = payload.model_dump(exclude_unset=True)  # type: ignore[attr-defined]
        with acting(request):
            created = registry.create(reg, user, raw)
        if cache_key:
            cache.set(cache_key, created.pk, IDEMPOTENCY_SECONDS)
        return Status(
            201,
            to_dict(request, reg.model._default_manager.select_related(*select_for(reg)).get(pk=created.pk)),
        )

    def change(request: HttpRequest, id: int, payload: Any, full: bool) -> Any:
        user = request.auth  # type: ignore[attr-defined]
        obj = get_visible(reg, user, id)
        require(user, "change", reg)
        raw = payload.model_dump(exclude_unset=True)
        version = version_from(request, raw)
        if full:
            missing = [c for c in reg.columns if c.required and raw.get(c.name) in EMPTY]
            if missing:
                raise Invalid(
                    [
                        Problem("required", f"「{c.zh}」必填", f"'{c.en}' is required", field=c.name)
                        for c in missing
                    ]
                )
        with acting(request):
            registry.update(reg, user, obj, raw, version)
        return to_dict(request, reg.model._default_manager.select_related(*select_for(reg)).get(pk=obj.pk))

    @router.patch(
        "/{id}/", response={200: Out, **ERRORS}, operation_id=f"{op}_update", url_name=f"{op}_update"
    )
    def update_row(request: HttpRequest, id: int, payload: Update):  # type: ignore[valid-type]
        """修改 Change some fields. Send the `version` you read (body or If-Match); stale → 409."""
        return change(request, id, payload, full=False)

    @router.put(
        "/{id}/", response={200: Out, **ERRORS}, operation_id=f"{op}_replace", url_name=f"{op}_replace"
    )
    def replace_row(request: HttpRequest, id: int, payload: Update):  # type: ignore[valid-type]
        """整体修改 Replace: like PATCH, but every required field must be given."""
        return change(request, id, payload, full=True)

    sensitive: dict[str, Any] = getattr(reg.model, "SENSITIVE", None) or {}
    if sensitive:
        RevealIn = create_model(
            _schema_name(reg, "RevealIn"),
            __base__=StrictInput,
            field=(str, Field(..., description="、".join(sensitive))),
            purpose=(str, Field(..., description="查看原因（记录在案）/ why you need it (logged)")),
        )
        RevealOut = create_model(
            _schema_name(reg, "RevealOut"), __base__=Schema, field=(str, ...), value=(str, ...)
        )

        @router.post(
            "/{id}/reveal",
            response={200: RevealOut, **ERRORS},
            operation_id=f"{op}_reveal",
            url_name=f"{op}_reveal",
        )
        def reveal_value(request: HttpRequest, id: int, payload: RevealIn):  # type: ignore[valid-type]
            """查看明文 Reveal one protected value after stating a purpose; every reveal is logged."""
            user = request.auth  # type: ignore[attr-defined]
            obj = get_visible(reg, user, id)
            asked: dict[str, str] = payload.model_dump()  # type: ignore[attr-defined]
            with acting(request):
                value = reveal(user, obj, asked["field"], asked["purpose"], request.META.get("REMOTE_ADDR"))
            return {"field": asked["field"], "value": value}

    return router


def _file_response(result: Any, reg: Registry, fmt: str) -> HttpResponse:
    """Wrap whatever the exchange module returned (a response, bytes or a str) as a download."""
    if isinstance(result, HttpResponse):
        return result
    if isinstance(result, str):
        result = result.encode("utf-8-sig")
    content_type = (
        "text/csv; charset=utf-8"
        if fmt == "csv"
        else "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    response = HttpResponse(result, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{reg.key.replace(".", "-")}.{fmt}"'
    return response


def _jsonable_result(result: Any) -> dict[str, Any]:
    """An import report as JSON, whatever shape the exchange module gives it."""
    if isinstance(result, dict):
        return result
    if hasattr(result, "as_dict"):
        return result.as_dict()
    import dataclasses

    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        return dataclasses.asdict(result)
    return {"result": str(result)}
