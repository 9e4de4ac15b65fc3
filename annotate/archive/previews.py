"""A radiograph's 8-bit JPEG preview: rendered from its stored DICOM on first view, then cached.

The ingest stores no preview (it is a cache, not data): ``preview_jpeg`` serves the cached file
under the row's ``preview`` name, or renders it and writes it atomically; a missing or corrupt
file is rendered again. ``previews_warm`` renders a batch's ahead of its first view (a task).
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image

from annotate.archive.dicom import DicomRejected, render_preview
from annotate.archive.pixels import radiograph_pixels

logger = logging.getLogger(__name__)

# At most this many previews are rendered at once in a process (each holds its radiograph's
# pixels, through the byte-bounded pixel cache); other first views wait their turn.
RENDERS_AT_ONCE = 2
_renders = threading.BoundedSemaphore(RENDERS_AT_ONCE)


class PreviewUnavailable(Exception):
    """The radiograph's stored DICOM is missing or unreadable: no preview can be rendered."""


def encode_preview(pixels: Any, center: float, width: float) -> bytes:
    """The JPEG of a radiograph's display-sense pixels in the window (center, width), longest
    side at most ``PREVIEW_MAX_SIZE``. JPEG: a tenth of PNG's encoding time on a noisy radiograph
    and small enough for pages of thumbnails; the diagnostic pixels are the DICOM's."""
    preview = render_preview(pixels, center, width, settings.PREVIEW_MAX_SIZE)
    buffer = io.BytesIO()
    Image.fromarray(preview).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _whole_jpeg(data: bytes) -> bool:
    """Whether cached bytes are a whole JPEG (start and end markers, a header PIL reads): a file
    cut short or overwritten is rendered again."""
    if len(data) < 4 or data[:2] != b"\xff\xd8" or data[-2:] != b"\xff\xd9":
        return False
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.format == "JPEG"
    except Exception:  # noqa: BLE001 - any failure to read it means: render it again
        return False


def _cached(name: str) -> bytes | None:
    try:
        with default_storage.open(name, "rb") as handle:
            data = handle.read()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    return data if _whole_jpeg(data) else None


def preview_jpeg(radiograph: Any) -> bytes:
    """The preview of a ``Radiograph`` row (the caller checked that the user may see it): the
    cached file, or rendered now and cached. Concurrent first views each write a whole file under
    a temporary name and rename it into place (the same bytes), so none sees a partial one.
    Raises ``PreviewUnavailable`` when the stored DICOM cannot be read."""
    name = radiograph.preview.name
    if name and (data := _cached(name)) is not None:
        return data
    with _renders:
        if name and (data := _cached(name)) is not None:  # rendered while this view waited
            return data
        try:
            pixels = radiograph_pixels(radiograph)
        except (OSError, DicomRejected) as exc:
            logger.warning("radiograph %s: no preview, its stored DICOM is unreadable: %s", radiograph.pk, exc)
            raise PreviewUnavailable(str(radiograph.pk)) from None
        data = encode_preview(pixels, radiograph.window_center, radiograph.window_width)
    if name:  # atomic (a corrupt file is replaced whole), with the storage's private file mode
        default_storage.save(name, ContentFile(data))
    return data


def previews_warm(*, radiograph_ids: Iterable[int]) -> int:
    """Render the previews of these radiographs that are not cached yet (after an import batch,
    so that first pages need not wait); returns how many it rendered. Idempotent."""
    from annotate.models import Radiograph

    rendered = 0
    for radiograph in Radiograph.objects.filter(pk__in=list(radiograph_ids)).order_by("pk").iterator():
        if radiograph.preview.name and _cached(radiograph.preview.name) is not None:
            continue
        try:
            preview_jpeg(radiograph)
        except PreviewUnavailable:
            continue
        rendered += 1
    return rendered
