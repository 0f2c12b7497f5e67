"""Intake pages under /intake/."""

from django.urls import path

from zhizhi.intake import views

app_name = "intake"

urlpatterns = [
    path("report/", views.report, name="report"),
]
