"""Operations: arrival-to-score, the state of the broker and the workers, work lost with Redis.

- ``arrival_stats``: how long radiographs wait from arrival (``Radiograph.received_at``) to
  their end-to-end reading (``RadiographReading.scored_at``), and how many still wait;
- ``ops_json``: everything the operations page (/ops/) shows, also its polling API (/api/ops/);
- ``service_health``: what /health/ answers (database, broker, workers per queue);
- ``requeue_missed_work``: run by every worker whenever it (re)connects to the broker
  (config.celery's consumer step): Redis without persistence loses its queues when it restarts,
  so the work the database says is due is queued again. Every task is idempotent;
- ``QueueUnavailableMiddleware``: an ML action whose task the broker did not take answers
  "the task queue is unavailable" (503 on the API, a message on the page), never a 500.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.utils import timezone

from annotate.models import ImportJob, Radiograph
from config.celery import QUEUES, QueueUnavailable, broker_check, publish, workers_by_queue
from ml.models import Kind, RadiographReading, TrainingRun

logger = logging.getLogger(__name__)

RECENT_READINGS = 20


def _percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def waiting_ids() -> list[int]:
    """Radiographs that arrived and wait for their end-to-end reading: those without ground truth
    that the active classifier has not read, while a detector and a classifier are active
    (``ml.detection.radiographs_to_read``). Empty when no pair is active: nothing would read them."""
    from ml.detection import radiographs_to_read
    from ml.scoring import active_model

    detector, classifier = active_model(Kind.DETECTOR), active_model(Kind.CLASSIFIER)
    if detector is None or classifier is None:
        return []
    return radiographs_to_read(classifier)


def arrival_stats(since: datetime | None = None, *, now: datetime | None = None) -> dict[str, Any]:
    """Arrival-to-score of the radiographs read end to end (scored at or after ``since``; all when
    None): their number, median and 95th percentile in seconds; the backlog (``waiting_ids``)
    and how long its oldest radiograph has waited."""
    now = now or timezone.now()
    readings = RadiographReading.objects.all()
    if since is not None:
        readings = readings.filter(scored_at__gte=since)
    seconds = list(readings.values_list("seconds", flat=True))
    waiting = waiting_ids()
    oldest = Radiograph.objects.filter(pk__in=waiting).order_by("received_at").values_list("received_at", flat=True)
    first = oldest.first() if waiting else None
    return {
        "scored": len(seconds),
        "median_seconds": _percentile(seconds, 50),
        "p95_seconds": _percentile(seconds, 95),
        "backlog": len(waiting),
        "oldest_waiting_seconds": max(0.0, (now - first).total_seconds()) if first is not None else None,
    }


def arrivals_by_source(since: datetime) -> list[dict[str, Any]]:
    """Per source (``Radiograph.Source``): radiographs that arrived since ``since`` and how many
    of them have been read end to end."""
    arrived = dict(
        Radiograph.objects.filter(received_at__gte=since)
        .values_list("source")
        .annotate(n=Count("id"))
        .values_list("source", "n")
    )
    scored = dict(
        Radiograph.objects.filter(received_at__gte=since, reading__isnull=False)
        .values_list("source")
        .annotate(n=Count("id"))
        .values_list("source", "n")
    )
    return [
        {"source": value, "label": str(label), "arrived": arrived.get(value, 0), "scored": scored.get(value, 0)}
        for value, label in Radiograph.Source.choices
        if arrived.get(value)
    ]


def recent_readings(limit: int = RECENT_READINGS) -> list[dict[str, Any]]:
    rows = RadiographReading.objects.select_related("radiograph").order_by("-scored_at", "-id")[:limit]
    return [
        {
            "radiograph": row.radiograph_id,
            "source": row.radiograph.source,
            "received_at": row.radiograph.received_at.isoformat(),
            "scored_at": row.scored_at.isoformat(),
            "seconds": round(row.seconds, 3),
            "detector_version": row.detector_version_id,
            "classifier_version": row.classifier_version_id,
        }
        for row in rows
    ]


# --------------------------------------------------------------------------- broker and workers

_workers_cache: dict[str, Any] = {}
_workers_lock = threading.Lock()


def worker_counts(*, broker: str | None = None) -> dict[str, Any]:
    """{"default": n, "ml": n} from one broadcast to the workers, or {"error": ...} when the broker
    is away. Kept ``HEALTH_WORKERS_CACHE_SECONDS`` per process: a load balancer asking every
    second does not flood the workers with broadcasts."""
    with _workers_lock:
        cached = _workers_cache.get("value")
        if cached is not None and time.monotonic() - _workers_cache["at"] < settings.HEALTH_WORKERS_CACHE_SECONDS:
            return cached
        if broker is not None and broker != "ok":
            return dict.fromkeys(QUEUES, 0)  # not cached: asked again once the broker is back
        try:
            value: dict[str, Any] = workers_by_queue(timeout=settings.HEALTH_WORKERS_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - the answer says what went wrong
            return {**dict.fromkeys(QUEUES, 0), "error": f"{exc.__class__.__name__}: {exc}"[:300]}
        _workers_cache.update(value=value, at=time.monotonic())
        return value


def database_check() -> str:
    from django.db import connection

    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception as exc:  # noqa: BLE001 - any database failure means unhealthy
        # A connection broken by a database restart is dropped, so the next request opens a new one.
        connection.close_if_unusable_or_obsolete()
        return f"error: {exc.__class__.__name__}: {exc}"[:300]


def service_health() -> tuple[dict[str, Any], bool]:
    """What /health/ answers and whether it is healthy: the database and the broker answer, and
    every queue has at least one worker."""
    database = database_check()
    broker = broker_check(timeout=0.4)
    workers = worker_counts(broker=broker)
    healthy = database == "ok" and broker == "ok" and all(workers.get(queue, 0) >= 1 for queue in QUEUES)
    return {"database": database, "broker": broker, "workers": {q: workers.get(q, 0) for q in QUEUES}}, healthy


def ops_json(*, now: datetime | None = None) -> dict[str, Any]:
    """Everything the operations page shows (it polls this as /api/ops/)."""
    now = now or timezone.now()
    day = now - timedelta(hours=24)
    broker = broker_check(timeout=0.4)
    workers = worker_counts(broker=broker)
    return {
        "now": now.isoformat(),
        "all_time": arrival_stats(now=now),
        "last_24h": {**arrival_stats(day, now=now), "by_source": arrivals_by_source(day)},
        "recent": recent_readings(),
        "broker": broker,
        "workers": {q: workers.get(q, 0) for q in QUEUES},
        "workers_error": workers.get("error", ""),
        "queued_imports": ImportJob.objects.filter(status=ImportJob.Status.QUEUED).count(),
        "live_training_runs": TrainingRun.objects.filter(status__in=TrainingRun.LIVE).count(),
        "poll_ms": settings.OPS_POLL_SECONDS * 1000,
    }


# --------------------------------------------------------------------------- work lost with Redis


def requeue_missed_work(queues: Iterable[str] = QUEUES) -> dict[str, int]:
    """Queue again what the database says is due, for the queues a (re)connecting worker consumes:
    on ``ml``, the end-to-end reading of the radiographs waiting for it, the scoring of ground
    truth the active classifier has not read, and the training runs still "queued"; on
    ``default``, the import jobs still "queued". A message that did survive makes a second
    delivery, which finds the work done (every task is idempotent). Returns what was queued."""
    from annotate.tasks import import_job_run
    from ml.scoring import active_model, radiographs_to_score
    from ml.tasks import read_radiographs, score_radiographs, train_model

    queues = set(queues)
    done = {"readings": 0, "scorings": 0, "training_runs": 0, "import_jobs": 0}
    if "ml" in queues:
        if settings.SCORE_ON_ARRIVAL and waiting_ids():
            publish(lambda: read_radiographs.delay(radiograph_ids=None))
            done["readings"] = 1
        classifier = active_model(Kind.CLASSIFIER)
        if settings.SCORE_ON_ARRIVAL and classifier is not None and radiographs_to_score(classifier):
            publish(lambda: score_radiographs.delay(model_version_id=classifier.pk))
            done["scorings"] = 1
        for run_id in TrainingRun.objects.filter(status=TrainingRun.Status.QUEUED).values_list("pk", flat=True):
            publish(lambda run_id=run_id: train_model.delay(run_id=run_id))
            done["training_runs"] += 1
    if "default" in queues:
        for job_id in ImportJob.objects.filter(status=ImportJob.Status.QUEUED).values_list("pk", flat=True):
            publish(lambda job_id=job_id: import_job_run.delay(job_id=job_id))
            done["import_jobs"] += 1
    if any(done.values()):
        logger.info("re-queued missed work: %s", done)
    return done


def queue_or_undo(send: Callable[[], Any], undo: Callable[[], Any]) -> None:
    """Publish a task for a row just committed; when the broker refuses it, ``undo`` the row (so
    that nothing waits for a task that was never queued) and raise ``QueueUnavailable``."""
    try:
        publish(send)
    except QueueUnavailable:
        undo()
        raise


class QueueUnavailableMiddleware:
    """An action whose task the broker did not take (``QueueUnavailable``, raised by a view or a
    service, or kombu's ``OperationalError`` from a bare ``delay()``): the API answers 503
    {"detail": ...}, a page shows the message on the page it came from. The ML actions undo or
    never write what would wait for the task (``training_queue``, ``import_job_create``)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        from kombu.exceptions import OperationalError

        if isinstance(exception, OperationalError):  # a view that publishes without ``publish``
            exception = QueueUnavailable(f"{exception.__class__.__name__}: {exception}")
        if not isinstance(exception, QueueUnavailable):
            return None
        logger.warning("%s %s: %s", request.method, request.path, exception)
        if request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", ""):
            response = JsonResponse({"detail": str(exception)}, status=503)
            response["Retry-After"] = "30"
            return response
        messages.error(request, str(exception))
        return HttpResponseRedirect(request.get_full_path())


# --------------------------------------------------------------------------- ML actions


def training_queue(**kwargs: Any) -> TrainingRun:
    """``ml.training.training_start`` for the page and the API: refused with ``QueueUnavailable``
    before anything is written when the broker is away, and the run row removed again when the
    broker refuses its task after all (nothing stays "queued" that no worker will ever see)."""
    from config.celery import require_broker
    from ml import training
    from ml.tasks import train_model

    require_broker()
    run = training.training_start(**kwargs, enqueue=False)

    def send() -> None:
        queue_or_undo(
            lambda: train_model.delay(run_id=run.pk),
            lambda: TrainingRun.objects.filter(pk=run.pk, status=TrainingRun.Status.QUEUED, attempts=0).delete(),
        )

    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(send)  # inside a caller's transaction: once the run is committed
    else:
        send()
    return run


def activate_queued(version: Any) -> tuple[Any, str]:
    """``ml.scoring.activate`` for the page and the API: refused with ``QueueUnavailable`` when
    the broker is away (activating queues the new model's scoring). Returns the version and a
    warning ("" when all was queued): when the broker goes away between the check and the
    queueing, the activation stands and the workers queue the scoring when they reconnect."""
    from config.celery import broker_errors, require_broker
    from ml import scoring

    require_broker()
    try:
        return scoring.activate(version), ""
    except (QueueUnavailable, *broker_errors()) as error:
        logger.warning("model version %s activated, its scoring not queued: %s", version.pk, error)
        version.refresh_from_db()
        return version, (
            f"Model version {version.pk} is active, but the task queue became unavailable: its scoring is"
            " queued when the queue is back."
        )
