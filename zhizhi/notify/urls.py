"""The inbox (/inbox/) and staff broadcasts (/notify/broadcasts/); every page needs a login."""

from django.urls import path

from zhizhi.notify import views

urlpatterns = [
    path("inbox/", views.inbox, name="inbox"),
    path("inbox/read-all/", views.inbox_read_all, name="inbox_read_all"),
    path("inbox/<int:pk>/", views.inbox_message, name="inbox_message"),
    path("notify/broadcasts/", views.broadcast_list, name="broadcast_list"),
    path("notify/broadcasts/new/", views.broadcast_new, name="broadcast_new"),
    path("notify/broadcasts/<int:pk>/", views.broadcast_detail, name="broadcast_detail"),
]
