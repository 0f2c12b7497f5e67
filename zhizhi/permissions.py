"""One permission check for the whole platform: object permissions with area constraints.

`restrict(queryset, user, action)` is what `Model.objects.visible_to(user)` calls. Pages, the
API, exports and the admin all read through it, so a grid worker can never read another grid.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from django.db.models import Model, Q, QuerySet

from zhizhi import clock
from zhizhi.problems import Forbidden, Invalid, Problem

# Roles a staff user can hold (orgs.User.role). Labels are shown in the UI.
ROLES = [
    ("street_leader", "街道领导"),
    ("dispatcher", "指挥中心坐席"),
    ("dept_staff", "科室工作人员"),
    ("community_worker", "社区工作者"),
    ("grid_worker", "网格员"),
    ("volunteer", "志愿者"),
    ("resident", "居民"),
]

REGISTRY = [
    "geo.region",
    "geo.building",
    "people.house",
    "people.person",
    "people.residency",
    "people.caretag",
    "enterprises.enterprise",
    "enterprises.executive",
    "enterprises.taxrecord",
    "orgs.orgunit",
]
PEOPLE = ["people.house", "people.person", "people.residency", "people.caretag"]
PLACES = ["geo.region", "geo.building"]
ENTERPRISES = ["enterprises.enterprise", "enterprises.executive", "enterprises.taxrecord"]
IN_SCOPE = {"area_path__startswith": "$scope"}

# The grants a fresh installation starts with (kept in the database and editable by an admin).
DEFAULT_PERMISSIONS: list[dict[str, Any]] = [
    {
        "name": "领导：全街道只读、导出、查看敏感信息",
        "roles": ["street_leader"],
        "object_types": [*REGISTRY, "zhizhi.reveallog", "zhizhi.changelogentry"],
        "actions": ["view", "export", "reveal"],
        "constraints": IN_SCOPE,
    },
    {
        "name": "坐席：辖区登记信息只读",
        "roles": ["dispatcher"],
        "object_types": REGISTRY,
        "actions": ["view"],
        "constraints": IN_SCOPE,
    },
    {
        "name": "科室：辖区地点与组织只读",
        "roles": ["dept_staff"],
        "object_types": [*PLACES, "orgs.orgunit"],
        "actions": ["view"],
        "constraints": IN_SCOPE,
    },
    {
        "name": "社区：本社区人房企业维护",
        "roles": ["community_worker"],
        "object_types": [*PLACES, *PEOPLE, *ENTERPRISES, "orgs.orgunit"],
        "actions": ["view", "add", "change", "import", "export", "reveal"],
        "constraints": IN_SCOPE,
    },
    {
        "name": "网格员：本网格人房维护",
        "roles": ["grid_worker"],
        "object_types": [*PLACES, *PEOPLE, "enterprises.enterprise"],
        "actions": ["view", "add", "change", "reveal"],
        "constraints": IN_SCOPE,
    },
    {
        "name": "志愿者：辖区网格只读",
        "roles": ["volunteer"],
        "object_types": ["geo.region"],
        "actions": ["view"],
        "constraints": IN_SCOPE,
    },
]

# Department domains: granted to the named org units (by unit code) on top of the role grants.
DEPARTMENT_DOMAINS: dict[str, dict[str, Any]] = {
    "QYFZB": {  # 区域发展办: enterprises
        "object_types": [*ENTERPRISES, "geo.building"],
        "actions": ["view", "add", "change", "import", "export", "reveal"],
    },
    "GGFWB": {  # 公共服务办: residents and their care
        "object_types": PEOPLE,
        "actions": ["view", "change", "export", "reveal"],
    },
    "PAB": {  # 平安办: residents and housing, read only
        "object_types": [*PEOPLE, "enterprises.enterprise"],
        "actions": ["view", "reveal"],
    },
    "GGGLB": {  # 公共管理办: places and housing
        "object_types": [*PLACES, "people.house", "enterprises.enterprise"],
        "actions": ["view", "add", "change", "import", "export"],
    },
}


def _grants(user: Any) -> list[tuple[set[str], set[str], Any]]:
    cached = getattr(user, "_zhizhi_grants", None)
    if cached is not None:
        return cached
    from zhizhi.models import ObjectPermission

    direct = set(
        ObjectPermission.users.through.objects.filter(user_id=user.pk).values_list(
            "objectpermission_id", flat=True
        )
    )
    via_unit: set[int] = set()
    if getattr(user, "org_unit_id", None):
        via_unit = set(
            ObjectPermission.org_units.through.objects.filter(orgunit_id=user.org_unit_id).values_list(
                "objectpermission_id", flat=True
            )
        )
    role = getattr(user, "role", "")
    grants = []
    for perm in ObjectPermission.objects.filter(enabled=True):
        if perm.pk in direct or perm.pk in via_unit or (role and role in (perm.roles or [])):
            grants.append((set(perm.object_types), set(perm.actions), perm.constraints))
    user._zhizhi_grants = grants
    return grants


def scope_paths(user: Any) -> list[str]:
    cached = getattr(user, "_zhizhi_scope", None)
    if cached is None:
        cached = user.scope_paths() if hasattr(user, "scope_paths") else []
        user._zhizhi_scope = cached
    return cached


def _constraint_q(constraints: Any, user: Any) -> Q:
    if isinstance(constraints, list):
        out = Q(pk__in=[])
        for item in constraints:
            out |= _constraint_q(item, user)
        return out
    q = Q()
    for lookup, value in constraints.items():
        if value == "$scope":
            paths = scope_paths(user)
            alt = Q(pk__in=[])
            for path in paths:
                alt |= Q(**{lookup: path})
            q &= alt
        elif value == "$user":
            q &= Q(**{lookup: user.pk})
        elif value == "$org_unit":
            q &= Q(**{lookup: user.org_unit_id})
        else:
            q &= Q(**{lookup: value})
    return q


def restrict(queryset: QuerySet, user: Any, action: str = "view") -> QuerySet:
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return queryset.none()
    if user.is_superuser:
        return queryset
    label = queryset.model._meta.label_lower
    combined: Q | None = None
    for types, actions, constraints in _grants(user):
        if action not in actions or not (label in types or "*" in types):
            continue
        if not constraints:
            return queryset
        part = _constraint_q(constraints, user)
        combined = part if combined is None else combined | part
    if combined is None:
        return queryset.none()
    return queryset.filter(combined)


def can(user: Any, action: str, model: type[Model]) -> bool:
    """Whether `user` holds `action` on `model` at all (within some scope)."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    if user.is_superuser:
        return True
    label = model._meta.label_lower
    return any(action in actions and (label in types or "*" in types) for types, actions, _ in _grants(user))


