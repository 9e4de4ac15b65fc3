"""Shared fixtures: one named user per role, and DICOM files built in memory.

Who may see what (the rules the role tests hold the pages to):
- alice, researcher: imports data and sees every radiograph.
- adam, adjudicator: sees every radiograph, imports nothing.
- lena, labeler: sees only the work assigned to her, never the archive.
- rita, reader: sees only her reader studies, never radiographs or ground truth.
- nora: logged in with no role; sees her home page and nothing else.
- sam, staff: everything, and the admin.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from django.contrib.auth.models import Group
from django.test import Client
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from tests.factories import UserFactory

pytest_plugins = ["tests.celery_worker", "tests.pacs"]

ROLE_USERS = {
    "researcher": ("alice", ["researcher"], False),
    "adjudicator": ("adam", ["adjudicator"], False),
    "labeler": ("lena", ["labeler"], False),
    "reader": ("rita", ["reader"], False),
    "norole": ("nora", [], False),
    "staff": ("sam", [], True),
}


@pytest.fixture(autouse=True)
def data_dir(settings: Any, tmp_path: Any) -> Any:
    """Each test gets an empty data folder (stored files, uploads)."""
    settings.DATA_DIR = tmp_path / "data"
    settings.MEDIA_ROOT = str(tmp_path / "data" / "media")
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "data" / "tmp" / "uploads")
    os.makedirs(settings.FILE_UPLOAD_TEMP_DIR, mode=0o700)
    return settings.DATA_DIR


@pytest.fixture
def users(db: Any) -> dict[str, Any]:
    result = {}
    for key, (username, roles, staff) in ROLE_USERS.items():
        user = UserFactory(username=username, is_staff=staff)
        user.groups.set([Group.objects.get_or_create(name=role)[0] for role in roles])
        result[key] = user
    return result


@pytest.fixture
def client_as(users: dict[str, Any]) -> Callable[[str | None], Client]:
    def make(role: str | None) -> Client:
        client = Client()
        if role is not None:
            client.force_login(users[role])
        return client

    return make


CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"


def make_dicom(
    *,
    rows: int = 256,
    columns: int = 240,
    bits_stored: int = 12,
    photometric: str = "MONOCHROME2",
    patient_id: str = "MRN0012345",
    patient_name: str = "TESTPERSON^VERYSPECIFIC",
    accession: str = "ACC99887766",
    seed: int = 0,
    pixels: np.ndarray | None = None,
    **overrides: Any,
) -> bytes:
    """A small, valid single-frame grayscale CR image as DICOM bytes."""
    rng = np.random.default_rng(seed)
    if pixels is None:
        pixels = rng.integers(0, 2**bits_stored, size=(rows, columns), dtype=np.uint16)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = CR_IMAGE_STORAGE
    sop_uid = generate_uid(entropy_srcs=[f"sop-{seed}-{patient_id}-{accession}"])
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.SOPClassUID = CR_IMAGE_STORAGE
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[f"study-{patient_id}-{accession}"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[f"series-{patient_id}-{accession}"])
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19410203"
    ds.PatientSex = "F"
    ds.AccessionNumber = accession
    ds.StudyDate = "20190315"
    ds.Modality = "CR"
    ds.ViewPosition = "AP"
    ds.Manufacturer = "Testvendor"
    ds.InstitutionName = "Saint Specific Hospital"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    ds.PixelSpacing = [0.15, 0.15]
    ds.WindowCenter = 2**bits_stored // 2
    ds.WindowWidth = 2**bits_stored
    for key, value in overrides.items():
        setattr(ds, key, value)
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@pytest.fixture
def dicom_bytes() -> Callable[..., bytes]:
    return make_dicom
