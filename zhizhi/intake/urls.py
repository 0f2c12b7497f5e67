"""Intake pages under /intake/ (report, follow and outline are public; the rest need a login)."""

from django.urls import path

from zhizhi.intake import views

urlpatterns = [
    path("report/", views.report, name="intake_report"),
    path("report/code/", views.send_code, name="intake_send_code"),
    path("follow/<str:token>/", views.follow, name="intake_follow"),
    path("outline.geojson", views.outline, name="intake_outline"),
    path("operator/", views.operator, name="intake_operator"),
    path("import/", views.import_page, name="intake_import"),
    path("patrol/", views.patrol, name="intake_patrol"),
]
