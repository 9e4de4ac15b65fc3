"""Tests for annotate.archive.dicom: decoding, validation and previews (no database, no Django)."""

from __future__ import annotations

import datetime
import io
import logging
import pathlib
import pickle
import re
import subprocess
import sys
import warnings

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import apply_modality_lut
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from annotate.archive import dicom
from annotate.archive.dicom import (
    DecodedImage,
    DicomMeta,
    DicomRejected,
    decode_dicom,
    read_meta,
    render_preview,
)
from tests.annotate.helpers import EXPECTED, TEST_FILES

COLOUR = "only grayscale radiographs are accepted"
RT = "not a radiograph"
HEADER_ONLY_PROBLEMS = {"JPEG-lossy.dcm", "JPEG2000-embedded-sequence-delimiter.dcm"}  # header is fine


def _bytes(name: str) -> bytes:
    return (TEST_FILES / name).read_bytes()


def _assert_clean_reason(reason: str, data: bytes | None = None) -> None:
    assert reason and "\n" not in reason and "Traceback" not in reason
    if data:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(data), force=True, stop_before_pixels=True)
        for kw in ("PatientName", "PatientID", "AccessionNumber"):
            value = str(ds.get(kw) or "")
            assert len(value) < 3 or value not in reason


def make_dicom(
    pixels: np.ndarray,
    *,
    pi: str = "MONOCHROME2",
    bits_stored: int = 12,
    ts: str = ExplicitVRLittleEndian,
    preamble: bool = True,
    **elements: object,
) -> bytes:
    """A minimal DX image written to bytes; `elements` are extra keyword=value attributes."""
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "DX"
    ds.PatientID = "PID-12345"
    ds.PatientName = "Doe^Jane"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = pi
    ds.BitsAllocated = pixels.dtype.itemsize * 8
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = int(pixels.dtype.kind == "i")
    for key, value in elements.items():
        if value is None:
            delattr(ds, key)
        else:
            setattr(ds, key, value)
    big = ts == ExplicitVRBigEndian
    ds.PixelData = pixels.astype(pixels.dtype.newbyteorder(">" if big else "<")).tobytes()
    out = io.BytesIO()
    if preamble:
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ts
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.get("SOPInstanceUID") or generate_uid()
        ds.save_as(out, enforce_file_format=True)
    else:
        implicit = ts == ImplicitVRLittleEndian
        pydicom.dcmwrite(out, ds, implicit_vr=implicit, little_endian=not big)
    return out.getvalue()


def gradient(rows: int = 64, cols: int = 80, lo: int = 0, hi: int = 4095, dtype: type = np.uint16) -> np.ndarray:
    return np.linspace(lo, hi, rows * cols).round().astype(dtype).reshape(rows, cols)


# ------------------------------------------------------------------ the pydicom test files


