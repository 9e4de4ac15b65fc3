"""The Celery application and the project's one task decorator."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from celery import Celery, bootsteps

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


# --------------------------------------------------------------------------- work lost with Redis

# What a worker does each time its consumer (re)connects to the broker: filled by the apps from
# their AppConfig.ready (``on_connect``), so that this module imports no app.
ON_CONNECT: list[Callable[[set[str]], Any]] = []


def on_connect(function: Callable[[set[str]], Any]) -> Callable[[set[str]], Any]:
    """Register ``function(queues)`` to run whenever a worker's consumer starts, with the names of
    the queues it consumes (``ml.apps`` registers ``ml.operations.requeue_missed_work``)."""
    if function not in ON_CONNECT:
        ON_CONNECT.append(function)
    return function


class RequeueMissedWork(bootsteps.StartStopStep):
    """Each time the worker's consumer starts (at startup and again after it reconnected to
    a broker that went away), run the work registered with ``on_connect``: Redis without
    persistence loses its queues when it restarts, so what the database says is due is queued
    again. Idempotent (every task is)."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def start(self, consumer: Any) -> None:
        queues = {queue.name for queue in consumer.task_consumer.queues}
        for function in ON_CONNECT:
            try:
                function(queues)
            except Exception:  # noqa: BLE001 - never keep a worker from consuming
                logger.exception("could not re-queue missed work")


app.steps["consumer"].add(RequeueMissedWork)
