"""Writes of the annotate app: DICOM ingest and import jobs."""

from __future__ import annotations

import hashlib
import hmac
import io
import logging
import shutil
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone
from PIL import Image

from annotate import sources
from annotate.dicom import DecodedImage, DicomRejected, decode_dicom, render_preview
from annotate.models import ImportItem, ImportJob, Patient, Radiograph, Study

logger = logging.getLogger(__name__)

IMPORTED = ImportItem.Status.IMPORTED
PRESENT = ImportItem.Status.PRESENT
REJECTED = ImportItem.Status.REJECTED


@dataclass(frozen=True)
class IngestOutcome:
    name: str
    status: str  # one of ImportItem.Status
    reason: str = ""
    radiograph_id: int | None = None


def pseudonym(value: str, *, purpose: str) -> str:
    """Keyed hash (HMAC-SHA256) of an identifier; ``purpose`` keeps the hash of
    a patient ID apart from the hash of an equal accession number."""
    key = settings.PSEUDONYM_KEY.encode()
    return hmac.new(key, f"{purpose}:{value.strip()}".encode(), hashlib.sha256).hexdigest()


def _file_names(sha256: str) -> dict[str, str]:
    prefix = sha256[:2]
    return {
        "original": f"originals/{prefix}/{sha256}.dcm",
        "pixels": f"pixels/{prefix}/{sha256}.npy",
        "preview": f"previews/{prefix}/{sha256}.png",
    }


def _encode_pixels(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, pixels, allow_pickle=False)
    return buffer.getvalue()


def _encode_preview(image: DecodedImage) -> bytes:
    preview = render_preview(image.pixels, image.window_center, image.window_width, settings.PREVIEW_MAX_SIZE)
    buffer = io.BytesIO()
    Image.fromarray(preview).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _store_files(contents: dict[str, bytes], names: dict[str, str]) -> list[str]:
    """Save each file under its content-addressed name; return the names this
    call created, so that a failure can remove exactly those."""
    created: list[str] = []
    try:
        for field, data in contents.items():
            name = names[field]
            if not default_storage.exists(name):
                default_storage.save(name, ContentFile(data))
                created.append(name)
    except BaseException:
        _delete_files(created)
        raise
    return created


def _delete_files(names: Iterable[str]) -> None:
    for name in names:
        try:
            default_storage.delete(name)
        except OSError:
            logger.exception("could not remove %s after a failed import", name)


def radiograph_ingest(
    *, data: bytes, name: str, source: str, user: Any = None, job: ImportJob | None = None
) -> IngestOutcome:
    """Import one DICOM file: decode, pseudonymise, store the files, add the rows.

    Importing the same instance again changes nothing. A failure part-way
    leaves neither a row without its files nor a file without its row.
    """
    if len(data) > settings.MAX_DICOM_BYTES:
        limit = settings.MAX_DICOM_BYTES // 1024**2
        return IngestOutcome(name, REJECTED, f"file too large ({len(data) // 1024**2} MB; the limit is {limit} MB)")
    sha256 = hashlib.sha256(data).hexdigest()
    existing = Radiograph.objects.filter(sha256=sha256).values_list("id", flat=True).first()
    if existing is not None:
        return IngestOutcome(name, PRESENT, "", existing)
    try:
        image = decode_dicom(data)
    except DicomRejected as exc:
        return IngestOutcome(name, REJECTED, exc.reason)
    meta = image.meta
    existing = Radiograph.objects.filter(sop_instance_uid=meta.sop_instance_uid).values_list("id", flat=True).first()
    if existing is not None:
        return IngestOutcome(name, PRESENT, "same SOP Instance UID, different file", existing)

    names = _file_names(sha256)
    contents = {"original": data, "pixels": _encode_pixels(image.pixels), "preview": _encode_preview(image)}
    created = _store_files(contents, names)
    try:
        with transaction.atomic():
            patient, _ = Patient.objects.get_or_create(
                pseudo_id=pseudonym(meta.patient_id, purpose="patient"), defaults={"sex": meta.patient_sex}
            )
            study, _ = Study.objects.get_or_create(
                study_instance_uid=meta.study_instance_uid,
                defaults={
                    "patient": patient,
                    "accession_pseudo": pseudonym(meta.accession_number, purpose="accession"),
                    "study_date": meta.study_date,
                    "patient_age_years": meta.patient_age_years,
                },
            )
            spacing = meta.pixel_spacing or (None, None)
            radiograph = Radiograph.objects.create(
                study=study,
                series_instance_uid=meta.series_instance_uid,
                sop_instance_uid=meta.sop_instance_uid,
                sop_class_uid=meta.sop_class_uid,
                modality=meta.modality,
                view_position=meta.view_position,
                rows=meta.rows,
                columns=meta.columns,
                pixel_spacing_row=spacing[0],
                pixel_spacing_col=spacing[1],
                bits_stored=meta.bits_stored,
                photometric_interpretation=meta.photometric_interpretation,
                manufacturer=meta.manufacturer,
                transfer_syntax_uid=meta.transfer_syntax_uid,
                window_center=image.window_center,
                window_width=image.window_width,
                sha256=sha256,
                file_size=len(data),
                original=names["original"],
                pixels=names["pixels"],
                preview=names["preview"],
                source=source,
                imported_by=user if getattr(user, "is_authenticated", False) else None,
                import_job=job,
            )
    except IntegrityError:
        # Another process imported the same instance in the meantime. Its row
        # may point at the very files we wrote (same content, same names), so
        # they stay unless no row uses them.
        other = Radiograph.objects.filter(sop_instance_uid=meta.sop_instance_uid).values_list("id", flat=True).first()
        if not Radiograph.objects.filter(sha256=sha256).exists():
            _delete_files(created)
        return IngestOutcome(name, PRESENT, "imported concurrently", other)
    except BaseException:
        _delete_files(created)
        raise
    return IngestOutcome(name, IMPORTED, "", radiograph.id)


