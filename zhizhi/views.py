"""Server-rendered pages: login, the home page per role, the generic registry pages (one set of
views for every registry declared in zhizhi/registry.py), reveal of protected values, and the logs.

Every read goes through `Model.objects.visible_to(request.user, action)`: an object outside the
user's scope is a 404, never a 403 that would confirm it exists.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.contenttypes.models import ContentType
from django.core.paginator import Paginator
from django.db.models import Count, Model, Q, QuerySet
from django.db.models.functions import Substr
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from zhizhi import clock, registry
from zhizhi.models import ChangeLogEntry, RevealLog
from zhizhi.permissions import can, reveal, scope_paths
from zhizhi.problems import Conflict, Forbidden, Invalid, Problem
from zhizhi.registry import Column, Registry

PAGE_SIZE = 50
# A ref filter offers a drop-down up to this many choices; beyond it the user types the natural key.
MAX_SELECT_OPTIONS = 200


# --- language and display helpers -----------------------------------------------------------------
def english() -> bool:
    return (get_language() or "").startswith("en")


def col_label(col: Column) -> str:
    return col.en if english() else col.zh


def reg_label(reg: Registry) -> str:
    return reg.en if english() else reg.zh


def problem_text(p: Problem) -> str:
    """A problem in both languages, the active one first (every error shown carries both)."""
    first, second = (p.en, p.zh) if english() else (p.zh, p.en)
    text = f"{first} / {second}"
    if p.expected_zh or p.expected_en:
        exp = (p.expected_en, p.expected_zh) if english() else (p.expected_zh, p.expected_en)
        text += f"（{_('应为')}: {exp[0]}" + (f" / {exp[1]}" if exp[1] != exp[0] else "") + "）"
    return text


def is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


def visible(model: type[Model], user: Any, action: str = "view") -> QuerySet:
    return model._default_manager.visible_to(user, action)  # type: ignore[attr-defined]


def registry_for_model(model: type[Model]) -> Registry | None:
    return registry.registries().get(model._meta.label_lower)


def object_url(obj: Any) -> str:
    reg = registry_for_model(type(obj))
    if reg is None or obj is None:
        return ""
    return reverse("registry_detail", args=[reg.key, obj.pk])


def choice_label(label: Any) -> str:
    # Choice labels are Chinese in the models; the English catalogue translates them.
    return _(str(label))


@dataclass
class Cell:
    text: str
    url: str = ""
    sensitive: str = ""  # field name when the text is a mask that may be revealed


def cell(col: Column, obj: Any) -> Cell:
    if col.kind == "sensitive":
        return Cell(getattr(obj, f"{col.name}_masked", "") or "", sensitive=col.name)
    value = getattr(obj, col.name, None)
    if value is None or value == "":
        return Cell("")
    if col.kind == "ref":
        return Cell(str(value), object_url(value))
    if col.kind == "choice":
        return Cell(choice_label(getattr(obj, f"get_{col.name}_display")()))
    if col.kind == "bool":
        return Cell(_("是") if value else _("否"))
    if col.kind == "json":
        kind = value.get("type", "") if isinstance(value, dict) else ""
        return Cell(f"GeoJSON {kind}".strip())
    if isinstance(value, dt.date):
        return Cell(value.isoformat())
    return Cell(str(value))


def get_registry(key: str) -> Registry:
    reg = registry.registries().get(key)
    if reg is None:
        raise Http404("no such registry")
    return reg


def get_visible(reg: Registry, user: Any, pk: int, action: str = "view") -> Any:
    obj = visible(reg.model, user, action).filter(pk=pk).first()
    if obj is None:
        # Out of scope and nonexistent look the same.
        raise Http404("not found")
    return obj


def forbidden_page(request: HttpRequest, zh: str, en: str) -> HttpResponse:
    return render(request, "forbidden.html", {"problem_zh": zh, "problem_en": en}, status=403)


# --- login, logout --------------------------------------------------------------------------------
class LoginView(auth_views.LoginView):
    template_name = "login.html"
    redirect_authenticated_user = True


def logout_view(request: HttpRequest) -> HttpResponse:
    # Only a POST (with its CSRF token) logs out, so a link on another site cannot.
    if request.method != "POST":
        return redirect("home")
    logout(request)
    return redirect("login")


# --- home page per role ---------------------------------------------------------------------------
def _counts_by_prefix(qs: QuerySet, length: int) -> dict[str, int]:
    """Rows per region prefix in one grouped query (all paths of one level have one length)."""
    rows = qs.annotate(prefix=Substr("area_path", 1, length)).values("prefix").annotate(n=Count("id"))
    return {r["prefix"]: r["n"] for r in rows}


def _home_context(user: Any) -> dict[str, Any]:
    from zhizhi.enterprises.models import Enterprise
    from zhizhi.geo.models import Building, Region
    from zhizhi.people.models import CareTag, House, Person

    models = [
        ("people.person", Person, _("居民"), {"status": "active"}),
        ("people.house", House, _("房屋"), {}),
        ("geo.building", Building, _("楼幢"), {}),
        ("enterprises.enterprise", Enterprise, _("企业"), {}),
    ]
    cards = []
    for key, model, label, extra in models:
        if can(user, "view", model):
            cards.append(
                {
                    "label": label,
                    "count": visible(model, user).filter(**extra).count(),
                    "url": reverse("registry_list", args=[key]),
                }
            )
    care: list[dict[str, Any]] = []
    care_total = 0
    if can(user, "view", CareTag):
        tags = visible(CareTag, user).filter(person__status="active")
        counts = dict(tags.values_list("kind").annotate(n=Count("id")).values_list("kind", "n"))
        top = max(counts.values(), default=0) or 1
        care = [
            {
                "kind": k,
                "label": choice_label(lbl),
                "count": counts.get(k, 0),
                "pct": round(100 * counts.get(k, 0) / top),
            }
            for k, lbl in CareTag.KINDS
            if counts.get(k)
        ]
        care_total = tags.values("person_id").distinct().count()
        cards.append(
            {
                "label": _("重点人群"),
                "count": care_total,
                "url": reverse("registry_list", args=["people.caretag"]),
            }
        )

    # The level below the user's own regions: a street → its communities, a community → its grids.
    breakdown: list[dict[str, Any]] = []
    paths = scope_paths(user) if user.is_authenticated else []
    own = Region.objects.filter(path__in=paths)
    if not paths and user.is_superuser:
        own = Region.objects.filter(level=Region.STREET)
    children = list(
        visible(Region, user)
        .filter(parent__in=own, level__in=[Region.COMMUNITY, Region.GRID])
        .order_by("code")
    )
    if children:
        length = len(children[0].path)
        series = []
        for _key, model, label, extra in models:
            if can(user, "view", model):
                series.append((label, _counts_by_prefix(visible(model, user).filter(**extra), length)))
        if can(user, "view", CareTag):
            series.append(
                (
                    _("重点人群"),
                    _counts_by_prefix(
                        # A subquery, not a join: a person with two tags is one person of care.
                        visible(Person, user).filter(
                            status="active", pk__in=visible(CareTag, user).values("person_id")
                        ),
                        length,
                    ),
                )
            )
        breakdown = [
            {"region": r, "url": object_url(r), "counts": [s[1].get(r.path, 0) for s in series]}
            for r in children
        ]
        breakdown_headers = [s[0] for s in series]
    else:
        breakdown_headers = []

    grid_worker: dict[str, Any] = {}
    if getattr(user, "role", "") == "grid_worker":
        grid_worker = _grid_worker_lists(user)
    return {
        "cards": cards,
        "care": care,
        "care_total": care_total,
        "breakdown": breakdown,
        "breakdown_headers": breakdown_headers,
        "breakdown_level": choice_label(children[0].get_level_display()) if children else "",
        "grid_worker": grid_worker,
        "links": _quick_links(user),
    }


def _grid_worker_lists(user: Any) -> dict[str, Any]:
    from zhizhi.geo.models import Building
    from zhizhi.people.models import Person, Residency

    today = clock.today()
    buildings = (
        visible(Building, user)
        .annotate(
            n_houses=Count("houses", distinct=True),
        )
        .order_by("code")
    )
    residents = dict(
        visible(Residency, user)
        .current()  # type: ignore[attr-defined]
        .values_list("house__building_id")
        .annotate(n=Count("person_id", distinct=True))
        .values_list("house__building_id", "n")
    )
    people = (
        visible(Person, user)
        .filter(status="active", care_tags__isnull=False)
        .distinct()
        .prefetch_related("care_tags")
        .order_by("name")
    )
    homes: dict[int, Any] = {}
    for r in (
        visible(Residency, user)
        .current()  # type: ignore[attr-defined]
        .filter(person__in=people)
        .select_related("house__building")
    ):
        homes.setdefault(r.person_id, r.house)
    return {
        "buildings": [{"b": b, "residents": residents.get(b.pk, 0), "url": object_url(b)} for b in buildings],
        "people": [
            {
                "p": p,
                "url": object_url(p),
                "tags": [choice_label(t.get_kind_display()) for t in p.care_tags.all()],
                "home": homes.get(p.pk),
            }
            for p in people[:200]
        ],
        "today": today,
    }


def _quick_links(user: Any) -> list[dict[str, str]]:
    links = []
    for reg in registry.registries().values():
        if can(user, "view", reg.model):
            links.append({"label": reg_label(reg), "url": reverse("registry_list", args=[reg.key])})
    return links


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html", _home_context(request.user))


# --- generic registry pages -----------------------------------------------------------------------
@dataclass
class FilterField:
    name: str
    label: str
    widget: str  # select | text | number
    value: str = ""
    options: list[tuple[str, str]] = field(default_factory=list)
    error: str = ""
    placeholder: str = ""


def _ref_options(reg: Registry, col: Column, user: Any, base: QuerySet) -> QuerySet | None:
    """Targets actually referenced by rows the user can see, or None when too many for a menu."""
    assert col.ref is not None
    target = col.ref.model
    qs = target._default_manager.filter(pk__in=base.values(f"{col.name}_id")).select_related(
        *_required_fks(target)
    )
    if hasattr(qs, "visible_to"):
        qs = qs.visible_to(user)
    if qs.count() > MAX_SELECT_OPTIONS:
        return None
    return qs


def _apply_filters(
    reg: Registry, request: HttpRequest, qs: QuerySet, base: QuerySet
) -> tuple[QuerySet, list[FilterField]]:
    fields: list[FilterField] = []
    for name in reg.filters:
        col = reg.column(name)
        value = (request.GET.get(name) or "").strip()
        ff = FilterField(name, col_label(col), "select", value)
        try:
            if col.kind == "choice":
                choices = reg.model._meta.get_field(name).choices or []
                ff.options = [(str(k), choice_label(v)) for k, v in choices]
                if value:
                    qs = qs.filter(**{name: value})
            elif col.kind == "bool":
                ff.options = [("1", _("是")), ("0", _("否"))]
                if value:
                    qs = qs.filter(**{name: value == "1"})
            elif col.kind == "ref":
                options = _ref_options(reg, col, request.user, base)
                if options is not None:
                    assert col.ref is not None
                    ff.options = [(str(o.pk), _ref_label(col, o)) for o in options]
                    if value:
                        if not value.isdigit():
                            raise ValueError(value)
                        qs = qs.filter(**{f"{name}_id": int(value)})
                else:
                    assert col.ref is not None
                    ff.widget = "text"
                    # Too many to list: the user types the natural key, e.g. 楼幢编码-单元-房号.
                    ff.placeholder = col.en if english() else (col.ref.label_zh or col.zh)
                    if value:
                        target = registry.parse_value(reg, col, value)
                        qs = qs.filter(**{name: target})
            elif col.kind == "int":
                ff.widget = "number"
                if value:
                    qs = qs.filter(**{name: int(value)})
            else:
                ff.widget = "text"
                if value:
                    qs = qs.filter(**{f"{name}__icontains": value})
        except Invalid as exc:
            ff.error = "; ".join(problem_text(p) for p in exc.problems)
            qs = qs.none()
        except (ValueError, TypeError):
            ff.error = problem_text(
                Problem("filter", "筛选值格式不对", "The filter value has the wrong format", field=name)
            )
            qs = qs.none()
        fields.append(ff)
    return qs, fields


def _ref_label(col: Column, obj: Any) -> str:
    assert col.ref is not None
    natural = col.ref.natural(obj)
    text = str(obj)
    return text if natural in ("", text) else f"{text}（{natural}）"


def _search(reg: Registry, qs: QuerySet, q: str) -> QuerySet:
    if not q:
        return qs
    cond = Q()
    for name in reg.search:
        cond |= Q(**{f"{name}__icontains": q})
    # A full ID number or phone finds its person through the keyed hash, never by decrypting.
    for col in reg.columns:
        if col.kind == "sensitive":
            digest = reg.model.hash_for(col.name, q)  # type: ignore[attr-defined]
            # An empty value hashes to "", which every row without that value carries.
            if digest:
                cond |= Q(**{f"{col.name}_hash": digest})
    return qs.filter(cond)


def _list_columns(reg: Registry) -> list[Column]:
    names = reg.list_columns or tuple(c.name for c in reg.columns)
    return [reg.column(n) for n in names]


def _required_fks(model: Any) -> list[str]:
    """A model's non-null foreign keys: what its str() may need (a house's name needs its building)."""
    return [
        f.name
        for f in model._meta.concrete_fields
        if f.is_relation and not f.null and f.related_model is not model and f.name not in ("content_type",)
    ]


def _related_paths(reg: Registry, refs: list[str]) -> list[str]:
    """The refs shown in a list, plus their own required FKs, so a page of rows is one query."""
    paths = list(refs)
    for name in refs:
        target = reg.model._meta.get_field(name).related_model
        paths += [f"{name}__{fk}" for fk in _required_fks(target)]
    return paths


@login_required
def registry_list(request: HttpRequest, key: str) -> HttpResponse:
    reg = get_registry(key)
    user = request.user
    if not can(user, "view", reg.model):
        return forbidden_page(request, "无权查看此类记录", "You may not view these records")
    base = visible(reg.model, user)
    columns = _list_columns(reg)
    refs = [c.name for c in columns if c.kind == "ref"]
    q = (request.GET.get("q") or "").strip()
    qs = _search(reg, base, q)
    qs, filters = _apply_filters(reg, request, qs, base)
    if refs:
        qs = qs.select_related(*_related_paths(reg, refs))
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [{"obj": o, "url": object_url(o), "cells": [cell(c, o) for c in columns]} for o in page]
    params = request.GET.copy()
    params.pop("page", None)
    ctx = {
        "reg": reg,
        "title": reg_label(reg),
        "columns": [col_label(c) for c in columns],
        "rows": rows,
        "page": page,
        "q": q,
        "filters": filters,
        "query": params.urlencode(),
        "list_url": reverse("registry_list", args=[key]),
        "can_add": can(user, "add", reg.model),
        "search_hint": "、".join(col_label(reg.column(n)) for n in reg.search if "__" not in n),
    }
    if is_htmx(request) and request.headers.get("HX-Target") == "results":
        response = render(request, "registry/_table.html", ctx)
    else:
        response = render(request, "registry/list.html", ctx)
    # One URL answers with a fragment or a page: caches must keep them apart.
    patch_vary_headers(response, ["HX-Request", "HX-Target"])
    return response


def _field_label(reg: Registry, attname: str) -> str:
    """A change-log key (attname) as the column label a person knows."""
    for col in reg.columns:
        if attname in (col.name, f"{col.name}_id", f"{col.name}_masked"):
            return col_label(col)
    try:
        return str(reg.model._meta.get_field(attname.removesuffix("_id")).verbose_name)
    except Exception:  # an unknown key is shown as written
        return attname


SKIPPED_LOG_KEYS = ("id", "area_path", "path", "center_lng", "center_lat")


def _log_field(model: Any, attname: str) -> Any:
    if model is None:
        return None
    try:
        return model._meta.get_field(attname.removesuffix("_id") if attname.endswith("_id") else attname)
    except Exception:  # a key the model no longer has is shown as written
        return None


def change_log_rows(user: Any, entries: Any) -> list[dict[str, Any]]:
    """Change-log entries as rows of (field, before, after) in the words of the page: labels for
    codes, names for references (only names the user may see; others stay as #id)."""
    entries = list(entries)
    parsed = []
    wanted: dict[Any, set[Any]] = {}
    for e in entries:
        model = e.content_type.model_class()
        reg = registry_for_model(model) if model else None
        before, after = e.before or {}, e.after or {}
        keys = [k for k in after if before.get(k) != after.get(k) and k not in SKIPPED_LOG_KEYS]
        if e.action == "update":
            keys = [k for k in keys if k in before]
        for k in keys:
            f = _log_field(model, k)
            if f is not None and f.is_relation and k.endswith("_id"):
                ids = wanted.setdefault(f.related_model, set())
                ids.update(v for v in (before.get(k), after.get(k)) if v is not None)
        parsed.append((e, model, reg, before, after, keys))
    names: dict[tuple[Any, Any], str] = {}
    for target, ids in wanted.items():
        qs = target._default_manager.filter(pk__in=ids)
        if hasattr(qs, "visible_to"):
            qs = qs.visible_to(user)
        names.update({(target, o.pk): str(o) for o in qs})

    def show(model: Any, k: str, value: Any) -> str:
        if value is None or value == "":
            return ""
        f = _log_field(model, k)
        if f is not None and f.is_relation and k.endswith("_id"):
            return names.get((f.related_model, value), f"#{value}")
        if f is not None and getattr(f, "choices", None):
            return choice_label(dict(f.choices).get(value, value))
        if isinstance(value, bool):
            return _("是") if value else _("否")
        return str(value)

    rows = []
    for e, model, reg, before, after, keys in parsed:
        diff = [
            {
                "field": _field_label(reg, k) if reg else k,
                "before": show(model, k, before.get(k)),
                "after": show(model, k, after.get(k)),
            }
            for k in keys
        ]
        rows.append({"e": e, "reg": reg, "action": choice_label(e.get_action_display()), "diff": diff})
    return rows


@login_required
def registry_detail(request: HttpRequest, key: str, pk: int) -> HttpResponse:
    reg = get_registry(key)
    user = request.user
    obj = get_visible(reg, user, pk)
    fields = [{"label": col_label(c), "cell": cell(c, obj)} for c in reg.columns if c.kind != "json"]
    ct = ContentType.objects.get_for_model(reg.model)
    # The history of a record the user may see is part of that record: it holds the same fields,
    # protected ones only as masks, so it is shown without a separate grant on the change log.
    log = ChangeLogEntry.objects.filter(content_type=ct, object_id=str(obj.pk)).select_related(
        "actor", "content_type"
    )[:50]
    ctx = {
        "reg": reg,
        "title": f"{reg_label(reg)}：{obj}",
        "obj": obj,
        "fields": fields,
        "sections": related_sections(reg, obj, user),
        "log": change_log_rows(user, log),
        "can_change": visible(reg.model, user, "change").filter(pk=obj.pk).exists(),
        "can_reveal": can(user, "reveal", reg.model),
        "list_url": reverse("registry_list", args=[key]),
        "shape": _shape_of(obj),
        "tile_url": getattr(settings, "ZHIZHI_TILE_URL", ""),
    }
    return render(request, "registry/detail.html", ctx)


def _shape_of(obj: Any) -> str:
    """GeoJSON for the small map on a detail page: a region's polygon or a building's point."""
    if getattr(obj, "boundary", None):
        return json.dumps(obj.boundary)
    lng, lat = getattr(obj, "lng", None), getattr(obj, "lat", None)
    if isinstance(lng, float) and isinstance(lat, float):
        return json.dumps({"type": "Point", "coordinates": [lng, lat]})
    return ""


# --- related rows on a detail page ----------------------------------------------------------------
@dataclass
class Section:
    title: str
    headers: list[str]
    rows: list[list[Cell]]
    empty: str = ""
    kind: str = "table"  # table | floors
    extra: Any = None


def _residency_rows(rows: Any, with_person: bool) -> list[list[Cell]]:
    from zhizhi.people.models import Residency

    rel = dict(Residency.RELATIONS)
    out = []
    for r in rows:
        first = (
            Cell(str(r.person), object_url(r.person))
            if with_person
            else Cell(str(r.house), object_url(r.house))
        )
        out.append(
            [
                first,
                Cell(choice_label(rel.get(r.relation, r.relation))),
                Cell(r.start_date.isoformat() if r.start_date else ""),
                Cell(r.end_date.isoformat() if r.end_date else _("至今"), object_url(r)),
            ]
        )
    return out


def related_sections(reg: Registry, obj: Any, user: Any) -> list[Section]:
    builder = RELATED.get(reg.key)
    return builder(obj, user) if builder else []


def _house_sections(house: Any, user: Any) -> list[Section]:
    from zhizhi.people.models import Residency
    from zhizhi.people.services import residents_of

    allowed = visible(Residency, user)
    current = residents_of(house).filter(pk__in=allowed.values("pk"))
    history = allowed.filter(house=house).select_related("person").order_by("-start_date", "-id")
    headers = [_("居民"), _("关系"), _("起始日期"), _("截止日期")]
    return [
        Section(_("现住居民"), headers, _residency_rows(current, True), _("目前无人居住")),
        Section(_("居住历史"), headers, _residency_rows(history, True), _("无记录")),
    ]


def _person_sections(person: Any, user: Any) -> list[Section]:
    from zhizhi.people.models import CareTag, House, Residency
    from zhizhi.people.services import residence_history

    history = residence_history(person).filter(pk__in=visible(Residency, user).values("pk"))
    tags = visible(CareTag, user).filter(person=person)
    kinds = dict(CareTag.KINDS)
    sources = dict(CareTag.SOURCES)
    owned = visible(House, user).filter(owner=person).select_related("building")
    return [
        Section(
            _("居住历史"),
            [_("房屋"), _("关系"), _("起始日期"), _("截止日期")],
            _residency_rows(history, False),
            _("无记录"),
        ),
        Section(
            _("关怀标签"),
            [_("类别"), _("等级"), _("来源"), _("核实日期")],
            [
                [
                    Cell(choice_label(kinds.get(t.kind, t.kind)), object_url(t)),
                    Cell(t.level),
                    Cell(choice_label(sources.get(t.source, t.source))),
                    Cell(t.verified_on.isoformat() if t.verified_on else ""),
                ]
                for t in tags
            ],
            _("无关怀标签"),
        ),
        Section(
            _("名下房屋"),
            [_("房屋")],
            [[Cell(str(h), object_url(h))] for h in owned],
            _("无"),
        ),
    ]


def _building_sections(building: Any, user: Any) -> list[Section]:
    from zhizhi.enterprises.models import Enterprise
    from zhizhi.people.models import House, Residency

    houses = list(visible(House, user).filter(building=building).order_by("unit", "-floor", "room"))
    occupants = dict(
        visible(Residency, user)
        .current()  # type: ignore[attr-defined]
        .filter(house__building=building)
        .values_list("house_id")
        .annotate(n=Count("person_id", distinct=True))
        .values_list("house_id", "n")
    )
    units: dict[int, dict[int, list[dict[str, Any]]]] = {}
    for h in houses:
        units.setdefault(h.unit, {}).setdefault(h.floor, []).append(
            {"room": h.room, "url": object_url(h), "n": occupants.get(h.pk, 0), "use": h.use}
        )
    floors = [
        {"unit": u, "floors": [{"floor": f, "rooms": rooms} for f, rooms in fl.items()]}
        for u, fl in sorted(units.items())
    ]
    enterprises = visible(Enterprise, user).filter(building=building)
    return [
        Section(_("按单元、楼层的房屋"), [], [], _("无房屋"), kind="floors", extra=floors),
        Section(
            _("楼内企业"),
            [_("名称"), _("统一社会信用代码")],
            [[Cell(e.name, object_url(e)), Cell(e.credit_code)] for e in enterprises],
            _("无"),
        ),
    ]


def _enterprise_sections(enterprise: Any, user: Any) -> list[Section]:
    from zhizhi.enterprises.models import Executive, TaxRecord

    positions = dict(Executive.POSITIONS)
    executives = visible(Executive, user).filter(enterprise=enterprise).order_by("-start_date")
    today = clock.today()
    since = dt.date(today.year - 2, today.month, 1)
    taxes = visible(TaxRecord, user).filter(enterprise=enterprise, period__gte=since).order_by("-period")
    return [
        Section(
            _("高管"),
            [_("姓名"), _("职务"), _("任职日期"), _("离任日期")],
            [
                [
                    Cell(e.name, object_url(e)),
                    Cell(choice_label(positions.get(e.position, e.position))),
                    Cell(e.start_date.isoformat()),
                    Cell(e.end_date.isoformat() if e.end_date else _("至今")),
                ]
                for e in executives
            ],
            _("无"),
        ),
        Section(
            _("近24个月纳税记录"),
            [_("所属期"), _("营业收入(万元)"), _("纳税额(万元)"), _("在本街道纳税")],
            [
                [
                    Cell(t.period.strftime("%Y-%m"), object_url(t)),
                    Cell(str(t.revenue)),
                    Cell(str(t.tax_paid)),
                    Cell(_("是") if t.tax_paid_here else _("否")),
                ]
                for t in taxes
            ],
            _("无"),
        ),
    ]


def _region_sections(region: Any, user: Any) -> list[Section]:
    from zhizhi.enterprises.models import Enterprise
    from zhizhi.geo.models import Building, Region
    from zhizhi.people.models import House, Person

    children = list(visible(Region, user).filter(parent=region).order_by("code"))
    counted = [
        (_("楼幢"), Building, {}),
        (_("房屋"), House, {}),
        (_("居民"), Person, {"status": "active"}),
        (_("企业"), Enterprise, {}),
    ]
    counted = [c for c in counted if can(user, "view", c[1])]
    totals = [
        Cell(str(visible(m, user).filter(area_path__startswith=region.path, **extra).count()))
        for _label, m, extra in counted
    ]
    rows = []
    if children:
        length = len(children[0].path)
        series = [
            _counts_by_prefix(visible(m, user).filter(area_path__startswith=region.path, **extra), length)
            for _label, m, extra in counted
        ]
        rows = [
            [Cell(c.name, object_url(c)), Cell(c.code)] + [Cell(str(s.get(c.path, 0))) for s in series]
            for c in children
        ]
    headers = [label for label, _m, _e in counted]
    return [
        Section(_("统计"), headers, [totals]),
        Section(_("下级区域"), [_("名称"), _("编码"), *headers], rows, _("无下级区域")),
    ]


def _orgunit_sections(unit: Any, user: Any) -> list[Section]:
    from zhizhi.orgs.models import OrgUnit

    kinds = dict(OrgUnit.KINDS)
    children = visible(OrgUnit, user).filter(parent=unit)
    return [
        Section(
            _("下级单位"),
            [_("名称"), _("编码"), _("类型")],
            [
                [Cell(c.name, object_url(c)), Cell(c.code), Cell(choice_label(kinds.get(c.kind, c.kind)))]
                for c in children
            ],
            _("无"),
        )
    ]


RELATED = {
    "people.house": _house_sections,
    "people.person": _person_sections,
    "geo.building": _building_sections,
    "enterprises.enterprise": _enterprise_sections,
    "geo.region": _region_sections,
    "orgs.orgunit": _orgunit_sections,
}


# --- create and edit forms ------------------------------------------------------------------------
def _initial(col: Column, obj: Any) -> str:
    """The current value written the way the form (and a spreadsheet) takes it."""
    if obj is None:
        return ""
    if col.kind == "sensitive":
        return ""
    value = getattr(obj, col.name, None)
    if value is None:
        return ""
    if col.kind == "ref":
        assert col.ref is not None
        return col.ref.natural(value)
    if col.kind == "bool":
        return "1" if value else "0"
    if col.kind == "json":
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _form_fields(
    reg: Registry, obj: Any, data: dict[str, str] | None, errors: dict[str, list[str]]
) -> list[dict[str, Any]]:
    out = []
    for col in reg.columns:
        model_field = reg.model._meta.get_field(col.name) if col.kind != "sensitive" else None
        widget = {
            "int": "number",
            "float": "text",
            "decimal": "text",
            "date": "date",
            "bool": "select",
            "choice": "select",
            "json": "textarea",
        }.get(col.kind, "text")
        if model_field is not None and model_field.get_internal_type() == "TextField":
            widget = "textarea"
        options: list[tuple[str, str]] = []
        if col.kind == "choice":
            options = [(str(k), choice_label(v)) for k, v in (model_field.choices or [])]  # type: ignore[union-attr]
        elif col.kind == "bool":
            options = [("1", _("是")), ("0", _("否"))]
        value = data.get(col.name, "") if data is not None else _initial(col, obj)
        hint = ""
        if col.kind == "sensitive" and obj is not None:
            hint = _("当前：%(masked)s，留空则不修改") % {"masked": getattr(obj, f"{col.name}_masked", "")}
        elif col.kind == "ref":
            assert col.ref is not None
            hint = _("填写%(what)s") % {"what": col.ref.label_zh if not english() else col.en}
        out.append(
            {
                "name": col.name,
                "label": col_label(col),
                "required": col.required,
                "widget": widget,
                "options": options,
                "value": value,
                "hint": hint,
                "errors": errors.get(col.name, []),
                "inputmode": "decimal" if col.kind in ("float", "decimal") else "",
            }
        )
    return out


def _raw_from_post(reg: Registry, request: HttpRequest, obj: Any) -> dict[str, str]:
    """What the form sends to the registry pipeline: on create the filled fields, on edit the
    changed ones (so an untouched masked value or a stale field is never written back)."""
    raw: dict[str, str] = {}
    for col in reg.columns:
        if col.name not in request.POST:
            continue
        value = request.POST.get(col.name, "").strip()
        if obj is None or col.kind == "sensitive":
            # A blank protected field on edit means "keep": the form never shows its plaintext.
            if value != "":
                raw[col.name] = value
        elif value != _initial(col, obj):
            raw[col.name] = value
    return raw


def _errors_by_field(reg: Registry, problems: list[Problem]) -> tuple[dict[str, list[str]], list[str]]:
    names = {c.name for c in reg.columns}
    by_field: dict[str, list[str]] = {}
    general: list[str] = []
    for p in problems:
        if p.field in names:
            by_field.setdefault(p.field, []).append(problem_text(p))
        else:
            general.append(problem_text(p))
    return by_field, general


def _render_form(
    request: HttpRequest,
    reg: Registry,
    obj: Any,
    data: dict[str, str] | None = None,
    problems: list[Problem] | None = None,
    conflict: Any = None,
    status: int = 200,
    version: int | None = None,
) -> HttpResponse:
    by_field, general = _errors_by_field(reg, problems or [])
    current = None
    if conflict is not None:
        current = [
            {"label": col_label(c), "cell": cell(c, conflict)} for c in reg.columns if c.kind != "json"
        ]
    ctx = {
        "reg": reg,
        "obj": obj,
        "title": (_("编辑") if obj else _("新增")) + reg_label(reg),
        "fields": _form_fields(reg, obj, data, by_field),
        "general_errors": general,
        "version": version if version is not None else (obj.version if obj is not None else ""),
        "conflict": conflict,
        "current": current,
        "list_url": reverse("registry_list", args=[reg.key]),
    }
    return render(request, "registry/form.html", ctx, status=status)


@login_required
def registry_create(request: HttpRequest, key: str) -> HttpResponse:
    reg = get_registry(key)
    if not can(request.user, "add", reg.model):
        return forbidden_page(request, "无权新增此类记录", "You may not add these records")
    if request.method != "POST":
        return _render_form(request, reg, None)
    raw = _raw_from_post(reg, request, None)
    try:
        obj = registry.create(reg, request.user, raw)
    except Invalid as exc:
        return _render_form(request, reg, None, dict(request.POST.items()), exc.problems, status=400)
    except Forbidden as exc:
        problem = Problem("forbidden", exc.zh, exc.en)
        return _render_form(request, reg, None, dict(request.POST.items()), [problem], status=403)
    messages.success(request, _("已保存"))
    return redirect("registry_detail", key, obj.pk)


@login_required
def registry_edit(request: HttpRequest, key: str, pk: int) -> HttpResponse:
    reg = get_registry(key)
    obj = get_visible(reg, request.user, pk, "change")
    if request.method != "POST":
        return _render_form(request, reg, obj)
    try:
        version = int(request.POST.get("version", ""))
    except ValueError:
        version = None
    raw = _raw_from_post(reg, request, obj)
    data = dict(request.POST.items())
    try:
        registry.update(reg, request.user, obj, raw, version)
    except Invalid as exc:
        obj = get_visible(reg, request.user, pk, "change")
        return _render_form(request, reg, obj, data, exc.problems, status=400, version=version)
    except Conflict:
        # Show what is stored now next to what the user typed; nothing of theirs is written.
        current = reg.model._default_manager.get(pk=pk)
        return _render_form(request, reg, current, data, conflict=current, status=409, version=version)
    except Forbidden as exc:
        obj = get_visible(reg, request.user, pk, "change")
        problem = Problem("forbidden", exc.zh, exc.en)
        return _render_form(request, reg, obj, data, [problem], status=403, version=version)
    messages.success(request, _("已保存"))
    return redirect("registry_detail", key, pk)


# --- reveal ---------------------------------------------------------------------------------------
@login_required
def reveal_value(request: HttpRequest, key: str, pk: int, field_name: str) -> HttpResponse:
    """GET: the purpose form (htmx fragment); POST: reveal, log, and swap in the plaintext."""
    reg = get_registry(key)
    obj = get_visible(reg, request.user, pk)
    if field_name not in getattr(reg.model, "SENSITIVE", {}):
        raise Http404("not a protected field")
    ctx: dict[str, Any] = {
        "reg": reg,
        "obj": obj,
        "field": field_name,
        "masked": getattr(obj, f"{field_name}_masked", ""),
        "action": reverse("reveal_value", args=[key, pk, field_name]),
    }
    if request.method != "POST":
        if not can(request.user, "reveal", reg.model):
            ctx["error"] = problem_text(
                Problem("forbidden", "无权查看此信息", "You may not reveal this value")
            )
            return render(request, "registry/_reveal.html", ctx, status=403)
        return render(request, "registry/_reveal.html", ctx)
    purpose = request.POST.get("purpose", "")
    ctx["purpose"] = purpose
    try:
        value = reveal(request.user, obj, field_name, purpose, request.META.get("REMOTE_ADDR"))
    except Invalid as exc:
        ctx["error"] = "; ".join(problem_text(p) for p in exc.problems)
        return render(request, "registry/_reveal.html", ctx, status=400)
    except Forbidden as exc:
        ctx["error"] = problem_text(Problem("forbidden", exc.zh, exc.en))
        return render(request, "registry/_reveal.html", ctx, status=403)
    ctx["value"] = value
    return render(request, "registry/_revealed.html", ctx)


# --- logs -----------------------------------------------------------------------------------------
def _date_param(request: HttpRequest, name: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(request.GET.get(name, ""))
    except ValueError:
        return None


def _day_start(day: dt.date) -> dt.datetime:
    from django.utils import timezone

    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def _log_filters(request: HttpRequest, qs: QuerySet) -> tuple[QuerySet, dict[str, Any]]:
    from zhizhi.orgs.models import User

    # Only people who appear in the rows this user may see are offered as a filter.
    actors = User.objects.filter(pk__in=qs.values("actor_id")).order_by("username")
    username = (request.GET.get("user") or "").strip()
    start = _date_param(request, "from")
    end = _date_param(request, "to")
    if username:
        qs = qs.filter(actor__username=username)
    if start:
        qs = qs.filter(at__gte=_day_start(start))
    if end:
        qs = qs.filter(at__lt=_day_start(end + dt.timedelta(days=1)))
    return qs, {
        "user": username,
        "from": start.isoformat() if start else "",
        "to": end.isoformat() if end else "",
        "actors": actors,
    }


def log_object_url(reg: Registry | None, object_id: str) -> str:
    # Bulk loads log one summary row whose object_id is not a key; it has no page to link to.
    if reg is None or not object_id.isdigit():
        return ""
    return reverse("registry_detail", args=[reg.key, int(object_id)])


@login_required
def reveal_log(request: HttpRequest) -> HttpResponse:
    user = request.user
    if not can(user, "view", RevealLog):
        raise Http404("no such page")
    qs = RevealLog.objects.visible_to(user).select_related("actor", "content_type")
    qs, filt = _log_filters(request, qs)
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    fields = {"id_number": _("身份证号"), "phone": _("手机号")}
    rows = []
    for r in page:
        model = r.content_type.model_class()
        reg = registry_for_model(model) if model else None
        rows.append(
            {
                "r": r,
                "field": fields.get(r.field, r.field),
                "url": log_object_url(reg, r.object_id),
            }
        )
    params = request.GET.copy()
    params.pop("page", None)
    ctx = {
        "title": _("敏感信息查看日志"),
        "rows": rows,
        "page": page,
        "filt": filt,
        "query": params.urlencode(),
    }
    return render(request, "logs/reveals.html", ctx)


@login_required
def change_log(request: HttpRequest) -> HttpResponse:
    user = request.user
    if not can(user, "view", ChangeLogEntry):
        raise Http404("no such page")
    qs = ChangeLogEntry.objects.visible_to(user).select_related("actor", "content_type")
    regs = registry.registries()
    model_key = request.GET.get("model", "")
    if model_key in regs:
        qs = qs.filter(content_type=ContentType.objects.get_for_model(regs[model_key].model))
    qs, filt = _log_filters(request, qs)
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = change_log_rows(user, page)
    for row in rows:
        reg, e = row["reg"], row["e"]
        row["what"] = reg_label(reg) if reg else e.content_type.model
        row["url"] = log_object_url(reg, e.object_id)
    params = request.GET.copy()
    params.pop("page", None)
    ctx = {
        "title": _("变更日志"),
        "rows": rows,
        "page": page,
        "filt": filt,
        "query": params.urlencode(),
        "models": [(k, reg_label(r)) for k, r in regs.items()],
        "model": model_key,
    }
    return render(request, "logs/changes.html", ctx)
