"""DICOM decoding and validation for hip radiograph ingest. Pure module (no Django): usable from a
notebook and testable on its own. Decoding is bounded (``DecodeLimits``): a deflated data set is
inflated with a cap before pydicom sees it, and the declared decoded size is checked before any
pixel is decoded. Header types and checks: :mod:`annotate.archive.dicom_header`;
pixels: :mod:`annotate.archive.dicom_pixels`.
Design: docs/architecture/design-dicom.md
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import struct
import threading
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filereader import _read_file_meta_info
from pydicom.filereader import read_dataset as _read_raw_dataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from annotate.archive.dicom_header import (
    DEFAULT_MAX_DECODED_BYTES,
    DEFAULT_MAX_DECODED_PIXELS,
    INFLATE_HEADER_ALLOWANCE,
    MAX_DIMENSION,
    MIN_DIMENSION,
    DecodedImage,
    DecodeLimits,
    DicomMeta,
    DicomRejected,
    _check_declared_size,
    _int,
    _meta,
    _str,
    _validate,
)
from annotate.archive.dicom_pixels import _decode_pixels, _to_display, render_preview

__all__ = [
    "DEFAULT_MAX_DECODED_BYTES",
    "DEFAULT_MAX_DECODED_PIXELS",
    "INFLATE_HEADER_ALLOWANCE",
    "MAX_DIMENSION",
    "MIN_DIMENSION",
    "DecodeLimits",
    "DecodedImage",
    "DicomMeta",
    "DicomRejected",
    "check_inflated_size",
    "decode_dataset",
    "decode_dicom",
    "encode_dataset",
    "encode_dataset_parts",
    "guarded",
    "native_display",
    "read_dataset",
    "read_meta",
    "read_meta_file",
    "render_preview",
]

_INFLATE_IN = 64 * 1024  # deflated bytes given to zlib at a time (bounds unconsumed_tail's copies)
_INFLATE_OUT = 1024**2  # inflated bytes asked of zlib at a time, counted and dropped
_PIXEL_TAGS = (b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10")  # (7FE0,0010) little / big endian
_SEQ_DELIM = b"\xfe\xff\xdd\xe0"  # ends encapsulated pixel data (always little endian)
_SCRUB = ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber", "OtherPatientIDs")

# pydicom logs invalid element values verbatim (names, IDs, dates). Drop its records while this
# module parses, per thread, so other users of pydicom keep their logging.
_busy = threading.local()
logging.getLogger("pydicom").addFilter(lambda record: not getattr(_busy, "on", False))


def read_meta(data: bytes, *, limits: DecodeLimits | None = None) -> DicomMeta:
    """Header-only read (stops before Pixel Data) and validation; raises DicomRejected."""
    held: list[Dataset] = []
    limits = limits or DecodeLimits()
    with _guard(held):
        data = bytes(data) if isinstance(data, (bytearray, memoryview)) else data
        ds, pos = _read(data, held, stop_before_pixels=True, limits=limits)
        state = _pixel_state(data, pos, ds)
        _validate(ds, state != "none", limits)
        if state == "truncated":
            raise DicomRejected("truncated pixel data")
        return _meta(ds)


def read_meta_file(path: Path | str, *, limits: DecodeLimits | None = None) -> DicomMeta:
    """``read_meta`` for a file on disk, without reading it into memory: the header is read from
    the file (it stops before Pixel Data) and the Pixel Data element's length is checked against
    the file's. A file without preamble, or a deflated one (its header lies inside the compressed
    stream, inflated in bounded pieces first), is read whole and checked by ``read_meta``: the
    caller bounds its size (MAX_DICOM_BYTES) first."""
    held: list[Dataset] = []
    limits = limits or DecodeLimits()
    path = Path(path)
    with open(path, "rb") as fp:
        size = os.fstat(fp.fileno()).st_size
        head = fp.read(132)
        syntax = None
        if len(head) == 132 and head[128:132] == b"DICM":
            with contextlib.suppress(Exception):
                syntax = _read_file_meta_info(fp).get("TransferSyntaxUID")
        if syntax is None or syntax == DeflatedExplicitVRLittleEndian:
            fp.seek(0)
            return read_meta(fp.read(), limits=limits)
        with _guard(held):
            fp.seek(0)
            try:
                ds = dcmread(fp, stop_before_pixels=True)
            except Exception:
                raise DicomRejected("corrupt DICOM header") from None
            held.append(ds)
            if len(ds) == 0:
                raise DicomRejected("not a DICOM file (no data elements)")
            state = _pixel_state_file(fp, fp.tell(), size)
            _validate(ds, state != "none", limits)
            if state == "truncated":
                raise DicomRejected("truncated pixel data")
            return _meta(ds)


def decode_dicom(data: bytes, *, limits: DecodeLimits | None = None) -> DecodedImage:
    """Full decode to display-sense uint16 pixels plus a default window; raises DicomRejected."""
    return decode_dataset(read_dataset(data, limits=limits))


def read_dataset(data: bytes, *, limits: DecodeLimits | None = None) -> Dataset:
    """The whole data set, read within the bounds and validated as ``decode_dicom`` does, its
    pixels not yet decoded; raises DicomRejected. For a caller that changes the data set (the
    ingest de-identifies it) before it decodes the pixels (``decode_dataset``)."""
    held: list[Dataset] = []
    limits = limits or DecodeLimits()
    with _guard(held):
        data = bytes(data) if isinstance(data, (bytearray, memoryview)) else data
        ds, _ = _read(data, held, stop_before_pixels=False, limits=limits)
        if "PixelData" not in ds and any(tag in data for tag in _PIXEL_TAGS):
            # pydicom silently drops cut (unterminated) encapsulated pixel data, at times with
            # the whole dataset: re-read the header so header problems are still reported first.
            _validate(_read(data, held, stop_before_pixels=True, limits=limits)[0], True, limits)
            raise DicomRejected("truncated pixel data")
        _validate(ds, "PixelData" in ds, limits)
        return ds


def decode_dataset(ds: Dataset) -> DecodedImage:
    """Decode the pixels of a data set from ``read_dataset`` (which bounded and validated it)."""
    with _guard([ds]):
        meta = _meta(ds)
        return _to_display(_decode_pixels(ds, meta), ds, meta)


def native_display(ds: Dataset, raw: np.ndarray) -> np.ndarray:
    """The display-sense uint16 pixels (as ``decode_dataset`` gives them) of a stored native,
    single-frame data set whose raw pixel values ``raw`` (rows x columns, the file's 16-bit
    integers, e.g. memory-mapped from the file) the caller read itself: pydicom's correction of
    the bits above Bits Stored, then ``_to_display``. When the display mapping is the identity and
    no bit needs correcting, ``raw`` itself is returned (no copy)."""
    with _guard([ds]):
        bits, allocated = _int(ds, "BitsStored") or 16, _int(ds, "BitsAllocated") or 16
        if bits < allocated and raw.dtype.kind == "u":  # pydicom's correct_unused_bits: one pass
            raw = np.bitwise_and(raw, raw.dtype.type((1 << bits) - 1))
        elif bits < allocated:  # signed: the shifts extend the sign bit
            shift = allocated - bits
            raw = np.left_shift(raw, shift)
            np.right_shift(raw, shift, out=raw)
        return np.ascontiguousarray(_to_display(raw, ds, _meta(ds), share=True).pixels)


def encode_dataset(ds: Dataset) -> bytes:
    """A data set as a DICOM file (preamble, file meta, its own transfer syntax); pixel data as
    it was read (no decode, no re-encode). Raises DicomRejected when it cannot be written."""
    with _guard([ds]):
        return _write(ds)


def _write(ds: Dataset) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def encode_dataset_parts(ds: Dataset) -> tuple[bytes | memoryview, ...]:
    """The bytes of ``encode_dataset(ds)`` as a few parts, the pixel data value among them as a
    view of the data set's own buffer: pydicom's writer copies a value twice (into an element
    buffer, then into the file), which for a radiograph's pixels costs more than the rest of the
    ingest's header work. Where the pixel data is not simply the last element of a little-endian,
    non-deflated data set, the one part is ``encode_dataset(ds)``."""
    ts = ds.file_meta.TransferSyntaxUID if "TransferSyntaxUID" in getattr(ds, "file_meta", ()) else None
    elem = ds.get("PixelData") if "PixelData" in ds else None
    last = max(ds.keys(), default=0)
    if ts is None or ts in (ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian) or elem is None or last != 0x7FE00010:
        return (encode_dataset(ds),)
    with _guard([ds]):
        elem = ds["PixelData"]  # a raw element becomes a DataElement: its VR resolved as written
        value = elem.value
        if not isinstance(value, bytes) or len(value) % 2 or (0x7FE00000 in ds):
            return (_write(ds),)
        encapsulated = ts.is_encapsulated
        del ds["PixelData"]
        try:
            head = _write(ds)
        finally:
            ds["PixelData"] = elem
        length = 0xFFFFFFFF if encapsulated else len(value)
        if ts == ImplicitVRLittleEndian:
            element = _PIXEL_TAGS[0] + struct.pack("<I", length)
        else:
            vr = "OB" if encapsulated else ("OW" if elem.VR not in ("OB", "OW") else elem.VR)
            element = _PIXEL_TAGS[0] + vr.encode() + b"\0\0" + struct.pack("<I", length)
        tail = _SEQ_DELIM + b"\0\0\0\0" if encapsulated else b""
        return (head, element, memoryview(value), tail) if tail else (head, element, memoryview(value))


@contextlib.contextmanager
def guarded(ds: Dataset) -> Iterator[None]:
    """Run code on a data set with pydicom muted and every failure a DicomRejected (the
    identifiers of ``ds`` scrubbed from the reason), as this module's own readers do."""
    with _guard([ds]):
        yield


