"""GeoReport v2 under /open311/v2/ (each resource in .json and .xml)."""

from django.urls import re_path

from zhizhi.open311 import views

F = r"\.(?P<fmt>json|xml)$"
urlpatterns = [
    re_path(r"^discovery" + F, views.discovery, name="open311_discovery"),
    re_path(r"^services" + F, views.service_list, name="open311_services"),
    re_path(r"^services/(?P<code>[^/]+?)" + F, views.service_definition, name="open311_service"),
    # The path of the older draft, still used by some clients.
    re_path(r"^service/(?P<code>[^/]+?)" + F, views.service_definition, name="open311_service_alias"),
    re_path(r"^requests" + F, views.requests, name="open311_requests"),
    re_path(r"^requests/(?P<request_id>[^/]+?)" + F, views.request_detail, name="open311_request"),
    re_path(r"^tokens/(?P<token>[^/]+?)" + F, views.token_detail, name="open311_token"),
    re_path(r"^servicerequestupdates" + F, views.request_updates, name="open311_updates"),
]
