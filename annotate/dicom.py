"""DICOM decoding and validation for hip radiograph ingest.

Pure module (no Django): usable from a notebook and testable on its own. Pixels are decoded by
pydicom 3 (`Dataset.pixel_array`), which uses the pylibjpeg plugins for JPEG, JPEG-LS, JPEG 2000
and RLE; deflate, big endian, implicit VR and files without meta are handled by `dcmread`.
Decoding is bounded (``DecodeLimits``): a deflated data set is inflated with a cap before pydicom
sees it, and the declared decoded size is checked before any pixel is decoded.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import logging
import math
import os
import re
import struct
import threading
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import generate_frames
from pydicom.filereader import _read_file_meta_info
from pydicom.filereader import read_dataset as _read_raw_dataset
from pydicom.multival import ConstrainedList
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.utils import _get_jpg_parameters
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

MIN_DIMENSION = 1  # tiny test images are still images; size is no reason to refuse one
MAX_DIMENSION = 16384  # larger than any detector; also bounds decoder memory

# The largest real radiograph: a 43 x 43 cm detector at 0.1 mm is about 4300 x 4300 = 18.5 Mpx,
# 16-bit. 25 Mpx and 64 MiB leave room above it; a file that declares more is refused unread.
DEFAULT_MAX_DECODED_PIXELS = 25_000_000
DEFAULT_MAX_DECODED_BYTES = 64 * 1024**2
# What a deflated data set may hold besides its pixels (header, overlays, icon) when inflated.
INFLATE_HEADER_ALLOWANCE = 8 * 1024**2
_INFLATE_IN = 64 * 1024  # deflated bytes given to zlib at a time (bounds unconsumed_tail's copies)
_INFLATE_OUT = 1024**2  # inflated bytes asked of zlib at a time, counted and dropped
_J2K_SIZ = b"\xff\x4f\xff\x51"  # SOC then SIZ: the start of a JPEG 2000 codestream

_COLOUR = set("RGB YBR_FULL YBR_FULL_422 YBR_PARTIAL_422 YBR_PARTIAL_420 YBR_ICT YBR_RCT ARGB CMYK HSV".split())
_NATIVE = {ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian}
_PIXEL_TAGS = (b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10")  # (7FE0,0010) little / big endian
_SEQ_DELIM = b"\xfe\xff\xdd\xe0"  # ends encapsulated pixel data (always little endian)
_SCRUB = ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber", "OtherPatientIDs")
_TEXT_VIEW_SOURCES = ("SeriesDescription", "ProtocolName", "StudyDescription", "ImageComments")
_VIEW_TEXT = re.compile(  # canonical projection tokens in free text; the group name is the token
    r"(?P<FROG>LAUENSTEIN|FROG)|(?P<XTABLE>CROSS[- ]?TABLE)|\b(?:(?P<AP>AP|ANTERO-?POSTERIOR)"
    r"|(?P<PA>PA|POSTERO-?ANTERIOR)|(?P<LAT>LAT|LATERAL|LL|RL)|(?P<OBL>OBL|OBLIQUE|JUDET)|(?P<DUNN>DUNN)"
    r"|(?P<AXIAL>AXIAL|INLET|OUTLET))\b"
)
_AGE = re.compile(r"^\s*(\d{1,3})\s*([DWMY])\s*$", re.IGNORECASE)

# pydicom logs invalid element values verbatim (names, IDs, dates). Drop its records while this
# module parses, per thread, so other users of pydicom keep their logging.
_busy = threading.local()
logging.getLogger("pydicom").addFilter(lambda record: not getattr(_busy, "on", False))


@dataclass(frozen=True)
class DecodeLimits:
    """Bounds on what one file may decode to, checked before any large allocation.

    ``max_pixels`` bounds Rows x Columns x SamplesPerPixel x NumberOfFrames; ``max_bytes`` the same
    times BitsAllocated / 8, and (plus ``INFLATE_HEADER_ALLOWANCE``) what a deflated data set may
    inflate to. Django callers take them from the settings ``MAX_DECODED_PIXELS`` and
    ``MAX_DECODED_BYTES`` (``annotate.ingest.decode_limits``)."""

    max_pixels: int = DEFAULT_MAX_DECODED_PIXELS
    max_bytes: int = DEFAULT_MAX_DECODED_BYTES

    @property
    def max_inflated_bytes(self) -> int:
        return self.max_bytes + INFLATE_HEADER_ALLOWANCE


class DicomRejected(ValueError):
    """Raised with a one-line, human-readable reason (no traceback text, no patient identifiers in it)."""

    def __init__(self, reason: str) -> None:
        self.reason = " ".join(str(reason).split())[:240]
        super().__init__(self.reason)


@dataclass(frozen=True)
class DicomMeta:
    sop_instance_uid: str
    sop_class_uid: str
    study_instance_uid: str
    series_instance_uid: str
    patient_id: str = field(repr=False)  # raw, only for hashing by the caller; never logged
    accession_number: str = field(repr=False)  # raw, only for hashing by the caller
    patient_sex: str  # "M", "F", "O" or ""
    patient_age_years: int | None
    study_date: datetime.date | None
    modality: str
    view_position: str  # ViewPosition, else a canonical token found in descriptions, else ""
    rows: int
    columns: int
    pixel_spacing: tuple[float, float] | None  # (row, col) mm: PixelSpacing, else ImagerPixelSpacing
    bits_stored: int
    photometric_interpretation: str
    manufacturer: str
    transfer_syntax_uid: str


@dataclass(frozen=True, eq=False)  # eq=False: field-wise ndarray comparison is ambiguous
class DecodedImage:
    meta: DicomMeta
    pixels: np.ndarray = field(repr=False)  # 2-D uint16, C-contiguous; higher = brighter
    window_center: float  # in units of `pixels`
    window_width: float
    # Records the uint16 mapping: modality value (after Rescale / Modality LUT)
    # == pixels * value_slope + value_intercept (value_slope < 0 for MONOCHROME1).
    value_slope: float = 1.0
    value_intercept: float = 0.0


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


def _get(ds: Dataset, keyword: str) -> Any:
    """First value of an element, None if absent, empty or unreadable (values convert lazily)."""
    try:
        value = ds.get(keyword)
        if isinstance(value, (ConstrainedList, list, tuple)):  # multi-valued element or Sequence
            value = value[0] if len(value) else None
    except Exception:
        return None
    return value


def _str(ds: Dataset, keyword: str) -> str:
    value = _get(ds, keyword)
    return "" if value is None else str(value).strip()


def _num(ds: Dataset, keyword: str, kind: type[int] | type[float] = float) -> Any:
    """int or finite float value of an element, else None."""
    try:
        value = kind(str(_get(ds, keyword)).strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _int(ds: Dataset, keyword: str) -> int | None:
    return _num(ds, keyword, int)


def _object_kind(ds: Dataset) -> str | None:
    """Reason when the SOP class or modality says this is not an image we ingest."""
    sop, modality = _str(ds, "SOPClassUID"), _str(ds, "Modality").upper()
    name = UID(sop).name.removesuffix(" Storage") if sop and UID(sop).name != sop else ""
    if sop.startswith(("1.2.840.10008.5.1.4.1.1.481", "1.2.840.10008.5.1.4.34")) or modality.startswith("RT"):
        return f"{name or 'RT'} object, not a radiograph"
    if sop.startswith("1.2.840.10008.5.1.4.1.1.88.") or modality in ("SR", "KO"):
        return "structured report, not an image"
    if sop.startswith("1.2.840.10008.5.1.4.1.1.9.") or modality in ("ECG", "HD", "EPS", "RESP", "AU"):
        return f"waveform ({name or modality}), not an image"
    if _get(ds, "WaveformSequence") is not None:
        return "waveform, not an image"
    if sop.startswith("1.2.840.10008.5.1.4.1.1.11.") or modality == "PR":
        return "presentation state, not an image"
    if sop.startswith("1.2.840.10008.5.1.4.1.1.66.4") or modality == "SEG":
        return "segmentation object, not a radiograph"
    if sop.startswith("1.2.840.10008.5.1.4.1.1.104.") or modality == "DOC":
        return "encapsulated document, not an image"
    if name and "Image" not in name:  # a registered SOP class that is not an image class
        return f"non-image object ({name})"
    return None


def _validate(ds: Dataset, has_pixels: bool, limits: DecodeLimits) -> None:
    """Header checks shared by read_meta and decode_dicom; raises DicomRejected."""
    if (kind := _object_kind(ds)) is not None:
        raise DicomRejected(kind)
    if not has_pixels:
        raise DicomRejected("no pixel data; not an image")
    _check_declared_size(ds, limits)
    if not _str(ds, "SOPInstanceUID"):
        raise DicomRejected("missing SOPInstanceUID")
    pi = _str(ds, "PhotometricInterpretation").upper()
    if pi == "PALETTE COLOR":
        raise DicomRejected("palette colour image; only grayscale radiographs are accepted")
    if pi in _COLOUR:
        raise DicomRejected(f"colour image ({pi}); only grayscale radiographs are accepted")
    if pi not in ("MONOCHROME1", "MONOCHROME2"):
        raise DicomRejected("missing or unsupported PhotometricInterpretation")
    if (spp := _int(ds, "SamplesPerPixel")) not in (None, 1):
        raise DicomRejected(f"SamplesPerPixel is {spp}; only single-sample grayscale is accepted")
    if _get(ds, "NumberOfFrames") is not None and (frames := _int(ds, "NumberOfFrames")) != 1:
        raise DicomRejected(f"multi-frame image ({frames} frames)" if frames else "invalid NumberOfFrames")
    rows, cols = _int(ds, "Rows") or 0, _int(ds, "Columns") or 0
    if not (MIN_DIMENSION <= rows <= MAX_DIMENSION and MIN_DIMENSION <= cols <= MAX_DIMENSION):
        raise DicomRejected(f"image size {cols}x{rows} out of range ({MIN_DIMENSION}-{MAX_DIMENSION})")
    if (ba := _int(ds, "BitsAllocated")) not in (8, 16, 32):
        raise DicomRejected(f"unsupported BitsAllocated ({ba})")
    if not 1 <= (_int(ds, "BitsStored") or ba) <= ba or _int(ds, "PixelRepresentation") not in (None, 0, 1):
        raise DicomRejected("invalid BitsStored or PixelRepresentation")
    ts = ds.file_meta.TransferSyntaxUID
    try:
        supported = ts in _NATIVE or get_decoder(ts).is_available
    except Exception:  # NotImplementedError for MPEG, private and unknown syntaxes
        supported = False
    if not supported:
        raise DicomRejected(f"unsupported transfer syntax ({ts.name if ts.name != ts else 'unknown'})")


def _check_declared_size(ds: Dataset, limits: DecodeLimits) -> None:
    """Refuse an image whose header declares more decoded pixels or bytes than the limits,
    from the attributes alone (Pixel Data is not touched)."""
    rows, cols = max(_int(ds, "Rows") or 0, 0), max(_int(ds, "Columns") or 0, 0)
    samples = max(_int(ds, "SamplesPerPixel") or 1, 1)
    frames = max(_int(ds, "NumberOfFrames") or 1, 1)
    bits = max(_int(ds, "BitsAllocated") or 16, 1)
    pixels = rows * cols * samples * frames
    size = pixels * bits // 8
    shape = (
        f"{cols}x{rows}" + (f"x{samples} samples" if samples > 1 else "") + (f"x{frames} frames" if frames > 1 else "")
    )
    if pixels > limits.max_pixels:
        raise DicomRejected(
            f"declared image {shape} is {pixels / 1e6:.0f} Mpx, over MAX_DECODED_PIXELS "
            f"({limits.max_pixels / 1e6:.0f} Mpx); larger than any radiograph"
        )
    if size > limits.max_bytes:
        raise DicomRejected(
            f"declared image {shape} at {bits} bits decodes to {size / 1024**2:.0f} MiB, over MAX_DECODED_BYTES "
            f"({limits.max_bytes / 1024**2:.0f} MiB)"
        )


def _check_codestream(ds: Dataset, meta: DicomMeta) -> None:
    """A JPEG, JPEG-LS or JPEG 2000 codestream carries its own image size, which its decoder
    allocates: refuse one that differs from the header's (already bounded) Rows and Columns."""
    try:
        frame = next(generate_frames(ds.PixelData, number_of_frames=1))[:65536]
    except Exception:
        return  # the decoder reports unreadable encapsulated data
    width = height = None
    if (at := frame.find(_J2K_SIZ)) >= 0 and len(frame) >= at + 24:
        x, y, x0, y0 = (int.from_bytes(frame[at + 8 + 4 * i : at + 12 + 4 * i], "big") for i in range(4))
        width, height = x - x0, y - y0
    elif frame[:2] == b"\xff\xd8":
        info = _get_jpg_parameters(frame)
        width, height = info.get("width"), info.get("height")
    if width is not None and height is not None and (width, height) != (meta.columns, meta.rows):
        raise DicomRejected(
            f"the compressed pixel data is {width}x{height}, the header says {meta.columns}x{meta.rows}"
        )


