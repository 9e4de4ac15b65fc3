"""Received files that must not outlive their use: upload folders and temporary upload files a
killed web worker left behind, and the listener's rejected files past their retention.

Run at start: by the Celery worker (``worker_ready``), by gunicorn (``when_ready``), and by the
listener for its rejected files; ``manage.py cleanup_uploads`` does the same by hand.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from django.conf import settings

from annotate.models import ImportJob

logger = logging.getLogger(__name__)


def incoming_dir() -> Path:
    """Where an upload's files wait for their import job (``DATA_DIR/incoming/<uuid hex>``)."""
    return Path(settings.DATA_DIR) / "incoming"


def temporary_dirs() -> list[Path]:
    """Folders of unnamed or short-lived temporary files: Django's upload files
    (FILE_UPLOAD_TEMP_DIR) and the STOW-RS request bodies."""
    return [Path(settings.FILE_UPLOAD_TEMP_DIR), Path(settings.DATA_DIR) / "stow"]


def _age(path: Path, now: float) -> float:
    try:
        return now - path.lstat().st_mtime
    except FileNotFoundError:
        return -1.0


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def upload_orphans_remove(*, min_age_seconds: float | None = None) -> dict[str, int]:
    """Adopt or remove what uploads left behind; returns the counts.

    - An upload folder whose import job is still queued or running is adopted: the job goes on
      (a worker re-queues a queued job, ``ml.operations.requeue_missed_work``).
    - One whose job is done or failed, or that has no job and is older than ``min_age_seconds``
      (settings ``UPLOAD_ORPHAN_SECONDS``: an upload still being written is younger), is removed.
    - Temporary upload files older than that are removed.
    """

    min_age = settings.UPLOAD_ORPHAN_SECONDS if min_age_seconds is None else min_age_seconds
    now = time.time()
    counts = {"adopted": 0, "removed": 0, "temporary_removed": 0}
    folder = incoming_dir()
    if folder.is_dir():
        jobs = dict(
            ImportJob.objects.filter(folder__in=[p.name for p in folder.iterdir()]).values_list("folder", "status")
        )
        waiting = {ImportJob.Status.QUEUED, ImportJob.Status.RUNNING}
        for path in folder.iterdir():
            status = jobs.get(path.name)
            if status in waiting:
                counts["adopted"] += 1
            elif status is not None or _age(path, now) >= min_age:
                _remove(path)
                counts["removed"] += 1
    for temporary in temporary_dirs():
        if temporary.is_dir():
            for path in temporary.iterdir():
                if _age(path, now) >= min_age:
                    _remove(path)
                    counts["temporary_removed"] += 1
    if counts["removed"] or counts["temporary_removed"]:
        logger.info(
            "removed %d orphaned upload folder(s) and %d temporary upload file(s); %d folder(s) adopted by their job",
            counts["removed"],
            counts["temporary_removed"],
            counts["adopted"],
        )
    return counts


def rejected_purge(folder: Path, *, days: int | None = None) -> int:
    """Remove files in the listener's ``rejected/`` folder older than ``days`` (settings
    ``REJECTED_RETENTION_DAYS``); returns how many."""
    days = settings.REJECTED_RETENTION_DAYS if days is None else days
    if not folder.is_dir():
        return 0
    now, removed = time.time(), 0
    for path in folder.iterdir():
        if _age(path, now) >= days * 86400:
            _remove(path)
            removed += 1
    if removed:
        logger.info("removed %d rejected file(s) older than %d days from %s", removed, days, folder)
    return removed