def test_table_covers_every_test_file() -> None:
    assert {p.name for p in TEST_FILES.glob("*.dcm")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_pydicom_test_file(name: str) -> None:
    data = _bytes(name)
    expected = EXPECTED[name]
    if expected is None:
        img = decode_dicom(data)
        assert isinstance(img, DecodedImage)
        assert img.pixels.dtype == np.uint16 and img.pixels.ndim == 2 and img.pixels.flags.c_contiguous
        assert img.pixels.shape == (img.meta.rows, img.meta.columns)
        assert img.window_width >= 1 and np.isfinite(img.window_center)
        assert read_meta(data) == img.meta
        return
    with pytest.raises(DicomRejected) as info:
        decode_dicom(data)
    assert expected in info.value.reason and info.value.reason == str(info.value)
    _assert_clean_reason(info.value.reason, data)
    if name in HEADER_ONLY_PROBLEMS:
        assert read_meta(data).rows > 0
    else:
        with pytest.raises(DicomRejected, match=re.escape(expected)):
            read_meta(data)


@pytest.mark.parametrize("name", sorted(name for name, outcome in EXPECTED.items() if outcome is None))
def test_pixels_match_pydicom_modality_lut(name: str) -> None:
    data = _bytes(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. MR_small_padded: "excess padding"
        ds = pydicom.dcmread(io.BytesIO(data))
        reference = apply_modality_lut(ds.pixel_array, ds).astype(np.float64)
    img = decode_dicom(data)
    # The uint16 mapping is recorded: modality value = pixels * value_slope + value_intercept.
    np.testing.assert_allclose(img.pixels * img.value_slope + img.value_intercept, reference)


def test_mr_window_comes_from_file_first_value() -> None:
    img = decode_dicom(_bytes("examples_overlay.dcm"))  # WindowCenter [450, 200], WindowWidth [790, 443]
    assert (img.window_center, img.window_width) == (450.0, 790.0)
    ct = decode_dicom(_bytes("CT_small.dcm"))  # no stored window: robust percentile default
    assert ct.pixels.min() <= ct.window_center <= ct.pixels.max()


@pytest.mark.parametrize("name", ["JPEGLSNearLossless_08.dcm", "JPEGLSNearLossless_16.dcm"])
def test_jpeg_ls_near_lossless_codec(name: str) -> None:
    # No StudyInstanceUID in these files: each gets a study UID derived from
    # its instance, the same on every import.
    data = (TEST_FILES / name).read_bytes()
    img = decode_dicom(data)
    np.testing.assert_array_equal(img.pixels, pydicom.dcmread(TEST_FILES / name).pixel_array)
    assert img.meta.study_instance_uid.startswith("2.25.")
    assert decode_dicom(data).meta.study_instance_uid == img.meta.study_instance_uid


def test_read_meta_fields() -> None:
    meta = read_meta(_bytes("CT_small.dcm"))
    assert isinstance(meta, DicomMeta)
    assert meta.sop_instance_uid == "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"
    assert meta.sop_class_uid == "1.2.840.10008.5.1.4.1.1.2"
    assert meta.study_instance_uid.startswith("1.3.6.1.4.1.5962.1.2.1.")
    assert meta.series_instance_uid.startswith("1.3.6.1.4.1.5962.1.3.1.")
    assert (meta.patient_id, meta.accession_number, meta.patient_sex) == ("1CT1", "", "O")
    assert meta.patient_age_years == 0 and meta.study_date == datetime.date(2004, 1, 19)
    assert (meta.modality, meta.rows, meta.columns, meta.bits_stored) == ("CT", 128, 128, 16)
    assert meta.pixel_spacing == (0.661468, 0.661468)
    assert meta.photometric_interpretation == "MONOCHROME2" and meta.manufacturer == "GE MEDICAL SYSTEMS"
    assert meta.transfer_syntax_uid == ExplicitVRLittleEndian
    assert "1CT1" not in repr(meta)  # identifiers stay out of logs that print the dataclass


def test_read_meta_derived_fields() -> None:
    data = make_dicom(
        gradient(),
        PatientBirthDate="19500310",
        StudyDate="20240309",
        PatientSex="F",
        SeriesDescription="PELVIS AP STANDING",
        ImagerPixelSpacing=[0.139, 0.14],
        AccessionNumber="ACC9",
    )
    meta = read_meta(data)
    assert meta.patient_age_years == 73  # birthday is the day after the study
    assert meta.view_position == "AP" and meta.pixel_spacing == (0.139, 0.14)
    assert (meta.patient_sex, meta.accession_number, meta.patient_id) == ("F", "ACC9", "PID-12345")
    meta = read_meta(make_dicom(gradient(), PatientAge="012M", ViewPosition="LL", ProtocolName="HIP AP"))
    assert (meta.patient_age_years, meta.view_position, meta.pixel_spacing) == (1, "LL", None)
    meta = read_meta(make_dicom(gradient(), SeriesDescription="Hip Lauenstein left", PatientSex="X"))
    assert (meta.view_position, meta.patient_sex, meta.patient_age_years) == ("FROG", "", None)


def test_module_is_pure_and_rejection_pickles() -> None:
    code = "import sys, annotate.archive.dicom; sys.exit('django' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=pathlib.Path(dicom.__file__).parents[2]).returncode == 0
    exc = pickle.loads(pickle.dumps(DicomRejected("multi-frame image (2 frames)")))
    assert isinstance(exc, ValueError) and exc.reason == "multi-frame image (2 frames)"


# --------------------------------------------------------------------- value mapping


def test_monochrome1_is_inverted_with_window() -> None:
    raw = gradient()
    img = decode_dicom(make_dicom(raw, pi="MONOCHROME1", WindowCenter=1000, WindowWidth=500))
    np.testing.assert_array_equal(img.pixels, 4095 - raw.astype(np.int64))
    assert (img.window_center, img.window_width) == (4095 - 1000, 500)
    # Same display as MONOCHROME2 of the inverted data: dark raw values become bright.
    preview = render_preview(img.pixels, img.window_center, img.window_width, 64)
    assert preview[0, 0] == 255 and preview[-1, -1] == 0
    np.testing.assert_allclose(img.pixels * img.value_slope + img.value_intercept, raw)


def test_monochrome2_identity_is_untouched() -> None:
    raw = gradient()
    img = decode_dicom(make_dicom(raw, WindowCenter="2048\\100", WindowWidth="4096\\50"))
    np.testing.assert_array_equal(img.pixels, raw)
    assert (img.window_center, img.window_width, img.value_slope, img.value_intercept) == (2048, 4096, 1, 0)


def test_negative_rescale_is_shifted_and_window_follows() -> None:
    raw = gradient(lo=-2048, hi=2047, dtype=np.int16)
    data = make_dicom(raw, RescaleSlope=1, RescaleIntercept=-1000, WindowCenter=40, WindowWidth=400)
    img = decode_dicom(data)
    hu = raw.astype(np.int64) - 1000  # theoretical range [-3048, 1047] -> shift by 3048
    np.testing.assert_array_equal(img.pixels, hu + 3048)
    assert (img.window_center, img.window_width) == (40 + 3048, 400)
    np.testing.assert_allclose(img.pixels * img.value_slope + img.value_intercept, hu)


@pytest.mark.parametrize(("slope", "intercept"), [(2, -100), (0.5, 3.25), (-1, 0), (1.5, -7.5)])
def test_rescale_variants_keep_every_level(slope: float, intercept: float) -> None:
    raw = gradient()
    img = decode_dicom(make_dicom(raw, RescaleSlope=slope, RescaleIntercept=intercept, WindowCenter=0, WindowWidth=100))
    value = raw.astype(np.float64) * slope + intercept
    np.testing.assert_allclose(img.pixels * img.value_slope + img.value_intercept, value, atol=abs(slope) / 2)
    assert len(np.unique(img.pixels)) == len(np.unique(raw))  # no stored level merged by rounding
    assert img.window_center == pytest.approx((0 - img.value_intercept) / img.value_slope)
    assert img.window_width == pytest.approx(100 / abs(img.value_slope))


def test_wide_range_is_scaled_into_uint16() -> None:
    raw = gradient(hi=60000)
    img = decode_dicom(make_dicom(raw, bits_stored=16, RescaleSlope=3, RescaleIntercept=0))
    assert img.pixels.max() <= 65535 and img.value_slope > 1
    np.testing.assert_allclose(img.pixels * img.value_slope + img.value_intercept, raw * 3.0, atol=img.value_slope)


def test_modality_lut_sequence_and_voi_lut_window() -> None:
    lut_item = Dataset()
    lut_item.LUTDescriptor = [4096, 0, 16]
    lut_item.ModalityLUTType = "US"
    lut_item.LUTData = (np.arange(4096, dtype=np.uint16) * 2).tobytes()
    voi_item = Dataset()
    voi_item.LUTDescriptor = [1000, 2000, 8]
    voi_item.LUTData = np.arange(1000, dtype=np.uint16).tobytes()
    raw = gradient()
    data = make_dicom(raw, ModalityLUTSequence=[lut_item], VOILUTSequence=[voi_item])
    img = decode_dicom(data)
    np.testing.assert_array_equal(img.pixels, raw * 2)
    assert img.window_center == pytest.approx(2000 + 999 / 2) and img.window_width == 1000


def test_default_window_without_stored_one() -> None:
    img = decode_dicom(make_dicom(gradient()))
    assert 1900 < img.window_center < 2200 and 3900 < img.window_width < 4100


@pytest.mark.parametrize("ts", [ImplicitVRLittleEndian, ExplicitVRBigEndian, ExplicitVRLittleEndian])
def test_files_without_file_meta_are_read(ts: str) -> None:
    raw = gradient()
    data = make_dicom(raw, ts=ts, preamble=False)
    assert data[128:132] != b"DICM"
    np.testing.assert_array_equal(decode_dicom(data).pixels, raw)
    assert read_meta(data).transfer_syntax_uid == ts


# ------------------------------------------------------------------------- rejections


@pytest.mark.parametrize(
    ("elements", "reason"),
    [
        ({"NumberOfFrames": 2}, "multi-frame image (2 frames)"),
        ({"SamplesPerPixel": 3}, "SamplesPerPixel is 3"),
        ({"SOPInstanceUID": None}, "missing SOPInstanceUID"),
        ({"SOPClassUID": "1.2.840.10008.5.1.4.1.1.481.2"}, "RT Dose object, not a radiograph"),
        ({"SOPClassUID": "1.2.840.10008.5.1.4.1.1.11.1"}, "presentation state, not an image"),
        ({"SOPClassUID": "1.2.840.10008.5.1.4.1.1.88.22"}, "structured report, not an image"),
        ({"Modality": "SR", "SOPClassUID": "1.2.3.4"}, "structured report, not an image"),
        ({"PhotometricInterpretation": "PALETTE COLOR"}, "palette colour image"),
        ({"PhotometricInterpretation": "YBR_FULL"}, "colour image (YBR_FULL)"),
    ],
)
def test_header_rejections(elements: dict[str, object], reason: str) -> None:
    data = make_dicom(gradient(), **elements)
    for fn in (read_meta, decode_dicom):
        with pytest.raises(DicomRejected) as info:
            fn(data)
        assert reason in info.value.reason
        _assert_clean_reason(info.value.reason, data)


@pytest.mark.parametrize(("shape", "ok"), [((1, 1), True), ((10, 45), True), ((100, 16385), False)])
def test_size_bounds(shape: tuple[int, int], ok: bool) -> None:
    data = make_dicom(np.zeros(shape, dtype=np.uint8), bits_stored=8)
    if ok:
        assert decode_dicom(data).pixels.shape == shape
    else:
        with pytest.raises(DicomRejected, match="out of range"):
            read_meta(data)


def test_unsupported_transfer_syntax() -> None:
    ds = pydicom.dcmread(io.BytesIO(make_dicom(gradient())))
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2
    ds.PixelData = encapsulate([bytes(ds.PixelData)])
    out = io.BytesIO()
    ds.save_as(out)
    with pytest.raises(DicomRejected, match="unsupported transfer syntax"):
        read_meta(out.getvalue())


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"just some text, not an image\n" * 10, "not a DICOM file"),
        (b"\x89PNG\r\n\x1a\n" + bytes(400), "not a DICOM file"),
        (np.random.default_rng(1).bytes(5000), "not a DICOM file"),
        (bytes(128) + b"DICM" + np.random.default_rng(2).bytes(3000), ""),
    ],
)
def test_garbage_is_rejected(data: bytes, reason: str) -> None:
    for fn in (read_meta, decode_dicom):
        with pytest.raises(DicomRejected) as info:
            fn(data)
        assert reason in info.value.reason
        _assert_clean_reason(info.value.reason)


