"""Pages of the text tools under /intake/text/: likely duplicates, keyword topics, suggestion accuracy."""

from django.urls import path

from zhizhi.intake import views_text

app_name = "intake_text"

urlpatterns = [
    path("duplicates/", views_text.duplicates, name="duplicates"),
    path("duplicates/decide/", views_text.decide, name="decide"),
    path("topics/", views_text.topics_page, name="topics"),
    path("topics/propose/", views_text.propose, name="propose"),
    path("accuracy/", views_text.accuracy, name="accuracy"),
]