def _pixel_state(data: bytes, pos: int, ds: Dataset) -> str:
    """After a stop_before_pixels read: "none", "ok" or "truncated" Pixel Data, from raw bytes."""
    if ds.file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian:
        return "ok"  # the stream position refers to inflated data; decode_dicom checks this one
    head = data[pos : pos + 12]
    if len(head) < 8 or head[:4] not in _PIXEL_TAGS:
        return "none"
    order = "little" if head[:4] == _PIXEL_TAGS[0] else "big"
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
    order = "little" if head[:4] == _PIXEL_TAGS[0] else "big"
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


def _date(text: str) -> datetime.date | None:
    digits = text.replace(".", "").replace("-", "").strip()[:8]  # DA, or old ACR-NEMA YYYY.MM.DD
    try:
        return datetime.date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        return None


def _age_years(ds: Dataset, study_date: datetime.date | None) -> int | None:
    if m := _AGE.match(_str(ds, "PatientAge")):
        return int(m.group(1)) // {"Y": 1, "M": 12, "W": 52, "D": 365}[m.group(2).upper()]
    birth = _date(_str(ds, "PatientBirthDate"))
    if birth is None or study_date is None or birth > study_date:
        return None
    age = study_date.year - birth.year - ((study_date.month, study_date.day) < (birth.month, birth.day))
    return age if age <= 150 else None


