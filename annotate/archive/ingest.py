"""DICOM ingest: de-identify, decode, store the files, add the rows.

``_prepare`` (threads, no database) de-identifies, hashes, decodes and stages the de-identified
DICOM (``annotate.archive.staging``); ``_settle`` makes a batch's files durable, then ``_commit`` adds
each file's rows in one transaction. Previews are rendered on first view (``annotate.archive.previews``).
Importing the same instance again changes nothing. Design: docs/operations/data-protection.md.
"""

from __future__ import annotations

import datetime
import errno
import hashlib
import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from pydicom.uid import (
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    JPEG2000Lossless,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)

from annotate.archive.deidentify import Identity, deidentify
from annotate.archive.dicom import (
    DecodedImage,
    DecodeLimits,
    DicomRejected,
    decode_dataset,
    encode_dataset_parts,
    guarded,
    read_dataset,
)
from annotate.archive.pseudonyms import deidentification_policy, pacs_link_seal, pseudonym
from annotate.archive.sources import SourceError, SourceItem
from annotate.archive.staging import Staged, discard, make_durable, stage
from annotate.labelling import services as labelling
from annotate.models import ImportItem, ImportJob, Patient, Radiograph, Study
from common.storage import Buffers

logger = logging.getLogger(__name__)

LOSSLESS_COMPRESSED = frozenset(
    (RLELossless, JPEGLossless, JPEGLosslessSV1, JPEGLSLossless, JPEG2000Lossless, HTJ2KLossless, HTJ2KLosslessRPCL)
)

IMPORTED = ImportItem.Status.IMPORTED
PRESENT = ImportItem.Status.PRESENT
REJECTED = ImportItem.Status.REJECTED
# A write that fails for want of space (or quota) rejects the file with a reason naming the
# full disk, instead of failing the whole import; the partial files are removed.
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
DISK_FULL_REASON = "the disk of the data folder is full"  # how such a rejection's reason begins
# Each stored file is fdatasynced by the thread that wrote it (True) rather than all of a batch's
# by the committing thread just before its rows (False); the rename waits for the batch either way.
SYNC_IN_POOL = True


@dataclass(frozen=True)
class IngestOutcome:
    name: str
    status: str  # one of ImportItem.Status
    reason: str = ""
    radiograph_id: int | None = None


@dataclass
class _Prepared:
    sha256: str
    size: int
    image: DecodedImage | None
    names: dict[str, str]
    identity: Identity
    created: list[str] = field(default_factory=list)  # names this import put in place (after _settle)
    staged: list[Staged] = field(default_factory=list)  # written, not yet durable nor in place
    received: bytes = b""  # the file as received: prepared again should its stored file be gone


def decode_limits() -> DecodeLimits:
    """The bounds on decoding (settings ``MAX_DECODED_PIXELS``, ``MAX_DECODED_BYTES``) that
    every route passes to ``annotate.archive.dicom``."""
    return DecodeLimits(max_pixels=settings.MAX_DECODED_PIXELS, max_bytes=settings.MAX_DECODED_BYTES)


def file_names(sha256: str) -> dict[str, str]:
    """The stored DICOM's name, and the name its preview is cached under on first view."""
    prefix = sha256[:2]
    return {
        "original": f"originals/{prefix}/{sha256}.dcm",
        "preview": f"previews/{prefix}/{sha256}.jpg",
    }


def _settle(prepared: _Prepared | str) -> _Prepared | str:
    """Make one file's staged files durable and put them in place (``_settle_batch`` of one)."""
    settled = _settle_batch([prepared])[0]
    assert not isinstance(settled, (IngestOutcome, Future))
    return settled


def _settle_batch(batch: list[_Result]) -> list[_Result]:
    """Make a batch's staged files durable in one pass before any of its rows is committed (one
    fdatasync per file, one fsync per folder, no wait per file in between). A full disk refuses
    the batch's files not yet in place, as a failed write does."""
    prepared = [p for p in batch if isinstance(p, _Prepared) and p.staged]
    try:
        make_durable(s for p in prepared for s in p.staged)
    except OSError as exc:
        if exc.errno not in DISK_FULL:
            raise
        logger.error("the data folder is full: %s", exc)
        reason = f"{DISK_FULL_REASON} ({os.strerror(exc.errno)}); nothing was stored, send it again"
        failed = {id(p) for p in prepared}
        return [reason if id(p) in failed else p for p in batch]
    for p in prepared:
        p.created.extend(s.name for s in p.staged)
        p.staged = []
    return batch


