"""STOW-RS: a PACS or a DICOM router posts instances to ``POST /api/dicomweb/studies``.

Each part of the ``multipart/related`` body goes through ``radiograph_ingest``; the
``application/dicom+json`` answer lists the stored and the failed instances (200, 202 or 409, and
400/411/413/415 for a body it cannot take).
Design: docs/architecture/design-dicom.md
"""

from __future__ import annotations

import datetime
import io
import logging
import mmap
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import HTTP
from typing import IO, Any, cast

import pydicom
from django.conf import settings
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.http import parse_header_parameters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from pydicom import Dataset
from pydicom.uid import UID
from rest_framework import status
from rest_framework.decorators import api_view, parser_classes, permission_classes, renderer_classes
from rest_framework.exceptions import APIException, ParseError, UnsupportedMediaType
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request

from annotate.archive.dicom import check_inflated_size
from annotate.archive.ingest import DISK_FULL, DISK_FULL_REASON, IMPORTED, PRESENT, decode_limits, radiograph_ingest
from annotate.archive.pseudonyms import uid_pseudonym
from annotate.models import Radiograph
from common.roles import RESEARCHER, HasRole
from common.storage import private_dir

logger = logging.getLogger(__name__)

MEDIA_TYPE = "multipart/related"
DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"
CHUNK = 1024**2

# Failure Reason (0008,1197) values.
CANNOT_UNDERSTAND = 0xC000
OUT_OF_RESOURCES = 0xA700


class DicomJSONRenderer(JSONRenderer):
    """Lets a client that accepts only ``application/dicom+json`` (as STOW-RS clients
    do) through content negotiation; errors are rendered as JSON in it."""

    media_type = DICOM_JSON
    format = "dicomjson"


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large."
    default_code = "payload_too_large"


class LengthRequired(APIException):
    status_code = status.HTTP_411_LENGTH_REQUIRED
    default_detail = "Send the request with a Content-Length (this server cannot read a chunked body)."
    default_code = "length_required"


@dataclass(frozen=True)
class StoreResult:
    """One part of the request: stored (``failure`` None) or not, and why."""

    sop_class_uid: str
    sop_instance_uid: str
    failure: int | None = None
    reason: str = ""
    held_already: bool = False


# --- The request body --------------------------------------------------------------


def boundary_of(content_type: str) -> bytes:
    """The multipart boundary of a STOW-RS request; 415 for any other media type."""
    media_type, params = parse_header_parameters(content_type or "")
    root_type = params.get("type", DICOM).lower()
    if media_type != MEDIA_TYPE or root_type != DICOM:
        shown = content_type or "none"
        raise UnsupportedMediaType(
            shown, detail=f'Media type {shown} is not supported; send {MEDIA_TYPE}; type="{DICOM}"; boundary=...'
        )
    boundary = params.get("boundary", "")
    if not boundary:
        raise ParseError("The multipart/related media type has no boundary parameter.")
    if not boundary.isascii():
        raise ParseError("The multipart boundary must be ASCII.")
    return boundary.encode("ascii")


def spool_body(request: HttpRequest, limit: int) -> IO[bytes]:
    """Copy the request body into an unnamed temporary file under DATA_DIR, refusing it
    (413) once it passes ``limit`` bytes. The caller closes the file, which removes it."""
    meta = request.META
    length = meta.get("CONTENT_LENGTH") or ""
    stream: Any = request
    expected: int | None = None
    if "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower():
        # (A Content-Length beside it is to be ignored, RFC 9112 6.3.) A server that reads the
        # chunked body itself (gunicorn) says so; Django's own request stream would be empty.
        if not meta.get("wsgi.input_terminated"):
            raise LengthRequired()
        stream = meta["wsgi.input"]
    elif length:
        try:
            expected = int(length)
        except ValueError:
            raise ParseError(f"Content-Length {length!r} is not a number.")
        if expected > limit:
            raise PayloadTooLarge(_too_large(expected, limit))
    else:
        raise ParseError("The request has no body.")
    folder = private_dir(settings.DATA_DIR / "stow")
    handle = tempfile.TemporaryFile(dir=folder, prefix="stow-")
    try:
        size = 0
        while chunk := stream.read(CHUNK):
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(_too_large(size, limit))
            handle.write(chunk)
        if expected is not None and size < expected:
            raise ParseError(f"The body ended after {size} of {expected} bytes.")
        handle.flush()
    except BaseException:
        handle.close()
        raise
    return handle