@pytest.mark.parametrize(
    "name", ["CT_small.dcm", "MR_small_RLE.dcm", "JPEG2000.dcm", "MR_small_jpeg_ls_lossless.dcm", "image_dfl.dcm"]
)
def test_truncated_in_pixel_data(name: str) -> None:
    data = _bytes(name)
    start = data.rfind(b"\xe0\x7f\x10\x00")  # Pixel Data tag; deflated files: anywhere in the stream
    cut = data[: (start + len(data)) // 2] if start > 0 else data[: len(data) * 3 // 4]
    for fn in (read_meta, decode_dicom):
        if fn is read_meta and start < 0:
            continue  # a cut deflate stream may still inflate the header; decode_dicom must catch it
        with pytest.raises(DicomRejected, match="truncated") as info:
            fn(cut)
        _assert_clean_reason(info.value.reason, data)


def test_decoder_errors_become_reasons() -> None:
    with pytest.raises(DicomRejected) as info:
        decode_dicom(_bytes("JPEG-lossy.dcm"))
    assert info.value.reason.startswith("cannot decode pixel data (JPEG Extended (Process 2 and 4)): ")
    _assert_clean_reason(info.value.reason)


def test_decoder_panic_becomes_reason() -> None:
    # pylibjpeg-rle panics (pyo3 PanicException, a BaseException) on this one-byte corruption.
    data = bytearray(_bytes("MR_small_RLE.dcm"))
    data[data.rfind(b"\xe0\x7f\x10\x00") + 40] = 0
    with pytest.raises(DicomRejected, match=r"cannot decode pixel data \(RLE Lossless\)"):
        decode_dicom(bytes(data))


def test_reason_never_contains_identifiers(monkeypatch: pytest.MonkeyPatch) -> None:
    # Whatever a library message says, identifier values of the file are masked in the reason.
    def leaky(ds: Dataset, meta: DicomMeta) -> np.ndarray:
        raise DicomRejected(f"decoder said: bad frame for {meta.patient_id} / Doe^Jane")

    monkeypatch.setattr(dicom, "_decode_pixels", leaky)
    with pytest.raises(DicomRejected) as info:
        decode_dicom(make_dicom(gradient()))
    assert info.value.reason == "decoder said: bad frame for *** / ***"


def test_pydicom_warnings_and_logs_are_muted(caplog: pytest.LogCaptureFixture) -> None:
    # SC_rgb_jpeg.dcm switches VR mid-file: pydicom warns and logs; values may be identifiers.
    caplog.set_level(logging.DEBUG, logger="pydicom")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DicomRejected):
            decode_dicom(_bytes("SC_rgb_jpeg.dcm"))
    assert not [r for r in caplog.records if r.name == "pydicom" and r.levelno >= logging.WARNING]
    logging.getLogger("pydicom").warning("outside the module: still logged")
    assert caplog.records[-1].getMessage() == "outside the module: still logged"


