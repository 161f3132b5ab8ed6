"""Users, API tokens and the audit log (pages)."""

from django.urls import path

from printfarm.accounts import display_views, views

app_name = "accounts"
urlpatterns = [
    path("users/", views.user_list, name="users"),
    path("users/add/", views.user_add, name="user_add"),
    path("users/<int:pk>/", views.user_detail, name="user"),
    path("users/<int:pk>/role/", views.user_role, name="user_role"),
    path("users/<int:pk>/disable/", views.user_disable, name="user_disable"),
    path("users/<int:pk>/enable/", views.user_enable, name="user_enable"),
    path("users/<int:pk>/password/", views.user_password, name="user_password"),
    path("account/tokens/", views.token_list, name="tokens"),
    path("account/tokens/<int:pk>/revoke/", views.token_revoke_view, name="token_revoke"),
    path("account/password/", views.password_change, name="password_change"),
    path("audit/", views.audit_log, name="audit"),
    path("displays/", display_views.display_list, name="displays"),
    path("displays/<int:pk>/revoke/", display_views.display_revoke_view, name="display_revoke"),
    path("display/<str:secret>/", display_views.display_open, name="display_open"),
]
