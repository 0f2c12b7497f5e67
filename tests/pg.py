"""Concurrency on real connections (PostgreSQL): run one piece of work in several threads at once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from django.db import connection

T = TypeVar("T")


def at_once(fn: Callable[[], T], threads: int) -> list[T]:
    """Call `fn` in `threads` threads released together by a barrier, each on its own database
    connection (closed afterwards); the results in finishing order. The first error any thread
    raised is raised here, after all threads have finished."""
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []
    results: list[T] = []

    def run() -> None:
        try:
            barrier.wait()
            results.append(fn())
        except BaseException as exc:  # re-raised below, in the test's thread
            errors.append(exc)
        finally:
            connection.close()

    started = [threading.Thread(target=run) for _ in range(threads)]
    for t in started:
        t.start()
    for t in started:
        t.join()
    if errors:
        raise errors[0]
    return results
