"""Point → grid and the rules for places, through the registry pipeline and `geo.services.locate`.

The `street` fixture's grids (tests/factories.py): A1 [120.100,120.105], A2 [120.105,120.110],
B1 [120.110,120.115], B2 [120.115,120.120], all from latitude 30.300 to 30.310.
"""

from __future__ import annotations

import pytest

from tests.factories import Street, square
from zhizhi import registry
from zhizhi.geo import services as geo
from zhizhi.geo import spatial
from zhizhi.geo.models import Building, Region
from zhizhi.geo.services import BUILDINGS, REGIONS
from zhizhi.problems import Invalid


def codes(exc: pytest.ExceptionInfo[Invalid]) -> list[str]:
    return [p.code for p in exc.value.problems]


def grid_raw(code: str, boundary: dict, parent: str = "330105001002", name: str = "新网格") -> dict:
    return {"code": code, "name": name, "level": "grid", "parent": parent, "boundary": boundary}


@pytest.mark.parametrize(
    ("key", "lng"), [("A1", 120.1025), ("A2", 120.1075), ("B1", 120.1125), ("B2", 120.1175)]
)
def test_a_point_inside_each_grid_resolves_to_it(street: Street, key: str, lng: float) -> None:
    assert geo.grid_for_point(lng, 30.305) == street.grids[key]
    where = geo.locate(lng, 30.305)
    assert where.inside and where.grid == street.grids[key]
    assert where.message == street.grids[key].name


def test_a_point_on_a_border_belongs_to_one_of_the_two_grids(street: Street) -> None:
    on_border = geo.grid_for_point(120.105, 30.305)
    assert on_border in (street.grids["A1"], street.grids["A2"])
    assert geo.grid_for_point(120.100, 30.300) == street.grids["A1"]  # the street's outer corner
    assert geo.grid_for_point(120.1175, 30.310) == street.grids["B2"]  # on the northern edge


def test_a_point_outside_every_grid_is_an_answer_not_an_exception(street: Street) -> None:
    assert geo.grid_for_point(120.2, 30.2) is None
    where = geo.locate("120.125", "30.305")  # strings from a form are accepted
    assert not where.inside and where.grid is None
    assert "不在本街道" in where.message and "outside" in where.message


def test_the_index_is_rebuilt_when_a_boundary_changes(street: Street) -> None:
    admin = street.users["admin"]
    assert geo.grid_for_point(120.1175, 30.309) == street.grids["B2"]
    before = spatial.index()
    b2 = Region.objects.get(pk=street.grids["B2"].pk)
    geo.save_boundary(admin, b2, square(120.115, 30.300, 120.120, 30.305), b2.version)
    assert spatial.index() is not before
    assert geo.grid_for_point(120.1175, 30.309) is None  # the northern half was cut off
    assert geo.grid_for_point(120.1175, 30.302) == street.grids["B2"]
    new = registry.create(
        REGIONS, admin, grid_raw("330105001002003", square(120.115, 30.305, 120.120, 30.310))
    )
    assert geo.grid_for_point(120.1175, 30.309) == new
    assert geo.locate(120.1175, 30.309).grid == new


def test_an_overlapping_polygon_is_rejected_naming_the_other_grid(street: Street) -> None:
    with pytest.raises(Invalid) as exc:
        registry.create(
            REGIONS,
            street.users["admin"],
            grid_raw("330105001002003", square(120.118, 30.300, 120.125, 30.310)),
        )
    assert codes(exc) == ["polygon_overlap"]
    problem = exc.value.problems[0]
    assert "B2网格" in problem.zh and "B2网格" in problem.en and problem.value == street.grids["B2"].code
    assert not Region.objects.filter(code="330105001002003").exists()


def test_a_polygon_touching_its_neighbour_is_accepted(street: Street) -> None:
    grid = registry.create(
        REGIONS, street.users["admin"], grid_raw("330105001002003", square(120.120, 30.300, 120.125, 30.310))
    )
    assert geo.grid_for_point(120.1225, 30.305) == grid


