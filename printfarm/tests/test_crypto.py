"""Printer API keys at rest: ciphertext in the column, plaintext in Python, keys that rotate."""

from __future__ import annotations

import logging

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from printers.models import Printer
from printers.services import printer_update
from printers.tests.factories import PrinterFactory
from printfarm import crypto
from printfarm.env import env_fernet_key

SECRET = "sk-octoprint-7f3a9c-DO-NOT-LEAK"
KEY_1, KEY_2 = Fernet.generate_key().decode(), Fernet.generate_key().decode()
BEFORE = ("printers", "0002_printer_auto_clear_printer_bed_clear")
ENCRYPTED = ("printers", "0003_printer_api_key_encrypted")


def stored(printer_pk: int) -> str:
    """The column as the database holds it, past the field's conversion."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key FROM printers_printer WHERE id = %s", [printer_pk])
        return cursor.fetchone()[0]


def store_raw(printer_pk: int, value: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("UPDATE printers_printer SET api_key = %s WHERE id = %s", [value, printer_pk])


@pytest.mark.django_db
def test_column_holds_a_token_and_python_sees_the_key():
    printer = PrinterFactory(api_key=SECRET)
    raw = stored(printer.pk)
    assert raw.startswith(crypto.TOKEN_PREFIX)
    assert SECRET not in raw
    assert Printer.objects.get(pk=printer.pk).api_key == SECRET


@pytest.mark.django_db
def test_longest_key_fits():
    # A 200-character key (the form's limit) is a 356-character token: the column is text.
    long_key = "k" * 200
    printer = PrinterFactory(api_key=long_key)
    assert len(stored(printer.pk)) > 200
    assert Printer.objects.get(pk=printer.pk).api_key == long_key


@pytest.mark.django_db
def test_values_and_values_list_give_plaintext():
    # printers.coordinator reads its configuration with .values("api_key").
    printer = PrinterFactory(api_key=SECRET)
    assert list(Printer.objects.filter(pk=printer.pk).values("api_key")) == [{"api_key": SECRET}]
    assert list(Printer.objects.values_list("api_key", flat=True)) == [SECRET]


@pytest.mark.django_db
def test_blank_key_stays_blank_and_filterable():
    printer = PrinterFactory(api_key="")
    assert stored(printer.pk) == ""
    assert Printer.objects.filter(api_key="").get() == printer


@pytest.mark.django_db
def test_every_write_is_a_fresh_token_of_the_new_key():
    # A "." is never in a token's urlsafe base64, so the new key shows in one only when stored
    # in clear (a bare "k2" turned up by chance in about one token in forty).
    new_key = "k2.key"
    printer = PrinterFactory(api_key=SECRET)
    first = stored(printer.pk)
    printer_update(printer=printer, fields={"api_key": new_key})
    second = stored(printer.pk)
    assert second != first and new_key not in second
    assert Printer.objects.get(pk=printer.pk).api_key == new_key
    printer_update(printer=Printer.objects.get(pk=printer.pk), fields={"location": "Shelf 2"})
    assert stored(printer.pk) != second  # same key, new token (random IV)
    assert Printer.objects.get(pk=printer.pk).api_key == new_key


@pytest.mark.django_db
def test_dedicated_key_encrypts_and_old_keys_still_decrypt(settings):
    settings.PRINTFARM_ENCRYPTION_KEY = KEY_1
    printer = PrinterFactory(api_key=SECRET)
    assert Fernet(KEY_1).decrypt(stored(printer.pk).encode()).decode() == SECRET

    settings.PRINTFARM_ENCRYPTION_KEY, settings.PRINTFARM_ENCRYPTION_KEY_OLD = KEY_2, [KEY_1]
    assert Printer.objects.get(pk=printer.pk).api_key == SECRET
    assert crypto.reencrypt_all() == 1
    # Now under the new key alone: the old one can go.
    assert Fernet(KEY_2).decrypt(stored(printer.pk).encode()).decode() == SECRET
    settings.PRINTFARM_ENCRYPTION_KEY_OLD = []
    assert Printer.objects.get(pk=printer.pk).api_key == SECRET


@pytest.mark.django_db
def test_rotated_secret_key_decrypts_with_the_old_one_listed(settings):
    settings.PRINTFARM_ENCRYPTION_KEY = ""
    settings.SECRET_KEY = "old-secret-key-" + "x" * 40
    printer = PrinterFactory(api_key=SECRET)

    settings.SECRET_KEY = "new-secret-key-" + "y" * 40
    settings.PRINTFARM_ENCRYPTION_KEY_OLD = ["old-secret-key-" + "x" * 40]
    assert Printer.objects.get(pk=printer.pk).api_key == SECRET

    # Django's own rotation setting works as well.
    settings.PRINTFARM_ENCRYPTION_KEY_OLD = []
    settings.SECRET_KEY_FALLBACKS = ["old-secret-key-" + "x" * 40]
    assert Printer.objects.get(pk=printer.pk).api_key == SECRET


@pytest.mark.django_db
def test_wrong_key_reads_as_no_key_logs_once_and_loses_nothing(settings, caplog):
    settings.PRINTFARM_ENCRYPTION_KEY = KEY_1
    printer = PrinterFactory(api_key=SECRET)
    token = stored(printer.pk)

    settings.PRINTFARM_ENCRYPTION_KEY = KEY_2  # KEY_1 forgotten
    with caplog.at_level(logging.ERROR, logger="printfarm.crypto"):
        config = Printer.objects.filter(pk=printer.pk).values("api_key").get()
        again = Printer.objects.get(pk=printer.pk)
    assert config["api_key"] == "" and again.api_key == ""  # polled without a key: an auth error
    assert not again.api_key
    assert len([r for r in caplog.records if "Cannot decrypt" in r.getMessage()]) == 1

    # Saving the printer (another field edited) writes the unreadable token back untouched...
    printer_update(printer=again, fields={"location": "Shelf 9"})
    assert stored(printer.pk) == token
    # ...so the right key, configured again, still opens it.
    settings.PRINTFARM_ENCRYPTION_KEY_OLD = [KEY_1]
    assert Printer.objects.get(pk=printer.pk).api_key == SECRET


@pytest.mark.django_db
def test_plaintext_in_the_column_is_not_taken_for_a_key(settings, caplog):
    # A row written around the field (an old process during an upgrade) is not trusted as-is.
    printer = PrinterFactory(api_key="")
    store_raw(printer.pk, "plain-key")
    with caplog.at_level(logging.ERROR, logger="printfarm.crypto"):
        assert Printer.objects.get(pk=printer.pk).api_key == ""


def test_malformed_encryption_key_is_refused(settings, monkeypatch):
    monkeypatch.setenv("PRINTFARM_ENCRYPTION_KEY", "not-a-fernet-key")
    with pytest.raises(ImproperlyConfigured, match="PRINTFARM_ENCRYPTION_KEY"):
        env_fernet_key("PRINTFARM_ENCRYPTION_KEY")
    monkeypatch.setenv("PRINTFARM_ENCRYPTION_KEY", KEY_1)
    assert env_fernet_key("PRINTFARM_ENCRYPTION_KEY") == KEY_1

    settings.PRINTFARM_ENCRYPTION_KEY = "short"
    with pytest.raises(ImproperlyConfigured):
        crypto.encrypt("x")


@pytest.mark.django_db(transaction=True)
def test_migration_encrypts_existing_keys_and_reverse_decrypts():
    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes()
    try:
        executor.migrate([BEFORE])
        old_state = MigrationExecutor(connection).loader.project_state([BEFORE])
        Old = old_state.apps.get_model("printers", "Printer")
        with_key = Old.objects.create(name="p1", protocol="octoprint", base_url="http://a", api_key=SECRET)
        without = Old.objects.create(name="p2", protocol="octoprint", base_url="http://b", api_key="")
        assert stored(with_key.pk) == SECRET

        executor = MigrationExecutor(connection)
        executor.migrate([ENCRYPTED])
        assert stored(with_key.pk).startswith(crypto.TOKEN_PREFIX)
        assert crypto.decrypt(stored(with_key.pk)) == SECRET
        assert stored(without.pk) == ""
        Encrypted = (
            MigrationExecutor(connection)
            .loader.project_state([ENCRYPTED])
            .apps.get_model("printers", "Printer")
        )  # the model as that migration left it: later ones add columns
        assert Encrypted.objects.get(pk=with_key.pk).api_key == SECRET

        executor = MigrationExecutor(connection)
        executor.migrate([BEFORE])
        assert stored(with_key.pk) == SECRET
        assert stored(without.pk) == ""
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(leaves)
