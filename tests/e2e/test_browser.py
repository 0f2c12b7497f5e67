"""End to end in a real browser: a grid worker sees only their grid, reveals a phone with a purpose,
and the leader finds that reveal in the log; plus the home-page screenshot used by the README."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.factories import PASSWORD, build_street

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]


def log_in(page: Any, base: str, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


def log_out(page: Any) -> None:
    page.click(".logoutform button")
    page.wait_for_url("**/accounts/login/")


def test_grid_worker_reveals_a_phone_and_the_leader_sees_the_log(page: Any, live_server: Any) -> None:
    street = build_street()
    mine = street.person("a", grid="A1", house="A1-1-101", name="张小明")
    street.person("b", grid="A1", house="A1-2-101", name="张大明")
    street.person("c", grid="B1", house="B1-1-101", name="李外人")
    phone = mine.decrypt_sensitive("phone")
    base = live_server.url

    assert page.request.get(f"{base}/static/vendor/htmx.min.js").status == 200
    log_in(page, base, "grid_a1")
    page.goto(f"{base}/r/people.person/")
    assert page.evaluate("typeof window.htmx") == "object"
    table = page.locator("#registry-table tbody")
    assert table.locator("tr").count() == 2
    assert "张小明" in table.inner_text() and "李外人" not in table.inner_text()
    assert phone not in page.content()

    # The search box updates the table in place (htmx) and the URL follows.
    page.fill("#q", "小明")
    page.wait_for_function("document.querySelectorAll('#registry-table tbody tr').length === 1")
    assert "q=" in page.url

    page.click("#registry-table >> text=张小明")
    page.wait_for_url("**/r/people.person/*/")
    assert mine.phone_masked in page.inner_text("#reveal-phone")
    page.click("#reveal-phone button[data-reveal=phone]")
    page.fill("#reveal-phone input[name=purpose]", "入户走访核对联系方式")
    page.click("#reveal-phone button[type=submit]")
    page.wait_for_selector("#reveal-phone .revealed")
    assert page.inner_text("#reveal-phone .revealed") == phone

    log_out(page)
    log_in(page, base, "leader")
    page.goto(f"{base}/logs/reveals/")
    log = page.inner_text("#reveal-log")
    assert "入户走访核对联系方式" in log and "A1网格员" in log and "张小明" in log


def test_home_page_screenshot_for_the_readme(page: Any, live_server: Any) -> None:
    """The leader's home page on a (smaller) demo street, as README.md shows it."""
    from zhizhi.demo import load, plan
    from zhizhi.demo.logins import DEMO_LOGINS

    load.load_plan(plan.build_plan(seed=42, scale=0.2))
    leader = next(d for d in DEMO_LOGINS if d.role == "street_leader")
    log_in(page, live_server.url, leader.username, leader.password)
    page.wait_for_selector(".cards .stat")
    assert page.locator(".breakdown tbody tr").count() == 7  # one row per community
    # The per-community rows add up to the street's totals on the cards.
    cards = [int(t) for t in page.locator(".cards .stat-num").all_inner_texts()]
    rows = [
        [int(t) for t in row.locator("td.num").all_inner_texts()]
        for row in page.locator(".breakdown tbody tr").all()
    ]
    assert [sum(col) for col in zip(*rows, strict=True)] == cards
    out = ROOT / "docs" / "screenshot-home.png"
    out.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(out), full_page=False)
    assert out.stat().st_size > 10_000


def test_map_shows_only_my_grids_and_a_grid_panel(page: Any, live_server: Any) -> None:
    street = build_street()
    street.person("a", grid="A1", house="A1-1-101")
    base = live_server.url
    log_in(page, base, "community_a")
    page.goto(f"{base}/map/")
    page.wait_for_function("document.getElementById('map').dataset.ready")
    assert page.get_attribute("#map", "data-ready") == "2"  # community A has two grids
    assert page.locator(".leaflet-tile").count() == 0  # offline: no tile layer
    page.locator("path.leaflet-interactive").first.click(position={"x": 10, "y": 10})  # off the marker
    page.wait_for_selector("#grid-panel h2")
    assert page.inner_text("#grid-panel h2") in ("A1网格", "A2网格")
    page.fill("input[name=lng]", "121.5")
    page.fill("input[name=lat]", "31.2")
    page.click(".locate-form button")
    page.wait_for_selector("#locate-answer")
    assert "不在本街道任何网格内" in page.inner_text("#locate-answer")
    # A region's detail page draws its polygon on a small map.
    page.goto(f"{base}/r/geo.region/{street.grids['A1'].pk}/")
    page.wait_for_selector("#mini-map[data-ready='1'] path.leaflet-interactive")
