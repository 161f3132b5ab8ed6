"""App config for jobs (G-code library, queue, dispatch; see the jobs issue)."""

from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    default_auto_field = "django.db.models.BigAutoField"
