"""Excel/CSV import and export pages."""

from django.urls import path

from zhizhi import exchange_views as views

app_name = "exchange"

urlpatterns = [
    path("", views.index, name="index"),
    path("import/", views.upload, name="upload"),
    path("jobs/<int:pk>/", views.job, name="job"),
    path("jobs/<int:pk>/progress/", views.job_progress, name="progress"),
    path("export/<str:key>.<str:fmt>", views.export, name="export"),
    path("template/<str:key>.<str:fmt>", views.blank, name="template"),
]
