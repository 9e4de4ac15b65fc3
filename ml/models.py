"""Dataset versions: frozen snapshots of the ground-truth hips, split by patient."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from annotate.labels import BoxFields
from annotate.models import Patient, Radiograph


class Split(models.TextChoices):
    TRAIN = "train", "Training"
    VALIDATION = "validation", "Validation"
    TEST = "test", "Test"


class DatasetVersion(models.Model):
    """A frozen copy of the ground truth with its train/validation/test split.

    ``content_hash`` is the SHA-256 over the sorted frozen rows (radiograph
    SHA-256, side, class, box, split): the same seed on unchanged ground
    truth gives the same hash, and freezing it again returns this version."""

    name = models.CharField(max_length=100, blank=True)
    seed = models.BigIntegerField()
    fractions = models.JSONField(help_text="train, validation, test")
    content_hash = models.CharField(max_length=64, unique=True)
    counts = models.JSONField(default=dict, help_text="hips per split and class")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Dataset {self.pk}{f' {self.name}' if self.name else ''} (seed {self.seed})"


class DatasetHip(BoxFields):
    """One frozen ground-truth hip of a dataset version."""

    dataset = models.ForeignKey(DatasetVersion, on_delete=models.CASCADE, related_name="hips")
    radiograph = models.ForeignKey(Radiograph, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    split = models.CharField(max_length=16, choices=Split.choices, db_index=True)

    class Meta:
        ordering = ["dataset_id", "radiograph_id", "side"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "radiograph", "side"], name="dataset_hip_once"),
        ]

    def __str__(self) -> str:
        return f"{self.split} {self.side} {self.hip_class} (radiograph {self.radiograph_id})"