def _delete_files(names: Iterable[str]) -> None:
    for name in names:
        try:
            default_storage.delete(name)
        except OSError:
            logger.exception("could not remove %s after a failed import", name)


def deidentified_copy(data: bytes) -> tuple[Any, bytes, Identity]:
    """Read a received file within the decoding bounds, de-identify it (settings
    ``PSEUDONYM_KEY``, ``DICOM_DATE_SHIFT``) and write it again: (data set, the bytes of the
    de-identified file, what the file said before). Raises DicomRejected."""
    ds, parts, identity = _deidentified_parts(data)
    return ds, b"".join(parts), identity


def _deidentified_parts(data: bytes) -> tuple[Any, tuple[bytes | memoryview, ...], Identity]:
    """``deidentified_copy`` with the file as parts (``encode_dataset_parts``): the pixels are
    hashed and written from the data set's own buffer, not copied."""
    return _deidentify_read(read_dataset(data, limits=decode_limits()), received=len(data))


def _deidentify_read(ds: Any, *, received: int) -> tuple[Any, tuple[bytes | memoryview, ...], Identity]:
    """``_deidentified_parts`` of a data set already read (``received``: the file's size)."""
    with guarded(ds):
        identity = deidentify(ds, deidentification_policy())
        if _store_decompressed(ds, received):
            ds.decompress(generate_instance_uid=False)  # lossless: the same instance
    return ds, encode_dataset_parts(ds), identity