def _too_large(size: int, limit: int) -> str:
    return f"Request body too large ({size // 1024**2} MB; the limit is {limit // 1024**2} MB)."


@dataclass(frozen=True)
class Part:
    headers: Message
    start: int
    end: int

    @property
    def content_type(self) -> str:
        return parse_header_parameters(self.headers.get("Content-Type") or DICOM)[0]


def iter_parts(body: mmap.mmap | bytes, boundary: bytes) -> Iterator[Part]:
    """The parts of a multipart body (RFC 2046), as offsets into it, in order.

    A body without the boundary, or cut off before its closing delimiter, raises
    ParseError at that point; the parts before it have been yielded."""
    delimiter = b"--" + boundary
    if body[: len(delimiter)] == delimiter:
        position = 0
    else:
        position = body.find(b"\r\n" + delimiter)
        if position < 0:
            raise ParseError("The body does not contain the multipart boundary.")
        position += 2
    header_parser = BytesHeaderParser(policy=HTTP)
    while True:
        position += len(delimiter)
        if body[position : position + 2] == b"--":
            return  # the closing delimiter
        line_end = body.find(b"\r\n", position)  # after optional transport padding
        if line_end < 0:
            raise ParseError("The multipart body ends inside a boundary line.")
        start = line_end + 2
        end = body.find(b"\r\n" + delimiter, start)
        if end < 0:
            raise ParseError("The multipart body is cut off: a part has no closing boundary.")
        if body[start : start + 2] == b"\r\n":
            headers, content_start = Message(), start + 2
        else:
            header_end = body.find(b"\r\n\r\n", start, end)
            if header_end < 0:
                raise ParseError("A part's headers have no end.")
            headers = header_parser.parsebytes(bytes(body[start : header_end + 2]))
            content_start = header_end + 4
        yield Part(headers, content_start, end)
        position = end + 2


# --- Storing ------------------------------------------------------------------------


def _identify(data: bytes) -> tuple[str, str]:
    """SOP Class and SOP Instance UID of a part, where they can be read whole (for the answer).
    A deflated part is inflated only within the decoding bound (dcmread inflates it whole)."""
    try:
        check_inflated_size(data, limits=decode_limits())
        with warnings.catch_warnings():  # a broken part is expected to warn
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)
        meta = ds.get("file_meta", Dataset())
        found = (
            ds.get("SOPClassUID") or meta.get("MediaStorageSOPClassUID"),
            ds.get("SOPInstanceUID") or meta.get("MediaStorageSOPInstanceUID"),
        )
    except Exception:  # noqa: BLE001 - an unreadable part only lacks its UIDs in the answer
        return "", ""
    # A part cut off inside a UID must not name a UID it does not have.
    return tuple(str(uid) if uid and UID(str(uid)).is_valid else "" for uid in found)  # type: ignore[return-value]


def store_part(part: Part, data: bytes, *, index: int, user: User, received_at: datetime.datetime) -> StoreResult:
    name = f"STOW part {index}"
    if part.content_type != DICOM:
        return StoreResult("", "", CANNOT_UNDERSTAND, f"part of media type {part.content_type}, not {DICOM}")
    if len(data) > settings.MAX_DICOM_BYTES:
        limit = settings.MAX_DICOM_BYTES // 1024**2
        return StoreResult(*_identify(data), OUT_OF_RESOURCES, f"instance over the {limit} MB limit")
    try:
        outcome = radiograph_ingest(
            data=data, name=name, source=Radiograph.Source.STOW, user=user, received_at=received_at
        )
    except OSError as exc:
        if exc.errno not in DISK_FULL:
            raise
        logger.error("STOW-RS: cannot store %s: %s", name, exc)
        return StoreResult(*_identify(data), OUT_OF_RESOURCES, f"disk full: {exc.strerror}")
    if outcome.status in (IMPORTED, PRESENT):
        # The answer names the instance as the sender sent it (it knows that UID); the row
        # holds its pseudonymous UID.
        return StoreResult(*_identify(data), held_already=outcome.status == PRESENT)
    # The ingest refuses a file it cannot write for want of space with a reason naming the full disk.
    failure = OUT_OF_RESOURCES if outcome.reason.startswith(DISK_FULL_REASON) else CANNOT_UNDERSTAND
    return StoreResult(*_identify(data), failure, outcome.reason)


