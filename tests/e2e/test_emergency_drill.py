"""An emergency drill in real browsers: the command centre declares the area by picking two buildings
on the map, the board opens with the households to evacuate; two workers mark every household on
their phones (one first asks for help, which reaches the board), and the board reaches done = total
with no reload, over server-sent events."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import open_page
from tests.e2e.test_browser import log_in
from tests.factories import build_street
from tests.test_emergency import populate
from zhizhi import live
from zhizhi.cockpit.emergency import services
from zhizhi.cockpit.emergency.models import EvacuationTask, HelpRequest, Incident
from zhizhi.intake.models import Camera
from zhizhi.notify.models import BroadcastRecipient, InboxMessage

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def phones(chromium: Any) -> Iterator[Any]:
    """Phone-sized pages, one per worker (each its own browser context and session)."""
    pages: list[Any] = []

    def new() -> Any:
        page = open_page(chromium, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
        pages.append(page)
        return page

    yield new
    for page in pages:
        page.context.close()


def click_at(page: Any, lng: float, lat: float) -> None:
    """A real mouse click on the map at a longitude/latitude."""
    box = page.locator("#declare-map").bounding_box()
    point = page.evaluate(
        "([lat, lng]) => { const p = emergencyMap.latLngToContainerPoint([lat, lng]); return [p.x, p.y]; }",
        [lat, lng],
    )
    page.mouse.click(box["x"] + point[0], box["y"] + point[1])


def test_drill_from_declaring_to_the_last_household(
    page: Any, phones: Any, live_server: Any, monkeypatch: Any
) -> None:
    monkeypatch.setattr(live, "HEARTBEAT_SECONDS", 0.2)
    street = build_street()
    populate(street)
    a1 = street.buildings["A1"]
    Camera.objects.create(
        code="CAM-A1",
        name="A1楼下",
        lng=a1.lng + 0.0001,
        lat=a1.lat,
        snapshot_url="/static/emergency/demo-snapshot.svg",
        stream_url="rtsp://video.example.invalid/a1",
    )
    base = live_server.url

    # The command centre picks A1's and A2's buildings on the map and declares.
    log_in(page, base, "dispatcher")
    page.goto(f"{base}/emergency/new/")
    page.wait_for_selector("#declare-map[data-ready='1']")
    assert page.locator(".leaflet-tile").count() == 0  # no tiles needed
    page.select_option("select[name=kind]", "collapse")
    page.fill("input[name=location]", "建国北路")
    for key in ("A1", "A2"):
        b = street.buildings[key]
        click_at(page, b.lng, b.lat)
    picked = page.input_value("#building-ids").split(",")
    assert sorted(int(x) for x in picked) == sorted([street.buildings["A1"].pk, street.buildings["A2"].pk])
    page.click("#declare-submit")
    page.wait_for_url(f"{base}/emergency/*/")
    incident = Incident.objects.get()
    assert page.inner_text("#hh-total") == "6" and page.inner_text("#hh-done") == "0"
    assert page.inner_text("#v-total") == "4"
    page.wait_for_selector("#board-map[data-ready='1']")
    # The instruction to the grid and community workers, from the board.
    form = page.locator("#broadcast-form")
    form.locator("input[name=subject]").fill("立即疏散")
    form.locator("textarea[name=body]").fill("A1、A2楼立即组织撤离，重点人群优先")
    form.locator("input[name=audience][value=chosen]").check()
    form.locator("select[name=roles]").select_option(["grid_worker", "community_worker"])
    form.locator("button[type=submit]").click()
    page.wait_for_selector(".broadcasts li")
    item = services.broadcasts_of(incident).get()
    assert item.total == 3  # grid_a1, grid_b1, community_a
    page.wait_for_selector('#board[data-live="open"]', timeout=5000)
    page.evaluate("window.__sameBoard = true")  # gone if the page reloads
    # The camera at the scene opens with one click.
    page.click(".camera-open >> text=A1楼下")
    page.wait_for_selector("#camera-panel:not([hidden])")
    assert page.get_attribute("#camera-snapshot", "src").endswith("demo-snapshot.svg")
    assert page.inner_text("#camera-stream") == "rtsp://video.example.invalid/a1"

    workers = {
        t.assignee.username
        for t in EvacuationTask.objects.filter(incident=incident).select_related("assignee")
    }  # type: ignore[union-attr]
    assert workers == {"grid_a1", "community_a"}
    first = True
    for username in sorted(workers):
        phone = phones()
        log_in(phone, base, username)
        # Reading the instruction in the inbox shows on the board as a read receipt, live.
        message = InboxMessage.objects.get(
            user__username=username, outbox_key__startswith=f"broadcast:{item.pk}:"
        )
        reads = BroadcastRecipient.objects.filter(broadcast=item, read_at__isnull=False).count()
        phone.goto(f"{base}/inbox/{message.pk}/")
        page.wait_for_function(
            f"document.querySelector('#bc-{item.pk} .read').textContent === '{reads + 1}'", timeout=5000
        )
        phone.goto(f"{base}/emergency/{incident.pk}/mine/")
        cards = phone.locator(".task")
        assert (
            cards.count()
            == EvacuationTask.objects.filter(incident=incident, assignee__username=username).count()
        )
        for task in EvacuationTask.objects.filter(incident=incident, assignee__username=username).order_by(
            "seq"
        ):
            card = phone.locator(f"#task-{task.pk}")
            if first:
                # The first household needs help: the board's help list shows it, live.
                card.locator("input[name=note]").fill("卧床老人需担架")
                card.locator("button[value=needs_help]").click()
                phone.wait_for_selector(f"#task-{task.pk}[data-status='needs_help']")
                page.wait_for_selector("#help-list >> text=卧床老人需担架", timeout=5000)
                assert page.inner_text("#help-count") == "1"
                first = False
                card = phone.locator(f"#task-{task.pk}")
            card.locator("button[value=evacuated]").click()
            phone.wait_for_selector(f"#task-{task.pk}[data-status='evacuated']")
        total = EvacuationTask.objects.filter(incident=incident, assignee__username=username).count()
        assert phone.inner_text("#mine-done") == str(total)  # the phone's own count followed

    # The board follows without a reload: every household done, the help request gone.
    page.wait_for_function("document.getElementById('hh-done').textContent === '6'", timeout=5000)
    assert page.inner_text("#v-done") == "4"
    page.wait_for_selector("#no-help", timeout=5000)
    assert page.evaluate("window.__sameBoard") is True
    rows = page.locator("#buildings tbody tr.row-done")
    assert rows.count() == 2
    assert HelpRequest.objects.get(incident=incident).resolved_at is not None
    assert not EvacuationTask.objects.filter(incident=incident).exclude(status="evacuated").exists()
