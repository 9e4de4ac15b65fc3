"""Pixels are read from the stored de-identified DICOM (annotate.archive.pixels), bit-identical to the
array the ingest used to store, through a bounded cache; older .npy files still work."""

from __future__ import annotations

import gzip
import io

import numpy as np
import pytest
from django.core.files.storage import default_storage
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from annotate import services
from annotate.archive.dicom import decode_dataset, read_dataset
from annotate.archive.ingest import deidentified_copy
from annotate.archive.pixels import array_cache, caches, gzip_body, mapped_stored, radiograph_pixels
from annotate.models import Radiograph
from common.storage import Buffers
from devtools.phantoms import generate_phantoms
from tests.annotate.helpers import EXPECTED, TEST_FILES

pytestmark = pytest.mark.django_db


def old_store(data: bytes) -> np.ndarray:
    """The array the ingest stored as pixels/….npy before: the de-identified data set, decoded."""
    ds, _, _ = deidentified_copy(data)
    return decode_dataset(ds).pixels


def ingest(data: bytes) -> Radiograph | None:
    outcome = services.radiograph_ingest(data=data, name="a.dcm", source=Radiograph.Source.CLI)
    return Radiograph.objects.get(pk=outcome.radiograph_id) if outcome.status == "imported" else None


def assert_same_as_old_store(data: bytes) -> bool:
    radiograph = ingest(data)
    if radiograph is None:
        return False
    caches()[0].clear()
    new = radiograph_pixels(radiograph)
    old = old_store(data)
    assert new.dtype == old.dtype == np.uint16 and new.shape == old.shape
    np.testing.assert_array_equal(new, old)
    assert not new.flags.writeable  # shared by every caller through the cache
    return True


DECODABLE = sorted(n for n, outcome in EXPECTED.items() if outcome is None)


@pytest.mark.parametrize("name", DECODABLE)
def test_every_decodable_pydicom_file_reads_back_bit_identical(name: str) -> None:
    """Every transfer syntax, MONOCHROME1, modality LUTs, rescales: the stored (de-identified)
    file decodes to exactly the array that was stored before."""
    ds, stored, _ = deidentified_copy((TEST_FILES / name).read_bytes())
    new = decode_dataset(read_dataset(stored)).pixels
    old = decode_dataset(ds).pixels
    assert new.dtype == old.dtype == np.uint16
    np.testing.assert_array_equal(new, old)


def test_pydicom_test_files_read_back_bit_identical_through_the_ingest() -> None:
    compared = sum(assert_same_as_old_store((TEST_FILES / name).read_bytes()) for name in DECODABLE)
    assert compared >= 8  # the others are refused by the ingest (not a radiograph) or share a UID


def test_phantoms_read_back_bit_identical(tmp_path) -> None:
    generate_phantoms(tmp_path / "phantoms", studies=3, seed=3)
    files = sorted((tmp_path / "phantoms").rglob("*.dcm"))
    assert files and all(assert_same_as_old_store(path.read_bytes()) for path in files)


def test_an_older_ingests_array_file_is_still_read(dicom_bytes) -> None:
    radiograph = ingest(dicom_bytes(rows=64, columns=48))
    legacy = np.full((64, 48), 7, np.uint16)  # differs from the DICOM: proves which one is read
    name = f"pixels/{radiograph.sha256[:2]}/{radiograph.sha256}.npy"
    buffer = io.BytesIO()
    np.save(buffer, legacy)
    default_storage.save(name, Buffers(buffer.getvalue()))
    radiograph.pixels = name
    radiograph.save()
    np.testing.assert_array_equal(radiograph_pixels(radiograph), legacy)
    default_storage.delete(name)  # removed: the DICOM is read again
    np.testing.assert_array_equal(radiograph_pixels(radiograph), old_store(dicom_bytes(rows=64, columns=48)))


