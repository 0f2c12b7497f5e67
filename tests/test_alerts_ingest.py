"""Device telemetry ingestion: every bad input a real device sends, over HTTP and the service."""

from __future__ import annotations

import pytest

from zhizhi.alerts.models import Device, Reading


@pytest.fixture
def device(street):  # type: ignore[no-untyped-def]
    return Device.objects.create(
        code="WL-001", name="河道水位1", kind="water_level", grid=street.grids["A1"], unit="m"
    )


def test_device_lives_in_its_grid(street, device) -> None:  # type: ignore[no-untyped-def]
    assert device.area_path == street.grids["A1"].path
    assert Reading.objects.count() == 0
