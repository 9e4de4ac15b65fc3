"""Plain helpers shared by the annotate tests and the tests at the top of tests/ (fixtures are in
the conftest.py files): one patient's identifying DICOM files, pydicom's own test files and what
the site makes of each, and labels submitted as a labeller would."""

from __future__ import annotations

import io
import pathlib
from typing import Any

import pydicom
from django.contrib.auth.models import Group

from annotate.labelling import services as labelling
from annotate.labels import Assignment
from devtools.dicom import make_dicom
from tests.accounts.factories import UserFactory

# Files shipped inside the pydicom wheel (get_testdata_file would try to download).
TEST_FILES = pathlib.Path(pydicom.__file__).parent / "data" / "test_files"

# Every .dcm file in TEST_FILES, classified by reading its header: None = must decode,
# otherwise a substring of the rejection reason.
EXPECTED: dict[str, str | None] = {
    "693_J2KI.dcm": None,  # CT, JPEG 2000, 14-bit signed
    "CT_small.dcm": None,  # CT, explicit LE, rescale intercept -1024
    "ExplVR_BigEnd.dcm": "colour image (RGB)",  # US RGB, big endian
    "ExplVR_BigEndNoMeta.dcm": "RT Ion Plan object",  # no file meta, big endian
    "ExplVR_LitEndNoMeta.dcm": "RT Ion Plan object",  # no file meta, little endian
    "GDCMJ2K_TextGBR.dcm": "colour image (YBR_RCT)",
    "J2K_pixelrep_mismatch.dcm": None,  # J2K unsigned codestream, signed dataset
    "JPEG-lossy.dcm": "cannot decode pixel data (JPEG Extended",  # known-broken SOS; JPGExtended.dcm is the fixed copy
    # Its corrupted codestream declares a 3722445056 x 1024 image: refused before the decoder allocates it.
    "JPEG2000-embedded-sequence-delimiter.dcm": "the compressed pixel data is 3722445056x1024",
    "JPEG2000.dcm": None,
    "JPEGLSNearLossless_08.dcm": None,  # 45x10, no study UID: gets a study of its own
    "JPEGLSNearLossless_16.dcm": None,
    "JPGExtended.dcm": None,  # 12-bit JPEG extended
    "MR_small.dcm": None,
    "MR_small_RLE.dcm": None,
    "MR_small_bigendian.dcm": None,
    "MR_small_expb.dcm": None,
    "MR_small_implicit.dcm": None,
    "MR_small_jp2klossless.dcm": None,
    "MR_small_jpeg_ls_lossless.dcm": None,
    "MR_small_padded.dcm": None,
    "MR_truncated.dcm": "truncated pixel data",
    "SC_jpeg_no_color_transform.dcm": "colour image (RGB)",
    "SC_jpeg_no_color_transform_2.dcm": "colour image (RGB)",
    "SC_rgb_dcmtk_+eb+cr.dcm": "colour image (RGB)",
    "SC_rgb_dcmtk_+eb+cy+n1.dcm": "colour image (YBR_FULL)",
    "SC_rgb_dcmtk_+eb+cy+n2.dcm": "colour image (YBR_FULL)",
    "SC_rgb_dcmtk_+eb+cy+np.dcm": "colour image (YBR_FULL_422)",
    "SC_rgb_dcmtk_+eb+cy+s2.dcm": "colour image (YBR_FULL_422)",
    "SC_rgb_dcmtk_+eb+cy+s4.dcm": "colour image (YBR_FULL)",
    "SC_rgb_gdcm_KY.dcm": "colour image (RGB)",
    "SC_rgb_jls_lossy_line.dcm": "colour image (RGB)",
    "SC_rgb_jls_lossy_sample.dcm": "colour image (RGB)",
    "SC_rgb_jpeg.dcm": "colour image (RGB)",
    "SC_rgb_jpeg_app14_dcmd.dcm": "colour image (RGB)",
    "SC_rgb_jpeg_dcmd.dcm": "colour image (RGB)",
    "SC_rgb_jpeg_dcmtk.dcm": "colour image (YBR_FULL)",
    "SC_rgb_jpeg_gdcm.dcm": "colour image (RGB)",
    "SC_rgb_jpeg_lossy_gdcm.dcm": "colour image (YBR_FULL)",
    "SC_rgb_rle.dcm": "colour image (RGB)",
    "SC_rgb_rle_16bit.dcm": "colour image (RGB)",
    "SC_rgb_rle_16bit_2frame.dcm": "colour image (RGB)",
    "SC_rgb_rle_2frame.dcm": "colour image (RGB)",
    "SC_rgb_rle_32bit.dcm": "colour image (RGB)",
    "SC_rgb_rle_32bit_2frame.dcm": "colour image (RGB)",
    "SC_rgb_small_odd.dcm": "colour image (RGB)",
    "SC_rgb_small_odd_big_endian.dcm": "colour image (RGB)",
    "SC_rgb_small_odd_jpeg.dcm": "colour image (YBR_FULL)",
    "SC_ybr_full_422_uncompressed.dcm": "colour image (YBR_FULL_422)",
    "UN_sequence.dcm": "no pixel data",
    "badVR.dcm": "RT Dose object",  # also has NumberOfFrames '1A'
    "empty_charset_LEI.dcm": "no pixel data",
    "examples_jpeg2k.dcm": "colour image (YBR_RCT)",
    "examples_overlay.dcm": None,  # MR with overlay, multi-valued window
    "examples_palette.dcm": "palette colour image",
    "examples_rgb_color.dcm": "colour image (RGB)",
    "examples_ybr_color.dcm": "colour image (YBR_FULL_422)",  # and 30 frames
    "image_dfl.dcm": None,  # deflated explicit VR LE, 8-bit
    "liver_1frame.dcm": "segmentation object",  # SEG, 1-bit: not a radiograph
    "liver_expb_1frame.dcm": "segmentation object",
    "meta_missing_tsyntax.dcm": "missing SOPInstanceUID",  # bare pixel data, no identity
    "nested_priv_SQ.dcm": "missing SOPInstanceUID",
    "no_meta.dcm": "not a DICOM file",  # starts with a stray byte; unparseable
    "no_meta_group_length.dcm": "no pixel data",
    "priv_SQ.dcm": "no pixel data",
    "reportsi.dcm": "structured report",
    "reportsi_with_empty_number_tags.dcm": "structured report",
    "rtdose.dcm": "RT Dose object",  # 15 frames
    "rtdose_1frame.dcm": "RT Dose object, not a radiograph",
    "rtdose_expb.dcm": "RT Dose object",
    "rtdose_expb_1frame.dcm": "RT Dose object",
    "rtdose_rle.dcm": "RT Dose object",
    "rtdose_rle_1frame.dcm": "RT Dose object",
    "rtplan.dcm": "RT Plan object",
    "rtplan_truncated.dcm": "RT Plan object",
    "rtstruct.dcm": "RT Structure Set object",  # no preamble, read with force
    "test-SR.dcm": "structured report, not an image",
    "waveform_ecg.dcm": "waveform (12-lead ECG",
}

