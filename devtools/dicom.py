"""DICOM files built in memory for tests and benchmarks: a small, valid single-frame grayscale
CR image (dciodvfy finds no error in it) with identifying attributes (name, ID, accession, birth
date, institution) that the site must strip. No Django."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

CR_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.1")


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
    ds.StudyTime = "101500"
    ds.StudyID = "1"
    ds.ReferringPhysicianName = ""
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.BodyPartExamined = "PELVIS"
    ds.PatientOrientation = ["L", "F"]
    ds.ImageLaterality = "B"
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
