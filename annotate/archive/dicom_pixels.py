"""DICOM pixels for hip radiograph ingest: decoding (a fast path for native 16-bit, pydicom with the
pylibjpeg plugins otherwise), the codestream size check, the Modality LUT, MONOCHROME1 and Rescale
mapped to display-sense uint16 with a default window, and the 8-bit preview. Pure (no Django);
:mod:`annotate.archive.dicom` re-exports the public names. Design: docs/architecture/design-dicom.md
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.pixels.utils import _get_jpg_parameters
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from annotate.archive.dicom_header import _NATIVE, DecodedImage, DicomMeta, DicomRejected, _get, _int, _num

_J2K_SIZ = b"\xff\x4f\xff\x51"  # SOC then SIZ: the start of a JPEG 2000 codestream


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

    off: float
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
    f: NDArray[np.floating[Any]] = x.astype(np.float32 if x.dtype.itemsize <= 2 else np.float64)
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
