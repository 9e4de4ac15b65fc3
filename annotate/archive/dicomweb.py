"""DICOMweb pull: find hip and pelvis radiographs on a PACS and import them.

``pull`` walks QIDO-RS down to the instances, skips those already held, and retrieves the others
by WADO-RS, as stored, into ``annotate.archive.ingest.radiograph_ingest``; ``PullError`` names the failed
server and carries the summary. A plain function for the command, a task or a notebook.
Design: docs/architecture/design-dicom.md
"""

from __future__ import annotations

import datetime
import io
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import requests
from dicomweb_client.api import DICOMwebClient
from django.conf import settings
from pydicom import Dataset, dcmwrite

from annotate.archive.ingest import IMPORTED, PRESENT, REJECTED, IngestOutcome, radiograph_ingest
from annotate.archive.pseudonyms import uid_pseudonym
from annotate.models import Radiograph

logger = logging.getLogger(__name__)
# dicomweb_client logs each request's URL at INFO: those URLs carry the PACS's original UIDs.
logging.getLogger("dicomweb_client").setLevel(logging.WARNING)

MODALITIES = ("CR", "DX")
BODY_PARTS = frozenset({"HIP", "PELVIS"})
# QIDO-RS results are asked for page by page: a PACS may cap what one answer holds.
PAGE_SIZE = 500
# Retrieve what the PACS holds, in its own transfer syntax.
ORIGINAL_TRANSFER_SYNTAX = (("application/dicom", "*"),)
# Attempts per request, and the base of the exponential wait between them (1 s, then 2 s).
RETRY_ATTEMPTS = 3
RETRY_WAIT_MS = 500

STUDY_UID = "0020000D"
SERIES_UID = "0020000E"
SOP_UID = "00080018"
BODY_PART = "00180015"

Progress = Callable[[IngestOutcome, int, int], None]


class PullError(Exception):
    """The DICOMweb server could not be reached or answered with an error.

    ``summary`` holds what the pull did before it stopped (all of it kept)."""

    def __init__(self, message: str, summary: PullSummary) -> None:
        super().__init__(message)
        self.summary = summary


@dataclass
class PullSummary:
    url: str
    studies: int = 0
    series: int = 0
    skipped_series: list[str] = field(default_factory=list)
    outcomes: list[IngestOutcome] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        counts = Counter(outcome.status for outcome in self.outcomes)
        return {status: counts.get(status, 0) for status in (IMPORTED, PRESENT, REJECTED)}

    def line(self) -> str:
        """``pulled N: imported a, present b, rejected c (reason ×k; ...)``"""
        counts = self.counts()
        text = (
            f"pulled {len(self.outcomes)}: imported {counts[IMPORTED]}, present {counts[PRESENT]}, "
            f"rejected {counts[REJECTED]}"
        )
        reasons = Counter(outcome.reason for outcome in self.outcomes if outcome.status == REJECTED)
        if reasons:
            text += " (" + "; ".join(f"{reason} ×{count}" for reason, count in reasons.most_common()) + ")"
        return text


@dataclass(frozen=True)
class _Instance:
    study_uid: str
    series_uid: str
    sop_uid: str

    @property
    def name(self) -> str:
        """How outcomes, logs and the rows name it: its pseudonymous SOP Instance UID."""
        return uid_pseudonym(self.sop_uid)


def _value(result: dict[str, Any], tag: str) -> str:
    """The first value of a DICOM JSON attribute, or ""."""
    values = result.get(tag, {}).get("Value") or [""]
    return str(values[0]).strip()


def make_client(url: str, session: requests.Session | None = None) -> DICOMwebClient:
    client = DICOMwebClient(url=url.rstrip("/"), session=session, timeout=settings.DICOMWEB_TIMEOUT)
    # The client retries a busy answer (429, 503, ...) and any connection error, by default
    # five times over half a minute; a server that is down is reported after about 3 s.
    client.set_http_retry_params(max_attempts=RETRY_ATTEMPTS, wait_exponential_multiplier=RETRY_WAIT_MS)
    return client


@contextmanager
def _server_errors(url: str, summary: PullSummary) -> Iterator[None]:
    """Turn what the HTTP client raises into a PullError naming the server and the HTTP status."""
    try:
        yield
    except requests.HTTPError as exc:
        response = exc.response
        status = f"HTTP {response.status_code} {response.reason}" if response is not None else str(exc)
        where = f" for {response.request.method} {response.url}" if response is not None else ""
        raise PullError(f"the DICOMweb server {url} answered {status}{where}", summary) from exc
    except requests.Timeout as exc:
        raise PullError(
            f"the DICOMweb server {url} did not answer within {settings.DICOMWEB_TIMEOUT} s", summary
        ) from exc
    except requests.ConnectionError as exc:
        # requests wraps urllib3's MaxRetryError, whose reason is the socket's error.
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        raise PullError(f"cannot reach the DICOMweb server {url}: {reason or exc}", summary) from exc
    except requests.RequestException as exc:
        raise PullError(f"request to the DICOMweb server {url} failed: {exc}", summary) from exc
    except ValueError as exc:  # a body that is not DICOM JSON or not multipart DICOM
        raise PullError(f"the DICOMweb server {url} sent an answer that is not DICOMweb: {exc}", summary) from exc


