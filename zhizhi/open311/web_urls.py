"""The page that issues and revokes Open311 integrator keys (/open311/keys/)."""

from django.urls import path

from zhizhi.open311 import views

urlpatterns = [path("", views.keys_page, name="open311_keys")]
