"""App config for printers."""

from django.apps import AppConfig


class PrintersConfig(AppConfig):
    name = "printers"
    default_auto_field = "django.db.models.BigAutoField"