def _view_position(ds: Dataset) -> str:
    if view := _str(ds, "ViewPosition").upper():
        return view[:16]
    for kw in _TEXT_VIEW_SOURCES:  # only canonical tokens leave here: free text may hold names
        if m := _VIEW_TEXT.search(_str(ds, kw).upper()):
            return str(m.lastgroup)
    return ""


def _spacing(ds: Dataset) -> tuple[float, float] | None:
    for kw in ("PixelSpacing", "ImagerPixelSpacing"):
        try:
            values = [float(v) for v in ds.get(kw) or ()]
        except Exception:
            continue
        values = values * 2 if len(values) == 1 else values
        if len(values) >= 2 and all(math.isfinite(v) and v > 0 for v in values[:2]):
            return values[0], values[1]
    return None


def _meta(ds: Dataset) -> DicomMeta:
    sex = _str(ds, "PatientSex").upper()
    dates = (_date(_str(ds, kw)) for kw in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"))
    study_date = next((d for d in dates if d is not None), None)
    return DicomMeta(
        sop_instance_uid=_str(ds, "SOPInstanceUID"),
        sop_class_uid=_str(ds, "SOPClassUID"),
        # An image without a study UID still belongs to some study: one of its
        # own, named after the instance, so that a re-import finds the same one.
        study_instance_uid=_str(ds, "StudyInstanceUID")
        or generate_uid(prefix="2.25.", entropy_srcs=["study-of", _str(ds, "SOPInstanceUID")]),
        series_instance_uid=_str(ds, "SeriesInstanceUID"),
        patient_id=_str(ds, "PatientID"),
        accession_number=_str(ds, "AccessionNumber"),
        patient_sex={"MALE": "M", "FEMALE": "F", "OTHER": "O"}.get(sex, sex if sex in ("M", "F", "O") else ""),
        patient_age_years=_age_years(ds, study_date),
        study_date=study_date,
        modality=_str(ds, "Modality").upper(),
        view_position=_view_position(ds),
        rows=_int(ds, "Rows") or 0,
        columns=_int(ds, "Columns") or 0,
        pixel_spacing=_spacing(ds),
        bits_stored=_int(ds, "BitsStored") or _int(ds, "BitsAllocated") or 0,
        photometric_interpretation=_str(ds, "PhotometricInterpretation"),
        manufacturer=_str(ds, "Manufacturer"),
        transfer_syntax_uid=str(ds.file_meta.TransferSyntaxUID),
    )


def _decode_pixels(ds: Dataset, meta: DicomMeta) -> np.ndarray:
    ts = ds.file_meta.TransferSyntaxUID
    if ts in _NATIVE:
        expected, got = meta.rows * meta.columns * (_int(ds, "BitsAllocated") or 16) // 8, len(ds.PixelData)
        if got < expected:
            raise DicomRejected(f"truncated pixel data ({got} of {expected} bytes)")
        if (raw := _native_u16(ds, meta)) is not None:
            return raw
        ds.pixel_array_options(view_only=True)  # skip pydicom's defensive copy; we write a new array
    else:
        _check_codestream(ds, meta)
    try:
        arr = ds.pixel_array
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # pylibjpeg-rle raises pyo3's PanicException (a BaseException) on bad input
        # pydicom lists one line per plugin; the first plugin's own message is the useful one.
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip() and not ln.startswith("Unable to")]
        raise DicomRejected(f"cannot decode pixel data ({ts.name}): {(lines or ['error'])[0][:150]}") from None
    if arr.shape != (meta.rows, meta.columns) or arr.dtype.kind not in "iu":
        raise DicomRejected(f"decoded pixel array has unexpected shape {arr.shape}")
    return arr


