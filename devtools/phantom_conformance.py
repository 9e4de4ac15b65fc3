"""The attributes that make a synthetic radiograph conform to its IOD (PS3.3 A.2 CR, A.26 DX For
Presentation): anatomy, view and projection codes, laterality, detector, positioner, presentation LUT
shape and exposure. Header only: the pixels and the ground truth never depend on it. Pure (pydicom).
Design: docs/architecture/design-dicom.md#conformance
"""

from __future__ import annotations

from typing import Any

from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

# CID 4009/4031 (anatomic region), CID 4010 (DX view), CID 4012 (projection eponymous name).
_REGION = {"PELVIS": codes.cid4031.Pelvis, "HIP": codes.cid4031.Hip}
_VIEW = {"AP": codes.cid4010.AnteroPosterior, "RL": codes.cid4010.RightLateral, "LL": codes.cid4010.LeftLateral}
_EPONYM = {"frog_leg": codes.cid4012.Lauenstein, "cross_table_lateral": codes.cid4012.DaneliusMiller}
# Image axes (row, column direction) of a cross-table lateral: the femur runs along the rows,
# distally to the image's right for the right hip, and anterior is up.
_LATERAL_ORIENTATION = {"R": ["F", "P"], "L": ["H", "P"]}


def code_item(code: Code) -> Dataset:
    """A Code Sequence item (Basic Code Sequence Macro, PS3.3 Table 8.8-1)."""
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code.value, code.scheme_designator, code.meaning
    return item


def conform(attrs: dict[str, Any], *, view: str) -> dict[str, Any]:
    """``attrs`` (DICOM keywords, as make_dataset takes them) completed for the CR or DX IOD.

    ``view`` is the phantom view ("ap", "frog_leg", "cross_table_lateral"); its laterality,
    ViewPosition and BodyPartExamined come from ``attrs``. A DX image's modality LUT is the
    identity (PS3.3 C.8.11.3.1.2): a scanner that declares another one is refused, since
    making it conform would change the pixels."""
    out = dict(attrs)
    modality, body = out["Modality"], out["BodyPartExamined"]
    laterality = out.get("ImageLaterality") or out.get("Laterality") or ""
    view_position = out.get("ViewPosition") or ""
    # Exposure in mAs belongs to enhanced objects: CR and DX carry Exposure (IS) and Exposure in uAs.
    if (mas := out.pop("ExposureInmAs", None)) is not None:
        out |= {"Exposure": round(mas), "ExposureInuAs": round(mas * 1000)}
    out |= {
        "AnatomicRegionSequence": [code_item(_REGION[body])],
        "ImageLaterality": laterality or "B",  # both hips on a pelvis film
        "Laterality": None,  # the image's laterality stands for the series' (PS3.3 C.7.3.1.1.1)
    }
    if laterality:
        out["PatientOrientation"] = _LATERAL_ORIENTATION[laterality]
    if modality == "CR":
        # CR Series: ViewPosition is type 2 (present, maybe empty). The view codes, the pixel
        # intensity relationship and the rest below belong to DX modules that CR lacks.
        out["ViewPosition"] = view_position
        out |= {"PixelIntensityRelationship": None, "PixelIntensityRelationshipSign": None}
        return out
    # A frog-leg lateral is an AP projection of abducted hips (Lauenstein), whatever ViewPosition says.
    out["ViewCodeSequence"] = [code_item(_VIEW[view_position or "AP"])]
    if view in _EPONYM:
        out["ProjectionEponymousNameCodeSequence"] = [code_item(_EPONYM[view])]
    if (out.get("RescaleSlope", 1), out.get("RescaleIntercept", 0)) != (1, 0):
        raise ValueError("a DX image's Rescale Slope and Intercept are 1 and 0 (PS3.3 C.8.11.3.1.2)")
    out |= {
        "RescaleSlope": 1,
        "RescaleIntercept": 0,
        "RescaleType": "US",
        # MONOCHROME1 is displayed inverted: the presentation LUT says so (PS3.3 C.8.11.3.1.3).
        "PresentationLUTShape": "INVERSE" if out["PhotometricInterpretation"] == "MONOCHROME1" else "IDENTITY",
        "DetectorType": "SCINTILLATOR",
        "PositionerType": "COLUMN",
        "AcquisitionContextSequence": [],
    }
    return out
