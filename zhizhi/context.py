"""Who is acting, and under which request id: read by the change log and the reveal log."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.http import HttpRequest, HttpResponse

_actor: ContextVar[Any] = ContextVar("zhizhi_actor", default=None)
_request_id: ContextVar[str] = ContextVar("zhizhi_request_id", default="")


def current_actor() -> Any:
    return _actor.get()


def current_request_id() -> str:
    return _request_id.get()


@contextmanager
def acting_as(user: Any, request_id: str | None = None) -> Iterator[None]:
    """Attribute every change inside the block to `user` (commands, workers, imports)."""
    t1 = _actor.set(user)
    t2 = _request_id.set(request_id or uuid.uuid4().hex)
    try:
        yield
    finally:
        _actor.reset(t1)
        _request_id.reset(t2)


class ActorMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        actor = user if user is not None and user.is_authenticated else None
        with acting_as(actor, request.headers.get("X-Request-Id") or None):
            return self.get_response(request)
