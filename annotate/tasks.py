"""Celery tasks of the annotate app: thin wrappers around services."""

from __future__ import annotations

from annotate import services
from annotate.archive import previews
from config.celery import task


@task(queue="default")
def import_job_run(*, job_id: int) -> None:
    services.import_job_run(job_id=job_id)


@task(queue="default")
def previews_warm(*, radiograph_ids: list[int]) -> None:
    previews.previews_warm(radiograph_ids=radiograph_ids)
