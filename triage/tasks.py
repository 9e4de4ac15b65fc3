"""Celery tasks of the triage app (queue ``default``): sending results back to the PACS."""

from __future__ import annotations

from typing import Any

from config.celery import task
from triage.models import ResultSending
from triage.results import sending


@task(queue="default", bind=True, max_retries=None)
def send_results(self: Any, *, sending_id: int) -> None:
    """Send one radiograph's SR and overlay to one destination; tried again with backoff while
    the destination is away (``RESULTS_SEND_ATTEMPTS`` in all)."""
    row = sending.send_one(sending_id=sending_id)
    if row is not None and row.status == ResultSending.Status.FAILED and row.retry_at is not None:
        raise self.retry(countdown=sending.backoff(row.attempts))
