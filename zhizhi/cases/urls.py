"""Case pages under /cases/ (included from zhizhi/web_urls.py)."""

from django.urls import path

from zhizhi.cases import views

urlpatterns = [
    path("", views.index, name="cases_index"),
    path("dispatch/", views.dispatch_bench, name="cases_dispatch"),
    path("unit/", views.unit_bench, name="cases_unit"),
    path("mobile/", views.mobile_bench, name="cases_mobile"),
    path("approvals/", views.approvals, name="cases_approvals"),
    path("kpi/", views.kpi_page, name="cases_kpi"),
    path("kpi/export.xlsx", views.kpi_export, name="cases_kpi_export"),
    path("rlist/", views.rlist_page, name="cases_rlist"),
    path("rlist/export.xlsx", views.rlist_export, name="cases_rlist_export"),
    path("rate/<str:token>/", views.rate_page, name="cases_rate"),
    path("<int:pk>/", views.case_detail, name="case_detail"),
    path("<int:pk>/act/<str:action>/", views.case_action, name="case_action"),
    path("<int:pk>/photos/<int:photo_id>/", views.case_photo, name="case_photo"),
    path("<str:number>/", views.case_by_number, name="case_by_number"),
]
