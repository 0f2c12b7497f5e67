"""The emergency demo layer (cameras, idempotent) and `manage.py emergency_drill`."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from tests.factories import Street
from tests.test_emergency import populate
from zhizhi.cockpit.emergency import demo
from zhizhi.cockpit.emergency.models import EvacuationTask, Incident
from zhizhi.demo import extras
from zhizhi.intake.models import Camera

pytestmark = pytest.mark.django_db


def test_demo_cameras_are_added_once_and_look_at_buildings(street: Street) -> None:
    assert ("emergency", "zhizhi.cockpit.emergency.demo:load") in extras.LOADERS
    first = demo.load(street.street)
    assert first == {"cameras": 4}  # one per building of the small test street
    assert demo.load(street.street) == {"cameras": 0}
    cams = list(Camera.objects.filter(code__startswith=demo.CAMERA_PREFIX))
    assert len(cams) == 4 and all(c.grid is not None and c.snapshot_url for c in cams)
    assert any(c.heading is None and c.fov_deg == 360 for c in cams)  # a dome
    assert all(0 <= c.heading < 360 for c in cams if c.heading is not None)


def test_drill_picks_adjacent_buildings_with_the_most_households(street: Street) -> None:
    populate(street)
    ids, households = demo.drill_buildings(street.street, 2)
    # A1 holds 4 households and its nearest neighbour A2 holds 2.
    assert set(ids) == {street.buildings["A1"].pk, street.buildings["A2"].pk} and households == 6
    out = io.StringIO()
    call_command("emergency_drill", "--buildings", "2", "--dry-run", stdout=out)
    assert "6" in out.getvalue() and Incident.objects.count() == 0
    call_command("emergency_drill", "--buildings", "2", "--user", "dispatcher", stdout=out)
    incident = Incident.objects.get()
    assert incident.households_total == 6 and EvacuationTask.objects.filter(incident=incident).count() == 6
    assert f"/emergency/{incident.pk}/" in out.getvalue()
    with pytest.raises(CommandError):
        call_command("emergency_drill", "--buildings", "0", stdout=out)
    with pytest.raises(CommandError, match="指挥中心"):
        call_command("emergency_drill", "--user", "grid_a1", stdout=out)