def test_the_viewer_body_is_the_decoded_array(dicom_bytes) -> None:
    radiograph = ingest(dicom_bytes(rows=64, columns=48))
    raw = gzip.decompress(gzip_body(radiograph))
    np.testing.assert_array_equal(np.frombuffer(raw, "<u2").reshape(64, 48), radiograph_pixels(radiograph))
    # An older version's body stored beside its .npy is served as it is.
    radiograph.pixels = "pixels/aa/old.npy"
    default_storage.save("pixels/aa/old.u16.gz", Buffers(b"old body"))
    from annotate.labelling.api import pixels_response

    assert b"".join(pixels_response(radiograph).streaming_content) == b"old body"


def test_the_cache_is_bounded_in_bytes() -> None:
    cache = array_cache(3000)
    for key in range(5):
        cache.get(key, lambda: np.zeros(500, np.uint16))  # 1000 bytes each
    assert len(cache) == 3 and cache.nbytes == 3000 and cache.loads == 5
    cache.get(4, lambda: pytest.fail("cached"))
    cache.get(0, lambda: np.zeros(500, np.uint16))  # evicted: loaded again
    assert cache.loads == 6
    big = cache.get("big", lambda: np.zeros(4000, np.uint8))  # larger than the bound: not kept
    assert big.nbytes == 4000 and "big" not in cache._items and cache.nbytes <= 3000


@pytest.mark.parametrize("name", DECODABLE)
def test_native_files_are_memory_mapped_bit_identical(name: str, tmp_path) -> None:
    """Native 16-bit single-frame files are read memory-mapped (no decode), to exactly the array
    the decoder gives; other files are left to the decoder (None)."""
    _, stored, _ = deidentified_copy((TEST_FILES / name).read_bytes())
    path = tmp_path / "stored.dcm"
    path.write_bytes(stored)
    mapped = mapped_stored(path)
    ds = read_dataset(stored)
    native = (
        ds.file_meta.TransferSyntaxUID in (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
        and ds.BitsAllocated == 16
        and ds.get("SamplesPerPixel", 1) == 1
        and int(ds.get("NumberOfFrames") or 1) == 1
    )
    assert (mapped is not None) == native
    if mapped is not None:
        decoded = decode_dataset(ds).pixels
        assert mapped.dtype == decoded.dtype == np.uint16
        np.testing.assert_array_equal(mapped, decoded)


def test_an_identity_mapped_radiograph_is_the_file_itself(tmp_path) -> None:
    """MONOCHROME2, unsigned, all 16 bits, no rescale: the array is a read-only view of the
    stored file's Pixel Data (read like the old .npy), and is not held in the cache."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import SecondaryCaptureImageStorage, generate_uid

    from annotate.archive.dicom import encode_dataset

    values = np.random.default_rng(3).integers(0, 65536, (300, 200), dtype=np.uint16)
    ds = read_dataset((TEST_FILES / "CT_small.dcm").read_bytes())  # a header to start from
    for keyword in ("RescaleSlope", "RescaleIntercept", "WindowCenter", "WindowWidth"):
        ds.pop(keyword, None)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 300, 200, 16, 16, 15
    ds.PixelRepresentation, ds.SamplesPerPixel, ds.PhotometricInterpretation = 0, 1, "MONOCHROME2"
    ds.PixelData = values.tobytes()
    ds["PixelData"].VR = "OW"
    path = tmp_path / "identity.dcm"
    path.write_bytes(encode_dataset(ds))
    mapped = mapped_stored(path)
    assert mapped is not None and not mapped.flags.writeable
    assert isinstance(mapped, np.memmap) or isinstance(mapped.base, np.memmap)
    np.testing.assert_array_equal(mapped, values)
    np.testing.assert_array_equal(mapped, decode_dataset(read_dataset(path.read_bytes())).pixels)
    cache = array_cache(10**9)
    assert cache.get("k", lambda: mapped) is mapped and len(cache) == 0