@contextlib.contextmanager
def _guard(held: list[Dataset]) -> Iterator[None]:
    """Mute pydicom's warnings and log records; turn every failure into a clean DicomRejected."""
    _busy.on = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # any parser/decoder surprise (even a Rust panic) is the file's fault
        reason = exc.reason if isinstance(exc, DicomRejected) else f"corrupt DICOM data ({type(exc).__name__})"
        for ds in held:  # belt and braces: no identifier value may reach a reason
            for value in (_str(ds, kw) for kw in _SCRUB):
                reason = reason.replace(value, "***") if len(value) >= 3 else reason
        raise DicomRejected(reason) from None
    finally:
        _busy.on = False


def check_inflated_size(data: bytes, *, limits: DecodeLimits | None = None) -> None:
    """Refuse (DicomRejected) a Deflated Explicit VR Little Endian file whose data set inflates
    past ``limits.max_inflated_bytes``, before ``dcmread`` inflates it whole in one allocation.

    The stream is inflated in bounded pieces that are counted and dropped: the memory this takes
    is about a megabyte, whatever the file inflates to. Other files pass unread."""
    limits = limits or DecodeLimits()
    start = _deflated_start(data)
    if start is None:
        return
    cap, total = limits.max_inflated_bytes, 0
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    view = memoryview(data)
    head: bytes | None = b""  # the first inflated megabyte, for the header; None once checked
    try:
        for offset in range(start, len(data), _INFLATE_IN):
            piece: bytes | memoryview = view[offset : offset + _INFLATE_IN]
            while piece and not inflater.eof:
                out = inflater.decompress(piece, _INFLATE_OUT)
                total += len(out)
                if head is not None:
                    head += out[: _INFLATE_OUT - len(head)]
                    if len(head) >= _INFLATE_OUT:
                        _check_deflated_header(head, limits)
                        head = None
                if total > cap:
                    break
                piece = inflater.unconsumed_tail
            if total > cap or inflater.eof:
                break
        while total <= cap and not inflater.eof:  # output zlib still holds after the last input
            out = inflater.decompress(b"", _INFLATE_OUT)
            if not out:
                break  # a cut stream: dcmread reports it
            total += len(out)
    except zlib.error:
        raise DicomRejected("truncated or corrupt deflated data") from None
    if total > cap:
        raise DicomRejected(
            f"deflated data set inflates past {cap // 1024**2} MiB (MAX_DECODED_BYTES "
            f"{limits.max_bytes // 1024**2} MiB plus {INFLATE_HEADER_ALLOWANCE // 1024**2} MiB for the header): "
            "refused as a decompression bomb"
        )


