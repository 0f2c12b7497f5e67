"""Alert pages under /alerts/ (included from zhizhi/web_urls.py). A plain list: other alert pages
(enterprise triggers, care) append their own paths here."""

from django.urls import path

import zhizhi.alerts.enterprise_views as enterprise_views
from zhizhi.alerts import care_views, views

urlpatterns = [
    path("", views.board, name="alerts_board"),
    path("rows/", views.board_rows, name="alerts_board_rows"),
    path("stream/", views.stream, name="alerts_stream"),
    path("alarms/<int:pk>/", views.alarm_detail, name="alerts_alarm"),
    path("alarms/<int:pk>/ack/", views.alarm_acknowledge, name="alerts_alarm_ack"),
    path("alarms.geojson", views.alarms_geojson, name="alerts_alarms_geojson"),
    path("rules/", views.rule_list, name="alerts_rules"),
    path("rules/new/", views.rule_create, name="alerts_rule_create"),
    path("rules/<int:pk>/", views.rule_edit, name="alerts_rule_edit"),
    path("rules/<int:pk>/toggle/", views.rule_toggle, name="alerts_rule_toggle"),
    path("devices/", views.device_list, name="alerts_devices"),
    path("devices.geojson", views.devices_geojson, name="alerts_devices_geojson"),
    path("devices/<int:pk>/", views.device_detail, name="alerts_device"),
    path("devices/<int:pk>/token/", views.device_token, name="alerts_device_token"),
    path("devices/<int:pk>/overrides/<int:rule_id>/", views.device_override, name="alerts_device_override"),
    path("care/", care_views.care_list, name="alerts_care"),
    path("care/<int:pk>/", care_views.care_detail, name="alerts_care_detail"),
    path("care/<int:pk>/visit/", care_views.care_visit, name="alerts_care_visit"),
    path("risk/", care_views.risk_list, name="alerts_risk"),
    path("risk/<int:pk>/", care_views.risk_edit, name="alerts_risk_edit"),
    path("risk/import/", care_views.risk_import, name="alerts_risk_import"),
    path("risk/template.csv", care_views.risk_template, name="alerts_risk_template"),
    path("risk/matches/", care_views.risk_matches, name="alerts_risk_matches"),
    path("risk/people/<int:pk>/", care_views.risk_person, name="alerts_risk_person"),
    path("enterprises/", enterprise_views.enterprise_list, name="alerts_enterprises"),
    path("enterprises/<int:pk>/", enterprise_views.enterprise_detail, name="alerts_enterprise"),
]
