"""The DICOM C-STORE receiver: store-and-forward, as a PACS router does it.

``DicomListener`` (a pynetdicom AE, C-ECHO too) checks each received file's header, spools it
atomically before answering Success, and drain threads ingest the spool in arrival order through
``annotate.archive.ingest.radiograph_ingest``; rejected files are kept de-identified in ``rejected/``.
Design: docs/architecture/design-dicom.md
"""

from __future__ import annotations

import contextlib
import datetime
import heapq
import logging
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any, cast

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection
from pydicom.dataset import Dataset
from pydicom.filereader import read_file_meta_info
from pydicom.pixels.decoders.base import get_decoder
from pydicom.uid import (
    UID,
    AllTransferSyntaxes,
    ComputedRadiographyImageStorage,
    DigitalXRayImageStorageForPresentation,
    DigitalXRayImageStorageForProcessing,
    SecondaryCaptureImageStorage,
)
from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import encode_file_meta, split_dataset
from pynetdicom.events import EventHandlerType
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]  # made at import

from annotate.archive.cleanup import rejected_purge
from annotate.archive.dicom import DicomRejected, read_meta_file
from annotate.archive.dicomnet_io import _pseudonymise_pynetdicom_logs, _receive_to_files
from annotate.archive.ingest import (
    decode_limits,  # deferred, as in _ingest: the ingest imports the models
    deidentified_copy,
    radiograph_ingest,
)
from annotate.archive.pseudonyms import short_pseudonym, uid_pseudonym
from annotate.models import Radiograph
from common.storage import private_dir

logger = logging.getLogger(__name__)

# What we store: the radiograph storage classes (and digitised film, which
# older archives keep as Secondary Capture). Every storage SOP class is
# accepted when the association is negotiated, so that a PACS pushing a whole
# study (CT, reports, ...) is not refused outright: each instance of another
# class is answered 0x0122 (SOP class not supported) and logged.
RADIOGRAPH_SOP_CLASSES = (
    ComputedRadiographyImageStorage,
    DigitalXRayImageStorageForPresentation,
    DigitalXRayImageStorageForProcessing,
    SecondaryCaptureImageStorage,
)

# DIMSE C-STORE statuses (PS3.4 B.2.3).
SUCCESS = 0x0000
SOP_CLASS_NOT_SUPPORTED = 0x0122
OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC000

SPOOL_SUFFIX = ".dcm"
PART_SUFFIX = ".part"
REJECTED_DIR = "rejected"
INCOMING_DIR = "incoming"  # pynetdicom's temporary files, one per C-STORE being received
_TIME_FORMAT = "%Y%m%dT%H%M%S.%fZ"
RETRY_SECONDS = 5.0  # a drain thread waits this long after an ingest failed for want of the database


def transfer_syntaxes() -> list[str]:
    """Every transfer syntax whose pixel data pydicom can decode here (native
    ones, and JPEG, JPEG-LS, JPEG 2000, HTJ2K and RLE through pylibjpeg):
    exactly the ones ``annotate.archive.dicom`` accepts, so nothing is acknowledged that
    the ingest could not read. Uncompressed explicit little endian first."""
    result = []
    for syntax in AllTransferSyntaxes:
        try:
            available = not syntax.is_compressed or get_decoder(syntax).is_available
        except NotImplementedError:  # MPEG, video, private
            available = False
        if available:
            result.append(str(syntax))
    result.sort(key=lambda syntax: syntax != "1.2.840.10008.1.2.1")
    return result


def spool_name(received_at: datetime.datetime, sop_instance_uid: str) -> str:
    digest = short_pseudonym(sop_instance_uid, purpose="spool")
    return f"{received_at.astimezone(datetime.UTC).strftime(_TIME_FORMAT)}-{digest}{SPOOL_SUFFIX}"


def received_at_of(name: str) -> datetime.datetime | None:
    """The receipt time a spool file's name records (None for a foreign name)."""
    try:
        return datetime.datetime.strptime(name.split("-", 1)[0], _TIME_FORMAT).replace(tzinfo=datetime.UTC)
    except ValueError:
        return None