IDENTIFIERS = {
    "PatientName": "ZYXWVUTS^QWERTYPO",
    "PatientID": "MRN4242XQ",
    "AccessionNumber": "ACC9876ZZ",
    "InstitutionName": "GRIMSBYMOOR INFIRMARY",
    "ReferringPhysicianName": "PLONKINGTON^HORATIA",
    "PerformingPhysicianName": "FROBISHERWICK^ALGERNON",
    "PatientAddress": "12 ZORBLAX LANE",
    "OtherPatientIDs": "OTHERID5551",
}
PRIVATE_VALUE = "PRIVATESECRET77"


def identifying_dicom(seed: int, **overrides: Any) -> bytes:
    """A radiograph of the one patient, every identifier filled in, a private tag too."""
    data = make_dicom(
        seed=seed,
        patient_id=IDENTIFIERS["PatientID"],
        patient_name=IDENTIFIERS["PatientName"],
        accession=IDENTIFIERS["AccessionNumber"],
        **overrides,
    )
    ds = pydicom.dcmread(io.BytesIO(data))
    for keyword, value in IDENTIFIERS.items():
        setattr(ds, keyword, value)
    ds.StudyDescription = f"HIP AP {IDENTIFIERS['PatientName']}"
    block = ds.private_block(0x0011, "HOSPITAL PRIVATE", create=True)
    block.add_new(0x01, "LO", PRIVATE_VALUE)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def uids_of(data: bytes) -> list[str]:
    ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    return [str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)]


def labeller(username: str) -> Any:
    """A user of the labeler group."""
    user = UserFactory(username=username)
    user.groups.add(Group.objects.get_or_create(name="labeler")[0])  # whatever a flush before left
    return user


def submit(user: Any, radiograph: Any, hips: list[Any], excluded: str = "") -> None:
    """``user`` takes the radiograph's first open slot and submits ``hips``."""
    assignment = Assignment.objects.filter(radiograph=radiograph, labeler__isnull=True).order_by("slot").first()
    assignment.labeler, assignment.status = user, Assignment.Status.IN_PROGRESS
    assignment.save()
    labelling.assignment_submit(assignment_id=assignment.id, user=user, hips=hips, excluded=excluded)
