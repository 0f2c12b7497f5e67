"""/intake/police110/: the 110 non-police calls upload (dispatchers and leaders)."""

from django.urls import path

from zhizhi.intake import views_police110

urlpatterns = [path("", views_police110.import_page, name="intake_police110")]
