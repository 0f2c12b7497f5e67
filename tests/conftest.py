"""Shared fixtures: a small street (see tests/factories.py) and per-test clean state."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.factories import Street, build_street
from tests.fakes import FakeGateway


@pytest.fixture
def street(db) -> Street:  # type: ignore[no-untyped-def]
    return build_street()


@pytest.fixture
def gateway(settings) -> Iterator[FakeGateway]:  # type: ignore[no-untyped-def]
    """A loopback SMS gateway and DingTalk robot (指挥中心群) the outbox delivers to; no WeCom robots."""
    fake = FakeGateway()
    settings.ZHIZHI_SMS_URL = fake.url + "/sms"
    settings.ZHIZHI_DINGTALK_WEBHOOKS = {"指挥中心群": fake.url + "/robot"}
    settings.ZHIZHI_WECOM_WEBHOOKS = {}
    yield fake
    fake.close()


@pytest.fixture(autouse=True)
def _fresh_caches():  # type: ignore[no-untyped-def]
    """Per-process caches (grid index, holiday table, dedup index, suggester) must not outlive a
    rolled-back test."""
    from zhizhi.geo import spatial

    def clear() -> None:
        spatial.invalidate()
        from zhizhi.cases import worktime
        from zhizhi.intake import dedup, suggest

        worktime.invalidate()
        dedup.invalidate()  # the open-case index of duplicate detection
        suggest.use(None)  # the suggester's model and cached responsibility-list rows

    clear()
    yield
    clear()


def pytest_sessionstart(session) -> None:  # type: ignore[no-untyped-def]
    """A run against PostgreSQL that cannot reach it stops at once with the command that starts it."""
    import os

    url = os.environ.get("DATABASE_URL", "")
    if url.startswith("postgres"):
        from scripts.check_services import SERVICES, reachable

        port, start = SERVICES["postgres"]
        if not reachable(port):
            pytest.exit(
                f"PostgreSQL is not reachable on 127.0.0.1:{port}. Start it with:\n    {start}", returncode=3
            )