def find_sources(paths: Iterable[Path | str], *, relative_to: Path | None = None) -> Iterator[sources.SourceItem]:
    return sources.iter_sources(
        paths,
        max_file_bytes=settings.MAX_DICOM_BYTES,
        max_zip_expanded_bytes=settings.MAX_ZIP_EXPANDED_BYTES,
        relative_to=relative_to,
    )


def ingest_item(item: sources.SourceItem, *, source: str, user: Any = None, job: Any = None) -> IngestOutcome:
    """Ingest one file found by :func:`find_sources`."""
    if item.error:
        return IngestOutcome(item.name, REJECTED, item.error)
    try:
        data = item.read()
    except sources.SourceError as exc:
        return IngestOutcome(item.name, REJECTED, str(exc))
    return radiograph_ingest(data=data, name=item.name, source=source, user=user, job=job)


def ingest_sources(
    paths: Iterable[Path | str], *, source: str, user: Any = None, relative_to: Path | None = None
) -> Iterator[IngestOutcome]:
    """Ingest every DICOM found under ``paths`` (files, folders, .zip), one outcome per file."""
    for item in find_sources(paths, relative_to=relative_to):
        yield ingest_item(item, source=source, user=user)


# --- Import jobs: uploads processed by a worker --------------------------------------


def incoming_dir() -> Path:
    return settings.DATA_DIR / "incoming"


def import_job_create(*, user: Any, files: Iterable[Any], source: str) -> ImportJob:
    """Keep the uploaded files in a folder of their own and queue their import."""
    from annotate.tasks import import_job_run

    folder = incoming_dir() / uuid.uuid4().hex
    folder.mkdir(parents=True)
    count = 0
    try:
        for index, upload in enumerate(files):
            # The client's file name is untrusted: keep only its last part, in
            # a folder of its own so two files called "1.dcm" do not collide.
            base = Path(str(upload.name).replace("\\", "/")).name.lstrip(".") or "upload"
            target = folder / f"{index:05d}" / base
            target.parent.mkdir()
            with open(target, "wb") as handle:
                for chunk in upload.chunks():
                    handle.write(chunk)
            count += 1
        with transaction.atomic():
            job = ImportJob.objects.create(created_by=user, source=source, folder=folder.name, total=0)
            transaction.on_commit(lambda: import_job_run.delay(job_id=job.id))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    logger.info("import job %s queued with %d uploaded files", job.id, count)
    return job


def _job_sources(folder: Path) -> Iterator[sources.SourceItem]:
    """The files of an upload in a stable order, named as the user uploaded them."""
    for upload_dir in sorted(path for path in folder.iterdir() if path.is_dir()):
        yield from find_sources([upload_dir], relative_to=upload_dir)


def _imported_before_crash(job: ImportJob, radiograph_id: int | None) -> bool:
    """A job resumed after its worker died finds the radiographs it had stored
    itself just before the crash, with no item recorded: those count as
    imported. A second copy of a file within one upload stays "present"."""
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
        for ordinal, item in enumerate(_job_sources(folder)):
            if ordinal in done:
                continue
            outcome = ingest_item(item, source=job.source, user=job.created_by, job=job)
            if outcome.status == PRESENT and _imported_before_crash(job, outcome.radiograph_id):
                outcome = IngestOutcome(outcome.name, IMPORTED, "", outcome.radiograph_id)
            ImportItem.objects.get_or_create(
                job=job,
                ordinal=ordinal,
                defaults={
                    "name": outcome.name[:500],
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
