"""The import task on a real Celery worker, real Redis and the test database.

No eager mode and no mocks: the worker is a subprocess (tests/celery_worker.py)
and the task reaches it through the broker, as in production. What is proved:
a queued import runs; a task delivered twice does the work once; and a job
whose worker is killed part-way is delivered again and finishes with every file
imported exactly once, whether the whole worker dies (the broker gives the
unacknowledged message back) or only its pool process (Celery requeues it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from annotate import services
from annotate.models import ImportItem, ImportJob, Radiograph
from annotate.tasks import import_job_run
from tests import support
from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.worker

TASK = "annotate.tasks.import_job_run"
# Big enough that an import of BIG_FILES takes a few seconds, so that the worker
# can be killed part-way: ~4.5 MB each, decoded, stored and previewed.
BIG = {"rows": 1500, "columns": 1500, "bits_stored": 16}
BIG_FILES = 20


@pytest.fixture
def researcher(transactional_db: None) -> Any:
    return UserFactory(username="wanda")


def uploads(blobs: list[bytes], prefix: str = "image") -> list[SimpleUploadedFile]:
    return [
        SimpleUploadedFile(f"{prefix}{index}.dcm", data, content_type="application/dicom")
        for index, data in enumerate(blobs)
    ]


def wait_for(condition: Callable[[], Any], *, what: str, worker: Any, timeout: float = 30.0) -> Any:
    """Poll ``condition`` until it is true; fail with the worker's output otherwise."""
    return support.wait_for(condition, what=what, timeout=timeout, output=worker.output)


def job_status(job_id: int) -> str:
    return ImportJob.objects.values_list("status", flat=True).get(id=job_id)


def wait_until_finished(job_id: int, worker: Any, timeout: float = 60.0) -> ImportJob:
    finished = ("done", "failed")
    wait_for(lambda: job_status(job_id) in finished, what=f"job {job_id} to end", worker=worker, timeout=timeout)
    job = ImportJob.objects.get(id=job_id)
    assert job.status == "done", f"job {job_id} {job.status}: {job.error}\n{worker.output()}"
    return job


def assert_imported_once(job: ImportJob, names: list[str], worker: Any) -> None:
    """Every file has exactly one item and one radiograph, whose files are all on disk."""
    items = list(job.items.order_by("ordinal"))
    # One item per file, in upload order, none twice.
    # Known by their position in the upload: the uploaded names are never kept.
    assert [(item.ordinal, item.label) for item in items] == [(i, f"file {i + 1}") for i in range(len(names))], (
        worker.output()
    )
    assert job.total == len(names)
    radiograph_ids = {item.radiograph_id for item in items}
    assert None not in radiograph_ids and len(radiograph_ids) == len(names)
    assert Radiograph.objects.count() == len(names)
    # Imported, even a file whose radiograph was committed just before the
    # kill and whose item was not: the resumed job knows it as its own.
    assert {item.status for item in items} == {ImportItem.Status.IMPORTED}, [(i.label, i.status) for i in items]
    assert set(Radiograph.objects.values_list("import_job_id", flat=True)) == {job.id}
    media = Path(settings.MEDIA_ROOT)
    stored = set()
    for radiograph in Radiograph.objects.all():
        assert not radiograph.pixels  # the de-identified DICOM is the one full copy: no pixel array
        path = media / radiograph.original.name
        assert path.is_file(), f"{path} is missing"
        stored.add(path)
        assert (media / radiograph.original.name).stat().st_size == radiograph.file_size
    # No file without its row, even from an ingest cut short by SIGKILL (which
    # may leave a stray ".*.tmp" of AtomicFileSystemStorage, never a final name).
    # Previews are a cache that the batches' warming task renders (annotate.archive.previews).
    on_disk = {p for p in media.rglob("*") if p.is_file() and not p.name.endswith(".tmp") and p.suffix != ".jpg"}
    assert on_disk == stored, sorted(str(path) for path in on_disk - stored)
    # The uploads are removed just after the job is marked done.
    folder = services.incoming_dir() / job.folder
    wait_for(lambda: not folder.exists(), what=f"{folder} to be removed", worker=worker, timeout=15)


def wait_until_acknowledged(worker: Any, message_id: str) -> str:
    """Wait for the task's success line and for the broker to hold nothing.

    The job is marked done in the database before the task returns; the pool
    process then logs "succeeded" and the main process acknowledges the message
    (acks_late) just after, so both are awaited rather than read at once.
    """
    output = worker.wait_for_output(f"{TASK}[{message_id}] succeeded")
    wait_for(
        lambda: worker.unacked() == [] and worker.queued("default") == 0,
        what="the broker to hold nothing",
        worker=worker,
        timeout=15,
    )
    return output


def test_a_queued_import_runs_on_the_worker(celery_worker, researcher, dicom_bytes):
    files = uploads([dicom_bytes(seed=seed) for seed in range(3)])
    files.append(SimpleUploadedFile("notes.txt", b"not dicom at all"))

    job = services.import_job_create(user=researcher, files=files, source=Radiograph.Source.UPLOAD)

    job = wait_until_finished(job.id, celery_worker)
    assert job.total == 4 and job.counts() == {"imported": 3, "present": 0, "rejected": 1}
    notes = job.items.get(ordinal=3)  # notes.txt, the fourth upload
    assert notes.status == "rejected" and notes.reason and notes.label == "file 4"
    imported = job.items.filter(status="imported")
    assert Radiograph.objects.count() == 3
    assert set(Radiograph.objects.values_list("id", flat=True)) == {item.radiograph_id for item in imported}
    for radiograph in Radiograph.objects.all():  # rendered by the task the import queued after its batch
        preview = Path(settings.MEDIA_ROOT) / radiograph.preview.name
        wait_for(preview.is_file, what=f"{preview} to be rendered", worker=celery_worker, timeout=30)
    # The task went through the broker to the worker, once.
    output = celery_worker.wait_for_output(" succeeded in ")
    assert output.count(f"{TASK}[") == 2 and "] received" in output, output


