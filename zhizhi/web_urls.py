"""Server-rendered pages: home, the generic registry pages, reveal, logs and the map."""

from django.urls import include, path

from zhizhi import views
from zhizhi.geo import views as geo_views

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/login/", views.LoginView.as_view(), name="login"),
    path("accounts/logout/", views.logout_view, name="logout"),
    path("r/<str:key>/", views.registry_list, name="registry_list"),
    path("r/<str:key>/new/", views.registry_create, name="registry_create"),
    path("r/<str:key>/<int:pk>/", views.registry_detail, name="registry_detail"),
    path("r/<str:key>/<int:pk>/edit/", views.registry_edit, name="registry_edit"),
    path("r/<str:key>/<int:pk>/reveal/<str:field_name>/", views.reveal_value, name="reveal_value"),
    path("logs/reveals/", views.reveal_log, name="reveal_log"),
    path("logs/changes/", views.change_log, name="change_log"),
    path("map/", geo_views.map_page, name="map"),
    path("map/grids.geojson", geo_views.grids_geojson, name="map_grids"),
    path("map/buildings.geojson", geo_views.buildings_geojson, name="map_buildings"),
    path("map/grid/<int:pk>/", geo_views.grid_panel, name="map_grid_panel"),
    path("map/locate/", geo_views.locate_view, name="map_locate"),
    path("cases/", include("zhizhi.cases.urls")),
    path("intake/", include("zhizhi.intake.urls")),
    path("intake/text/", include("zhizhi.intake.urls_text")),
    path("cockpit/", include("zhizhi.cockpit.urls")),
    path("", include("zhizhi.notify.urls")),
    path("intake/police110/", include("zhizhi.intake.urls_police110")),
    path("alerts/", include("zhizhi.alerts.urls")),
    path("emergency/", include("zhizhi.cockpit.emergency.urls")),
]
