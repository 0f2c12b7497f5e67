"""Who handles a case: category + location → responsible unit → assignee, all read from data.

- 属地 (territorial): point → grid (`zhizhi.geo.services.grid_for_point`) → the grid's unit
  (kind "grid", region = that grid), else the community's unit (kind "community", region = the
  grid's community).
- 部门 (department): the category's named unit.
- 联办 (joint): the named unit leads (or the territorial unit when none is named); each assisting
  unit of the category gets its own task.

The assignee follows the category's `assign_rule`, falling back along
grid_worker → on_duty → least_loaded, so a unit without a grid worker or a roster still gets one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, Q

from zhizhi import clock
from zhizhi.cases.models import Case, Category, DutyRoster
from zhizhi.cases.transitions import ACTIVE
from zhizhi.geo.models import Region
from zhizhi.orgs.models import OrgUnit, User


@dataclass
class Route:
    unit: OrgUnit | None
    assignee: Any = None
    assisting: list[OrgUnit] = field(default_factory=list)
    # Certain = the platform may dispatch without a person looking (category and place known).
    certain: bool = False
    why_zh: str = ""
    why_en: str = ""


def territorial_unit(grid: Region | None) -> OrgUnit | None:
    if grid is None:
        return None
    unit = OrgUnit.objects.filter(kind="grid", region=grid, active=True).order_by("id").first()
    if unit is None and grid.parent_id:
        unit = (
            OrgUnit.objects.filter(kind="community", region_id=grid.parent_id, active=True)
            .order_by("id")
            .first()
        )
    return unit


def grid_worker_for(grid: Region | None, unit: OrgUnit | None = None) -> Any:
    if grid is None:
        return None
    workers = User.objects.filter(role="grid_worker", is_active=True, regions=grid)
    if unit is not None:
        preferred = workers.filter(org_unit=unit).order_by("id").first()
        if preferred is not None:
            return preferred
    return workers.order_by("id").first()


def on_duty_for(unit: OrgUnit) -> Any:
    row = (
        DutyRoster.objects.filter(unit=unit, date=clock.today(), user__is_active=True)
        .select_related("user")
        .order_by("id")
        .first()
    )
    return row.user if row else None


def least_loaded_in(unit: OrgUnit) -> Any:
    """The unit member with the fewest open cases (ties: the longest-standing account)."""
    return (
        User.objects.filter(org_unit=unit, is_active=True)
        .exclude(role__in=("resident", "volunteer"))
        .annotate(open_cases=Count("assigned_cases", filter=Q(assigned_cases__status__in=ACTIVE)))
        .order_by("open_cases", "id")
        .first()
    )


def pick_assignee(rule: str, unit: OrgUnit | None, grid: Region | None) -> Any:
    if unit is None:
        return None
    chain = {
        "grid_worker": ("grid_worker", "on_duty", "least_loaded"),
        "on_duty": ("on_duty", "least_loaded"),
        "least_loaded": ("least_loaded",),
    }.get(rule, ("least_loaded",))
    for step in chain:
        if step == "grid_worker" and unit.kind in ("grid", "community"):
            user = grid_worker_for(grid, unit)
        elif step == "on_duty":
            user = on_duty_for(unit)
        elif step == "least_loaded":
            user = least_loaded_in(unit)
        else:
            user = None
        if user is not None:
            return user
    return None


def route(category: Category | None, grid: Region | None, *, category_certain: bool = True) -> Route:
    """Where a case of `category` at `grid` goes; never raises (unknowns give an uncertain route)."""
    if category is None:
        unit = territorial_unit(grid)
        return Route(unit, why_zh="类别未定，需人工派遣", why_en="No category: a dispatcher decides")
    if category.responsibility == "territorial":
        unit = territorial_unit(grid)
    elif category.department_id:
        unit = category.department
    else:
        unit = territorial_unit(grid)
    assisting: list[OrgUnit] = []
    if category.responsibility == "joint":
        assisting = [
            u
            for u in category.assisting.filter(active=True).order_by("code")
            if unit is None or u.pk != unit.pk
        ]
    assignee = pick_assignee(category.assign_rule, unit, grid)
    if unit is None:
        why = ("找不到责任单位，需人工派遣", "No responsible unit found: a dispatcher decides")
    elif category.responsibility != "department" and grid is None:
        why = ("位置不在任何网格内，需人工派遣", "The place is in no grid: a dispatcher decides")
    elif not category_certain:
        why = ("类别为系统推荐，需人工确认", "The category is only suggested: a dispatcher confirms")
    else:
        why = ("", "")
    certain = not why[0]
    return Route(unit, assignee, assisting, certain, *why)


def suggest_category(text: str) -> Category | None:
    """The leaf whose keywords cover most of `text` (longer keywords weigh more; ties go to the
    lower code); None without any hit. Only a suggestion: it never auto-dispatches."""
    text = text or ""
    best_score, found = 0, None
    leaves = Category.objects.filter(parent__isnull=False, active=True).order_by("code")
    for leaf in leaves.only("pk", "code", "name", "keywords"):
        score = sum(len(w) for w in [*(leaf.keywords or []), leaf.name] if w and w in text)
        if score > best_score:
            best_score, found = score, leaf
    return found


def open_load(user: Any) -> int:
    return Case.objects.filter(assignee=user, status__in=ACTIVE).count()
