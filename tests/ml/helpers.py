"""Building a real dataset version for the model tests: radiographs ingested from
DICOM bytes, ground truth written, frozen with the usual 60:25:15 split."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from annotate import services
from annotate.labels import CLASSES, Adjudication, GroundTruthHip
from annotate.models import Radiograph
from ml import services as ml_services
from ml.models import DatasetVersion

BOX = {"right": (20.0, 30.0, 90.0, 90.0), "left": (130.0, 30.0, 90.0, 90.0)}


def hip_class(i: int, side: str) -> str:
    return CLASSES[(2 * i + (side == "left")) % len(CLASSES)]


def film(i: int) -> np.ndarray:
    """A 160 x 240 film whose hips' brightness tells their class (learnable by a tiny net)."""
    rng = np.random.default_rng(i)
    pixels = rng.integers(0, 400, size=(160, 240)).astype(np.uint16)
    for side, (x, y, w, h) in BOX.items():
        level = 500 + 550 * CLASSES.index(hip_class(i, side))
        pixels[int(y) : int(y + h), int(x) : int(x + w)] += np.uint16(level)
    return pixels


def truth_dataset(dicom_bytes: Callable[..., bytes], *, radiographs: int = 24, patients: int = 18) -> DatasetVersion:
    """``radiographs`` films of ``patients`` patients, both hips in the ground truth, frozen (seed 0)."""
    for i in range(radiographs):
        outcome = services.radiograph_ingest(
            data=dicom_bytes(seed=i, patient_id=f"MRN{i % patients}", accession=f"ACC{i}", pixels=film(i)),
            name=f"{i}.dcm",
            source="cli",
        )
        radiograph = Radiograph.objects.get(id=outcome.radiograph_id)
        adjudication = Adjudication.objects.create(
            radiograph=radiograph, status=Adjudication.Status.AGREED, truth_source="agreement"
        )
        for side, (x, y, w, h) in BOX.items():
            GroundTruthHip.objects.create(
                radiograph=radiograph, adjudication=adjudication, side=side, hip_class=hip_class(i, side),
                x=x, y=y, width=w, height=h,
            )  # fmt: skip
    version, _ = ml_services.dataset_freeze(seed=0)
    return version