def _search_all(search: Callable[..., list[dict[str, Any]]], key: str, **kwargs: Any) -> list[dict[str, Any]]:
    """Every result of a QIDO-RS search, page by page; stops at a short page, or at a page
    with nothing new (a server that ignores ``offset``)."""
    results: dict[str, dict[str, Any]] = {}
    offset = 0
    while True:
        page = search(limit=PAGE_SIZE, offset=offset, **kwargs)
        new = {_value(result, key): result for result in page if _value(result, key) not in results}
        results.update(new)
        if len(page) < PAGE_SIZE or not new:
            return list(results.values())
        offset += len(page)


def _find_studies(client: DICOMwebClient, since: datetime.date | None, study_uid: str | None) -> list[str]:
    filters: dict[str, str] = {}
    if since is not None:
        filters["StudyDate"] = f"{since:%Y%m%d}-"
    if study_uid:
        filters["StudyInstanceUID"] = study_uid
    found: dict[str, None] = {}
    # One search per modality: matching one value is what every QIDO-RS server supports.
    for modality in MODALITIES:
        results = _search_all(
            client.search_for_studies, STUDY_UID, search_filters={**filters, "ModalitiesInStudy": modality}
        )
        found.update((_value(result, STUDY_UID), None) for result in results)
    return [uid for uid in found if uid]


def _find_series(client: DICOMwebClient, study_uid: str, summary: PullSummary) -> list[str]:
    found: dict[str, None] = {}
    for modality in MODALITIES:
        results = _search_all(
            client.search_for_series,
            SERIES_UID,
            study_instance_uid=study_uid,
            search_filters={"Modality": modality},
            fields=["BodyPartExamined"],
        )
        for result in results:
            uid, body_part = _value(result, SERIES_UID), _value(result, BODY_PART).upper()
            if not uid or uid in found:
                continue
            if body_part and body_part not in BODY_PARTS:
                message = (
                    f"skipped series {uid_pseudonym(uid)} of study {uid_pseudonym(study_uid)}: "
                    f"body part {body_part}, not hip or pelvis"
                )
                logger.info(message)
                summary.skipped_series.append(message)
                continue
            found[uid] = None
    return list(found)


def _find_instances(client: DICOMwebClient, study_uid: str, series_uid: str) -> list[_Instance]:
    results = _search_all(
        client.search_for_instances, SOP_UID, study_instance_uid=study_uid, series_instance_uid=series_uid
    )
    return [_Instance(study_uid, series_uid, uid) for uid in (_value(result, SOP_UID) for result in results) if uid]


def _encode(dataset: Dataset) -> bytes:
    """The retrieved instance as a DICOM file, in the transfer syntax it came in."""
    buffer = io.BytesIO()
    dcmwrite(buffer, dataset, enforce_file_format=True)
    return buffer.getvalue()


def _retrieve(client: DICOMwebClient, instance: _Instance, summary: PullSummary) -> IngestOutcome:
    with _server_errors(summary.url, summary):
        dataset = client.retrieve_instance(
            instance.study_uid, instance.series_uid, instance.sop_uid, media_types=ORIGINAL_TRANSFER_SYNTAX
        )
    try:
        data = _encode(dataset)
    except (ValueError, AttributeError, TypeError) as exc:
        return IngestOutcome(instance.name, REJECTED, f"cannot write the retrieved instance: {type(exc).__name__}")
    return radiograph_ingest(data=data, name=instance.name, source=Radiograph.Source.DICOMWEB)


def pull(
    url: str,
    since: datetime.date | None,
    study_uid: str | None = None,
    session: requests.Session | None = None,
    progress: Progress | None = None,
) -> PullSummary:
    """Import the hip and pelvis radiographs (CR, DX) of a DICOMweb server.

    ``url``: the server's DICOMweb root (e.g. ``http://pacs:8042/dicom-web``).
    ``since``: studies dated that day or later (None: any date); ``study_uid``: only that study
    (both filters apply when both are given). ``session``: a ``requests``
    session carrying the credentials. ``progress(outcome, done, total)`` is
    called after each instance. Raises ``PullError`` (with the summary so far)
    when the server cannot be reached or answers an error.
    """
    summary = PullSummary(url=url)
    client = make_client(url, session)
    instances: list[_Instance] = []
    with _server_errors(url, summary):
        studies = _find_studies(client, since, study_uid)
        summary.studies = len(studies)
        for study in studies:
            for series in _find_series(client, study, summary):
                summary.series += 1
                instances.extend(_find_instances(client, study, series))
    # The rows hold the pseudonymous UIDs the ingest gave each instance.
    held = dict(
        Radiograph.objects.filter(sop_instance_uid__in=[i.name for i in instances]).values_list(
            "sop_instance_uid", "id"
        )
    )
    total = len(instances)
    for instance in instances:
        if instance.name in held:
            # Held already: not downloaded again.
            outcome = IngestOutcome(instance.name, PRESENT, "held already", held[instance.name])
        else:
            outcome = _retrieve(client, instance, summary)
            if outcome.status == REJECTED:
                logger.info("rejected %s from %s: %s", instance.name, url, outcome.reason)
        summary.outcomes.append(outcome)
        if progress is not None:
            progress(outcome, len(summary.outcomes), total)
    logger.info("DICOMweb pull from %s: %s", url, summary.line())
    return summary
