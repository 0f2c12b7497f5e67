"""Keyword topics from the mailbox: a hand fixture with known counts per month and community."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.cache import cache

from tests.factories import PASSWORD, Street
from zhizhi import clock
from zhizhi.cases import services
from zhizhi.intake import topics
from zhizhi.intake.models import TopicProposal

A = (120.1025, 30.305)  # grid A1, community A
B = (120.1125, 30.305)  # grid B1, community B
NOW = dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.UTC)
OCTOBER = dt.datetime(2026, 10, 12, 10, 0, tzinfo=dt.UTC)

# (when, where, title, description): 停车位 4× in November (3 in A, 1 in B) against 1× in October;
# 广场舞 2× in November, 3× in October (falling); 电梯 once in November.
LETTERS = [
    (NOW, A, "小区停车难", "晚上回家停车位太少，车只能停到马路上"),
    (NOW, A, "停车收费", "小区停车收费太贵，停车位还不够"),
    (NOW, A, "外来车辆占用停车位", "外来车辆停车不交费，业主停车难"),
    (NOW, B, "停车位规划", "希望规划更多停车位，解决停车难"),
    (NOW, A, "广场舞噪音", "广场舞音响太吵，晚上九点还在跳"),
    (NOW, B, "广场舞扰民", "广场舞音乐声音大，孩子没法写作业"),
    (NOW, A, "加装电梯", "老楼加装电梯的政策想了解一下"),
    (OCTOBER, A, "停车难", "小区停车位不够"),
    (OCTOBER, A, "广场舞", "广场舞音响声音太大"),
    (OCTOBER, A, "广场舞太吵", "广场舞噪音扰民"),
    (OCTOBER, B, "广场舞音乐", "广场舞音乐太响"),
]


@pytest.fixture
def mailbox(street: Street) -> Street:
    cache.clear()  # the topics page keeps a ranking for 5 minutes
    services.ensure_case_permissions()
    for i, (when, where, title, description) in enumerate(LETTERS):
        with clock.frozen_at(when):
            services.register_case(
                street.users["dispatcher"],
                title=title,
                description=description,
                channel="mailbox",
                external_id=f"JMXX-{i}",
                lng=where[0],
                lat=where[1],
            )
    # Another channel's case with the same words is not a mailbox message.
    with clock.frozen_at(NOW):
        services.register_case(
            street.users["dispatcher"], title="停车难", channel="hotline", lng=A[0], lat=A[1]
        )
    return street


def test_monthly_ranking_by_frequency_and_growth(mailbox: Street) -> None:
    """Words inside a keyword count too (停车难 → 停车); a shorter term with exactly the same messages
    is folded into the longer one (停车, 车位 → 停车位)."""
    with clock.frozen_at(NOW):
        start, end = topics.month_bounds("2026-11")
        ranked = topics.rank(start, end)
    first = ranked[0]
    assert first.phrase == "停车位" and first.count == 4 and first.previous == 1 and first.growth == 3.0
    assert len(first.case_ids) == 4
    dance = next(t for t in ranked if t.phrase == "广场舞")
    assert dance.count == 2 and dance.previous == 3 and dance.growth < 0
    by_growth = topics.rank(start, end, order="growth", top=200)
    assert by_growth.index(next(t for t in by_growth if t.phrase == "停车位")) < by_growth.index(
        next(t for t in by_growth if t.phrase == "广场舞")
    )
    # October against September: 广场舞 leads with 3.
    october = topics.rank(*topics.month_bounds("2026-10"))
    assert october[0].phrase == "广场舞" and october[0].count == 3 and october[0].previous == 0


def test_per_community(mailbox: Street) -> None:
    start, end = topics.month_bounds("2026-11")
    in_a = topics.rank(start, end, community=mailbox.communities["A"])
    in_b = topics.rank(start, end, community=mailbox.communities["B"])
    assert next(t for t in in_a if t.phrase == "停车位").count == 3
    assert next(t for t in in_b if t.phrase == "停车位").count == 1
    per = topics.by_community(start, end)
    assert set(per) == {mailbox.communities["A"], mailbox.communities["B"]}


def test_topic_becomes_a_proposal(mailbox: Street) -> None:
    start, end = topics.month_bounds("2026-11")
    top = topics.rank(start, end)[0]
    proposal = topics.propose(mailbox.users["community_a"], top, mailbox.communities["A"])
    assert proposal.keywords == ["停车位"] and proposal.message_count == 4
    assert sorted(proposal.case_ids) == top.case_ids and "A社区" in proposal.title


def test_topics_page_by_role_and_the_proposal_button(mailbox: Street, client) -> None:  # type: ignore[no-untyped-def]
    url = "/intake/text/topics/?month=2026-11"
    assert client.get(url).status_code == 302
    client.login(username="grid_a1", password=PASSWORD)
    assert client.get(url).status_code == 403
    client.login(username="community_a", password=PASSWORD)
    page = client.get(url)
    body = page.content.decode()
    assert page.status_code == 200 and "停车" in body and "提交红茶议事会" in body
    # The community worker sees only community A's letters: 停车 3, not 4.
    assert client.get(url + "&community=" + str(mailbox.communities["B"].pk)).status_code == 200
    done = client.post("/intake/text/topics/propose/", {"phrase": "停车位", "month": "2026-11"})
    assert done.status_code == 302
    proposal = TopicProposal.objects.get()
    assert proposal.message_count == 3 and proposal.created_by == mailbox.users["community_a"]
    client.login(username="dispatcher", password=PASSWORD)
    assert client.get(url).status_code == 200
    client.post("/intake/text/topics/propose/", {"phrase": "没有这个词", "month": "2026-11"})
    assert TopicProposal.objects.count() == 1