def forget(user: Any) -> None:
    """Drop the cached grants and scope of `user` (after its role or regions change)."""
    for attr in ("_zhizhi_grants", "_zhizhi_scope"):
        if hasattr(user, attr):
            delattr(user, attr)


def reveal(user: Any, obj: Any, field: str, purpose: str, ip: str | None = None) -> str:
    """Decrypt one protected value for `user`, who stated `purpose`; the reveal is logged."""
    from django.contrib.contenttypes.models import ContentType

    from zhizhi.models import RevealLog

    purpose = (purpose or "").strip()
    if len(purpose) < 2:
        raise Invalid(
            [
                Problem(
                    "purpose_required",
                    "请说明查看原因（至少2个字）",
                    "State why you need to see this value (at least 2 characters)",
                    field="purpose",
                )
            ]
        )
    if field not in getattr(type(obj), "SENSITIVE", {}):
        raise Invalid(
            [Problem("not_sensitive", "该字段不受保护", "This field is not protected", field="field")]
        )
    model = type(obj)
    if not model.objects.visible_to(user, "reveal").filter(pk=obj.pk).exists():
        raise Forbidden("无权查看此信息", "You may not reveal this value")
    value = obj.decrypt_sensitive(field)
    RevealLog.objects.create(
        actor=user,
        content_type=ContentType.objects.get_for_model(model),
        object_id=str(obj.pk),
        object_repr=str(obj)[:200],
        field=field,
        purpose=purpose[:200],
        ip=ip,
        area_path=getattr(obj, "area_path", ""),
    )
    return value


def _token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def create_token(user: Any, name: str) -> tuple[str, Any]:
    """Issue an API token; the raw token is returned once and only its hash is kept."""
    from zhizhi.models import APIToken

    raw = "zz_" + secrets.token_urlsafe(30)
    token = APIToken.objects.create(user=user, name=name, prefix=raw[:8], key_hash=_token_hash(raw))
    return raw, token


def user_for_token(raw: str) -> Any:
    from zhizhi.models import APIToken

    if not raw:
        return None
    token = APIToken.objects.select_related("user").filter(key_hash=_token_hash(raw), enabled=True).first()
    if token is None or not token.user.is_active:
        return None
    now = clock.now()
    if token.expires_at and token.expires_at <= now:
        return None
    APIToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user


def ensure_default_permissions(**_: Any) -> None:
    """Create the default grants if missing (post_migrate); never overwrite an admin's edits."""
    from zhizhi.models import ObjectPermission

    for spec in DEFAULT_PERMISSIONS:
        ObjectPermission.objects.get_or_create(name=spec["name"], defaults=spec)
