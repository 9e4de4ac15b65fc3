"""Work lost with Redis, and the ML actions of the pages and the API.

``waiting_ids`` (the backlog), ``requeue_missed_work`` (run whenever a worker (re)connects, since
Redis may lose its queues), and ``training_queue``/``activate_queued``, refused with
``QueueUnavailable`` when the broker is away.
Design: docs/architecture/design-site.md
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.conf import settings

from annotate.models import ImportJob
from annotate.tasks import import_job_run
from common.queueing import QueueUnavailable, broker_errors, enqueue, require_broker
from config.celery import QUEUES
from ml import scoring, training
from ml.detection import radiographs_to_read
from ml.models import Kind, TrainingRun
from ml.scoring import active_model, radiographs_to_score
from ml.tasks import read_radiographs, score_radiographs, train_model

logger = logging.getLogger(__name__)


def waiting_ids() -> list[int]:
    """Radiographs that arrived and wait for their end-to-end reading: those without ground truth
    that the active classifier has not read, while a detector and a classifier are active
    (``ml.detection.radiographs_to_read``). Empty when no pair is active: nothing would read them."""

    detector, classifier = active_model(Kind.DETECTOR), active_model(Kind.CLASSIFIER)
    if detector is None or classifier is None:
        return []
    return radiographs_to_read(classifier)


# --------------------------------------------------------------------------- work lost with Redis


def requeue_missed_work(queues: Iterable[str] = QUEUES) -> dict[str, int]:
    """Queue again what the database says is due, for the queues a (re)connecting worker consumes:
    on ``ml``, the end-to-end reading of the radiographs waiting for it, the scoring of ground
    truth the active classifier has not read, and the training runs still "queued"; on
    ``default``, the import jobs still "queued". A message that did survive makes a second
    delivery, which finds the work done (every task is idempotent). Returns what was queued."""

    queues = set(queues)
    done = {"readings": 0, "scorings": 0, "training_runs": 0, "import_jobs": 0}
    if "ml" in queues:
        if settings.SCORE_ON_ARRIVAL and waiting_ids():
            enqueue(read_radiographs, radiograph_ids=None)
            done["readings"] = 1
        classifier = active_model(Kind.CLASSIFIER)
        if settings.SCORE_ON_ARRIVAL and classifier is not None and radiographs_to_score(classifier):
            enqueue(score_radiographs, model_version_id=classifier.pk)
            done["scorings"] = 1
        for run_id in TrainingRun.objects.filter(status=TrainingRun.Status.QUEUED).values_list("pk", flat=True):
            enqueue(train_model, run_id=run_id)
            done["training_runs"] += 1
    if "default" in queues:
        for job_id in ImportJob.objects.filter(status=ImportJob.Status.QUEUED).values_list("pk", flat=True):
            enqueue(import_job_run, job_id=job_id)
            done["import_jobs"] += 1
    if any(done.values()):
        logger.info("re-queued missed work: %s", done)
    return done


# --------------------------------------------------------------------------- ML actions


def training_queue(**kwargs: Any) -> TrainingRun:
    """``ml.training.training_start`` for the page and the API: refused with ``QueueUnavailable``
    before anything is written when the broker is away, and the run row removed again when the
    broker refuses its task after all (nothing stays "queued" that no worker will ever see)."""

    require_broker()
    run = training.training_start(**kwargs, enqueue=False)
    enqueue(
        train_model,
        run_id=run.pk,
        undo=lambda: TrainingRun.objects.filter(pk=run.pk, status=TrainingRun.Status.QUEUED, attempts=0).delete(),
    )
    return run


def activate_queued(version: Any) -> tuple[Any, str]:
    """``ml.scoring.activate`` for the page and the API: refused with ``QueueUnavailable`` when
    the broker is away (activating queues the new model's scoring). Returns the version and a
    warning ("" when all was queued): when the broker goes away between the check and the
    queueing, the activation stands and the workers queue the scoring when they reconnect."""

    require_broker()
    unavailable: tuple[type[BaseException], ...] = (QueueUnavailable, *broker_errors())
    try:
        return scoring.activate(version), ""
    except unavailable as error:
        logger.warning("model version %s activated, its scoring not queued: %s", version.pk, error)
        version.refresh_from_db()
        return version, (
            f"Model version {version.pk} is active, but the task queue became unavailable: its scoring is"
            " queued when the queue is back."
        )
