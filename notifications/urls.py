"""Notification pages (admins)."""

from django.urls import path

from notifications import views

app_name = "notifications"
urlpatterns = [
    path("notifications/", views.notifications_page, name="page"),
    path("notifications/log/", views.notification_log, name="log"),
    path("notifications/channels/add/", views.channel_edit, name="channel_add"),
    path("notifications/channels/<int:pk>/", views.channel_edit, name="channel_edit"),
    path("notifications/channels/<int:pk>/delete/", views.channel_delete, name="channel_delete"),
    path("notifications/channels/<int:pk>/test/", views.channel_test, name="channel_test"),
    path("notifications/rules/add/", views.rule_edit, name="rule_add"),
    path("notifications/rules/<int:pk>/", views.rule_edit, name="rule_edit"),
    path("notifications/rules/<int:pk>/delete/", views.rule_delete, name="rule_delete"),
]
