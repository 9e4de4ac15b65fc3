"""New ground-truth boxes are read by the active classifier (see ``scoring.queue_scoring``); a new
radiograph is read end to end when a detector and a classifier are active (``detection.queue_reading``).

Neither may fail the save that triggered it: labelling, adjudication and ingest keep working while
the broker is away, and a worker queues the missed reading when it reconnects
(``ml.operations.requeue_missed_work``)."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save
from django.dispatch import receiver

from annotate.labels import GroundTruthHip
from annotate.models import Radiograph
from ml import detection, scoring


@receiver(post_save, sender=GroundTruthHip, dispatch_uid="ml.score_new_truth")
def score_new_truth(sender: Any, instance: GroundTruthHip, created: bool, **kwargs: Any) -> None:
    if created and not kwargs.get("raw"):
        scoring.queue_scoring([instance.radiograph_id])


@receiver(post_save, sender=Radiograph, dispatch_uid="ml.read_new_radiograph")
def read_new_radiograph(sender: Any, instance: Radiograph, created: bool, **kwargs: Any) -> None:
    if created and not kwargs.get("raw"):
        detection.queue_reading([instance.pk])
