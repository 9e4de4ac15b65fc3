"""A radiograph's pixels, read from its one stored full copy: the de-identified DICOM.

Decoded on demand and kept in a process-wide LRU bounded in bytes (``PIXEL_CACHE_BYTES``); native
files are memory-mapped instead of decoded; older ``.npy`` files are still read. Returned arrays
are read-only. Design: docs/architecture/design-dicom.md and docs/operations/data-protection.md.
"""

from __future__ import annotations

import gzip
import mmap
import os
import struct
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
from django.conf import settings
from django.core.files.storage import default_storage

from common.lru import ByteBoundedLRU

DEFAULT_CACHE_BYTES = 512 * 1024**2  # ~40 radiographs of 3000 x 2500 uint16


def array_cache(max_bytes: int) -> ByteBoundedLRU:
    """A byte-bounded LRU for arrays and bytes that keeps no memory-mapped array (the file is
    its own cache)."""
    return ByteBoundedLRU(max_bytes, size=_nbytes)


def _nbytes(value: Any) -> int:
    """The heap bytes a value holds; 0 (not cached) for an array over a memory-mapped file."""
    if isinstance(value, np.ndarray):
        return 0 if _is_mapped(value) else value.nbytes
    return len(value)


def _is_mapped(array: np.ndarray) -> bool:
    base: Any = array
    while base is not None:
        if isinstance(base, (np.memmap, mmap.mmap)):
            return True
        base = getattr(base, "base", None)
    return False


_arrays: ByteBoundedLRU | None = None
_bodies: ByteBoundedLRU | None = None


def caches() -> tuple[ByteBoundedLRU, ByteBoundedLRU]:
    """(decoded arrays, gzip bodies for the viewer), made on first use from ``PIXEL_CACHE_BYTES``
    (the bodies get a quarter of it)."""
    global _arrays, _bodies
    if _arrays is None or _bodies is None:
        limit = int(getattr(settings, "PIXEL_CACHE_BYTES", DEFAULT_CACHE_BYTES))
        _arrays, _bodies = array_cache(limit), array_cache(limit // 4)
    return _arrays, _bodies


_PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"  # (7FE0,0010), little endian


def mapped_stored(path: str | os.PathLike[str]) -> np.ndarray | None:
    """The display-sense pixels of a stored DICOM with native 16-bit single-frame pixels, from its
    Pixel Data memory-mapped (see the module's docstring); None for any other file (decode it)."""
    from pydicom import dcmread
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

    from annotate.archive.dicom import native_display

    with open(path, "rb") as handle:
        try:
            ds = dcmread(handle, stop_before_pixels=True)
        except Exception:
            return None
        ts = getattr(ds.file_meta, "TransferSyntaxUID", None)
        if ts not in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
            return None
        try:
            rows, columns = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
            frames = int(ds.get("NumberOfFrames") or 1)
            shape_ok = int(ds.get("BitsAllocated") or 0) == 16 and int(ds.get("SamplesPerPixel") or 1) == 1
            signed = int(ds.get("PixelRepresentation") or 0) == 1
        except (TypeError, ValueError):
            return None  # let the decoder judge it
        if rows < 1 or columns < 1 or frames != 1 or not shape_ok:
            return None
        # stop_before_pixels leaves the file at the Pixel Data element's tag: read its header.
        start = handle.tell()
        head = handle.read(12)
        if head[:4] != _PIXEL_DATA_TAG:
            return None
        if ts == ImplicitVRLittleEndian:
            (length,), offset = struct.unpack("<I", head[4:8]), start + 8
        elif head[4:6] in (b"OW", b"OB") and head[6:8] == b"\0\0":
            (length,), offset = struct.unpack("<I", head[8:12]), start + 12
        else:
            return None
        size = os.fstat(handle.fileno()).st_size
        if length == 0xFFFFFFFF or length < rows * columns * 2 or offset + rows * columns * 2 > size:
            return None
    raw = np.memmap(path, dtype="<i2" if signed else "<u2", mode="r", offset=offset, shape=(rows, columns))
    return native_display(ds, raw)


def decode_stored(original: str) -> np.ndarray:
    """The pixels of a stored (de-identified, already validated at ingest) DICOM, as ingest
    decoded them: memory-mapped where its pixels are native (``mapped_stored``), else decoded."""
    from annotate.archive.dicom import decode_dataset, read_dataset
    from annotate.archive.ingest import decode_limits

    try:
        path = default_storage.path(original)
    except NotImplementedError:
        path = None
    if path is not None and (mapped := mapped_stored(path)) is not None:
        return mapped
    with default_storage.open(original, "rb") as handle:
        data = handle.read()
    return decode_dataset(read_dataset(data, limits=decode_limits())).pixels


def stored_pixels(sha256: str, original: str, legacy: str = "") -> np.ndarray:
    """The display-sense uint16 pixels of a stored radiograph (read-only). ``legacy``: the name of
    a .npy written by an older ingest, read memory-mapped when it is still there."""
    if legacy and default_storage.exists(legacy):
        return np.load(default_storage.path(legacy), mmap_mode="r")

    def load() -> np.ndarray:
        pixels = decode_stored(original)
        pixels.setflags(write=False)
        return pixels

    return caches()[0].get(sha256, load)


def radiograph_pixels(radiograph: Any) -> np.ndarray:
    """``stored_pixels`` of a ``Radiograph`` row."""
    return stored_pixels(radiograph.sha256, radiograph.original.name, radiograph.pixels.name or "")


def pixel_source(radiograph: Any) -> Callable[[], np.ndarray]:
    """A callable that returns the radiograph's pixels (for training records): holds names only."""
    return partial(stored_pixels, radiograph.sha256, radiograph.original.name, radiograph.pixels.name or "")


def gzip_body(radiograph: Any) -> bytes:
    """The raw little-endian uint16 pixels, gzip-compressed (level 1), for the browser viewer."""

    def load() -> bytes:
        pixels = np.ascontiguousarray(radiograph_pixels(radiograph), dtype="<u2")
        return gzip.compress(pixels.data.cast("B"), compresslevel=1, mtime=0)

    return caches()[1].get(radiograph.sha256, load)
