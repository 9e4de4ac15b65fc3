"""Queueing a task: the one way (``enqueue``), the broker away (``QueueUnavailable``), its check.

:func:`enqueue` queues after the caller's transaction commits; when the broker refuses, it raises
``QueueUnavailable`` after ``undo`` ran, or with ``or_log`` only logs. ``require_broker`` is asked
before writing a row only a task would move on.
Design: docs/architecture/design-site.md
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from kombu.exceptions import OperationalError

from config.celery import QUEUES, app

logger = logging.getLogger(__name__)

QUEUE_UNAVAILABLE = "The task queue is unavailable; try again when it is back."


class QueueUnavailable(RuntimeError):
    """The broker (Redis) did not take a task: the action was not queued and nothing was kept
    that would wait for it. Pages show ``QUEUE_UNAVAILABLE``, the API answers 503."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(QUEUE_UNAVAILABLE + (f" ({detail})" if detail else ""))
        self.detail = detail


def broker_errors() -> tuple[type[BaseException], ...]:
    """What a publish raises when the broker is away (after its bounded retries)."""
    return (OperationalError, ConnectionError, OSError, TimeoutError)


def broker_check(timeout: float = 1.0) -> str:
    """ "ok" when a fresh connection to the broker opens within ``timeout`` seconds, otherwise
    "error: ..." (never raises, never waits longer: a health check and the ML actions ask this)."""
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=0, timeout=timeout)
        return "ok"
    except Exception as exc:  # noqa: BLE001 - any failure is the answer
        return f"error: {exc.__class__.__name__}: {exc}"[:300]


def require_broker(timeout: float = 1.0) -> None:
    """Raise ``QueueUnavailable`` unless the broker answers: asked before a row is written
    that only a task would ever move on (a training run, an import job, a study's preparation)."""
    state = broker_check(timeout)
    if state != "ok":
        raise QueueUnavailable(state.removeprefix("error: "))


def enqueue(task: Any, *, undo: Callable[[], Any] | None = None, or_log: str = "", **kwargs: Any) -> None:
    """Queue ``task.delay(**kwargs)`` once the current transaction commits, or now outside one.

    Publishing retries are bounded by ``CELERY_TASK_PUBLISH_RETRY_POLICY`` and the broker's
    transport options (config/settings.py), so a broker that is away fails within a few seconds,
    never hangs. Then, with ``or_log`` (a few words saying what was not queued) the failure is
    logged and nothing else happens; otherwise ``undo`` (when given) runs and ``QueueUnavailable``
    is raised, from the commit of the caller's transaction or from this call."""

    def send() -> None:
        try:
            task.delay(**kwargs)
        except broker_errors() as exc:
            error = QueueUnavailable(f"{exc.__class__.__name__}: {exc}")
            if or_log:
                logger.warning("%s not queued; a worker queues it when the broker is back: %s", or_log, error)
                return
            if undo is not None:
                undo()
            raise error from exc

    transaction.on_commit(send, robust=bool(or_log))


def workers_by_queue(timeout: float = 0.5) -> dict[str, int]:
    """How many running workers consume each queue (``QUEUES``), asked with one broadcast that
    waits ``timeout`` seconds for the answers. Raises the broker's error when it is away."""
    replies = app.control.inspect(timeout=timeout).active_queues() or {}
    counts = dict.fromkeys(QUEUES, 0)
    for queues in replies.values():
        for name in {queue.get("name") for queue in queues or []}:
            if name in counts:
                counts[name] += 1
    return counts


class QueueUnavailableMiddleware:
    """An action whose task the broker did not take (``QueueUnavailable``, raised by a view or a
    service, or kombu's ``OperationalError`` from a bare ``delay()``): the API answers 503
    {"detail": ...}, a page shows the message on the page it came from. The actions undo or
    never write what would wait for the task (``require_broker``, ``enqueue(undo=...)``)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, OperationalError):  # a view that publishes without ``enqueue``
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
