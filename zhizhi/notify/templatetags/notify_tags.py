"""The unread inbox count for the navigation bar."""

from __future__ import annotations

from typing import Any

from django import template

from zhizhi.notify.services import unread_count

register = template.Library()


@register.simple_tag(takes_context=True)
def inbox_unread(context: Any) -> int:
    """Unread inbox messages of the signed-in user (0 when signed out); one count per request."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return 0
    cached = getattr(request, "_zhizhi_inbox_unread", None)
    if cached is None:
        cached = unread_count(user)
        request._zhizhi_inbox_unread = cached
    return cached