def _native_u16(ds: Dataset, meta: DicomMeta) -> np.ndarray | None:
    """The pixels of the commonest radiograph (native little endian, one frame, one sample,
    unsigned 16-bit) read straight from the value: a view when all 16 bits are stored, else one
    masking pass into a new array (what pydicom's copy, left shift and right shift give). None for
    anything else, which pydicom decodes."""
    ts = ds.file_meta.TransferSyntaxUID
    if ts not in (ExplicitVRLittleEndian, ImplicitVRLittleEndian) or (_int(ds, "BitsAllocated") or 0) != 16:
        return None
    if (_int(ds, "SamplesPerPixel") or 1) != 1 or (_int(ds, "NumberOfFrames") or 1) != 1:
        return None
    if _int(ds, "PixelRepresentation") != 0 or not isinstance(ds.PixelData, bytes):
        return None
    raw = np.frombuffer(ds.PixelData, dtype="<u2", count=meta.rows * meta.columns).reshape(meta.rows, meta.columns)
    bits = _int(ds, "BitsStored") or 16
    return raw if bits >= 16 else np.bitwise_and(raw, np.uint16((1 << bits) - 1))


def _modality_lut(ds: Dataset, arr: np.ndarray) -> tuple[np.ndarray, int, int] | None:
    """Apply a Modality LUT Sequence: (uint16 result, LUT min, LUT max); None if there is none."""
    if not isinstance(item := _get(ds, "ModalityLUTSequence"), Dataset):
        return None
    n, first = [int(v) for v in item.LUTDescriptor][:2]
    n, raw = n or 65536, item.LUTData
    if isinstance(raw, bytes):  # OW: raw words in the dataset's byte order
        lut = np.frombuffer(raw, dtype="<u2" if ds.original_encoding[1] is not False else ">u2")
    else:
        lut = np.asarray(raw if isinstance(raw, (list, tuple)) else [raw], dtype=np.int64)
    if lut.size < n:
        raise DicomRejected("invalid Modality LUT")
    lut = np.clip(lut[:n], 0, 65535).astype(np.uint16)
    return lut[np.clip(arr.astype(np.int64) - first, 0, n - 1)], int(lut.min()), int(lut.max())


