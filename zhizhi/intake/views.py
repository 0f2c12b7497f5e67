"""Intake pages: the resident report, the follow link, the operator form, import and patrol."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def report(request: HttpRequest) -> HttpResponse:
    return render(request, "intake/report.html", {})
