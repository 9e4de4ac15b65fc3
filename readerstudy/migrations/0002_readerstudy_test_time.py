"""``ReaderStudy.test_time``: the test-time protocol the model's readings were frozen with.

A study prepared before this field existed froze the model's average over the zoom-1.0 and
zoom-1.5 crops, so existing rows read ``zoom-average``; a new study defaults to ``single`` (the
phase-1 crop itself, the paper's equal-information design).
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("readerstudy", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="readerstudy",
            name="test_time",
            field=models.CharField(
                choices=[
                    ("single", "single: the phase-1 crop itself (the zoom-1.0 crop readers see; the paper's)"),
                    (
                        "zoom-average",
                        "zoom-average: the mean over the model's zooms (more context than readers had)",
                    ),
                ],
                default="zoom-average",
                help_text="the test-time protocol the model's readings were frozen with",
                max_length=16,
            ),
        ),
        migrations.AlterField(
            model_name="readerstudy",
            name="test_time",
            field=models.CharField(
                choices=[
                    ("single", "single: the phase-1 crop itself (the zoom-1.0 crop readers see; the paper's)"),
                    (
                        "zoom-average",
                        "zoom-average: the mean over the model's zooms (more context than readers had)",
                    ),
                ],
                default="single",
                help_text="the test-time protocol the model's readings were frozen with",
                max_length=16,
            ),
        ),
        migrations.AlterField(
            model_name="case",
            name="crop",
            field=models.FileField(
                help_text="8-bit PNG: the phase-1 crop (zoom 1.0, the model's input size), as readers get it",
                max_length=200,
            ),
        ),
    ]
