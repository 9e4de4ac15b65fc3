"""A radiograph read end to end (its ``RadiographReading`` written) has its results sent to the
destinations of its source, when ``RESULTS_SEND_AFTER_READING`` is on. Queued after the reading
commits, and never failing it: a broker that is away is caught up by ``requeue_sendings``."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from ml.models import HipPrediction, RadiographReading
from triage.results.sending import queue_results

logger = logging.getLogger(__name__)


@receiver(post_save, sender=RadiographReading, dispatch_uid="triage.send_results_after_reading")
def send_after_reading(sender: Any, instance: RadiographReading, created: bool, **kwargs: Any) -> None:
    if not created or kwargs.get("raw") or not settings.RESULTS_SEND_AFTER_READING:
        return
    radiograph_id = instance.radiograph_id

    def queue() -> None:
        if HipPrediction.objects.filter(radiograph_id=radiograph_id).exists():  # a film with no hip: nothing
            queue_results(radiograph_ids=[radiograph_id])

    transaction.on_commit(queue, robust=True)
