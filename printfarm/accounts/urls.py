"""Users, API tokens and the audit log (pages)."""

app_name = "accounts"
urlpatterns: list = []
