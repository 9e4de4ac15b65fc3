"""Rows for tests and benchmarks: radiographs ingested from synthetic DICOM films, agreed
ground truth, a frozen dataset version, and a (tiny, untrained) classifier as a model version.

Unlike the rest of devtools this module uses the site's Django models: import it after
``django.setup()`` (pytest-django does that for the tests; bench/readers.py does it itself).
Keras loads only when a bundle is written (``write_tiny_bundle``)."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from annotate import services
from annotate.labels import CLASSES, Adjudication, GroundTruthHip
from annotate.models import Radiograph
from ml import services as ml_services
from ml.core.modelfile import sha256_file
from ml.models import DatasetVersion, ModelVersion

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
        assert outcome.radiograph_id is not None, outcome  # a fresh synthetic file is imported
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


def write_tiny_bundle(folder: Path) -> tuple[Path, Any]:
    """A freshly initialised ``tiny`` classifier written as a bundle into ``folder``."""
    from ml.core.configs import get_config  # keras loads only here
    from ml.core.modelfile import write_bundle
    from ml.core.nets import build_model

    config = get_config("tiny")
    path = folder / "tiny.hipmodel"
    write_bundle(path, model=build_model(config), config=config, dataset_hash="test-dataset")
    return path, config


def tiny_model_version(bundle: tuple[Path, Any], dataset: DatasetVersion, data_dir: Path) -> ModelVersion:
    """A ModelVersion of the bundle, copied to ``DATA_DIR/models/tiny.hipmodel``."""
    path, config = bundle
    (data_dir / "models").mkdir(parents=True, exist_ok=True)
    shutil.copy(path, data_dir / "models" / "tiny.hipmodel")
    return ModelVersion.objects.create(
        config_name="tiny",
        config=config.as_dict(),
        dataset=dataset,
        identity=uuid.uuid4().hex,
        bundle="models/tiny.hipmodel",
        bundle_sha256=sha256_file(path),
        evaluation=None,
    )
