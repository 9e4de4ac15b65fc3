"""DICOM headers for hip radiograph ingest: the decode bounds, the rejection, the metadata and image
types, the element readers and the header checks (what is an image we ingest, and how large it
may decode). Pure (no Django); :mod:`annotate.archive.dicom` re-exports the public names.
Design: docs/architecture/design-dicom.md
"""

from __future__ import annotations

import datetime
import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import ConstrainedList
from pydicom.pixels.decoders.base import get_decoder
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

_COLOUR = set("RGB YBR_FULL YBR_FULL_422 YBR_PARTIAL_422 YBR_PARTIAL_420 YBR_ICT YBR_RCT ARGB CMYK HSV".split())
_NATIVE = {ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian}
_TEXT_VIEW_SOURCES = ("SeriesDescription", "ProtocolName", "StudyDescription", "ImageComments")
_VIEW_TEXT = re.compile(  # canonical projection tokens in free text; the group name is the token
    r"(?P<FROG>LAUENSTEIN|FROG)|(?P<XTABLE>CROSS[- ]?TABLE)|\b(?:(?P<AP>AP|ANTERO-?POSTERIOR)"
    r"|(?P<PA>PA|POSTERO-?ANTERIOR)|(?P<LAT>LAT|LATERAL|LL|RL)|(?P<OBL>OBL|OBLIQUE|JUDET)|(?P<DUNN>DUNN)"
    r"|(?P<AXIAL>AXIAL|INLET|OUTLET))\b"
)
_AGE = re.compile(r"^\s*(\d{1,3})\s*([DWMY])\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class DecodeLimits:
    """Bounds on what one file may decode to, checked before any large allocation.

    ``max_pixels`` bounds Rows x Columns x SamplesPerPixel x NumberOfFrames; ``max_bytes`` the same
    times BitsAllocated / 8, and (plus ``INFLATE_HEADER_ALLOWANCE``) what a deflated data set may
    inflate to. Django callers take them from the settings ``MAX_DECODED_PIXELS`` and
    ``MAX_DECODED_BYTES`` (``annotate.archive.ingest.decode_limits``)."""

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
    manufacturer_model: str = ""  # ManufacturerModelName: with the maker, the scanner of the subgroups


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
        manufacturer_model=_str(ds, "ManufacturerModelName")[:64],
        transfer_syntax_uid=str(ds.file_meta.TransferSyntaxUID),
    )
