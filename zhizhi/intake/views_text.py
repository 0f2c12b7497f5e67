"""Dispatcher pages of the text tools (thin: every change is one call into dedup/suggest/topics).

- /intake/text/duplicates/: likely duplicate pairs side by side, one-click 合并 (the core's
  `merge_case`) or 保留 (`dedup.keep_pair`, recorded on the case timeline);
- /intake/text/topics/: the mailbox keyword topics of a month, per community, with the messages
  behind each and a button that files a 红茶议事会 proposal;
- /intake/text/accuracy/: top-1 / top-3 accuracy of the category suggestions per 大类.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from zhizhi.cases import services as case_services
from zhizhi.cases.models import Case
from zhizhi.geo.models import Region
from zhizhi.intake import dedup, suggest, topics
from zhizhi.intake.models import TopicProposal
from zhizhi.problems import Forbidden, Invalid
from zhizhi.views import forbidden_page, problem_text

DESK_ROLES = ("dispatcher", "street_leader")
TOPIC_ROLES = (*DESK_ROLES, "community_worker")
TOPIC_CACHE_SECONDS = 300


def _allow(request: HttpRequest, roles: tuple[str, ...]) -> HttpResponse | None:
    user: Any = request.user
    if user.is_superuser or (user.role or "") in roles:
        return None
    return forbidden_page(request, "您的角色不能使用此页面", "Your role cannot use this page")


@login_required
def duplicates(request: HttpRequest) -> HttpResponse:
    denied = _allow(request, DESK_ROLES)
    if denied:
        return denied
    pairs = dedup.likely_pairs(request.user)
    return render(
        request,
        "intake/text_duplicates.html",
        {"pairs": pairs, "high": dedup.high_threshold(), "low": dedup.low_threshold()},
    )


@login_required
@require_POST
def decide(request: HttpRequest) -> HttpResponse:
    denied = _allow(request, DESK_ROLES)
    if denied:
        return denied
    visible = case_services.cases_visible_to(request.user)
    case = visible.filter(pk=request.POST.get("case") or 0).first()
    other = visible.filter(pk=request.POST.get("other") or 0).first()
    if case is None or other is None:
        return forbidden_page(request, "案件不存在或不在您的辖区内", "No such case in your area")
    try:
        if request.POST.get("decision") == "merge":
            case_services.merge_case(request.user, case.pk, into=other.pk, note="坐席确认重复，合并")
            messages.success(request, f"{case.number} 已合并到 {other.number}")
        else:
            dedup.keep_pair(request.user, case, other)
            messages.success(request, f"{case.number} 与 {other.number} 不是同一问题，已保留")
    except (Invalid, Forbidden, case_services.IllegalAction) as exc:
        messages.error(request, _error_text(exc))
    return redirect("intake_text:duplicates")


def _error_text(exc: Exception) -> str:
    problems = list(getattr(exc, "problems", None) or [])
    if getattr(exc, "problem", None) is not None:
        problems.append(exc.problem)  # type: ignore[attr-defined]
    return "；".join(problem_text(p) for p in problems) or str(exc)


def _communities(user: Any) -> list[Region]:
    qs = Region.objects.filter(level="community").order_by("code")
    if user.is_superuser:
        return list(qs)
    paths = user.scope_paths()
    return [c for c in qs if any(c.path.startswith(p) or p.startswith(c.path) for p in paths)]


@login_required
def topics_page(request: HttpRequest) -> HttpResponse:
    denied = _allow(request, TOPIC_ROLES)
    if denied:
        return denied
    month = request.GET.get("month") or ""
    try:
        start, end = topics.month_bounds(month or None)
    except (ValueError, TypeError):
        start, end = topics.month_bounds(None)
    communities = _communities(request.user)
    community = next((c for c in communities if str(c.pk) == request.GET.get("community")), None)
    order = "growth" if request.GET.get("order") == "growth" else "count"
    # jieba reads every letter of two months (seconds for thousands): the page reuses a recent result.
    key = f"intake:topics:{request.user.pk}:{start:%Y%m}:{community.pk if community else 0}:{order}"
    ranked = cache.get(key)
    if ranked is None:
        ranked = topics.rank(start, end, community=community, user=request.user, order=order)
        cache.set(key, ranked, TOPIC_CACHE_SECONDS)
    ids = {pk for t in ranked for pk in t.case_ids[:10]}
    cases = {c.pk: c for c in Case.objects.filter(pk__in=ids)}
    rows = [(t, [cases[pk] for pk in t.case_ids[:10] if pk in cases]) for t in ranked]
    return render(
        request,
        "intake/text_topics.html",
        {
            "rows": rows,
            "month": f"{start:%Y-%m}",
            "communities": communities,
            "community": community,
            "order": order,
            "proposals": TopicProposal.objects.order_by("-created_at")[:20],
        },
    )


@login_required
@require_POST
def propose(request: HttpRequest) -> HttpResponse:
    denied = _allow(request, TOPIC_ROLES)
    if denied:
        return denied
    phrase = (request.POST.get("phrase") or "").strip()
    month = request.POST.get("month") or None
    community = next(
        (c for c in _communities(request.user) if str(c.pk) == request.POST.get("community")), None
    )
    try:
        start, end = topics.month_bounds(month)
    except (ValueError, TypeError):
        start, end = topics.month_bounds(None)
    found = next(
        (
            t
            for t in topics.rank(start, end, community=community, user=request.user, top=200)
            if t.phrase == phrase
        ),
        None,
    )
    if found is None:
        messages.error(request, "该话题在本月已不存在 / This topic is no longer in the month's ranking")
    else:
        proposal = topics.propose(request.user, found, community)
        messages.success(request, f"已提交红茶议事会议题：{proposal.title}")
    query = f"?month={start:%Y-%m}" + (f"&community={community.pk}" if community else "")
    return redirect(f"/intake/text/topics/{query}")


@login_required
def accuracy(request: HttpRequest) -> HttpResponse:
    denied = _allow(request, DESK_ROLES)
    if denied:
        return denied
    return render(request, "intake/text_accuracy.html", {"report": suggest.accuracy_report()})
