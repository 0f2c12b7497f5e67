"""Template helpers for the pages: permission checks for the nav and bilingual problem text."""

from __future__ import annotations

from typing import Any

from django import template
from django.apps import apps
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from zhizhi.permissions import can

register = template.Library()


@register.simple_tag(takes_context=True)
def may(context: dict[str, Any], action: str, label: str) -> bool:
    """{% may "view" "zhizhi.reveallog" as ok %}: whether the user holds the action on the model."""
    request = context.get("request")
    user = getattr(request, "user", None)
    try:
        model = apps.get_model(label)
    except (LookupError, ValueError):
        return False
    return can(user, action, model)


@register.filter
def pick(obj: Any, base: str = "") -> str:
    """The zh or en variant of a bilingual object (a Column, Registry, Problem …) for the active language."""
    english = (get_language() or "").startswith("en")
    return str(getattr(obj, "en" if english else "zh", "") or getattr(obj, "zh", ""))


@register.filter
def tr(value: Any) -> str:
    """Translate a model's Chinese choice label (e.g. a role) through the English catalogue."""
    return _(str(value)) if value not in (None, "") else ""