def response_dataset(results: list[StoreResult]) -> Dataset:
    """The Store Instances Response Module: Referenced and Failed SOP Sequences."""
    answer = Dataset()
    referenced, failed = [], []
    for result in results:
        item = Dataset()
        item.ReferencedSOPClassUID = result.sop_class_uid
        item.ReferencedSOPInstanceUID = result.sop_instance_uid
        if result.failure is None:
            referenced.append(item)
        else:
            item.FailureReason = result.failure
            failed.append(item)
    if failed:
        answer.FailedSOPSequence = failed
    answer.ReferencedSOPSequence = referenced
    return answer


def response_status(results: list[StoreResult]) -> int:
    stored = sum(result.failure is None for result in results)
    if stored == len(results):
        return status.HTTP_200_OK
    return status.HTTP_202_ACCEPTED if stored else status.HTTP_409_CONFLICT


@extend_schema(
    summary="STOW-RS: store DICOM instances",
    description=(
        'DICOM PS3.18 Store Instances: `multipart/related; type="application/dicom"`, one instance per part. '
        "The answer lists the stored instances in the Referenced SOP Sequence (0008,1199) and the others, "
        "with a Failure Reason (0008,1197: 0xC000 cannot understand, 0xA700 out of resources), in the Failed "
        "SOP Sequence (0008,1198). An instance held already counts as stored (a Warning header says so). "
        "Researchers and staff; a PACS uses a DRF token."
    ),
    request={f'{MEDIA_TYPE}; type="{DICOM}"': OpenApiTypes.BINARY},
    responses={
        (200, DICOM_JSON): OpenApiResponse(OpenApiTypes.OBJECT, description="every instance stored"),
        (202, DICOM_JSON): OpenApiResponse(OpenApiTypes.OBJECT, description="some stored, some failed"),
        (409, DICOM_JSON): OpenApiResponse(OpenApiTypes.OBJECT, description="none stored"),
        413: OpenApiResponse(description="body over DICOMWEB_STOW_MAX_BYTES"),
        415: OpenApiResponse(description="not multipart/related of application/dicom"),
    },
)
@api_view(["POST"])
@renderer_classes([JSONRenderer, DicomJSONRenderer])
@permission_classes([HasRole.of(RESEARCHER)])
@parser_classes([])  # the body is read as a stream below, never by DRF
def stow_studies(request: Request) -> HttpResponse:
    http_request = request._request
    user = cast(User, request.user)  # HasRole admits only signed-in users
    boundary = boundary_of(request.META.get("CONTENT_TYPE", ""))
    with spool_body(http_request, settings.DICOMWEB_STOW_MAX_BYTES) as body:
        received_at = timezone.now()
        if body.seek(0, io.SEEK_END) == 0:
            raise ParseError("The request has no body.")
        results: list[StoreResult] = []
        with mmap.mmap(body.fileno(), 0, access=mmap.ACCESS_READ) as view:
            parts = iter_parts(view, boundary)
            try:
                for index, part in enumerate(parts, start=1):
                    data = view[part.start : part.end]
                    results.append(store_part(part, data, index=index, user=user, received_at=received_at))
                    del data
            except ParseError as exc:
                if not results:
                    raise
                # The parts before the damage are stored: say so, and that the rest failed.
                results.append(StoreResult("", "", CANNOT_UNDERSTAND, str(exc.detail)))
    if not results:
        raise ParseError("The request contains no part.")
    for result in results:
        if result.failure is not None:
            uid = result.sop_instance_uid
            named = f"pseudonymous SOP Instance UID {uid_pseudonym(uid)}" if uid else "a part"
            logger.warning("STOW-RS from %s: refused %s: %s", request.user, named, result.reason)
    response = HttpResponse(
        response_dataset(results).to_json(), status=response_status(results), content_type=DICOM_JSON
    )
    held = sum(result.held_already for result in results)
    if held:
        response["Warning"] = f'299 - "{held} of the instances were held already; stored once"'
    stored = sum(result.failure is None for result in results)
    logger.info(
        "STOW-RS from %s: %d of %d instances stored (%d held already)", request.user, stored, len(results), held
    )
    return response
