"""New radiographs store no decoded array: their pixels are decoded from the de-identified
original through a bounded cache (annotate.pixels; issue 14, item 9). Rows of older ingests keep
the name of their .npy, which is still read while it exists."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("annotate", "0008_deidentified_storage"),
    ]

    operations = [
        migrations.AlterField(
            model_name="radiograph",
            name="pixels",
            field=models.FileField(
                blank=True,
                help_text="Decoded 16-bit array (.npy) of an older ingest; empty: decoded from the original (annotate.pixels)",
                max_length=200,
                upload_to="",
            ),
        ),
    ]
