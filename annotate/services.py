"""Writes of the annotate app: DICOM ingest and import jobs."""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from annotate.archive import cleanup, sources
from annotate.archive.ingest import IMPORTED, PRESENT, IngestOutcome, ingest_items, pseudonym, radiograph_ingest
from annotate.models import ImportItem, ImportJob, Radiograph
from common.queueing import enqueue, require_broker
from common.storage import private_dir

__all__ = ["IngestOutcome", "pseudonym", "radiograph_ingest", "find_sources", "ingest_sources"]

logger = logging.getLogger(__name__)


def find_sources(*, paths: Iterable[Path | str], relative_to: Path | None = None) -> Iterator[sources.SourceItem]:
    return sources.iter_sources(
        paths,
        max_file_bytes=settings.MAX_DICOM_BYTES,
        max_zip_expanded_bytes=settings.MAX_ZIP_EXPANDED_BYTES,
        relative_to=relative_to,
    )


def ingest_sources(
    *, paths: Iterable[Path | str], source: str, user: User | None = None, relative_to: Path | None = None
) -> Iterator[IngestOutcome]:
    """Ingest every DICOM found under ``paths`` (files, folders, .zip), one outcome per file."""
    for _, outcome in ingest_items(find_sources(paths=paths, relative_to=relative_to), source=source, user=user):
        yield outcome


# --- Import jobs: uploads processed by a worker --------------------------------------


def incoming_dir() -> Path:
    return cleanup.incoming_dir()


def import_job_create(*, user: User, files: Iterable[Any], source: str) -> ImportJob:
    """Keep the uploaded files in a folder of their own and queue their import.

    ``common.queueing.QueueUnavailable`` when the broker is away: asked before the files are
    written, and should the task still not be taken, the job and its files are removed again,
    so that no job waits as "queued" for a task that was never sent."""
    # deferred: the tasks module imports this one
    from annotate.tasks import import_job_run

    require_broker()
    folder = private_dir(incoming_dir()) / uuid.uuid4().hex
    folder.mkdir(mode=0o700)
    count = 0
    try:
        for index, upload in enumerate(files):
            # The client's file name is neither kept nor shown (some PACS and CD exports
            # name files after the patient): the file is known by its position. A zip is
            # told by its content, not by its name.
            target = folder / f"{index:05d}" / "upload"
            target.parent.mkdir(mode=0o700)
            with open(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as handle:
                for chunk in upload.chunks():
                    handle.write(chunk)
            count += 1
        job = ImportJob.objects.create(created_by=user, source=source, folder=folder.name, total=0)

        def undo() -> None:
            ImportJob.objects.filter(id=job.id, status=ImportJob.Status.QUEUED).delete()
            shutil.rmtree(folder, ignore_errors=True)

        enqueue(import_job_run, job_id=job.id, undo=undo)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    logger.info("import job %s queued with %d uploaded files", job.id, count)
    return job


def _job_sources(folder: Path) -> Iterator[sources.SourceItem]:
    """The files of an upload in a stable order."""
    for upload_dir in sorted(path for path in folder.iterdir() if path.is_dir()):
        yield from find_sources(paths=[upload_dir], relative_to=upload_dir)


def _imported_before_crash(job: ImportJob, radiograph_id: int | None) -> bool:
    """A job resumed after its worker died finds the radiographs it had stored
    itself just before the crash, with no item recorded: those count as
    imported. A second copy of a file within one upload stays "present"."""
    if radiograph_id is None:  # no radiograph has a null id: what the query below would find
        return False
    return (
        Radiograph.objects.filter(id=radiograph_id, import_job=job).exists()
        and not job.items.filter(radiograph_id=radiograph_id).exists()
    )


def import_job_run(*, job_id: int) -> None:
    """Run (or resume, after a worker died) one import job. Idempotent."""
    with transaction.atomic():
        job = ImportJob.objects.select_for_update().get(id=job_id)
        if job.status in (ImportJob.Status.DONE, ImportJob.Status.FAILED):
            logger.info("import job %s is already %s; nothing to do", job.id, job.status)
            return
        job.status = ImportJob.Status.RUNNING
        job.started_at = job.started_at or timezone.now()
        job.save(update_fields=["status", "started_at"])

    folder = incoming_dir() / job.folder
    try:
        if not folder.is_dir():
            raise FileNotFoundError("the uploaded files are no longer on disk")
        total = sum(1 for _ in _job_sources(folder))
        ImportJob.objects.filter(id=job.id).update(total=total)
        done = set(job.items.values_list("ordinal", flat=True))
        ordinal_of: dict[int, int] = {}

        def todo() -> Iterator[sources.SourceItem]:
            for ordinal, item in enumerate(_job_sources(folder)):
                if ordinal not in done:
                    ordinal_of[id(item)] = ordinal
                    yield item

        for item, outcome in ingest_items(todo(), source=job.source, user=job.created_by, job=job):
            ordinal = ordinal_of.pop(id(item))
            if outcome.status == PRESENT and _imported_before_crash(job, outcome.radiograph_id):
                outcome = IngestOutcome(outcome.name, IMPORTED, "", outcome.radiograph_id)
            ImportItem.objects.get_or_create(
                job=job,
                ordinal=ordinal,
                defaults={
                    "status": outcome.status,
                    "reason": outcome.reason[:500],
                    "radiograph_id": outcome.radiograph_id,
                },
            )
    except Exception as exc:
        logger.exception("import job %s failed", job.id)
        ImportJob.objects.filter(id=job.id).update(
            status=ImportJob.Status.FAILED, error=str(exc)[:2000], finished_at=timezone.now()
        )
        raise
    ImportJob.objects.filter(id=job.id).update(status=ImportJob.Status.DONE, finished_at=timezone.now())
    shutil.rmtree(folder, ignore_errors=True)
