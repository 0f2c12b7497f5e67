"""Emergency pages under /emergency/ (included from zhizhi/web_urls.py)."""

from django.urls import path

from zhizhi.cockpit.emergency import views

urlpatterns = [
    path("", views.index, name="emergency_index"),
    path("new/", views.declare, name="emergency_declare"),
    path("tasks/<int:task_id>/mark/", views.mark, name="emergency_mark"),
    path("<int:pk>/", views.board, name="emergency_board"),
    path("<int:pk>/events/", views.events, name="emergency_events"),
    path("<int:pk>/help/", views.help_list, name="emergency_help"),
    path("<int:pk>/help/<int:help_id>/resolve/", views.resolve_help, name="emergency_resolve_help"),
    path("<int:pk>/close/", views.close, name="emergency_close"),
    path("<int:pk>/tasks/<int:task_id>/assign/", views.assign, name="emergency_assign"),
    path("<int:pk>/care/", views.care, name="emergency_care"),
    path("<int:pk>/reveal/", views.reveal, name="emergency_reveal"),
    path("<int:pk>/broadcast/", views.broadcast, name="emergency_broadcast"),
    path("<int:pk>/broadcasts/<int:broadcast_id>/", views.receipts, name="emergency_receipts"),
    path("<int:pk>/mine/", views.mine, name="emergency_mine"),
    path("<int:pk>/report/", views.report, name="emergency_report"),
    path("<int:pk>/report.xlsx", views.report_xlsx, name="emergency_report_xlsx"),
]
