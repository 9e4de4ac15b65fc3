"""Uploaded file names are no longer kept (removing the column clears those stored), and each
radiograph gets the encrypted link to its original UIDs (issue 14, items 2 and 3)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("annotate", "0007_label_provenance"),
    ]

    operations = [
        migrations.RemoveField(
            model_name="importitem",
            name="name",
        ),
        migrations.AddField(
            model_name="radiograph",
            name="pacs_link",
            field=models.TextField(blank=True, help_text="The original UIDs, encrypted with PACS_LINK_KEY"),
        ),
    ]
