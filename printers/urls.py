"""Printer pages and their actions."""

from django.urls import path

from printers import bulk_views, camera_views, views

app_name = "printers"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("printers/add/", views.printer_add, name="add"),
    path("printers/test-connection/", views.test_connection, name="test_connection"),
    path("printers/<int:pk>/", views.printer_detail, name="detail"),
    path("printers/<int:pk>/edit/", views.printer_edit, name="edit"),
    path("printers/<int:pk>/delete/", views.printer_delete_view, name="delete"),
    # Same name, with the printer: a blank API key then means "the stored one".
    path("printers/<int:pk>/test-connection/", views.test_connection, name="test_connection"),
    path("printers/<int:pk>/command/<slug:name>/", views.printer_command, name="command"),
    path("printers/<int:pk>/bed-cleared/", views.bed_cleared, name="bed_cleared"),
    path("printers/<int:pk>/thumbnail/<str:key>/", views.printer_thumbnail, name="thumbnail"),
    path("printers/<int:pk>/camera/snapshot", camera_views.camera_snapshot, name="camera_snapshot"),
    path("printers/<int:pk>/camera/stream", camera_views.camera_stream, name="camera_stream"),
    path("cameras/", camera_views.camera_wall, name="cameras"),
    path("printers/bulk/", bulk_views.bulk_action_view, name="bulk"),
    path("printers/clear-beds/", bulk_views.clear_beds_view, name="clear_beds"),
    path("poller-health/", views.poller_health_banner, name="poller_health"),
]