def _to_display(arr: np.ndarray, ds: Dataset, meta: DicomMeta, *, share: bool = False) -> DecodedImage:
    """Modality LUT, MONOCHROME1 inversion and uint16 mapping as one affine step where possible.
    ``share``: an identity mapping may return ``arr`` itself even when it is read-only."""
    invert = meta.photometric_interpretation.upper() == "MONOCHROME1"
    bits = min(meta.bits_stored or 64, arr.dtype.itemsize * 8)
    signed = _int(ds, "PixelRepresentation") == 1
    smin, smax = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if ds.file_meta.TransferSyntaxUID not in _NATIVE and bits < arr.dtype.itemsize * 8:
        np.clip(arr, smin, smax, out=arr)  # JPEG/RLE keep junk high bits (pydicom masks the others)

    if (lut := _modality_lut(ds, arr)) is not None:
        pixels, lo, hi = lut  # already uint16
        sign, off, scale = (-1, lo + hi, 1.0) if invert else (1, 0, 1.0)
        if invert:
            np.subtract(np.uint16(lo + hi), pixels, out=pixels)
    else:
        slope = _num(ds, "RescaleSlope") or 1.0
        intercept = _num(ds, "RescaleIntercept") or 0.0
        vlo, vhi = sorted((smin * slope + intercept, smax * slope + intercept))
        if vhi - vlo > 65535:  # too wide for uint16 in theory: use the values actually present
            vlo, vhi = sorted((int(arr.min()) * slope + intercept, int(arr.max()) * slope + intercept))
        # A fractional slope would need float passes and rounding (|slope| < 1 merges levels): keep
        # the stored levels instead and carry the slope in value_slope. Integer slopes are applied.
        scale = 1.0 if slope.is_integer() else abs(slope)
        scale = max(scale, (vhi - vlo) / 65535)
        shift = 0.0 if vlo / scale >= 0 and vhi / scale <= 65535 else vlo
        # u = (sign * v + off) / scale, v = slope * x + intercept; inversion maps [vlo, vhi] onto itself.
        sign = -1 if invert else 1
        off = (vlo + vhi if invert else 0.0) - shift
        a, k = sign * slope / scale, (sign * intercept + off) / scale
        if a.is_integer() and not k.is_integer():  # rint(x.5) rounds half to even: merges levels
            k = math.floor(k + 0.5)
            off = k * scale - sign * intercept
        pixels = _affine_to_uint16(arr, a, float(k), smin, smax, share=share)

    center, width = _stored_window(ds)
    if center is not None and width is not None:
        center, width = (sign * center + off) / scale, width / scale
    else:  # robust default: 0.5th-99.5th percentile of a ~64k subsample, via a histogram (uint16)
        step = max(1, int(math.sqrt(pixels.size / 65536)))
        cdf = np.cumsum(np.bincount(pixels[::step, ::step].ravel()))
        p_lo, p_hi = (float(p) for p in np.searchsorted(cdf, (0.005 * cdf[-1], 0.995 * cdf[-1])))
        center, width = (p_lo + p_hi) / 2, p_hi - p_lo
    return DecodedImage(
        meta=meta,
        pixels=np.ascontiguousarray(pixels),
        window_center=float(center),
        window_width=max(float(width), 1.0),
        value_slope=sign * scale,
        value_intercept=-sign * off,
    )


