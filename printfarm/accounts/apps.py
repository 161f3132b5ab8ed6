"""Users' roles, API tokens and the audit log."""

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "printfarm.accounts"
    verbose_name = "Users, tokens and audit"
    label = "accounts"
    default_auto_field = "django.db.models.BigAutoField"
