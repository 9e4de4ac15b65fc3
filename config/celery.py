"""The Celery application and the project's one task decorator."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

logger = logging.getLogger(__name__)

app = Celery("hipstudy")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

QUEUES = ("default", "ml")
# Task name -> queue, filled by @task below and read by Celery's router.
ROUTES: dict[str, dict[str, str]] = {}
app.conf.task_routes = (lambda name, *args, **kwargs: ROUTES.get(name),)


def task(*, queue: str = "default", **options: Any) -> Callable[[Callable[..., Any]], Any]:
    """Declare a Celery task the way every task of this project is declared.

    acks_late with reject_on_worker_lost: a task whose worker dies mid-way is
    delivered again, so every task must be idempotent (look the row up, lock
    it, return if the work is already done). Tasks take primary keys or plain
    values, never model instances.
    """
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}; use one of {QUEUES}")
    options.setdefault("acks_late", True)
    options.setdefault("reject_on_worker_lost", True)

    def decorator(function: Callable[..., Any]) -> Any:
        name = options.setdefault("name", f"{function.__module__}.{function.__name__}")
        ROUTES[name] = {"queue": queue}
        return app.task(**options)(function)

    return decorator


# --------------------------------------------------------------------------- the broker away

QUEUE_UNAVAILABLE = "The task queue is unavailable; try again when it is back."


class QueueUnavailable(RuntimeError):
    """The broker (Redis) did not take a task: the action was not queued and nothing was kept
    that would wait for it. Pages show ``QUEUE_UNAVAILABLE``, the API answers 503."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(QUEUE_UNAVAILABLE + (f" ({detail})" if detail else ""))
        self.detail = detail


def broker_errors() -> tuple[type[BaseException], ...]:
    """What a publish raises when the broker is away (after its bounded retries)."""
    from kombu.exceptions import OperationalError

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
    that only a task would ever move on (a training run, an import job)."""
    state = broker_check(timeout)
    if state != "ok":
        raise QueueUnavailable(state.removeprefix("error: "))


def publish(send: Callable[[], Any]) -> Any:
    """Run ``send`` (a ``task.delay(...)``), turning a broker failure into ``QueueUnavailable``.
    Publishing retries are bounded by ``CELERY_TASK_PUBLISH_RETRY_POLICY`` and the broker's
    transport options (config/settings.py), so this fails within a few seconds, never hangs."""
    try:
        return send()
    except broker_errors() as exc:
        raise QueueUnavailable(f"{exc.__class__.__name__}: {exc}") from exc


def publish_or_log(send: Callable[[], Any], what: str) -> None:
    """``publish`` for work a worker re-queues on (re)connecting (``ml.operations.requeue_missed_work``):
    with the broker away it is only logged, so that the save that asked for it stands."""
    try:
        publish(send)
    except QueueUnavailable as error:
        logger.warning("%s not queued; a worker queues it when the broker is back: %s", what, error)


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


# --------------------------------------------------------------------------- work lost with Redis


def _requeue_step() -> type:
    from celery import bootsteps

    class RequeueMissedWork(bootsteps.StartStopStep):
        """Each time the worker's consumer starts (at startup and again after it reconnected to
        a broker that went away), queue again what should be done but may have no message:
        Redis without persistence loses its queues when it restarts. Idempotent (every task
        is), see ``ml.operations.requeue_missed_work``."""

        requires = {"celery.worker.consumer.tasks:Tasks"}

        def start(self, consumer: Any) -> None:
            import logging

            try:
                from ml.operations import requeue_missed_work

                queues = {queue.name for queue in consumer.task_consumer.queues}
                requeue_missed_work(queues)
            except Exception:  # noqa: BLE001 - never keep a worker from consuming
                logging.getLogger(__name__).exception("could not re-queue missed work")

    return RequeueMissedWork


app.steps["consumer"].add(_requeue_step())