def _affine_to_uint16(x: np.ndarray, a: float, k: float, smin: int, smax: int, *, share: bool = False) -> np.ndarray:
    """round(a*x + k) as uint16 for x in [smin, smax]; in place and in integers where possible.
    ``share``: the identity returns a read-only ``x`` as it is, not a copy."""
    ends = (a * smin + k, a * smax + k)
    if a.is_integer() and k.is_integer() and x.dtype.itemsize <= 2 and min(ends) >= 0 and max(ends) <= 65535:
        # Exact in wrap-around uint16 arithmetic, because the true result lies in [0, 65535].
        if x.dtype.itemsize == 2 and x.dtype.isnative:
            u, fresh = x.view(np.uint16), x.flags.writeable
        else:
            u, fresh = x.astype(np.uint16), True
        out = u if fresh else None
        ia, ik = int(a) % 65536, int(k) % 65536
        if ia == 1 and ik == 0:
            return u if fresh or share else u.copy()
        if ia == 65535:  # a == -1 (MONOCHROME1): a single pass
            return np.subtract(np.uint16(ik), u, out=out)
        if ia != 1:
            u = out = np.multiply(u, np.uint16(ia), out=out)
        return np.add(u, np.uint16(ik), out=out) if ik else u
    f = x.astype(np.float32 if x.dtype.itemsize <= 2 else np.float64)
    f *= a
    f += k
    np.clip(f, 0, 65535, out=f)
    return np.rint(f, out=f).astype(np.uint16)


