from django.db import migrations, models

import printfarm.crypto


class Migration(migrations.Migration):
    dependencies = [
        ("printers", "0011_status_thumbnail"),
    ]

    operations = [
        migrations.AddField(
            model_name="printer",
            name="camera_snapshot_url",
            field=printfarm.crypto.EncryptedTextField(blank=True, verbose_name="camera snapshot URL"),
        ),
        migrations.AddField(
            model_name="printer",
            name="camera_stream_url",
            field=printfarm.crypto.EncryptedTextField(blank=True, verbose_name="camera stream URL"),
        ),
        migrations.AddField(
            model_name="printer",
            name="camera_on_card",
            field=models.BooleanField(
                default=True,
                help_text="Show a snapshot on the card, refreshed every few seconds while it is on screen.",
                verbose_name="camera on the dashboard card",
            ),
        ),
    ]
