"""Cockpit pages under /cockpit/: the big screen, its drill-down and live stream, the role dashboards."""

from django.urls import path

from zhizhi.cockpit import indicator_views, views

urlpatterns = [
    path("", views.big_screen, name="cockpit_screen"),
    path("r/<int:pk>/", views.big_screen, name="cockpit_region"),
    path("r/<int:pk>/areas.geojson", views.areas, name="cockpit_areas"),
    path("stream/", views.stream, name="cockpit_stream"),
    path("dashboard/", views.dashboard, name="cockpit_dashboard"),
    path("indicators/", indicator_views.indicator_list, name="cockpit_indicators"),
    path("indicators/new/", indicator_views.indicator_create, name="cockpit_indicator_create"),
    path("indicators/<int:pk>/", indicator_views.indicator_edit, name="cockpit_indicator_edit"),
]
