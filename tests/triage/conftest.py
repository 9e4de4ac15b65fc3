"""Fixtures of the results-to-PACS tests: a radiograph received from a PACS and read by a
classifier (two hips with stored heatmaps), and the bytes that PACS sent."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image

from annotate import services
from annotate.models import Radiograph
from tests.ml.factories import HipPredictionFactory, ModelVersionFactory

SENT = {"patient_id": "MRN-H17", "accession": "ACC-H17", "seed": 17}


def heat_png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    rgba = np.zeros((32, 32, 4), dtype=np.uint8)
    rgba[..., 0] = 255
    rgba[..., 3] = rng.integers(0, 190, size=(32, 32))
    buffer = io.BytesIO()
    Image.fromarray(rgba, mode="RGBA").save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def sent_bytes(dicom_bytes: Any) -> bytes:
    """The image as the PACS sent it (before de-identification)."""
    return dicom_bytes(**SENT)


@pytest.fixture
def read_radiograph(sent_bytes: bytes) -> Radiograph:
    """Received by C-STORE, read by a classifier: right hip a displaced neck fracture, left hip
    normal but flagged for CT/MRI (P(fn_nondisplaced) above the model's threshold)."""
    outcome = services.radiograph_ingest(data=sent_bytes, name="sent.dcm", source="dicom_store")
    radiograph = Radiograph.objects.get(pk=outcome.radiograph_id)
    version = ModelVersionFactory(
        is_active=True,
        bundle_sha256="ab" * 32,
        config={"name": "cpu-small", "test_time": "zoom-average"},
        evaluation={"thresholds": {"fn_nondisplaced": {"threshold": 0.2}}},
    )
    hips = [
        ("right", [10.0, 20.0, 100.0, 100.0], [0.05, 0.7, 0.1, 0.1, 0.03, 0.02], "fn_displaced",
         ["fn_displaced", "fn_nondisplaced"]),
        ("left", [130.0, 20.0, 100.0, 100.0], [0.6, 0.05, 0.3, 0.02, 0.02, 0.01], "normal",
         ["normal", "fn_nondisplaced"]),
    ]  # fmt: skip
    for i, (side, box, probabilities, predicted, top2) in enumerate(hips):
        name = default_storage.save(f"heatmaps/{version.pk}/{radiograph.pk}-{side}.png", ContentFile(heat_png(i)))
        HipPredictionFactory(
            model_version=version, radiograph=radiograph, side=side, box=box, probabilities=probabilities,
            predicted_class=predicted, top2=top2, heatmap=name,
            heatmap_rect=[box[0] - 5, box[1] - 5, box[0] + box[2] + 5, box[1] + box[3] + 5],
        )  # fmt: skip
    return radiograph
