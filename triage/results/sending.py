"""Sending a radiograph's results (its SR and overlay) to the destinations of its source: by
C-STORE (pynetdicom) or STOW-RS (dicomweb-client). Each sending is a ``ResultSending`` row;
a failure is tried again with backoff (``triage.tasks``), and a worker that reconnects queues
what is due. The results' UIDs are deterministic, so a PACS receives them once."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from cryptography.fernet import Fernet
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from pydicom import Dataset
from pydicom.uid import ExplicitVRLittleEndian

from annotate.archive.pseudonyms import pacs_link_key
from annotate.models import Radiograph
from common.queueing import enqueue
from triage.models import ResultDestination, ResultSending
from triage.results.files import KINDS, build
from triage.results.reading import NoResults, latest_reading

logger = logging.getLogger(__name__)
MAX_BACKOFF = 3600


class SendFailed(RuntimeError):
    """The destination did not take the results; the message says why (kept on the row)."""


def seal_password(password: str) -> str:
    return Fernet(pacs_link_key().encode()).encrypt(password.encode()).decode() if password else ""


def open_password(sealed: str) -> str:
    return Fernet(pacs_link_key().encode()).decrypt(sealed.encode()).decode() if sealed else ""


def sync_settings_destinations() -> list[ResultDestination]:
    """The destinations of ``RESULTS_DESTINATIONS`` as rows (``from_settings``), kept up to date."""
    rows = []
    fields = ("source", "kind", "host", "port", "called_ae", "calling_ae", "url", "username", "enabled")
    for i, entry in enumerate(settings.RESULTS_DESTINATIONS):
        values: dict[str, Any] = {key: entry[key] for key in fields if key in entry}
        values["password_sealed"] = seal_password(str(entry.get("password", "")))
        row, _ = ResultDestination.objects.update_or_create(
            name=str(entry.get("name") or f"settings-{i + 1}"), defaults={**values, "from_settings": True}
        )
        rows.append(row)
    return rows


def destinations_for(radiograph: Radiograph) -> list[ResultDestination]:
    sync_settings_destinations()
    return list(ResultDestination.objects.filter(Q(source="") | Q(source=radiograph.source), enabled=True))


def backoff(attempts: int) -> int:
    """Seconds before attempt ``attempts + 1``: RESULTS_SEND_BACKOFF doubling, at most an hour."""
    return int(min(MAX_BACKOFF, settings.RESULTS_SEND_BACKOFF * 2 ** max(0, attempts - 1)))


def queue_results(*, radiograph_ids: Iterable[int]) -> list[ResultSending]:
    """Queue (again) the sending of these radiographs' latest results to their destinations."""
    from triage.tasks import send_results  # deferred: the tasks module imports this one

    rows = []
    for radiograph in Radiograph.objects.filter(pk__in=list(radiograph_ids)).order_by("pk"):
        for destination in destinations_for(radiograph):
            row, _ = ResultSending.objects.update_or_create(
                radiograph=radiograph,
                destination=destination,
                defaults={
                    "status": ResultSending.Status.QUEUED,
                    "queued_at": timezone.now(),
                    "retry_at": None,
                    "attempts": 0,  # a resend is a new sending: RESULTS_SEND_ATTEMPTS tries again
                },
            )
            enqueue(send_results, sending_id=row.pk, or_log="results sending")
            rows.append(row)
    return rows


def c_store(datasets: list[Dataset], destination: ResultDestination) -> None:
    from pynetdicom import AE

    ae = AE(ae_title=destination.calling_ae or settings.DICOM_AE_TITLE)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = settings.DICOM_NETWORK_TIMEOUT
    for sop_class in {str(ds.SOPClassUID) for ds in datasets}:
        ae.add_requested_context(sop_class, ExplicitVRLittleEndian)
    port = destination.port or 104
    assoc = ae.associate(destination.host, port, ae_title=destination.called_ae or "ANY-SCP")
    if not assoc.is_established:
        raise SendFailed(f"no association with {destination.target}")
    try:
        for ds in datasets:
            status = assoc.send_c_store(ds)
            code = getattr(status, "Status", None)
            if code is None:
                raise SendFailed(f"{destination.target} did not answer the C-STORE (connection lost or timed out)")
            if code != 0x0000 and not 0xB000 <= code <= 0xBFFF:  # success, or a warning
                raise SendFailed(f"{destination.target} refused the C-STORE: status 0x{code:04X}")
    finally:
        assoc.release()