def _stored_window(ds: Dataset) -> tuple[float | None, float | None]:
    """Default window in modality units: WindowCenter/Width, else the VOI LUT's input range."""
    center, width = _num(ds, "WindowCenter"), _num(ds, "WindowWidth")
    if center is not None and width is not None and width > 0:
        return center, width
    try:
        n, first = [int(v) for v in _get(ds, "VOILUTSequence").LUTDescriptor][:2]
    except Exception:
        return None, None
    n = n or 65536
    return first + (n - 1) / 2, float(n)


def render_preview(pixels: np.ndarray, center: float, width: float, max_size: int) -> np.ndarray:
    """8-bit preview: box-averaged by a whole factor to longest side <= max_size, then DICOM linear VOI window."""
    if pixels.ndim != 2 or max_size < 1:
        raise ValueError("render_preview needs a 2-D array and max_size >= 1")
    h, w = pixels.shape
    # A whole reduction factor: box averaging by strided adds and no second
    # resampling pass. The longest side ends between max_size/2 and max_size.
    f = -(-max(h, w) // max_size)
    if f >= 2:
        # Integer box average by strided adds: ~one pass, much cheaper than a fancy-indexed LUT
        # or PIL on the full image. The < f edge pixels that do not fill a box are dropped.
        v = pixels[: h // f * f, : w // f * f]
        rows = v[0::f].astype(np.float32)
        for i in range(1, f):
            rows += v[i::f]
        small = rows[:, 0::f].copy()
        for j in range(1, f):
            small += rows[:, j::f]
        small *= 1.0 / (f * f)
    else:
        small = pixels.astype(np.float32)
    c, wd = float(center), max(float(width), 1.0)
    if wd <= 1:
        img = np.where(small > c - 0.5, 255, 0).astype(np.uint8)
    else:  # PS3.3 C.11.2.1.2.1 linear function, output 0..255
        y = ((small - (c - 0.5)) / (wd - 1) + 0.5) * 255.0
        img = np.rint(np.clip(y, 0, 255, out=y), out=y).astype(np.uint8)
    return np.ascontiguousarray(img)
