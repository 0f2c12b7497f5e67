"""Inbox and broadcast pages: thin views over notify.services and notify.broadcast."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from zhizhi.notify import broadcast as bc
from zhizhi.notify.models import Broadcast, InboxMessage
from zhizhi.orgs.models import OrgUnit
from zhizhi.permissions import ROLES
from zhizhi.problems import Forbidden, Invalid
from zhizhi.views import forbidden_page, problem_text

PAGE_SIZE = 50


# --- inbox ---------------------------------------------------------------------------------------
@login_required
def inbox(request: HttpRequest) -> HttpResponse:
    """/inbox/: the signed-in user's messages, newest first (?unread=1 for the unread ones)."""
    user: Any = request.user
    messages = InboxMessage.objects.filter(user=user)
    only_unread = request.GET.get("unread") == "1"
    if only_unread:
        messages = messages.filter(read_at__isnull=True)
    page = Paginator(messages, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "notify/inbox.html", {"page": page, "only_unread": only_unread})


@login_required
def inbox_message(request: HttpRequest, pk: int) -> HttpResponse:
    """Opening a message marks it read (and its broadcast receipt); opening it again changes nothing."""
    user: Any = request.user
    message = get_object_or_404(InboxMessage, pk=pk, user=user)
    bc.mark_read(user, message)
    message.refresh_from_db()
    return render(request, "notify/inbox_message.html", {"message": message})


@login_required
@require_POST
def inbox_read_all(request: HttpRequest) -> HttpResponse:
    bc.mark_all_read(request.user)
    return redirect("inbox")


# --- broadcasts ----------------------------------------------------------------------------------
@login_required
def broadcast_list(request: HttpRequest) -> HttpResponse:
    """Sent broadcasts with their delivered and read counts (all for leaders/dispatchers, else own)."""
    if not bc.may_broadcast(request.user):
        return forbidden_page(request, "您的角色不能查看群发通知", "Your role cannot view broadcasts")
    qs = (
        bc.visible_broadcasts(request.user)
        .annotate(
            read=Count("recipients", filter=Q(recipients__read_at__isnull=False)),
            delivered=Count("recipients", filter=Q(recipients__delivered_at__isnull=False)),
        )
        .order_by("-created_at", "-id")
    )
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    # Bring the shown rows' delivery stamps up to date in one statement, then count them again.
    behind = [row.pk for row in page if row.delivered < row.total]  # type: ignore[attr-defined]
    if bc.sync_deliveries(behind):
        page.object_list = list(qs.filter(pk__in=[row.pk for row in page]))
    return render(request, "notify/broadcast_list.html", {"page": page, "may_send": True})


@login_required
def broadcast_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The sender's (or a leader's) view with who has and hasn't read; a recipient's view is the
    message itself, and opening it marks it read."""
    b = Broadcast.objects.select_related("sender").filter(pk=pk).first()
    if b is None:
        raise Http404
    if bc.visible_broadcasts(request.user).filter(pk=pk).exists():
        report = bc.receipts(b)
        readers = b.recipients.filter(read_at__isnull=False).select_related("user", "user__org_unit")
        return render(
            request,
            "notify/broadcast_detail.html",
            {
                "b": b,
                "r": report,
                "readers": readers.order_by("read_at"),
                "by_channel": [(ch, bc.CHANNELS.get(ch, ch), c) for ch, c in report["by_channel"].items()],
            },
        )
    if bc.received_by(request.user, pk) is None:
        raise Http404
    bc.mark_read(request.user, b)
    return render(request, "notify/broadcast_received.html", {"b": b})


def _form_context(request: HttpRequest, form: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    user: Any = request.user
    units = OrgUnit.objects.filter(active=True)
    reach = bc.reach_q(user)
    if reach is not None and not user.is_superuser:
        mine = bc.unit_tree([user.org_unit_id]) if user.org_unit_id else set()
        units = units.filter(pk__in=mine)
    return {
        "form": form,
        "problems": problems,
        "roles": [(k, v) for k, v in ROLES if k != "resident"],
        "units": units,
        "channels": bc.CHANNELS,
        "may_all": bc.may_broadcast_all(user),
        "request_id": form.get("request_id") or uuid.uuid4().hex,
    }


@login_required
def broadcast_new(request: HttpRequest) -> HttpResponse:
    """The send form; a hidden request id makes a double submit send once."""
    if not bc.may_broadcast(request.user):
        return forbidden_page(request, "您的角色不能群发通知", "Your role may not send broadcasts")
    if request.method != "POST":
        return render(
            request, "notify/broadcast_form.html", _form_context(request, {"channels": ["inbox"]}, [])
        )
    post = request.POST
    form: dict[str, Any] = {
        "subject": post.get("subject", ""),
        "body": post.get("body", ""),
        "link": post.get("link", ""),
        "roles": post.getlist("roles"),
        "units": post.getlist("units"),
        "channels": post.getlist("channels"),
        "all_staff": post.get("all_staff") == "1",
        "request_id": post.get("request_id", ""),
    }
    unit_ids = [int(u) for u in form["units"] if str(u).isdigit()]
    try:
        b = bc.send_broadcast(
            request.user,
            subject=form["subject"],
            body=form["body"],
            roles=form["roles"],
            units=list(OrgUnit.objects.filter(pk__in=unit_ids)),
            all_staff=form["all_staff"],
            channels=form["channels"],
            link=form["link"],
            request_id=form["request_id"],
        )
    except Forbidden as exc:
        return forbidden_page(request, exc.zh, exc.en)
    except Invalid as exc:
        problems = [problem_text(p) for p in exc.problems]
        return render(
            request, "notify/broadcast_form.html", _form_context(request, form, problems), status=400
        )
    return redirect("broadcast_detail", pk=b.pk)
