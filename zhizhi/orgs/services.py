"""Org units and staff: creating staff users with a role, a unit and the regions they serve."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from zhizhi.geo.models import Region
from zhizhi.orgs.models import OrgUnit, User
from zhizhi.permissions import DEPARTMENT_DOMAINS, IN_SCOPE, ROLES, forget
from zhizhi.problems import Invalid, Problem
from zhizhi.registry import Column, Ref, Registry, register


def org_unit_rules(values: dict[str, Any], instance: OrgUnit | None) -> list[Problem]:
    kind = values.get("kind", instance.kind if instance else None)
    region = values.get("region", instance.region if instance and instance.region_id else None)
    if kind in ("community", "grid") and region is None:
        return [
            Problem(
                "region_required",
                "社区和网格单位需要服务区域",
                "Community and grid units need a region",
                field="region",
            )
        ]
    if kind in ("community", "grid") and region is not None and region.level != kind:
        return [
            Problem(
                "region_level",
                "服务区域层级与单位类型不符",
                "The region's level does not match the unit's kind",
                field="region",
                value=region.code,
            )
        ]
    return []


ORG_UNITS = register(
    Registry(
        key="orgs.orgunit",
        model=OrgUnit,
        zh="组织单位",
        en="Org units",
        columns=[
            Column("code", "编码", "Code", required=True),
            Column("name", "名称", "Name", required=True),
            Column("kind", "类型", "Kind", kind="choice", required=True),
            Column(
                "parent", "上级单位编码", "Parent unit code", kind="ref", ref=Ref(OrgUnit, "code", "上级单位")
            ),
            Column("region", "服务区域编码", "Region code", kind="ref", ref=Ref(Region, "code", "区域")),
            Column("duty", "职责", "Duty"),
        ],
        natural_key=("code",),
        search=("code", "name"),
        filters=("kind", "region"),
        list_columns=("code", "name", "kind", "region"),
        rules=org_unit_rules,
    )
)


@transaction.atomic
def create_staff(
    *,
    username: str,
    full_name: str,
    role: str,
    password: str,
    org_unit: OrgUnit | None = None,
    regions: list[Region] | None = None,
    phone: str = "",
) -> User:
    """A staff user with a role, a unit and the regions they serve."""
    if role not in dict(ROLES):
        raise Invalid([Problem("role", "未知角色", "Unknown role", field="role", value=role)])
    user = User(username=username, full_name=full_name, role=role, org_unit=org_unit, is_staff=False)
    if phone:
        from zhizhi import validators

        user.set_sensitive("phone", validators.phone(phone))
    user.set_password(password)
    user.save()
    if regions:
        user.regions.set(regions)
    forget(user)
    return user


def grant_department_domain(unit: OrgUnit) -> None:
    """Give a street department the registries of its domain (区域发展办 → enterprises …)."""
    from zhizhi.models import ObjectPermission

    spec = DEPARTMENT_DOMAINS.get(unit.code)
    if spec is None:
        return
    perm, _ = ObjectPermission.objects.get_or_create(
        name=f"科室职责：{unit.name}",
        defaults={"object_types": spec["object_types"], "actions": spec["actions"], "constraints": IN_SCOPE},
    )
    perm.org_units.add(unit)
