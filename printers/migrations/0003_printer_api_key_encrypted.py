"""Printer API keys encrypted at rest: the column becomes text holding a Fernet token.

The data steps use raw SQL on purpose: the field itself encrypts on write and decrypts on
read, and here the stored text is the old plaintext (forwards) or the token (backwards).
"""

from django.db import migrations

import printfarm.crypto


def _rows(apps, schema_editor):
    Printer = apps.get_model("printers", "Printer")
    quote = schema_editor.quote_name
    table, pk, column = quote(Printer._meta.db_table), quote(Printer._meta.pk.column), quote("api_key")
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"SELECT {pk}, {column} FROM {table} WHERE {column} <> ''")
        rows = cursor.fetchall()
    return rows, f"UPDATE {table} SET {column} = %s WHERE {pk} = %s"


def encrypt_keys(apps, schema_editor):
    rows, update = _rows(apps, schema_editor)
    with schema_editor.connection.cursor() as cursor:
        for pk, plaintext in rows:
            cursor.execute(update, [printfarm.crypto.encrypt(plaintext), pk])


def decrypt_keys(apps, schema_editor):
    rows, update = _rows(apps, schema_editor)
    with schema_editor.connection.cursor() as cursor:
        for pk, token in rows:
            try:
                plaintext = printfarm.crypto.decrypt(token)
            except printfarm.crypto.InvalidToken as err:
                raise RuntimeError(
                    f"Printer {pk}: its API key doesn't decrypt with the configured keys; set "
                    "PRINTFARM_ENCRYPTION_KEY / PRINTFARM_ENCRYPTION_KEY_OLD to the key it was stored with."
                ) from err
            cursor.execute(update, [plaintext, pk])


class Migration(migrations.Migration):

    dependencies = [
        ('printers', '0002_printer_auto_clear_printer_bed_clear'),
    ]

    operations = [
        migrations.AlterField(
            model_name='printer',
            name='api_key',
            field=printfarm.crypto.EncryptedTextField(blank=True, verbose_name='API key'),
        ),
        migrations.RunPython(encrypt_keys, decrypt_keys),
    ]
