"""Plain helpers shared by the ml tests and the browser tests (fixtures are in the conftest.py
files; the films, ground truth and tiny classifier of devtools.sample_data are shared with the
benchmarks): radiographs ingested with their ground truth, and worklist rows (model versions
without a bundle, stored predictions)."""

from __future__ import annotations

import io
from datetime import datetime

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image

from annotate import services
from annotate.labels import Adjudication, GroundTruthHip
from annotate.models import Radiograph
from devtools.sample_data import film
from ml.core.vocab import CLASSES, FRACTURE_CLASSES
from ml.models import DatasetVersion, HipPrediction, Kind, ModelVersion
from tests.ml.factories import DatasetVersionFactory, ModelVersionFactory

N_PATIENTS = 9
CLASS_CYCLE = ["normal", "fn_displaced", "intertrochanteric", "normal", "fn_nondisplaced", "orif", "arthroplasty"]

BOXES = [{"side": "right", "box": [10, 20, 100, 100]}, {"side": "left", "box": [130, 20, 100, 100]}]


def ingest(dicom_bytes, i: int, **overrides) -> Radiograph:
    outcome = services.radiograph_ingest(
        data=dicom_bytes(seed=i, patient_id=f"MRN{i % N_PATIENTS}", accession=f"ACC{i}", **overrides),
        name=f"{i}.dcm",
        source="cli",
    )
    return Radiograph.objects.get(id=outcome.radiograph_id)


def write_truth(radiograph: Radiograph, hips: list[tuple[str, str]], excluded: str = "") -> None:
    adjudication = Adjudication.objects.create(
        radiograph=radiograph, status=Adjudication.Status.AGREED, truth_source="agreement", excluded=excluded
    )
    for side, hip_class in hips:
        x = 10.0 if side == "right" else 130.0
        GroundTruthHip.objects.create(
            radiograph=radiograph, adjudication=adjudication, side=side, hip_class=hip_class,
            x=x, y=20.0, width=100.0, height=100.0,
        )  # fmt: skip


def new_radiograph(dicom_bytes, i=900):
    outcome = services.radiograph_ingest(
        data=dicom_bytes(seed=i, patient_id=f"MRN-NEW{i}", accession=f"ACC-NEW{i}", pixels=film(i)),
        name=f"{i}.dcm",
        source="cli",
    )
    return Radiograph.objects.get(pk=outcome.radiograph_id)


# --------------------------------------------------------------------------- the worklist

THRESHOLD = 0.3


def probabilities(**given: float) -> list[float]:
    """Six class probabilities in CLASSES order: the given ones, the rest sharing what is left."""
    rest = [key for key in CLASSES if key not in given]
    share = (1.0 - sum(given.values())) / len(rest) if rest else 0.0
    return [given.get(key, share) for key in CLASSES]


def tiny_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (8, 8), (255, 0, 0, 128)).save(buffer, format="PNG")
    return buffer.getvalue()


def empty_dataset() -> DatasetVersion:
    return DatasetVersionFactory()


def make_classifier(dataset: DatasetVersion, *, threshold: float | None = THRESHOLD, active: bool = True,
                    evaluated: bool = True, kind: str = Kind.CLASSIFIER) -> ModelVersion:  # fmt: skip
    """A model version row (no bundle: the worklist never loads it) whose evaluation holds
    the ideal threshold of fn_nondisplaced (``None``: undefined on its test split)."""
    thresholds = {key: {"threshold": 0.5, "sensitivity": 0.9, "specificity": 0.9} for key in CLASSES}
    thresholds["fn_nondisplaced"] = {"threshold": threshold, "sensitivity": 0.8, "specificity": 0.85}
    return ModelVersionFactory(
        kind=kind, dataset=dataset, is_active=active, evaluation={"thresholds": thresholds} if evaluated else None
    )


def predict(version: ModelVersion, radiograph: Radiograph, side: str, probs: list[float], *,
            scored_at: datetime | None = None, box_source: str = "ground_truth") -> HipPrediction:  # fmt: skip
    """A stored prediction as ml.scoring would write it, with a tiny heatmap PNG."""
    ranked = sorted(range(len(CLASSES)), key=lambda i: (-probs[i], i))
    name = default_storage.save(f"heatmaps/{version.pk}/{radiograph.pk}-{side}.png", ContentFile(tiny_png()))
    x = 10.0 if side == "right" else 130.0
    row = HipPrediction.objects.create(
        model_version=version, radiograph=radiograph, side=side, box=[x, 20.0, 100.0, 100.0], box_source=box_source,
        probabilities=probs, fracture_probability=sum(probs[CLASSES.index(k)] for k in FRACTURE_CLASSES),
        predicted_class=CLASSES[ranked[0]], top2=[CLASSES[i] for i in ranked[:2]], heatmap=name,
        heatmap_rect=[x - 10, 10.0, x + 110, 130.0],
    )  # fmt: skip
    if scored_at is not None:
        HipPrediction.objects.filter(pk=row.pk).update(created_at=scored_at)
        row.refresh_from_db()
    return row


NORMAL = probabilities(normal=0.9, fn_nondisplaced=0.02)
FRACTURE = probabilities(fn_displaced=0.8, fn_nondisplaced=0.05)
