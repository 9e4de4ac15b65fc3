"""The reading as a DICOM Comprehensive SR (highdicom), TID 1500 "Measurement Report": one TID 1410
planar-ROI group per hip (its box as an image-region SCOORD on the original image, the six class
probabilities, P(fracture), the top-2 classes, the CT/MRI flag, the model and its protocol).
Class codes: local scheme ``99HIPSTUDY`` (no standard code names these classes)."""

from __future__ import annotations

from typing import Any

import highdicom as hd
import numpy as np
from pydicom import Dataset
from pydicom.sequence import Sequence
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.valuerep import DA, TM

from ml.core.vocab import CLASS_NAMES, CLASSES
from triage.results.reading import DISCLAIMER, Reading

SCHEME = "99HIPSTUDY"  # the local coding scheme designator (PS3.16 8.2: "99" prefix)
MANUFACTURER = "Hip fracture study platform (research)"
SR_SERIES_NUMBER = 9901
SR_SERIES_DESCRIPTION = "AI hip reading (research, not for diagnostic use)"

UNITLESS = Code("1", "UCUM", "no units")
PROCEDURE = Code("363680008", "SCT", "Radiographic imaging procedure")
HIP = Code("24136001", "SCT", "Hip joint structure")
LATERALITY = {"right": Code("24028007", "SCT", "Right"), "left": Code("7771000", "SCT", "Left")}
YES, NO = Code("373066001", "SCT", "Yes"), Code("373067005", "SCT", "No")
QUALITATIVE = Code("C0034375", "UMLS", "Qualitative Evaluations")
COMMENT = Code("121106", "DCM", "Comment")
FINDING = Code("HIPREAD", SCHEME, "Hip read by the model")
P_FRACTURE = Code("PFX", SCHEME, "Probability of an acute hip fracture")
TOP = (Code("TOP1", SCHEME, "Most probable class"), Code("TOP2", SCHEME, "Second most probable class"))
CT_MRI = Code("CTMRI", SCHEME, "CT or MRI suggested (possible occult nondisplaced neck fracture)")


def class_code(key: str) -> Code:
    """C1..C6: the classes in ``CLASSES`` order (short code values, SH, that every PACS keeps)."""
    return Code(f"C{CLASSES.index(key) + 1}", SCHEME, CLASS_NAMES[key])


def probability_code(key: str) -> Code:
    """P1..P6: the probability of each class, in ``CLASSES`` order."""
    return Code(f"P{CLASSES.index(key) + 1}", SCHEME, f"Probability: {CLASS_NAMES[key]}")


def evidence(reading: Reading) -> Dataset:
    """The original image as the SR's evidence: its UIDs only (the platform keeps no identifier,
    so the patient and study attributes are present and empty)."""
    ds = Dataset()
    ds.StudyInstanceUID = reading.original.study_instance_uid
    ds.SeriesInstanceUID = reading.original.series_instance_uid
    ds.SOPInstanceUID = reading.original.sop_instance_uid
    ds.SOPClassUID = reading.original.sop_class_uid
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber"):
        setattr(ds, keyword, "")
    for keyword in ("StudyID", "StudyDate", "StudyTime", "ReferringPhysicianName"):
        setattr(ds, keyword, "")
    return ds


def algorithm(reading: Reading) -> hd.sr.AlgorithmIdentification:
    protocol = reading.protocol
    return hd.sr.AlgorithmIdentification(
        name=f"hipstudy hip classifier {reading.version.config_name}",
        version=f"model version {reading.version.pk}",
        parameters=[
            f"bundle_sha256={reading.version.bundle_sha256}",
            f"test_time={protocol['test_time']}",
            f"test_time_zooms={','.join(str(z) for z in protocol['test_time_zooms'])}",
        ],
    )


def hip_group(reading: Reading, hip: Any) -> hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations:
    x, y, w, h = (float(v) for v in hip.box)
    region = hd.sr.ImageRegion(
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
        graphic_data=np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h], [x, y]], dtype=float),
        source_image=hd.sr.SourceImageForRegion(
            referenced_sop_class_uid=reading.original.sop_class_uid,
            referenced_sop_instance_uid=reading.original.sop_instance_uid,
        ),
    )
    site = [hd.sr.FindingSite(anatomic_location=HIP, laterality=LATERALITY[hip.side])] if hip.side in LATERALITY else []
    measurements = [
        hd.sr.Measurement(name=probability_code(key), value=float(p), unit=UNITLESS, finding_sites=site)
        for key, p in zip(CLASSES, hip.probabilities, strict=True)
    ]
    measurements.append(
        hd.sr.Measurement(name=P_FRACTURE, value=float(hip.fracture_probability), unit=UNITLESS, finding_sites=site)
    )
    evaluations = [
        hd.sr.QualitativeEvaluation(name=TOP[rank], value=class_code(key)) for rank, key in enumerate(hip.top2[:2])
    ]
    evaluations.append(hd.sr.QualitativeEvaluation(name=CT_MRI, value=YES if reading.flags.get(hip.side) else NO))
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=reading.uid(f"tracking-{hip.side}"), identifier=f"{hip.side} hip"
        ),
        referenced_region=region,
        finding_type=FINDING,
        finding_sites=site,
        algorithm_id=algorithm(reading),
        measurements=measurements,
        qualitative_evaluations=evaluations,
    )


def disclaimer() -> hd.sr.ContainerContentItem:
    """TID 1500's "Qualitative Evaluations" container holding the research-use statement."""
    container = hd.sr.ContainerContentItem(name=QUALITATIVE, relationship_type="CONTAINS")
    text = hd.sr.TextContentItem(name=COMMENT, value=DISCLAIMER, relationship_type="CONTAINS")
    container.ContentSequence = Sequence([text])
    return container


def build_sr(reading: Reading) -> hd.sr.ComprehensiveSR:
    """The SR of ``reading``, in the original study, with deterministic UIDs."""
    context = hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device,
            observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                uid=reading.uid("device"), name="hipstudy", manufacturer_name=MANUFACTURER,
                model_name=f"model version {reading.version.pk}",
            ),
        ),
    )  # fmt: skip
    report = hd.sr.MeasurementReport(
        observation_context=context,
        procedure_reported=PROCEDURE,
        imaging_measurements=[hip_group(reading, hip) for hip in reading.hips],
    )
    report[0].ContentSequence.append(disclaimer())
    sr = hd.sr.ComprehensiveSR(
        evidence=[evidence(reading)],
        content=report[0],
        series_instance_uid=reading.uid("sr-series"),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=reading.uid("sr"),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        is_final=False,
        institution_name=None,
        series_description=SR_SERIES_DESCRIPTION,
    )
    sr.ContentDate = DA(reading.hips[0].created_at.strftime("%Y%m%d"))
    sr.ContentTime = TM(reading.hips[0].created_at.strftime("%H%M%S"))
    sr.SoftwareVersions = f"model version {reading.version.pk}"
    return sr