@pytest.mark.parametrize(
    "ring",
    [
        # symmetric: the two lobes cancel, so its signed area is zero
        [[120.12, 30.30], [120.13, 30.31], [120.13, 30.30], [120.12, 30.31], [120.12, 30.30]],
        # lopsided
        [[120.12, 30.30], [120.13, 30.31], [120.13, 30.30], [120.12, 30.305], [120.12, 30.30]],
    ],
)
def test_a_self_intersecting_polygon_is_rejected_with_a_reason(street: Street, ring: list) -> None:
    bow_tie = {"type": "Polygon", "coordinates": [ring]}
    with pytest.raises(Invalid) as exc:
        registry.create(REGIONS, street.users["admin"], grid_raw("330105001002003", bow_tie))
    assert codes(exc) == ["polygon_invalid"]
    assert "Self-intersection" in exc.value.problems[0].en and "自相交" in exc.value.problems[0].zh
    assert not Region.objects.filter(code="330105001002003").exists()


def test_a_polygon_outside_china_is_rejected(street: Street) -> None:
    with pytest.raises(Invalid) as exc:
        registry.create(
            REGIONS, street.users["admin"], grid_raw("330105001002003", square(2.0, 48.0, 2.1, 48.1))
        )
    assert codes(exc) == ["coord_outside_china"]


def test_coordinates_outside_china_or_swapped_are_rejected(street: Street) -> None:
    with pytest.raises(Invalid) as exc:
        geo.locate(2.35, 48.85)  # Paris
    assert codes(exc) == ["coord_outside_china"]
    with pytest.raises(Invalid) as exc:
        geo.locate(30.305, 120.1025)  # latitude first
    assert codes(exc) == ["coord_swapped"]
    assert "120.1025" in exc.value.problems[0].expected_en
    with pytest.raises(Invalid) as exc:
        geo.locate("东经120度", 30.3)
    assert codes(exc) == ["coord_number"]


def building_raw(code: str, lng: float, lat: float, grid: str | None = None) -> dict:
    raw = {"code": code, "name": f"{code}幢", "address": "拱墅区测试路1号", "lng": lng, "lat": lat}
    if grid is not None:
        raw["grid"] = grid
    return raw


def test_a_building_without_a_grid_gets_the_grid_its_point_is_in(street: Street) -> None:
    b = registry.create(BUILDINGS, street.users["admin"], building_raw("NEW-1", 120.1125, 30.302))
    assert b.grid == street.grids["B1"] and b.area_path == street.grids["B1"].path


def test_a_building_with_swapped_coordinates_is_rejected(street: Street) -> None:
    with pytest.raises(Invalid) as exc:
        registry.create(BUILDINGS, street.users["admin"], building_raw("NEW-2", 30.302, 120.1125))
    assert codes(exc) == ["coord_swapped"]
    assert not Building.objects.filter(code="NEW-2").exists()


def test_a_building_outside_every_grid_is_rejected(street: Street) -> None:
    with pytest.raises(Invalid) as exc:
        registry.create(BUILDINGS, street.users["admin"], building_raw("NEW-3", 120.2, 30.2))
    assert codes(exc) == ["outside_street"]
    assert not Building.objects.filter(code="NEW-3").exists()


def test_a_building_given_a_grid_that_does_not_contain_it_is_rejected(street: Street) -> None:
    with pytest.raises(Invalid) as exc:
        registry.create(
            BUILDINGS, street.users["admin"], building_raw("NEW-4", 120.1125, 30.302, street.grids["A1"].code)
        )
    assert codes(exc) == ["grid_mismatch"]
    assert street.grids["B1"].name in exc.value.problems[0].zh
    assert not Building.objects.filter(code="NEW-4").exists()


def test_index_and_brute_force_agree(street: Street) -> None:
    index = spatial.index()
    for lng in (120.099, 120.1, 120.1025, 120.105, 120.1111, 120.119, 120.121):
        for lat in (30.299, 30.3, 30.305, 30.31, 30.311):
            hit, naive = index.lookup(lng, lat), index.brute_force(lng, lat)
            # On a shared border either grid is right; otherwise both give the same answer.
            assert (hit is None) == (naive is None)
            if lng not in (120.105, 120.11, 120.115):
                assert hit == naive