def test_a_job_queued_twice_runs_once(celery_worker, researcher, dicom_bytes):
    job = services.import_job_create(
        user=researcher, files=uploads([dicom_bytes(seed=seed) for seed in range(3)]), source=Radiograph.Source.API
    )
    # The same job again, while the first delivery is queued or running: with
    # one worker process and acks_late the two run one after the other.
    second = import_job_run.delay(job_id=job.id)

    job = wait_until_finished(job.id, celery_worker)
    first_run = (job.started_at, job.finished_at, sorted(job.items.values_list("id", flat=True)))
    output = celery_worker.wait_for_output(f"{TASK}[{second.id}] succeeded")

    assert output.count(f"{TASK}[") == 4, output  # two deliveries: received and succeeded each
    # The second delivery found the job done and returned at once.
    second_run = output[output.index(f"{TASK}[{second.id}] received") : output.index(f"{TASK}[{second.id}] succeeded")]
    assert f"import job {job.id} is already done; nothing to do" in second_run, output
    assert output.count(f"import job {job.id} is already done") == 1, output
    job.refresh_from_db()
    assert (job.started_at, job.finished_at, sorted(job.items.values_list("id", flat=True))) == first_run
    assert job.counts() == {"imported": 3, "present": 0, "rejected": 0}
    assert_imported_once(job, [f"image{index}.dcm" for index in range(3)], celery_worker)


def start_big_job(researcher: Any, dicom_bytes: Callable[..., bytes], worker: Any) -> tuple[ImportJob, list[str]]:
    """Queue BIG_FILES large images and wait until the worker has imported a few, not all."""
    blobs = [dicom_bytes(seed=1000 + index, **BIG) for index in range(BIG_FILES)]
    job = services.import_job_create(user=researcher, files=uploads(blobs), source=Radiograph.Source.UPLOAD)
    names = [f"image{index}.dcm" for index in range(BIG_FILES)]
    wait_for(lambda: ImportItem.objects.filter(job=job).count() >= 3, what="the first items", worker=worker)
    return job, names


def test_a_job_survives_its_worker_being_killed(celery_worker, researcher, dicom_bytes):
    job, names = start_big_job(researcher, dicom_bytes, celery_worker)

    celery_worker.kill()  # SIGKILL the worker and its pool process: no ack, no goodbye

    job.refresh_from_db()
    done_before = set(job.items.values_list("id", flat=True))
    assert job.status == "running" and 3 <= len(done_before) < len(names), (job.status, len(done_before))
    # The broker still holds the message, delivered and not acknowledged.
    [message] = celery_worker.unacked()
    assert message["task"] == TASK and message["kwargsrepr"] == f"{{'job_id': {job.id}}}", message
    assert celery_worker.queued("default") == 0
    # A worker puts an unacked message back on its queue when it starts (and
    # then every 100 s) if it was delivered over visibility_timeout seconds ago;
    # start the next one once that is so, so that the redelivery can only come
    # from the broker's own restore.
    visible_at = message["delivered_at"] + celery_worker.visibility_timeout + 0.2
    wait_for(lambda: time.time() > visible_at, what="the visibility timeout", worker=celery_worker, timeout=15)

    celery_worker.start()

    job = wait_until_finished(job.id, celery_worker)
    assert_imported_once(job, names, celery_worker)
    assert done_before <= set(job.items.values_list("id", flat=True))  # resumed, not redone
    # The second worker received the very message the first one was given.
    first_log, second_log = wait_until_acknowledged(celery_worker, message["id"]).split("===== worker 2:")
    assert f"{TASK}[{message['id']}] received" in first_log
    assert f"{TASK}[{message['id']}] succeeded" not in first_log
    assert f"{TASK}[{message['id']}] received" in second_log
    assert f"{TASK}[{message['id']}] succeeded" in second_log


def test_a_job_survives_its_pool_process_being_killed(celery_worker, researcher, dicom_bytes):
    job, names = start_big_job(researcher, dicom_bytes, celery_worker)
    worker_pid = celery_worker.pid
    [message] = celery_worker.unacked()

    celery_worker.kill_pool_process()  # the main worker lives on
    done_before = set(job.items.values_list("id", flat=True))
    assert job_status(job.id) == "running" and len(done_before) < len(names)

    # reject_on_worker_lost: the main process rejects the message with requeue,
    # so it goes back on the queue at once, with no visibility timeout to wait.
    job = wait_until_finished(job.id, celery_worker)
    assert_imported_once(job, names, celery_worker)
    assert done_before <= set(job.items.values_list("id", flat=True))  # resumed, not redone
    output = wait_until_acknowledged(celery_worker, message["id"])
    assert celery_worker.running and celery_worker.pid == worker_pid and celery_worker.starts == 1
    assert "WorkerLostError" in output, output
    assert output.count(f"{TASK}[{message['id']}] received") == 2, output
    assert output.count(f"{TASK}[{message['id']}] succeeded") == 1, output