# --------------------------------------------------------------------------- preview


def test_render_preview_size_dtype_and_window() -> None:
    pixels = np.full((2500, 1000), 1000, dtype=np.uint16)
    pixels[:, 500:] = 3000
    preview = render_preview(pixels, center=2000, width=1000, max_size=512)
    assert preview.dtype == np.uint8 and preview.shape == (500, 200) and preview.flags.c_contiguous  # a whole factor, 5
    assert (preview[:, :100] == 0).all() and (preview[:, -100:] == 255).all()  # below / above the window
    small = render_preview(gradient(), center=2047.5, width=4096, max_size=512)
    assert small.shape == (64, 80)
    assert small[0, 0] == 0 and small[-1, -1] == 255 and np.all(np.diff(small.ravel().astype(int)) >= 0)
    mid = render_preview(np.full((10, 10), 2000, np.uint16), 2000.5, 101, 8)
    assert mid.shape == (5, 5) and abs(int(mid[2, 2]) - 127) <= 2
    with pytest.raises(ValueError):
        render_preview(np.zeros((4, 4, 3)), 0, 1, 10)


# ------------------------------------------------------------------------------ fuzz

FUZZ_SOURCES = [
    "MR_small.dcm",
    "MR_small_RLE.dcm",
    "MR_small_jp2klossless.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "image_dfl.dcm",
    "MR_small_bigendian.dcm",
]


@settings(
    max_examples=120, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    source=st.sampled_from(FUZZ_SOURCES),
    edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=12),
    cut=st.one_of(st.none(), st.floats(0, 1)),
)
def test_fuzzed_files_only_raise_dicom_rejected(source: str, edits: list[tuple[float, int]], cut: float | None) -> None:
    data = bytearray(_bytes(source))
    for where, value in edits:
        data[int(where * len(data))] = value
    if cut is not None:
        del data[int(cut * len(data)) :]
    for fn in (read_meta, decode_dicom):
        try:
            result = fn(bytes(data))
        except DicomRejected as exc:
            _assert_clean_reason(exc.reason)
        else:
            if isinstance(result, DecodedImage):
                assert result.pixels.dtype == np.uint16 and result.pixels.ndim == 2
