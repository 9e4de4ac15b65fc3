"""What the ingest stores of a received DICOM, and how fast paths keep it byte for byte what pydicom
gives: the file written in parts, native pixels read without pydicom, and lossless files whose
compression saves little stored decompressed (STORE_DECOMPRESSED_PERCENT)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from django.core.files.storage import default_storage
from pydicom.uid import ExplicitVRLittleEndian, RLELossless

from annotate import services
from annotate.archive.dicom import DicomRejected, _meta, encode_dataset, encode_dataset_parts, read_dataset
from annotate.archive.dicom_pixels import _native_u16
from annotate.models import Radiograph
from devtools.phantoms import generate_phantoms

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def readable(paths: list[Path]) -> list[tuple[str, bytes]]:
    out = []
    for path in paths:
        data = path.read_bytes()
        try:
            read_dataset(data)
        except DicomRejected:
            continue
        out.append((path.name, data))
    return out


@pytest.fixture(scope="module")
def phantom_files(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("phantoms")
    generate_phantoms(folder, studies=4, seed=1)
    return sorted(folder.rglob("*.dcm"))


def rle(files: list[Path]) -> list[Path]:
    return [p for p in files if pydicom.dcmread(p, stop_before_pixels=True).file_meta.TransferSyntaxUID == RLELossless]


def test_the_file_in_parts_is_byte_for_byte_pydicoms(phantom_files) -> None:
    files = readable(sorted(TEST_FILES.glob("*.dcm")) + phantom_files)
    assert len(files) >= 25
    split = 0
    for name, data in files:
        ds = read_dataset(data)
        parts = encode_dataset_parts(ds)
        assert b"".join(parts) == encode_dataset(ds), name
        split += len(parts) > 1
        assert "PixelData" in ds  # put back after the header was written
    assert split >= 15  # the fast path is taken, not the fallback, for most files


def test_native_pixels_are_pydicoms_with_junk_in_the_unused_bits(phantom_files) -> None:
    compared = 0
    for name, data in readable(sorted(TEST_FILES.glob("*.dcm")) + phantom_files):
        ds = read_dataset(data)
        fast = _native_u16(ds, _meta(ds))
        if fast is None:
            continue
        bits = int(ds.BitsStored)
        if bits < 16:  # bits above Bits Stored set: pydicom clears them, so must we
            raw = np.frombuffer(ds.PixelData, "<u2").copy()
            raw |= np.uint16(0xFFFF ^ ((1 << bits) - 1))
            ds.PixelData = raw.tobytes()
            fast = _native_u16(ds, _meta(ds))
        np.testing.assert_array_equal(fast, ds.pixel_array, err_msg=name)
        compared += 1
    assert compared >= 5


@pytest.mark.django_db
def test_rle_radiographs_are_stored_decompressed_with_the_same_pixels_and_uids(phantom_files) -> None:
    [path, *_] = rle(phantom_files)
    received = pydicom.dcmread(path)
    outcome = services.radiograph_ingest(data=path.read_bytes(), name="1", source=Radiograph.Source.CLI)
    radiograph = Radiograph.objects.get(pk=outcome.radiograph_id)
    with default_storage.open(radiograph.original.name) as handle:
        stored = pydicom.dcmread(handle)
    assert stored.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert stored.SOPInstanceUID == radiograph.sop_instance_uid  # the instance is the same one
    assert stored.LossyImageCompression == "00"
    np.testing.assert_array_equal(stored.pixel_array, received.pixel_array)
    assert radiograph.file_size <= 1.5 * path.stat().st_size


@pytest.mark.django_db
def test_files_that_compress_better_than_the_setting_stay_compressed(phantom_files, settings) -> None:
    [path, *_] = rle(phantom_files)
    settings.STORE_DECOMPRESSED_PERCENT = 100  # RLE saves ~30% on a radiograph: keep it as it came
    outcome = services.radiograph_ingest(data=path.read_bytes(), name="1", source=Radiograph.Source.CLI)
    radiograph = Radiograph.objects.get(pk=outcome.radiograph_id)
    with default_storage.open(radiograph.original.name) as handle:
        assert pydicom.dcmread(handle).file_meta.TransferSyntaxUID == RLELossless
