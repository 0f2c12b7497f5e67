"""/cockpit/indicators/: the list of indicators by scene, and the checked form to add or edit one.

Who may edit: street leaders and command-centre dispatchers (and anyone granted `change` on
indicators); staff who may see the cockpit may read the list."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from zhizhi.cockpit import services
from zhizhi.cockpit.forms import IndicatorForm, catalog
from zhizhi.cockpit.models import Indicator
from zhizhi.problems import Conflict
from zhizhi.views import forbidden_page

can_edit = services.can_edit_indicators
can_read = services.can_read_indicators


@login_required
def indicator_list(request: HttpRequest) -> HttpResponse:
    if not can_read(request.user):
        return forbidden_page(request, "无权查看指标", "You may not see the indicators")
    scene = request.GET.get("scene", "")
    rows = Indicator.objects.all()
    if scene:
        rows = rows.filter(scene=scene)
    groups = []
    for code, name in Indicator.SCENES:
        items = [i for i in rows if i.scene == code]
        if items:
            groups.append({"code": code, "name": name, "indicators": items})
    return render(
        request,
        "cockpit/indicator_list.html",
        {
            "groups": groups,
            "scenes": Indicator.SCENES,
            "scene": scene,
            "total": sum(len(g["indicators"]) for g in groups),
            "can_edit": can_edit(request.user),
        },
    )


def _form_page(
    request: HttpRequest,
    form: IndicatorForm,
    obj: Indicator | None,
    *,
    status: int = 200,
    conflict: bool = False,
) -> HttpResponse:
    return render(
        request,
        "cockpit/indicator_form.html",
        {"form": form, "obj": obj, "catalog": catalog(), "conflict": conflict},
        status=status,
    )


@login_required
def indicator_create(request: HttpRequest) -> HttpResponse:
    if not can_edit(request.user):
        return forbidden_page(request, "无权新增指标", "You may not add indicators")
    if request.method != "POST":
        return _form_page(request, IndicatorForm(), None)
    form = IndicatorForm(request.POST)
    if not form.is_valid():
        return _form_page(request, form, None, status=400)
    form.save()
    messages.success(request, f"已新增指标 {form.instance.code}")
    return redirect("cockpit_indicators")


@login_required
def indicator_edit(request: HttpRequest, pk: int) -> HttpResponse:
    if not can_edit(request.user):
        return forbidden_page(request, "无权修改指标", "You may not change indicators")
    obj = get_object_or_404(Indicator, pk=pk)
    if request.method != "POST":
        return _form_page(request, IndicatorForm(instance=obj), obj)
    form = IndicatorForm(request.POST, instance=obj)
    if not form.is_valid():
        return _form_page(request, form, obj, status=400)
    try:
        form.instance.expect_version(int(request.POST.get("version") or obj.version))
        form.save()
    except (Conflict, ValueError):
        fresh = get_object_or_404(Indicator, pk=pk)
        return _form_page(request, IndicatorForm(instance=fresh), fresh, status=409, conflict=True)
    messages.success(request, f"已保存指标 {obj.code}")
    return redirect("cockpit_indicators")
