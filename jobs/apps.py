"""App config for jobs: the G-code library, the queue, dispatch, history."""

from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Files, queue and history"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from jobs import signals  # noqa: F401 - connects the receivers
        from jobs.presenters import card_jobs
        from printers.presenters import register_card_jobs

        register_card_jobs(card_jobs)  # the job line on each printer card