def _check_deflated_header(head: bytes, limits: DecodeLimits) -> None:
    """The declared-size check on the start of an inflated data set, so that a bomb is refused
    for what its header says after a megabyte of inflating. A header longer than that, or one
    that does not parse, is left to the inflate cap and to dcmread."""
    try:
        ds = _read_raw_dataset(
            io.BytesIO(head),
            is_implicit_VR=False,
            is_little_endian=True,
            stop_when=lambda tag, vr, length: tag >= 0x7FE00010,
        )
    except Exception:
        return
    if "Rows" in ds and "Columns" in ds:
        _check_declared_size(ds, limits)


def _deflated_start(data: bytes) -> int | None:
    """Where the deflated data set begins, if the file meta names Deflated Explicit VR Little
    Endian; None for every other file (and for one whose meta cannot be read: dcmread says why)."""
    has_preamble = len(data) >= 132 and data[128:132] == b"DICM"
    fp = io.BytesIO(data)
    fp.seek(132 if has_preamble else 0)
    try:
        meta = _read_file_meta_info(fp)
        syntax = meta.get("TransferSyntaxUID")
    except Exception:
        return None
    return fp.tell() if syntax == DeflatedExplicitVRLittleEndian else None


def _read(data: bytes, held: list[Dataset], stop_before_pixels: bool, limits: DecodeLimits) -> tuple[Dataset, int]:
    """One dcmread (after the inflate bound); returns the dataset and where reading stopped."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DicomRejected("not a DICOM file (no bytes given)")
    if len(data) == 0:
        raise DicomRejected("empty file")
    has_preamble = len(data) >= 132 and data[128:132] == b"DICM"
    # Without preamble, only accept what starts like a dataset: group 0002 (meta) or 0008.
    if not has_preamble and not (len(data) >= 8 and {data[0:2], data[0:2][::-1]} & {b"\x02\x00", b"\x08\x00"}):
        raise DicomRejected("not a DICOM file")
    check_inflated_size(data, limits=limits)
    fp = io.BytesIO(data)
    try:
        ds = dcmread(fp, force=not has_preamble, stop_before_pixels=stop_before_pixels)
    except zlib.error:
        raise DicomRejected("truncated or corrupt deflated data") from None
    except Exception:
        raise DicomRejected("corrupt DICOM header" if has_preamble else "not a DICOM file") from None
    held.append(ds)
    if len(ds) == 0 and (stop_before_pixels or not any(tag in data for tag in _PIXEL_TAGS)):
        raise DicomRejected("not a DICOM file (no data elements)")
    if not ds.get("file_meta", FileMetaDataset()).get("TransferSyntaxUID"):
        # No (complete) file meta: the decoder needs a transfer syntax, take pydicom's guess.
        implicit, little = ds.original_encoding
        ds.file_meta = ds.get("file_meta") or FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
        )
    return ds, fp.tell()


def _pixel_state(data: bytes, pos: int, ds: Dataset) -> str:
    """After a stop_before_pixels read: "none", "ok" or "truncated" Pixel Data, from raw bytes."""
    if ds.file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian:
        return "ok"  # the stream position refers to inflated data; decode_dicom checks this one
    head = data[pos : pos + 12]
    if len(head) < 8 or head[:4] not in _PIXEL_TAGS:
        return "none"
    order: Literal["little", "big"] = "little" if head[:4] == _PIXEL_TAGS[0] else "big"
    if head[4:6] in (b"OB", b"OW", b"UN"):  # explicit VR (some writers switch to implicit here)
        length, start = int.from_bytes(head[8:12], order), pos + 12
    else:
        length, start = int.from_bytes(head[4:8], order), pos + 8
    if length == 0xFFFFFFFF:
        return "ok" if data.find(_SEQ_DELIM, start) >= 0 else "truncated"
    return "ok" if start + length <= len(data) else "truncated"


def _pixel_state_file(fp: Any, pos: int, size: int) -> str:
    """``_pixel_state`` for an open file of ``size`` bytes, read in pieces of a megabyte."""
    fp.seek(pos)
    head = fp.read(12)
    if len(head) < 8 or head[:4] not in _PIXEL_TAGS:
        return "none"
    order: Literal["little", "big"] = "little" if head[:4] == _PIXEL_TAGS[0] else "big"
    if head[4:6] in (b"OB", b"OW", b"UN"):
        length, start = int.from_bytes(head[8:12], order), pos + 12
    else:
        length, start = int.from_bytes(head[4:8], order), pos + 8
    if length != 0xFFFFFFFF:
        return "ok" if start + length <= size else "truncated"
    fp.seek(start)
    tail = b""
    while chunk := fp.read(1024**2):
        if _SEQ_DELIM in tail + chunk:
            return "ok"
        tail = chunk[-(len(_SEQ_DELIM) - 1) :]
    return "truncated"