def stow(datasets: list[Dataset], destination: ResultDestination) -> None:
    import requests
    from dicomweb_client.api import DICOMwebClient

    session = requests.Session()
    if destination.username:
        session.auth = (destination.username, open_password(destination.password_sealed))
    client = DICOMwebClient(url=destination.url, session=session)
    try:
        client.store_instances(datasets)
    except (requests.RequestException, OSError, ValueError) as exc:
        raise SendFailed(f"STOW-RS to {destination.url} failed: {exc.__class__.__name__}: {exc}"[:2000]) from exc


def send_one(*, sending_id: int) -> ResultSending | None:
    """Build and send the results of one sending row; the row says what happened (sent, or
    failed with the reason and when it is tried again). Idempotent: a sent row is left alone."""
    with transaction.atomic():
        row = (
            ResultSending.objects.select_for_update()
            .select_related("destination", "radiograph")
            .filter(pk=sending_id)
            .first()
        )
        if row is None:  # the radiograph or the destination was deleted since
            return None
        if row.status == ResultSending.Status.SENT:
            return row
        row.attempts += 1
        row.save(update_fields=["attempts", "updated_at"])
    try:
        reading = latest_reading(radiograph=row.radiograph)
        datasets = [build(reading, kind) for kind in KINDS]
        sender = stow if row.destination.kind == ResultDestination.Kind.STOW else c_store
        sender(datasets, row.destination)
    except (SendFailed, NoResults, OSError, ValueError, RuntimeError) as exc:
        row.status = ResultSending.Status.FAILED
        row.reason = str(exc)[:2000] or exc.__class__.__name__
        last = row.attempts >= settings.RESULTS_SEND_ATTEMPTS or isinstance(exc, NoResults)
        row.retry_at = None if last else timezone.now() + timedelta(seconds=backoff(row.attempts))
        row.save(update_fields=["status", "reason", "retry_at", "updated_at"])
        logger.warning("results of radiograph %s to %s: %s", row.radiograph_id, row.destination.name, row.reason)
        return row
    row.status, row.reason, row.retry_at, row.sent_at = ResultSending.Status.SENT, "", None, timezone.now()
    row.model_version_id = reading.version.pk
    row.sr_uid, row.overlay_uid = reading.uid("sr"), reading.uid("overlay")
    row.save()
    return row


def requeue_sendings(queues: Iterable[str] = ("default",)) -> int:
    """On a worker's (re)connect: queue again the sendings still queued or due for a retry
    (Redis may have lost their messages). Returns how many were queued."""
    if "default" not in set(queues):
        return 0
    from triage.tasks import send_results  # deferred: the tasks module imports this one

    due = ResultSending.objects.filter(
        Q(status=ResultSending.Status.QUEUED) | Q(status=ResultSending.Status.FAILED, retry_at__isnull=False)
    ).values_list("pk", flat=True)
    ids = list(due)
    for pk in ids:
        enqueue(send_results, sending_id=pk, or_log="results sending")
    return len(ids)


def sendings_json(limit: int = 20) -> dict[str, Any]:
    """What the operations page shows: counts by status and the latest sendings."""
    counts = dict.fromkeys(ResultSending.Status.values, 0)
    for status in ResultSending.objects.values_list("status", flat=True):
        counts[status] += 1
    rows = ResultSending.objects.select_related("destination").order_by("-updated_at", "-id")[:limit]
    return {
        "counts": counts,
        "recent": [
            {
                "radiograph": row.radiograph_id,
                "destination": row.destination.name,
                "target": row.destination.target,
                "status": row.status,
                "attempts": row.attempts,
                "reason": row.reason,
                "queued_at": row.queued_at.isoformat(),
                "sent_at": row.sent_at.isoformat() if row.sent_at else None,
                "retry_at": row.retry_at.isoformat() if row.retry_at else None,
            }
            for row in rows
        ],
    }
