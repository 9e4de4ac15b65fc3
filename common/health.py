"""Health checks: what /health/ and /health/live/ answer (database, broker, workers per queue).

The workers are asked with one broadcast whose answer is kept ``HEALTH_WORKERS_CACHE_SECONDS``
per process (``worker_counts``): a load balancer asking every second does not flood them.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse

from common.queueing import broker_check, workers_by_queue
from config.celery import QUEUES

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


def health(request: HttpRequest) -> JsonResponse:
    """Readiness of the whole service: {"database": "ok"|"error: ...", "broker": "ok"|"error: ...",
    "workers": {"default": n, "ml": n}}; 200 only when the database and the broker answer and
    each queue has at least one worker, otherwise 503. Takes at most about a second (the
    workers' answer is kept a few seconds, see ``worker_counts``)."""
    body, healthy = service_health()
    return JsonResponse(body, status=200 if healthy else 503)


def health_live(request: HttpRequest) -> JsonResponse:
    """Liveness, for a load balancer: the process answers and the database is reachable."""
    database = database_check()
    return JsonResponse({"database": database}, status=200 if database == "ok" else 503)
