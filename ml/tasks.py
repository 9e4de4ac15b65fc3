"""Celery tasks of the ml app (queue ``ml``): thin wrappers around services."""

from __future__ import annotations

import os
from typing import Any

from config.celery import task
from ml import detection, evaluation, scoring
from ml.models import ModelVersion
from ml.training import heartbeat_seconds, run_training


@task(queue="ml", bind=True, max_retries=None)
def train_model(self: Any, *, run_id: int) -> None:
    """Train (or resume) a run. A delivery that finds another live trainer holding the
    run looks again later and takes over only once that trainer has gone silent."""

    holder = f"{self.request.hostname}/{os.getpid()}/{self.request.id}"
    run = run_training(run_id, holder=holder)
    if run.is_live and run.holder != holder:
        raise self.retry(countdown=3 * heartbeat_seconds())


@task(queue="ml")
def score_radiographs(*, model_version_id: int, radiograph_ids: list[int] | None = None) -> None:
    """Store the model version's predictions for these radiographs (all with hip boxes when None)."""

    scoring.score_radiographs(model_version_id=model_version_id, radiograph_ids=radiograph_ids)


@task(queue="ml")
def evaluate_model(*, model_version_id: int) -> None:
    evaluation.evaluate_version(ModelVersion.objects.get(pk=model_version_id))


@task(queue="ml")
def read_radiographs(*, radiograph_ids: list[int] | None = None) -> None:
    """Detect, crop and classify radiographs end to end with the active detector and classifier
    (default: every radiograph without ground truth that the active classifier has not read)."""

    detection.read_new_radiographs(radiograph_ids=radiograph_ids)
