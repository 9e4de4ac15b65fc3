"""Operations: arrival-to-score, the backlog, arrivals by source, recent readings, the broker and
the workers; what the operations page (/ops/) shows (``ops_status``, written by
``triage.serializers.OpsSerializer``) and its polling API answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from annotate.models import ImportJob, Radiograph
from common.health import worker_counts
from common.queueing import broker_check
from config.celery import QUEUES
from ml.models import RadiographReading, TrainingRun
from ml.operations import waiting_ids

RECENT_READINGS = 20


def _percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


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
            "received_at": row.radiograph.received_at,
            "scored_at": row.scored_at,
            "seconds": round(row.seconds, 3),
            "detector_version": row.detector_version_id,
            "classifier_version": row.classifier_version_id,
        }
        for row in rows
    ]


def ops_status(*, now: datetime | None = None) -> dict[str, Any]:
    """Everything the operations page shows (it polls this as /api/ops/)."""
    now = now or timezone.now()
    day = now - timedelta(hours=24)
    broker = broker_check(timeout=0.4)
    workers = worker_counts(broker=broker)
    return {
        "now": now,
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