def _status(code: int, comment: str) -> Dataset:
    status = Dataset()
    status.Status = code
    status.ErrorComment = comment[:64]  # LO: 64 characters at most
    return status


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DicomListener:
    """A C-STORE SCP (and C-ECHO) that spools what it receives and ingests it.

    ``start()`` returns at once (the server and the drain run in threads);
    ``port`` is the bound port afterwards (``port=0`` picks a free one);
    ``wait_idle()`` waits until the spool is empty and nothing is in flight;
    ``stop()`` stops accepting, lets running associations end (up to
    ``grace`` seconds), and lets each drain thread finish its current file.
    """

    def __init__(
        self,
        *,
        ae_title: str | None = None,
        host: str = "127.0.0.1",
        port: int = 11112,
        spool_dir: Path | None = None,
        allowed_calling_ae: list[str] | None = None,
        max_associations: int | None = None,
        drain_threads: int | None = None,
    ) -> None:
        self.ae_title = ae_title or settings.DICOM_AE_TITLE
        self.host = host
        self.port = port
        self.spool_dir = Path(spool_dir or settings.DICOM_SPOOL_DIR)
        self.rejected_dir = self.spool_dir / REJECTED_DIR
        self.incoming_dir = self.spool_dir / INCOMING_DIR
        self.allowed_calling_ae = list(
            settings.DICOM_ALLOWED_CALLING_AE if allowed_calling_ae is None else allowed_calling_ae
        )
        self.max_associations = max_associations or settings.DICOM_MAX_ASSOCIATIONS
        self.drain_threads = max(1, drain_threads or settings.DICOM_DRAIN_THREADS)
        self._server: Any = None
        self._ae: AE | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._lock = threading.Condition()
        self._pending: list[str] = []  # heap of spool names: the oldest arrival first
        self._queued: set[str] = set()
        self._busy = 0  # files being ingested now
        self._storing = 0  # C-STOREs being written to the spool now
        self.counts = {"stored": 0, "refused": 0, "imported": 0, "present": 0, "rejected": 0}

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        _pseudonymise_pynetdicom_logs()
        private_dir(self.spool_dir)
        private_dir(self.rejected_dir)
        private_dir(self.incoming_dir)
        rejected_purge(self.rejected_dir)
        for partial in self.incoming_dir.iterdir():
            # Received (in part) by a process that died: never acknowledged, the sender still has it.
            partial.unlink(missing_ok=True)
        _receive_to_files()
        for part in self.spool_dir.glob(f".*{PART_SUFFIX}"):
            # Never acknowledged (the process died while writing it): the sender still has it.
            part.unlink(missing_ok=True)
        left = sorted(path.name for path in self.spool_dir.glob(f"*{SPOOL_SUFFIX}") if not path.name.startswith("."))
        if left:
            logger.info("%d file(s) left in the spool %s by an earlier run: ingesting them", len(left), self.spool_dir)
        for name in left:
            self._enqueue(name)

        ae = AE(ae_title=self.ae_title)
        ae._incoming_dir = str(self.incoming_dir)  # type: ignore[attr-defined]  # see _incoming_temporary_file
        ae.maximum_associations = self.max_associations
        ae.maximum_pdu_size = settings.DICOM_MAX_PDU
        ae.acse_timeout = settings.DICOM_ACSE_TIMEOUT
        ae.dimse_timeout = settings.DICOM_DIMSE_TIMEOUT
        ae.network_timeout = settings.DICOM_NETWORK_TIMEOUT
        ae.require_called_aet = True  # a sender configured with another AE title is told so at once
        if self.allowed_calling_ae:
            ae.require_calling_aet = self.allowed_calling_ae
        ae.add_supported_context(Verification)
        syntaxes = transfer_syntaxes()
        for context in AllStoragePresentationContexts:
            assert context.abstract_syntax is not None  # pynetdicom's storage contexts all name theirs
            ae.add_supported_context(context.abstract_syntax, syntaxes)
        handlers: list[EventHandlerType] = [
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_ACCEPTED, self._on_accepted),
            (evt.EVT_REJECTED, self._on_rejected),
            (evt.EVT_CONN_CLOSE, self._on_conn_close),
        ]
        self._ae = ae
        self._server = ae.start_server((self.host, self.port), block=False, evt_handlers=handlers)
        self.port = self._server.server_address[1]
        for number in range(self.drain_threads):
            thread = threading.Thread(target=self._drain, name=f"dicom-drain-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, grace: float = 10.0) -> None:
        """Stop receiving, then stop the drain once each thread has finished its current file.

        Files still waiting stay in the spool for the next start."""
        if self._server is not None:
            self._server.shutdown()  # no new associations; running ones go on
            deadline = time.monotonic() + grace
            while self._server.active_associations and time.monotonic() < deadline:
                time.sleep(0.05)
            assert self._ae is not None
            self._ae.shutdown()  # aborts what is still running: its senders were not told "stored"
            self._server = None
        self._stopping.set()
        with self._lock:
            self._lock.notify_all()
        for thread in self._threads:
            thread.join()
        self._threads = []

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """True once no C-STORE is being written, the spool is empty and no file is being ingested."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._pending or self._busy or self._storing:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.5))
        return True

    # --- receiving -------------------------------------------------------------------

    def _on_echo(self, event: evt.Event) -> int:
        logger.info("C-ECHO from %s (%s)", event.assoc.requestor.ae_title, event.assoc.requestor.address)
        return SUCCESS

    def _on_accepted(self, event: evt.Event) -> None:
        requestor = event.assoc.requestor
        logger.info("association accepted from %s at %s:%s", requestor.ae_title, requestor.address, requestor.port)
        for context in event.assoc.rejected_contexts:
            if context.abstract_syntax in RADIOGRAPH_SOP_CLASSES:  # every other class is refused per file
                logger.warning(
                    "refused %s from %s: none of its transfer syntaxes can be decoded here (%s)",
                    UID(context.abstract_syntax).name,
                    requestor.ae_title,
                    ", ".join(UID(syntax).name for syntax in context.transfer_syntax),
                )

    def _on_rejected(self, event: evt.Event) -> None:
        requestor = event.assoc.requestor
        called = str(getattr(requestor.primitive, "called_ae_title", "")).strip()
        acceptors = [assoc for assoc in event.assoc.ae.active_associations if assoc.is_acceptor]
        # The checks pynetdicom makes, in its order (the reason itself is not kept on the association).
        if self.allowed_calling_ae and requestor.ae_title not in self.allowed_calling_ae:
            reason = "calling AE title not allowed"
        elif called != self.ae_title:
            reason = f"called AE title {called!r}, not {self.ae_title!r}"
        elif len(acceptors) > self.max_associations:
            reason = f"too many associations (DICOM_MAX_ASSOCIATIONS={self.max_associations})"
        else:
            reason = "association rejected"
        logger.warning("%s: %s at %s:%s", reason, requestor.ae_title, requestor.address, requestor.port)

    def _on_conn_close(self, event: evt.Event) -> None:
        """An association that ends (released, aborted, timed out) while a data set is still
        arriving leaves pynetdicom's temporary file behind: remove it."""
        message = getattr(getattr(event.assoc, "dimse", None), "message", None)
        _remove_temporary(getattr(message, "_data_set_file", None), getattr(message, "_data_set_path", None))

    def _on_store(self, event: evt.Event) -> int | Dataset:
        received_at = datetime.datetime.now(datetime.UTC)
        calling_ae = event.assoc.requestor.ae_title
        sop_uid = str(cast(C_STORE, event.request).AffectedSOPInstanceUID or "")  # a C-STORE event
        with self._lock:
            self._storing += 1
        try:
            return self._store(event, received_at, calling_ae, sop_uid)
        finally:
            # pynetdicom removes it too, but not when a handler raises.
            _remove_temporary(getattr(event.request, "_dataset_file", None), _dataset_path(event))
            with self._lock:
                self._storing -= 1
                self._lock.notify_all()

    def _store(self, event: evt.Event, received_at: datetime.datetime, calling_ae: str, sop_uid: str) -> int | Dataset:
        sop_class = UID(str(event.request.AffectedSOPClassUID or ""))
        if sop_class not in RADIOGRAPH_SOP_CLASSES:
            reason = f"{sop_class.name or 'no SOP class'} is not a radiograph (CR, DX or SC images only)"
            return self._refuse(SOP_CLASS_NOT_SUPPORTED, reason, calling_ae, sop_uid)
        received = _dataset_path(event)
        if received is None:  # chunked receipt is on (start()): pynetdicom always gives a file
            return self._refuse(OUT_OF_RESOURCES, "no received data set file", calling_ae, sop_uid)
        if (error := getattr(getattr(event.request, "_dataset_file", None), "error", None)) is not None:
            reason = f"cannot spool the file: {error.strerror or type(error).__name__}"
            return self._refuse(OUT_OF_RESOURCES, reason, calling_ae, sop_uid)
        # The received file: pynetdicom's preamble and file meta, then the data set as sent.
        try:
            offset = split_dataset(received)[1]
            length = received.stat().st_size - offset
        except Exception:  # noqa: BLE001 - its own file meta, unreadable only if the file is gone
            return self._refuse(OUT_OF_RESOURCES, "the received data set file cannot be read", calling_ae, sop_uid)
        if length > settings.MAX_DICOM_BYTES:
            reason = f"file too large ({length // 1024**2} MB; limit {settings.MAX_DICOM_BYTES // 1024**2} MB)"
            return self._refuse(OUT_OF_RESOURCES, reason, calling_ae, sop_uid)
        try:
            header = read_meta_file(received, limits=decode_limits())
        except DicomRejected as exc:
            return self._refuse(CANNOT_UNDERSTAND, exc.reason, calling_ae, sop_uid)
        except OSError as exc:
            reason = f"cannot read the received file: {exc.strerror or type(exc).__name__}"
            return self._refuse(OUT_OF_RESOURCES, reason, calling_ae, sop_uid)
        if header.sop_instance_uid != sop_uid:
            reason = "the data set's SOP Instance UID differs from the C-STORE request's"
            return self._refuse(CANNOT_UNDERSTAND, reason, calling_ae, sop_uid)
        # The file as sent, with file meta that says who sent it to whom. Built as
        # event.encoded_dataset() does (the data set bytes are copied, not decoded).
        meta = event.file_meta
        meta.SendingApplicationEntityTitle = calling_ae
        meta.ReceivingApplicationEntityTitle = self.ae_title
        name = spool_name(received_at, sop_uid)
        part = self.spool_dir / f".{name}{PART_SUFFIX}"
        try:
            with open(part, "wb") as handle, open(received, "rb") as source:
                handle.write(b"".join((b"\x00" * 128, b"DICM", encode_file_meta(meta))))
                source.seek(offset)
                shutil.copyfileobj(source, handle, 1024**2)
                size = handle.tell()
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(part, self.spool_dir / name)
            _fsync_dir(self.spool_dir)
        except OSError as exc:
            part.unlink(missing_ok=True)
            (self.spool_dir / name).unlink(missing_ok=True)
            reason = f"cannot spool the file: {exc.strerror or type(exc).__name__}"
            return self._refuse(OUT_OF_RESOURCES, reason, calling_ae, sop_uid)
        logger.info(
            "stored %s from %s (pseudonymous SOP Instance UID %s, %d bytes)",
            name,
            calling_ae,
            _pseudonym(sop_uid),
            size,
        )
        with self._lock:
            self.counts["stored"] += 1
        self._enqueue(name)
        return SUCCESS

    def _refuse(self, code: int, reason: str, calling_ae: str, sop_uid: str) -> Dataset:
        logger.warning(
            "refused a C-STORE from %s (pseudonymous SOP Instance UID %s) with status 0x%04X: %s",
            calling_ae,
            _pseudonym(sop_uid),
            code,
            reason,
        )
        with self._lock:
            self.counts["refused"] += 1
        return _status(code, reason)

    # --- draining --------------------------------------------------------------------

    def _enqueue(self, name: str) -> None:
        with self._lock:
            if name not in self._queued:
                self._queued.add(name)
                heapq.heappush(self._pending, name)
                self._lock.notify()

    def _claim(self) -> str | None:
        with self._lock:
            while not self._pending:
                if self._stopping.is_set():
                    return None
                self._lock.wait(1.0)
            if self._stopping.is_set():
                return None
            self._busy += 1
            return heapq.heappop(self._pending)

    def _drain(self) -> None:
        try:
            while (name := self._claim()) is not None:
                retry = False
                try:
                    close_old_connections()
                    self._ingest(name)
                except (DatabaseError, OSError) as exc:
                    # The database or the storage failed, not the file: keep it and try again.
                    logger.warning(
                        "could not ingest the spooled file %s (%s: %s); it stays in the spool, next try in %.0f s",
                        name,
                        type(exc).__name__,
                        str(exc).strip().splitlines()[0] if str(exc).strip() else "",
                        RETRY_SECONDS,
                    )
                    connection.close()
                    retry = True
                except Exception:
                    logger.exception("could not ingest the spooled file %s; it stays in the spool", name)
                    connection.close()
                    retry = True
                if retry:  # the file stays this thread's while it waits: no other thread retries it at once
                    self._stopping.wait(RETRY_SECONDS)
                with self._lock:
                    self._busy -= 1
                    if retry:
                        heapq.heappush(self._pending, name)
                    else:
                        self._queued.discard(name)
                    self._lock.notify_all()
        finally:
            connection.close()

    def _ingest(self, name: str) -> None:
        path = self.spool_dir / name
        data = path.read_bytes()
        calling_ae, sop_uid = _sender(path)
        outcome = radiograph_ingest(
            data=data,
            name=name,
            source=Radiograph.Source.DICOM_STORE,
            received_at=received_at_of(name),
        )
        with self._lock:
            self.counts[outcome.status] = self.counts.get(outcome.status, 0) + 1
        if outcome.status == "rejected":
            logger.warning(
                "rejected %s from %s (pseudonymous SOP Instance UID %s): %s",
                name,
                calling_ae,
                _pseudonym(sop_uid),
                outcome.reason,
            )
            self._keep_rejected(path, data, outcome.reason, calling_ae, sop_uid)
        else:
            verb = "imported" if outcome.status == "imported" else "present"
            detail = f" ({outcome.reason})" if outcome.reason else ""
            logger.info(
                "%s radiograph %s from %s (pseudonymous SOP Instance UID %s, spool file %s)%s",
                verb,
                outcome.radiograph_id,
                calling_ae,
                _pseudonym(sop_uid),
                name,
                detail,
            )
            # No fsync of the folder: should the removal be lost in a crash, the file comes back
            # and is found present.
            path.unlink()

    def _keep_rejected(self, path: Path, data: bytes, reason: str, calling_ae: str, sop_uid: str) -> None:
        """Keep a rejected file de-identified (or only its reason, when it cannot be read within
        the decoding bounds) in ``rejected/`` for REJECTED_RETENTION_DAYS; remove the received one."""

        kept = "its de-identified copy is kept beside this file"
        try:
            copy: bytes | None = deidentified_copy(data)[1]
        except DicomRejected:
            copy, kept = None, "the file could not be de-identified and is not kept"
        note = self.rejected_dir / f"{path.name}.reason.txt"
        note.write_text(
            f"{reason}\ncalling AE: {calling_ae}\npseudonymous SOP Instance UID: {_pseudonym(sop_uid)}\n{kept}\n"
        )
        if copy is not None:
            part = self.rejected_dir / f".{path.name}{PART_SUFFIX}"
            with open(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as handle:
                handle.write(copy)
            os.replace(part, self.rejected_dir / path.name)
        path.unlink()
        _fsync_dir(self.rejected_dir)
        rejected_purge(self.rejected_dir)


def _dataset_path(event: evt.Event) -> Path | None:
    try:
        return Path(event.dataset_path)
    except (AttributeError, TypeError):  # not received into a file
        return None


def _remove_temporary(handle: Any, path: Path | str | None) -> None:
    if handle is not None:
        with contextlib.suppress(Exception):
            handle.close()
    if isinstance(path, (str, Path)):  # (path, offset) tuples are files being sent, not received
        with contextlib.suppress(OSError):
            os.unlink(path)


def _pseudonym(uid: str) -> str:
    return uid_pseudonym(uid) if uid and uid != "?" else "?"


def _sender(path: Path) -> tuple[str, str]:
    """(calling AE title, SOP Instance UID) from a spooled file's meta information."""
    try:
        meta = read_file_meta_info(path)
    except Exception:  # noqa: BLE001 - only for the log line; the ingest reports what is wrong with the file
        return "?", "?"
    return str(meta.get("SendingApplicationEntityTitle", "?")).strip(), str(meta.get("MediaStorageSOPInstanceUID", "?"))
