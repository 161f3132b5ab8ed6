"""factory_boy factories: printers are created through the service, so each has its status row."""

from __future__ import annotations

from typing import Any

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone
from factory.django import DjangoModelFactory

from printers.models import Printer
from printers.services import printer_create, printer_status_record_many
from printers.state import PrinterStatus, State
from printfarm.accounts.models import Role
from printfarm.accounts.roles import set_role

PASSWORD = "correct horse battery staple"
# Nothing listens on the discard port: connecting is refused at once.
UNREACHABLE_URL = "http://127.0.0.1:9"


class UserFactory(DjangoModelFactory):
    """`UserFactory(role=Role.VIEWER)`; an admin unless told, so a test may do anything."""

    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"operator{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def save_password(obj, create: bool, extracted: Any, **kwargs: Any) -> None:
        if create:
            obj.save()

    @factory.post_generation
    def role(obj, create: bool, extracted: Role | None, **kwargs: Any) -> None:
        if create:
            set_role(obj, extracted or Role.ADMIN)


class PrinterFactory(DjangoModelFactory):
    """`PrinterFactory(tags=["lab-a"])`; goes through printers.services.printer_create."""

    class Meta:
        model = Printer

    name = factory.Sequence(lambda n: f"printer-{n:03d}")
    protocol = Printer.Protocol.MOONRAKER
    base_url = UNREACHABLE_URL
    api_key = ""
    enabled = True
    location = ""

    @classmethod
    def _create(cls, model_class: type[Printer], *args: Any, tags: Any = (), **kwargs: Any) -> Printer:
        return printer_create(fields=kwargs, tags=tags)


def set_status(printer: Printer, state: State = State.IDLE, **fields: Any) -> Printer:
    """Record a reading for `printer` as the poller would; returns it reloaded with status."""
    printer_status_record_many(
        readings=[(printer.pk, PrinterStatus(state=state, **fields))], now=timezone.now()
    )
    return Printer.objects.with_status().get(pk=printer.pk)
