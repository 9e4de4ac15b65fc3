"""A real PACS pushes to our C-STORE listener: Orthanc (tests/pacs.py) sends phantom
radiographs by C-STORE (``POST /modalities/{name}/store``) to ``DicomListener``
(annotate/archive/dicomnet.py) running in this process on a free port; they are stored
through the ingest, pseudonymised, and a second push changes nothing.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pydicom
import pytest

from annotate.archive.dicomnet import DicomListener
from annotate.archive.ingest import pseudonym
from annotate.archive.pseudonyms import uid_pseudonym
from annotate.models import Patient, Radiograph
from devtools.dicom import make_dicom
from tests.pacs import OrthancError
from tests.support import as_ct

pytestmark = [pytest.mark.pacs, pytest.mark.django_db(transaction=True)]

AE_TITLE = "HIPSTUDY"


@pytest.fixture
def listener(transactional_db: Any, tmp_path: Any) -> Iterator[DicomListener]:
    """Our listener, in this process, on a port the OS picks; its drain threads write to the
    test database, hence a transactional test."""
    server = DicomListener(ae_title=AE_TITLE, host="127.0.0.1", port=0, spool_dir=tmp_path / "spool")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def sop_uid(data: bytes) -> str:
    """The pseudonymous SOP Instance UID the platform gives this file (rows, outcomes, logs)."""
    return uid_pseudonym(str(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).SOPInstanceUID))


def test_orthanc_pushes_a_study_by_c_store(orthanc, listener):
    files = [
        make_dicom(patient_id="MRN-PUSH-1", accession="ACC-PUSH-1", seed=1, BodyPartExamined="HIP"),
        make_dicom(patient_id="MRN-PUSH-1", accession="ACC-PUSH-1", seed=2, BodyPartExamined="HIP"),
        make_dicom(patient_id="MRN-PUSH-2", accession="ACC-PUSH-2", seed=3, Modality="DX", BodyPartExamined="PELVIS"),
    ]
    ids = [orthanc.upload(data) for data in files]
    orthanc.add_modality("hipstudy", AE_TITLE, "127.0.0.1", listener.port)
    orthanc.echo("hipstudy")  # C-ECHO answered

    orthanc.store_to("hipstudy", ids)
    assert listener.wait_idle(timeout=60)

    stored = Radiograph.objects.all()
    assert {r.sop_instance_uid for r in stored} == {sop_uid(data) for data in files}
    assert {r.source for r in stored} == {Radiograph.Source.DICOM_STORE}
    assert set(Patient.objects.values_list("pseudo_id", flat=True)) == {
        pseudonym("MRN-PUSH-1", purpose="patient"),
        pseudonym("MRN-PUSH-2", purpose="patient"),
    }

    # The PACS sends the study again (a retry, a re-route): stored once.
    orthanc.store_to("hipstudy", ids)
    assert listener.wait_idle(timeout=60)
    assert Radiograph.objects.count() == 3


def test_a_ct_pushed_by_orthanc_is_refused_and_the_radiograph_stored(orthanc, listener):
    radiograph = make_dicom(patient_id="MRN-PUSH-3", accession="ACC-PUSH-3", seed=4, BodyPartExamined="PELVIS")
    ct = as_ct(make_dicom(patient_id="MRN-PUSH-3", accession="ACC-PUSH-4", seed=5, BodyPartExamined="PELVIS"))
    orthanc.add_modality("hipstudy", AE_TITLE, "127.0.0.1", listener.port)
    ct_id = orthanc.upload(ct)

    with pytest.raises(OrthancError) as refused:
        orthanc.store_to("hipstudy", [ct_id])  # the listener answers 0x0122: Orthanc's job fails
    assert "DIMSE status 0x0122" in str(refused.value)  # SOP class not supported, from our listener
    orthanc.store_to("hipstudy", [orthanc.upload(radiograph)])
    assert listener.wait_idle(timeout=60)

    assert list(Radiograph.objects.values_list("sop_instance_uid", flat=True)) == [sop_uid(radiograph)]
