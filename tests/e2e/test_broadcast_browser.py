"""A broadcast in a real browser: the dispatcher sends a notice to the grid workers from the form →
the outbox delivers it → a grid worker sees the unread count in the top bar, opens the message in
the inbox and follows its link → the dispatcher's receipts page shows one read and who has not read."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.test_browser import log_in, log_out
from tests.factories import build_street
from zhizhi.notify import services
from zhizhi.notify.models import Broadcast

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_notice_is_sent_read_and_receipted(page: Any, live_server: Any) -> None:
    build_street()
    base = live_server.url
    log_in(page, base, "dispatcher")
    page.click("a[href='/notify/broadcasts/']")
    page.click("a[href='/notify/broadcasts/new/']")
    page.fill("input[name=subject]", "夜间巡查")
    page.fill("textarea[name=body]", "今晚十点前完成一次巡查")
    page.fill("input[name=link]", "/cases/")
    page.check("input[name=roles][value=grid_worker]")
    page.click("#broadcast-form button")
    page.wait_for_url(f"{base}/notify/broadcasts/*/")
    assert page.inner_text("#total-count") == "2" and page.inner_text("#read-count") == "0"
    b = Broadcast.objects.get()
    services.deliver_due()  # what the huey worker does after the commit
    log_out(page)

    log_in(page, base, "grid_a1")
    assert page.inner_text("#inbox-unread") == "1"
    page.click("a.inbox-link[href='/inbox/']")
    page.click("#inbox-list a:has-text('夜间巡查')")
    assert "今晚十点前完成一次巡查" in page.inner_text("main")
    assert page.inner_text("#inbox-unread") == "0"
    page.click("text=查看详情")
    page.wait_for_url(f"{base}/cases/**")
    log_out(page)

    log_in(page, base, "dispatcher")
    page.goto(f"{base}/notify/broadcasts/{b.pk}/")
    assert page.inner_text("#read-count") == "1" and page.inner_text("#unread-count") == "1"
    assert "B1网格员" in page.inner_text("#unread-users") and "A1网格员" in page.inner_text("#read-users")
    # The counts refresh by themselves (htmx every 15 s) when someone else reads it meanwhile.
    from zhizhi.notify import broadcast as bc
    from zhizhi.orgs.models import User

    bc.mark_read(User.objects.get(username="grid_b1"), b)
    page.wait_for_function("document.querySelector('#read-count').textContent.trim() === '2'", timeout=25000)
    assert page.inner_text("#unread-count") == "0"
