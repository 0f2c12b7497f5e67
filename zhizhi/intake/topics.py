"""Keyword topics from the mailbox (市长信箱 / 居民信箱: cases with channel "mailbox").

For a period (a month by default) the messages' keywords (jieba TF-IDF, stop words dropped) and
phrases (two adjacent words seen in at least two messages) are counted once per message, compared
with the period of the same length just before, and ranked by frequency (ties: growth) or by growth.
Each topic keeps the ids of the messages behind it, per community (the grid's parent region), so
the page can show them and turn a topic into a 红茶议事会 proposal (`TopicProposal`).
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from zhizhi import clock
from zhizhi.cases import services as case_services
from zhizhi.cases.models import Case, Category
from zhizhi.geo.models import Region
from zhizhi.intake.models import TopicProposal
from zhizhi.intake.textfeatures import add_words, keywords, sub_words, tokens

MAILBOX_CHANNELS = ("mailbox",)
PER_MESSAGE = 6  # keywords taken from one message


@dataclass
class Topic:
    phrase: str
    count: int
    previous: int
    case_ids: list[int] = field(default_factory=list)

    @property
    def growth(self) -> float:
        """Relative change against the previous period (a new topic counts as +count)."""
        return (self.count - self.previous) / max(self.previous, 1)


def month_bounds(month: str | None = None) -> tuple[dt.datetime, dt.datetime]:
    """[first day, first day of next month) of "YYYY-MM" (default: the current month), local time."""
    now = clock.now()
    if month:
        year, mon = (int(x) for x in month.split("-")[:2])
        start = now.replace(year=year, month=mon, day=1, hour=0, minute=0, second=0, microsecond=0)
    else:
        start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + dt.timedelta(days=32)).replace(day=1)
    return start, end


def previous_bounds(start: dt.datetime, end: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    if start.day == 1 and end.day == 1 and (end - start).days in (28, 29, 30, 31):
        prev_start = (start - dt.timedelta(days=1)).replace(day=1)
        return prev_start, start
    return start - (end - start), start


def message_terms(text: str) -> tuple[set[str], set[str]]:
    """The keywords of one message and its phrases (two adjacent words, one of them a keyword)."""
    words = tokens(text)
    found = {part for word in keywords(text, top=PER_MESSAGE) for part in sub_words(word)}
    phrases = {a + b for a, b in itertools.pairwise(words) if a in found or b in found}
    return found, phrases - found


def mailbox_cases(user: Any, start: dt.datetime, end: dt.datetime, community: Region | None) -> Any:
    qs = Case.objects.all() if user is None else case_services.cases_visible_to(user)
    qs = qs.filter(channel__in=MAILBOX_CHANNELS, reported_at__gte=start, reported_at__lt=end)
    if community is not None:
        qs = qs.filter(area_path__startswith=community.path)
    return qs


def rank(
    start: dt.datetime,
    end: dt.datetime,
    *,
    community: Region | None = None,
    user: Any = None,
    top: int = 20,
    order: str = "count",
) -> list[Topic]:
    """Topics of [start, end) against the previous period; `order` "count" or "growth"."""
    prev_start, _ = previous_bounds(start, end)
    add_words(w for kw in Category.objects.values_list("keywords", flat=True) for w in (kw or []))
    now_terms: dict[str, list[int]] = defaultdict(list)
    before: Counter[str] = Counter()
    phrases: set[str] = set()
    rows = mailbox_cases(user, prev_start, end, community).values_list(
        "pk", "title", "description", "reported_at"
    )
    for pk, title, description, at in rows.iterator(chunk_size=2000):
        found, joined = message_terms(f"{title} {description}")
        terms = found | joined
        if at >= start:
            phrases |= joined
            for term in terms:
                now_terms[term].append(pk)
        else:
            before.update(terms)
    topics = []
    for term, ids in now_terms.items():
        # A phrase seen once is noise; a single keyword may still lead in a quiet month.
        if len(ids) < 2 and term in phrases:
            continue
        topics.append(Topic(term, len(ids), before.get(term, 0), sorted(ids)))
    # A phrase that only repeats its keyword's messages is folded into the longer phrase.
    topics = _fold(topics)
    if order == "growth":
        topics.sort(key=lambda t: (-t.growth, -t.count, t.phrase))
    else:
        topics.sort(key=lambda t: (-t.count, -t.growth, t.phrase))
    return topics[:top]


def _fold(topics: list[Topic]) -> list[Topic]:
    by_ids: dict[tuple[int, ...], list[Topic]] = defaultdict(list)
    for t in topics:
        by_ids[tuple(t.case_ids)].append(t)
    out = []
    for group in by_ids.values():
        group.sort(key=lambda t: -len(t.phrase))
        kept: list[Topic] = []
        for t in group:
            if not any(t.phrase in k.phrase for k in kept):
                kept.append(t)
        out.extend(kept)
    return out


def by_community(
    start: dt.datetime, end: dt.datetime, *, user: Any = None, top: int = 10
) -> dict[Region, list[Topic]]:
    """The ranking for each community that has mailbox messages in the period."""
    out = {}
    for community in Region.objects.filter(level="community").order_by("code"):
        ranked = rank(start, end, community=community, user=user, top=top)
        if ranked:
            out[community] = ranked
    return out


def propose(actor: Any, topic: Topic, community: Region | None = None, title: str = "") -> TopicProposal:
    """Turn a topic into a proposal for the next 红茶议事会 (the meeting module comes later)."""
    place = community.name if community else "全街道"
    return TopicProposal.objects.create(
        title=(title or f"{place}：{topic.phrase}（{topic.count}件信箱来信）")[:200],
        keywords=[topic.phrase],
        community=community,
        message_count=topic.count,
        case_ids=topic.case_ids[:1000],
        created_by=actor,
    )
