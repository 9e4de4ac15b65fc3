"""DICOM ingest: the service, the files it keeps, and what it refuses."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from django.core.files.storage import default_storage

from annotate import services
from annotate.archive.pixels import radiograph_pixels
from annotate.archive.pseudonyms import uid_pseudonym
from annotate.models import Patient, Radiograph, Study

pytestmark = pytest.mark.django_db


def stored_files() -> set[str]:
    root = Path(default_storage.location)
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def ingest(data: bytes, name: str = "a.dcm"):
    return services.radiograph_ingest(data=data, name=name, source=Radiograph.Source.CLI)


def test_import_keeps_the_original_only(dicom_bytes):
    data = dicom_bytes(rows=300, columns=200, bits_stored=12)
    outcome = ingest(data)
    assert outcome.status == "imported", outcome.reason
    radiograph = Radiograph.objects.get(id=outcome.radiograph_id)
    assert (radiograph.rows, radiograph.columns, radiograph.bits_stored) == (300, 200, 12)
    assert radiograph.modality == "CR" and radiograph.view_position == "AP"
    assert radiograph.pixel_spacing_row == pytest.approx(0.15)
    with radiograph.original.open("rb") as handle:
        stored = pydicom.dcmread(handle)
    # The stored copy is the de-identified one: the same pixels, header and UIDs pseudonymised.
    received = pydicom.dcmread(io.BytesIO(data))
    assert stored.PixelData == received.PixelData and stored.Rows == 300
    assert stored.SOPInstanceUID == radiograph.sop_instance_uid == uid_pseudonym(received.SOPInstanceUID)
    assert stored.SOPInstanceUID != received.SOPInstanceUID and stored.PatientID != received.PatientID
    # No array file: the pixels are decoded from the stored original (annotate.archive.pixels).
    assert radiograph.pixels.name == ""
    pixels = radiograph_pixels(radiograph)
    assert pixels.dtype == np.uint16 and pixels.shape == (300, 200)
    # No preview either: it is rendered on first view (tests/annotate/test_previews.py).
    assert stored_files() == {radiograph.original.name}
    assert radiograph.preview.name.startswith("previews/")


def test_same_instance_twice_changes_nothing(dicom_bytes):
    data = dicom_bytes()
    first = ingest(data)
    files = stored_files()
    second = ingest(data, "copy.dcm")
    assert second.status == "present"
    assert second.radiograph_id == first.radiograph_id
    assert Radiograph.objects.count() == 1
    assert stored_files() == files


def test_same_sop_instance_in_other_bytes_is_already_present(dicom_bytes):
    first = ingest(dicom_bytes(seed=1))
    # Same UIDs, different pixel values: the same instance re-sent.
    other = dicom_bytes(seed=1, pixels=np.zeros((256, 240), np.uint16))
    outcome = ingest(other)
    assert outcome.status == "present" and outcome.radiograph_id == first.radiograph_id
    assert Radiograph.objects.count() == 1


def test_studies_of_one_patient_are_linked_by_keyed_hash(dicom_bytes, settings):
    ingest(dicom_bytes(patient_id="MRN1", accession="ACC1", seed=1))
    ingest(dicom_bytes(patient_id="MRN1", accession="ACC2", seed=2))
    ingest(dicom_bytes(patient_id="MRN2", accession="ACC3", seed=3))
    assert Patient.objects.count() == 2
    assert Study.objects.count() == 3
    linked = Patient.objects.get(pseudo_id=services.pseudonym("MRN1", purpose="patient"))
    assert linked.studies.count() == 2
    # The hash depends on the key: without the key nobody can recompute it.
    settings.PSEUDONYM_KEY = "another-key"
    assert services.pseudonym("MRN1", purpose="patient") != linked.pseudo_id


@pytest.mark.parametrize(
    "overrides, reason",
    [
        ({"photometric": "RGB"}, "colour"),
        ({"NumberOfFrames": 2}, "multi-frame"),
    ],
)
def test_rejects_non_grayscale_single_frame(dicom_bytes, overrides, reason):
    if overrides.get("photometric") == "RGB":
        rgb = np.zeros((64, 64, 3), np.uint8).tobytes()
        data = dicom_bytes(rows=64, columns=64, photometric="RGB", SamplesPerPixel=3, BitsAllocated=8,
                           BitsStored=8, HighBit=7, PlanarConfiguration=0)  # fmt: skip
        data = data[: -(64 * 64 * 2)] + rgb[: 64 * 64 * 2]
    else:
        data = dicom_bytes(**overrides)
    outcome = ingest(data)
    assert outcome.status == "rejected"
    assert reason in outcome.reason
    assert Radiograph.objects.count() == 0 and stored_files() == set()


def test_rejects_non_dicom_and_truncated(dicom_bytes):
    assert ingest(b"hello, not a radiograph").status == "rejected"
    assert ingest(b"").status == "rejected"
    data = dicom_bytes()
    truncated = ingest(data[: len(data) - 5000])
    assert truncated.status == "rejected"
    assert "truncated" in truncated.reason or "pixel" in truncated.reason
    assert Radiograph.objects.count() == 0 and stored_files() == set()


def test_rejects_oversized_file(dicom_bytes, settings):
    settings.MAX_DICOM_BYTES = 1000
    outcome = ingest(dicom_bytes())
    assert outcome.status == "rejected" and "too large" in outcome.reason


def test_failure_part_way_leaves_no_file_and_no_row(dicom_bytes, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(Radiograph.objects, "create", fail)
    with pytest.raises(RuntimeError):
        ingest(dicom_bytes())
    assert stored_files() == set()
    assert Radiograph.objects.count() == 0 and Study.objects.count() == 0 and Patient.objects.count() == 0


def test_zip_entries_escaping_the_folder_are_rejected(dicom_bytes, tmp_path):
    archive = tmp_path / "upload.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("good/1.dcm", dicom_bytes(seed=1))
        zf.writestr("../evil.dcm", dicom_bytes(seed=2))
        zf.writestr("/etc/evil.dcm", dicom_bytes(seed=3))
        zf.writestr("notes.txt", b"just text")
    outcomes = {o.name: o for o in services.ingest_sources(paths=[archive], source="cli", relative_to=tmp_path)}
    assert outcomes["upload.zip/good/1.dcm"].status == "imported"
    assert "escapes the target folder" in outcomes["upload.zip/../evil.dcm"].reason
    assert "escapes the target folder" in outcomes["upload.zip//etc/evil.dcm"].reason
    assert outcomes["upload.zip/notes.txt"].status == "rejected"
    assert Radiograph.objects.count() == 1
    assert not (tmp_path.parent / "evil.dcm").exists()


def test_zip_bomb_is_refused_before_unpacking(tmp_path, settings):
    settings.MAX_ZIP_EXPANDED_BYTES = 10 * 1024**2
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.dcm", b"\0" * (20 * 1024**2))
    outcomes = list(services.ingest_sources(paths=[archive], source="cli"))
    assert len(outcomes) == 1 and outcomes[0].status == "rejected"
    assert "expands to" in outcomes[0].reason


def test_folders_are_walked_recursively(dicom_bytes, tmp_path):
    # Not tmp_path itself: the data folder (and the originals stored as the walk goes) is in it.
    (tmp_path / "in" / "a" / "b").mkdir(parents=True)
    (tmp_path / "in" / "a" / "1.dcm").write_bytes(dicom_bytes(seed=1))
    (tmp_path / "in" / "a" / "b" / "2.dcm").write_bytes(dicom_bytes(seed=2))
    outcomes = list(services.ingest_sources(paths=[tmp_path / "in"], source="cli"))
    assert [o.status for o in outcomes] == ["imported", "imported"]


def test_two_copies_in_one_batch_import_once(dicom_bytes, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    data = dicom_bytes(seed=7)
    (folder / "a.dcm").write_bytes(data)
    (folder / "b.dcm").write_bytes(data)
    outcomes = list(services.ingest_sources(paths=[folder], source="cli"))
    assert [o.status for o in outcomes] == ["imported", "present"]
    assert outcomes[0].radiograph_id == outcomes[1].radiograph_id
    assert Radiograph.objects.count() == 1


def test_files_left_by_a_crash_are_adopted_by_the_next_import(dicom_bytes, monkeypatch):
    data = dicom_bytes(seed=8)
    with monkeypatch.context() as patch:
        patch.setattr(Radiograph.objects, "create", lambda **kw: (_ for _ in ()).throw(KeyboardInterrupt()))
        with pytest.raises(KeyboardInterrupt):
            ingest(data)
    assert stored_files() == set()  # even an interrupt removes what it wrote
    # Simulate a kill -9 between writing the files and the row: files, no row.
    from annotate.archive import ingest as ingest_module

    prepared = ingest_module._settle(ingest_module._prepare(data))
    assert len(stored_files()) == 1 and Radiograph.objects.count() == 0
    outcome = ingest(data)
    assert outcome.status == "imported"
    radiograph = Radiograph.objects.get()
    assert stored_files() == {radiograph.original.name}
    assert radiograph.sha256 == prepared.sha256


def test_a_failure_mid_batch_leaves_no_file_without_its_row(dicom_bytes, tmp_path, monkeypatch):
    from annotate.archive import ingest as ingest_module

    folder = tmp_path / "in"
    folder.mkdir()
    for seed in range(6):
        (folder / f"{seed}.dcm").write_bytes(dicom_bytes(seed=seed))
    real_commit = ingest_module._commit
    calls = []

    def commit_then_fail(prepared, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("database went away")
        return real_commit(prepared, **kwargs)

    monkeypatch.setattr(ingest_module, "_commit", commit_then_fail)
    with pytest.raises(RuntimeError):
        list(services.ingest_sources(paths=[folder], source="cli"))
    kept = {r.original.name for r in Radiograph.objects.all()}
    assert Radiograph.objects.count() == 2
    assert {f for f in stored_files() if not f.endswith(".tmp")} == kept


def test_a_copy_whose_files_a_refused_twin_gave_up_is_still_answered() -> None:
    """Two copies of one file in a batch, behind a file with the same instance UID: the first copy
    stores its files and is refused (same SOP Instance UID, different file), which removes them;
    the second copy, prepared while they existed, is answered too, not failed on a missing file."""
    from annotate.archive import ingest
    from devtools.dicom import make_dicom

    first = make_dicom(seed=7)
    twin = make_dicom(seed=7, pixels=np.full((256, 240), 9, dtype=np.uint16))  # the same instance UID
    assert services.radiograph_ingest(data=first, name="1", source="cli").status == "imported"
    copy_a = ingest._settle(ingest._prepare(twin))
    copy_b = ingest._settle(ingest._prepare(twin))
    assert copy_b.image is None  # its files were all there when it was prepared
    assert ingest._commit(copy_a, name="2", source="cli", user=None, job=None).status == "present"
    assert not default_storage.exists(copy_a.names["original"])  # given up by the refused copy
    outcome = ingest._commit(copy_b, name="3", source="cli", user=None, job=None)
    assert outcome.status == "present" and outcome.reason == "same SOP Instance UID, different file"
    assert not default_storage.exists(copy_b.names["original"])
