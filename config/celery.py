"""The Celery application and the project's one task decorator."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

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
