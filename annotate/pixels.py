"""A radiograph's pixels, read from its one stored full copy: the de-identified DICOM.

Ingest keeps the de-identified DICOM (``originals/``) and a small JPEG preview, nothing else:
the decoded array is a pure function of the stored DICOM (``annotate.dicom.decode_dataset``:
modality LUT, MONOCHROME1 inversion, uint16 mapping), so it is decoded when asked for and kept
in a process-wide LRU cache bounded in bytes (setting ``PIXEL_CACHE_BYTES``). The viewer's
gzip body is cached the same way, in a second, smaller cache.

Radiographs ingested before this (a ``pixels/…npy`` file named in ``Radiograph.pixels``) keep
being read from that file, memory-mapped, as before (it holds the same array as the decoded
DICOM); new ingests write none.

Returned arrays are read-only: every caller shares the cached one.
"""

from __future__ import annotations

import gzip
import threading
from collections import OrderedDict
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
from django.conf import settings
from django.core.files.storage import default_storage

DEFAULT_CACHE_BYTES = 512 * 1024**2  # ~40 radiographs of 3000 x 2500 uint16


class ByteBoundedLRU:
    """Thread-safe LRU of values with an ``nbytes`` (arrays, bytes), bounded in total bytes. A
    value larger than the bound is returned but not kept. One load per key at a time."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._key_locks: dict[Any, threading.Lock] = {}
        self.loads = 0

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def get(self, key: Any, load: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # both hips of a film asking at once decode it once
            with self._lock:
                if key in self._items:
                    self._items.move_to_end(key)
                    return self._items[key]
            value = load()
            size = _nbytes(value)
            with self._lock:
                self.loads += 1
                if 0 < size <= self.max_bytes:
                    self._items[key] = value
                    self._bytes += size
                    while self._bytes > self.max_bytes:
                        _, old = self._items.popitem(last=False)
                        self._bytes -= _nbytes(old)
                self._key_locks.pop(key, None)
        return value


def _nbytes(value: Any) -> int:
    return value.nbytes if isinstance(value, np.ndarray) else len(value)


_arrays: ByteBoundedLRU | None = None
_bodies: ByteBoundedLRU | None = None


def caches() -> tuple[ByteBoundedLRU, ByteBoundedLRU]:
    """(decoded arrays, gzip bodies for the viewer), made on first use from ``PIXEL_CACHE_BYTES``
    (the bodies get a quarter of it)."""
    global _arrays, _bodies
    if _arrays is None or _bodies is None:
        limit = int(getattr(settings, "PIXEL_CACHE_BYTES", DEFAULT_CACHE_BYTES))
        _arrays, _bodies = ByteBoundedLRU(limit), ByteBoundedLRU(limit // 4)
    return _arrays, _bodies


def decode_stored(original: str) -> np.ndarray:
    """Decode a stored (de-identified, already validated at ingest) DICOM as ingest did."""
    from annotate.dicom import decode_dataset, read_dataset
    from annotate.ingest import decode_limits

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
        return gzip.compress(memoryview(pixels).cast("B"), compresslevel=1, mtime=0)

    return caches()[1].get(radiograph.sha256, load)
