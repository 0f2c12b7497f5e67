"""Shared fixtures: a small street (see tests/factories.py) and per-test clean state."""

from __future__ import annotations

import pytest

from tests.factories import Street, build_street


@pytest.fixture
def street(db) -> Street:  # type: ignore[no-untyped-def]
    return build_street()


@pytest.fixture(autouse=True)
def _fresh_spatial_index():  # type: ignore[no-untyped-def]
    from zhizhi.geo import spatial

    spatial.invalidate()
    yield
    spatial.invalidate()
