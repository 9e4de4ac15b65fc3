"""De-identification at ingest: keyed stable UIDs, dates kept or shifted per patient, private
tags gone, what the science needs kept; files without world access; orphans and old rejects."""

from __future__ import annotations

import datetime
import io
import os
import stat
import time
import uuid
from pathlib import Path

import pydicom
import pytest
from django.core.files.storage import default_storage

from annotate import services
from annotate.archive import cleanup
from annotate.archive.deidentify import Policy, date_shift_days, deidentify, pseudonymous_uid
from annotate.archive.pseudonyms import pacs_link_open
from annotate.models import Radiograph
from devtools.dicom import make_dicom
from tests.annotate.factories import ImportJobFactory


def dataset(**overrides: object) -> pydicom.Dataset:
    ds = pydicom.dcmread(io.BytesIO(make_dicom(seed=3, **overrides)))
    ds.StudyDate, ds.ViewPosition, ds.ImageLaterality, ds.Manufacturer = "20240315", "AP", "L", "ACME"
    ds.ManufacturerModelName = "DR-9000"
    ds.add_new(0x00091001, "LO", "PRIVATE NOTE")
    return ds


def test_uids_are_keyed_and_stable() -> None:
    uid = "1.2.840.113619.2.55.3.1234"
    assert pseudonymous_uid(uid, b"k1") == pseudonymous_uid(uid, b"k1")  # across runs: a pure function
    assert pseudonymous_uid(uid, b"k1") != pseudonymous_uid(uid, b"k2")  # keyed
    assert pydicom.uid.UID(pseudonymous_uid(uid, b"k1")).is_valid
    first, second = dataset(), dataset()
    deidentify(first, Policy(key=b"k1"))
    deidentify(second, Policy(key=b"k1"))
    assert first.SOPInstanceUID == second.SOPInstanceUID == first.file_meta.MediaStorageSOPInstanceUID
    assert first.SOPClassUID == "1.2.840.10008.5.1.4.1.1.1"  # class UIDs name a kind, not a patient


def test_profile_keeps_what_the_science_needs_and_removes_the_rest() -> None:
    ds = dataset()
    identity = deidentify(ds, Policy(key=b"k"))
    assert identity.patient_id == "MRN0012345" and ds.PatientID != "MRN0012345"
    assert str(ds.PatientName) != "TESTPERSON^VERYSPECIFIC" and ds.AccessionNumber != "ACC99887766"
    assert not any(element.tag.is_private for element in ds.iterall())
    assert ds.PatientBirthDate == "" and ds.PatientAge == "083Y"  # born 1941-02-03, seen 2024-03-15
    assert (ds.PatientSex, ds.Modality, ds.ViewPosition, ds.ImageLaterality) == ("F", "CR", "AP", "L")
    assert (ds.Manufacturer, ds.ManufacturerModelName, ds.Rows, ds.StudyDate) == ("ACME", "DR-9000", 256, "20240315")
    assert ds.LongitudinalTemporalInformationModified == "UNMODIFIED" and "dicognito" in ds.DeidentificationMethod[0]


def test_dates_shift_by_a_keyed_number_of_days_per_patient() -> None:
    ds = dataset()
    deidentify(ds, Policy(key=b"k", shift_dates=True))
    days = date_shift_days("MRN0012345", b"k")
    assert -730 <= days <= -62 and days != date_shift_days("MRN0099999", b"k")
    assert ds.StudyDate == (datetime.date(2024, 3, 15) + datetime.timedelta(days=days)).strftime("%Y%m%d")
    assert ds.LongitudinalTemporalInformationModified == "MODIFIED"


@pytest.mark.django_db
def test_stored_files_are_deidentified_and_not_world_readable(settings, dicom_bytes) -> None:
    settings.DICOM_DATE_SHIFT = "shift"
    data = dicom_bytes(seed=9)
    outcome = services.radiograph_ingest(data=data, name="x.dcm", source=Radiograph.Source.CLI)
    radiograph = Radiograph.objects.get(id=outcome.radiograph_id)
    received = pydicom.dcmread(io.BytesIO(data))
    assert pacs_link_open(radiograph.pacs_link)["sop_instance_uid"] == received.SOPInstanceUID
    assert received.SOPInstanceUID not in radiograph.pacs_link  # encrypted, not in clear
    root = Path(default_storage.location)
    for path in [root, *root.rglob("*")]:
        assert stat.S_IMODE(path.stat().st_mode) & 0o007 == 0, path
    # The same file again: the same de-identified bytes, found present.
    again = services.radiograph_ingest(data=data, name="y.dcm", source=Radiograph.Source.CLI)
    assert again.status == "present" and again.radiograph_id == radiograph.id


@pytest.mark.django_db
def test_orphans_are_removed_waiting_jobs_adopted_old_rejects_purged(settings, researcher_user) -> None:
    incoming = services.incoming_dir()
    waiting, done, orphan, fresh = (incoming / uuid.uuid4().hex for _ in range(4))
    for folder in (waiting, done, orphan, fresh):
        folder.mkdir(parents=True)
        (folder / "upload").write_bytes(b"identifying bytes")
    ImportJobFactory(created_by=researcher_user, source="upload", folder=waiting.name)
    ImportJobFactory(created_by=researcher_user, source="upload", folder=done.name, status="done")
    old = time.time() - 2 * settings.UPLOAD_ORPHAN_SECONDS
    for path in (waiting, done, orphan):
        os.utime(path, (old, old))
    counts = cleanup.upload_orphans_remove()
    assert counts == {"adopted": 1, "removed": 2, "temporary_removed": 0}
    assert waiting.exists() and fresh.exists() and not done.exists() and not orphan.exists()

    rejected = Path(settings.DATA_DIR) / "spool" / "rejected"
    rejected.mkdir(parents=True)
    (rejected / "old.dcm").write_bytes(b"x")
    (rejected / "new.dcm").write_bytes(b"x")
    stale = time.time() - (settings.REJECTED_RETENTION_DAYS + 1) * 86400
    os.utime(rejected / "old.dcm", (stale, stale))
    assert cleanup.rejected_purge(rejected) == 1 and [p.name for p in rejected.iterdir()] == ["new.dcm"]


@pytest.fixture
def researcher_user(users):
    return users["researcher"]
