"""New ground-truth boxes are read by the active classifier (see ``scoring.queue_scoring``)."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save
from django.dispatch import receiver

from annotate.labels import GroundTruthHip


@receiver(post_save, sender=GroundTruthHip, dispatch_uid="ml.score_new_truth")
def score_new_truth(sender: Any, instance: GroundTruthHip, created: bool, **kwargs: Any) -> None:
    if created and not kwargs.get("raw"):
        from ml import scoring

        scoring.queue_scoring([instance.radiograph_id])