def _sha256(parts: tuple[bytes | memoryview, ...]) -> str:
    """The SHA-256 of a file given as parts: the name it is stored under."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.hexdigest()


def _store_decompressed(ds: Any, received: int) -> bool:
    """Whether to keep a losslessly compressed file decompressed (``STORE_DECOMPRESSED_PERCENT``):
    when the native pixels take at most that share of the bytes received."""
    ts = ds.file_meta.TransferSyntaxUID
    if ts not in LOSSLESS_COMPRESSED or not settings.STORE_DECOMPRESSED_PERCENT:
        return False
    frames = int(ds.get("NumberOfFrames") or 1)
    native = int(ds.Rows) * int(ds.Columns) * int(ds.SamplesPerPixel or 1) * frames * (int(ds.BitsAllocated) // 8)
    return native * 100 <= settings.STORE_DECOMPRESSED_PERCENT * received


def _prepare(data: bytes) -> _Prepared | str:
    """De-identify, hash, decode and store the files of one file (no database:
    runs in a thread). A string is the reason for refusing the file.

    The stored copy is the de-identified one, named by its own hash. De-identification
    is deterministic, so content whose files are all stored already is not
    decoded again (``image`` is None): it is a re-import, and ``_commit`` finds its row.
    """
    try:
        ds, stored, identity = _deidentified_parts(data)
    except DicomRejected as exc:
        return exc.reason
    sha256 = _sha256(stored)
    names = file_names(sha256)
    size = sum(memoryview(part).nbytes for part in stored)
    if default_storage.exists(names["original"]):  # only durable files have their final name
        return _Prepared(sha256, size, None, names, identity, received=data)
    prepared = _prepare_decoded(ds, stored, sha256, identity)
    if isinstance(prepared, _Prepared):
        prepared.received = data
    return prepared


def _prepare_decoded(
    ds: Any, stored: tuple[bytes | memoryview, ...], sha256: str, identity: Identity
) -> _Prepared | str:
    try:
        image = decode_dataset(ds)
    except DicomRejected as exc:
        return exc.reason
    names = file_names(sha256)
    try:
        # fdatasynced here, in the pool: the disk's wait overlaps the other files' work. The rename
        # into place (and the folders' fsync) waits for _settle_batch, just before the rows.
        staged = stage(names["original"], Buffers(*stored), sync=SYNC_IN_POOL)
    except OSError as exc:
        if exc.errno not in DISK_FULL:
            raise
        logger.error("the data folder is full: %s", exc)
        return f"{DISK_FULL_REASON} ({os.strerror(exc.errno)}); nothing was stored, send it again"
    size = sum(memoryview(part).nbytes for part in stored)
    return _Prepared(sha256, size, image, names, identity, staged=[staged] if staged else [])


def _commit(
    prepared: _Prepared,
    *,
    name: str,
    source: str,
    user: User | None,
    job: ImportJob | None,
    received_at: datetime.datetime | None = None,
) -> IngestOutcome:
    sha256, created = prepared.sha256, prepared.created
    # One query for both questions: the same file, or the same instance in other bytes.
    same = (
        Q(sha256=sha256) | Q(sop_instance_uid=prepared.image.meta.sop_instance_uid)
        if prepared.image
        else Q(sha256=sha256)
    )
    found, asked = dict(Radiograph.objects.filter(same).values_list("sha256", "id")[:2]), prepared.image is not None
    if sha256 in found:
        return IngestOutcome(name, PRESENT, "", found[sha256])
    if prepared.image is None or (prepared.received and not default_storage.exists(prepared.names["original"])):
        # Its file was stored when it was prepared (left by an import that died between files and
        # rows), or by another file of this batch with the same content, which may have given it
        # up since (a refused duplicate). Prepare it again from what was received
        # (de-identification is deterministic: the same names); a missing file is stored again.
        try:
            ds, stored, identity = _deidentified_parts(prepared.received)
            redone = _settle(_prepare_decoded(ds, stored, sha256, identity))
        except DicomRejected as exc:
            redone = exc.reason
        if isinstance(redone, str):
            return IngestOutcome(name, REJECTED, redone)
        prepared, created = redone, redone.created
    assert prepared.image is not None  # decoded now, or by _prepare_decoded above
    meta, identity = prepared.image.meta, prepared.identity
    existing = next(iter(found.values()), None)
    if not asked:  # decoded just now
        existing = (
            Radiograph.objects.filter(sop_instance_uid=meta.sop_instance_uid).values_list("id", flat=True).first()
        )
    if existing is not None:
        if not Radiograph.objects.filter(sha256=sha256).exists():
            _delete_files(created)
        return IngestOutcome(name, PRESENT, "same SOP Instance UID, different file", existing)
    try:
        with transaction.atomic():
            patient, _ = Patient.objects.get_or_create(
                pseudo_id=pseudonym(identity.patient_id, purpose="patient"), defaults={"sex": meta.patient_sex}
            )
            study, _ = Study.objects.get_or_create(
                study_instance_uid=meta.study_instance_uid,
                defaults={
                    "patient": patient,
                    "accession_pseudo": pseudonym(identity.accession_number, purpose="accession"),
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
                pacs_link=pacs_link_seal(identity),
                modality=meta.modality,
                view_position=meta.view_position,
                rows=meta.rows,
                columns=meta.columns,
                pixel_spacing_row=spacing[0],
                pixel_spacing_col=spacing[1],
                bits_stored=meta.bits_stored,
                photometric_interpretation=meta.photometric_interpretation,
                manufacturer=meta.manufacturer,
                manufacturer_model=meta.manufacturer_model,
                transfer_syntax_uid=meta.transfer_syntax_uid,
                window_center=prepared.image.window_center,
                window_width=prepared.image.window_width,
                sha256=sha256,
                file_size=prepared.size,
                original=prepared.names["original"],
                pixels="",  # no array file any more: annotate.archive.pixels decodes the original
                preview=prepared.names["preview"],
                source=source,
                imported_by=user if getattr(user, "is_authenticated", False) else None,
                import_job=job,
                received_at=received_at or timezone.now(),
            )
            labelling.assignments_create(radiographs=[radiograph])
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


def _too_large(size: int) -> str:
    limit = settings.MAX_DICOM_BYTES
    return f"file too large ({size // 1024**2} MB; the limit is {limit // 1024**2} MB)"


def radiograph_ingest(
    *,
    data: bytes,
    name: str,
    source: str,
    user: User | None = None,
    job: ImportJob | None = None,
    received_at: datetime.datetime | None = None,
) -> IngestOutcome:
    """Import one DICOM file (see the module's docstring). ``received_at``: when the file
    reached the site, if earlier than now (a file spooled by the DICOM listener)."""
    if len(data) > settings.MAX_DICOM_BYTES:
        return IngestOutcome(name, REJECTED, _too_large(len(data)))
    prepared = _settle(_prepare(data))
    if isinstance(prepared, str):
        return IngestOutcome(name, REJECTED, prepared)
    try:
        return _commit(prepared, name=name, source=source, user=user, job=job, received_at=received_at)
    except BaseException:
        _discard([prepared])
        raise


def ingest_items(
    items: Iterable[SourceItem],
    *,
    source: str,
    user: User | None = None,
    job: ImportJob | None = None,
    workers: int | None = None,
) -> Iterator[tuple[SourceItem, IngestOutcome]]:
    """Ingest many files, in order, preparing several at once in threads.

    Files are read here, in order (a zip is read entry by entry), prepared in
    a thread pool, and committed here in the same order, so a second copy of
    a file in one batch finds the row of the first. At most ``2 * workers``
    files are in memory at a time.
    """
    workers = workers or settings.INGEST_WORKERS or os.cpu_count() or 1
    pending: deque[tuple[SourceItem, _Result]] = deque()  # in the pool, or answered already
    batch: deque[tuple[SourceItem, _Result]] = deque()  # prepared, files durable, rows to commit
    imported: list[int] = []

    def start(item: SourceItem) -> _Result:
        if item.error:
            return IngestOutcome(item.name, REJECTED, item.error)
        if item.any_thread:  # a plain file: read in the pool too, beside the other files' work
            return pool.submit(_read_and_prepare, item.read)
        try:
            data = item.read()
        except SourceError as exc:
            return IngestOutcome(item.name, REJECTED, str(exc))
        if len(data) > settings.MAX_DICOM_BYTES:
            return IngestOutcome(item.name, REJECTED, _too_large(len(data)))
        return pool.submit(_prepare, data)

    def take() -> None:
        """Move the head of ``pending`` and the prepared files behind it into ``batch``, their
        files made durable in one pass (``_settle_batch``)."""
        batch.append(pending.popleft())
        while pending and len(batch) < 2 * workers and _answered(pending[0][1]):
            batch.append(pending.popleft())
        for index, (item, result) in enumerate(batch):
            batch[index] = (item, result.result() if isinstance(result, Future) else result)
        settled = _settle_batch([result for _, result in batch])
        for index, (item, _) in enumerate(list(batch)):
            batch[index] = (item, settled[index])

    def finish(item: SourceItem, result: _Result) -> IngestOutcome:
        if isinstance(result, IngestOutcome):
            return result
        if isinstance(result, str):
            return IngestOutcome(item.name, REJECTED, result)
        assert isinstance(result, _Prepared)  # take() answered the futures
        try:
            outcome = _commit(result, name=item.name, source=source, user=user, job=job)
        except BaseException:
            _discard([result])
            raise
        if outcome.status == IMPORTED and outcome.radiograph_id is not None:
            imported.append(outcome.radiograph_id)
        return outcome

    def ready() -> bool:
        return len(pending) > 2 * workers or _answered(pending[0][1])

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ingest") as pool:
        try:
            for item in items:
                pending.append((item, start(item)))
                while pending and ready():
                    take()
                    while batch:
                        done_item, result = batch.popleft()
                        yield done_item, finish(done_item, result)
            while pending:
                take()
                while batch:
                    done_item, result = batch.popleft()
                    yield done_item, finish(done_item, result)
        finally:
            # Stopped early (an error, or the caller stopped iterating): files
            # prepared for rows that will never be written must not stay.
            _discard(result for _, result in (*batch, *pending))
            _previews_warm(imported)


_Result = IngestOutcome | Future[_Prepared | str] | _Prepared | str


def _answered(result: _Result) -> bool:
    return not isinstance(result, Future) or result.done()


def _previews_warm(radiograph_ids: list[int]) -> None:
    """Queue the rendering of a batch's previews (``annotate.archive.previews``), so that its
    first pages need not wait; the ingest itself renders none. Only logged when not queued."""
    if not radiograph_ids:
        return
    from annotate.tasks import previews_warm  # deferred: the tasks module imports the services
    from common.queueing import enqueue

    enqueue(previews_warm, radiograph_ids=radiograph_ids, or_log="warming the previews of an import")


def _read_and_prepare(read: Callable[[], bytes]) -> _Prepared | str:
    try:
        data = read()
    except SourceError as exc:
        return str(exc)
    if len(data) > settings.MAX_DICOM_BYTES:
        return _too_large(len(data))
    return _prepare(data)


def _discard(results: Iterable[_Result]) -> None:
    for result in results:
        if isinstance(result, Future):
            try:
                result = result.result()
            except Exception:
                continue  # stage() already removed what it wrote
        if not isinstance(result, _Prepared):
            continue
        discard(result.staged)
        if result.created and not Radiograph.objects.filter(sha256=result.sha256).exists():
            _delete_files(result.created)


# --- Radiographs stored before de-identification at ingest ----------------------------


def stored_is_deidentified(ds: Any) -> bool:
    """Whether a stored data set was de-identified by the ingest: PatientIdentityRemoved YES, or
    the profile named in DeidentificationMethod (files stored before the ingest set the former)."""
    methods = ds.get("DeidentificationMethod") or []
    methods = [methods] if isinstance(methods, str) else list(methods)
    return str(ds.get("PatientIdentityRemoved", "")).upper() == "YES" or any(
        str(m).startswith("PS3.15 Basic Application Level Confidentiality Profile") for m in methods
    )


def radiograph_deidentify_stored(*, radiograph_id: int) -> str:
    """De-identify the stored copy of a radiograph ingested before the ingest did so, as the
    ingest would have: the de-identified file and its preview are stored under their new names,
    the row takes the pseudonymous UIDs and the sealed link to the original ones, and the old
    files are removed once no row names them. Idempotent: "done" when it changed the radiograph,
    "already" when its stored copy was de-identified; "skipped: <reason>" otherwise.
    """
    radiograph = Radiograph.objects.select_related("study").get(pk=radiograph_id)
    assert radiograph.original.name is not None  # every radiograph has its original
    with default_storage.open(radiograph.original.name) as handle:
        data = handle.read()
    try:
        ds = read_dataset(data, limits=decode_limits())
        if stored_is_deidentified(ds):
            return "already"
        ds, stored, identity = _deidentify_read(ds, received=len(data))
    except DicomRejected as exc:
        return f"skipped: {exc.reason}"
    prepared = _settle(_prepare_decoded(ds, stored, _sha256(stored), identity))
    if isinstance(prepared, str):
        return f"skipped: {prepared}"
    assert prepared.image is not None  # _prepare_decoded decodes
    meta, old_names = prepared.image.meta, (radiograph.original.name, radiograph.preview.name)
    with transaction.atomic():
        radiograph = Radiograph.objects.select_for_update().select_related("study").get(pk=radiograph_id)
        if radiograph.sha256 == prepared.sha256:
            return "already"
        if Radiograph.objects.filter(sop_instance_uid=meta.sop_instance_uid).exclude(pk=radiograph.pk).exists():
            _delete_files(prepared.created)
            return "skipped: the same instance was imported again since; remove one of the two"
        study = radiograph.study
        if study.study_instance_uid != meta.study_instance_uid:
            other = Study.objects.filter(study_instance_uid=meta.study_instance_uid).first()
            if other is None:
                study.study_instance_uid = meta.study_instance_uid
                study.save(update_fields=["study_instance_uid"])
            else:  # the study came again since, de-identified: the radiograph joins it
                radiograph.study = other
        radiograph.series_instance_uid = meta.series_instance_uid
        radiograph.sop_instance_uid = meta.sop_instance_uid
        radiograph.transfer_syntax_uid = meta.transfer_syntax_uid
        radiograph.pacs_link = pacs_link_seal(identity)
        radiograph.sha256, radiograph.file_size = prepared.sha256, prepared.size
        radiograph.original, radiograph.preview = prepared.names["original"], prepared.names["preview"]
        radiograph.save()
        if radiograph.study_id != study.pk and not study.radiographs.exists():
            study.delete()
        transaction.on_commit(lambda: _delete_unused(old_names))
    return "done"


def _delete_unused(names: Iterable[str | None]) -> None:
    for name in names:
        if name and not Radiograph.objects.filter(Q(original=name) | Q(preview=name)).exists():
            _delete_files([name])
