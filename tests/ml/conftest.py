"""Fixtures of the ml tests: a small frozen dataset version, the tiny classifier as its model
version, and an active tiny classifier and detector pair (the detector trained once a session)."""

from __future__ import annotations

import shutil
import uuid

import pytest

from devtools.sample_data import tiny_model_version, truth_dataset
from ml import services as ml_services
from ml.core.modelfile import sha256_file, write_bundle
from ml.models import Kind, ModelVersion
from tests.ml.helpers import CLASS_CYCLE, ingest, write_truth


@pytest.fixture
def dataset(dicom_bytes):
    """A dataset version with training, validation and test hips (10 radiographs of 9 patients)."""
    for i in range(10):
        radiograph = ingest(dicom_bytes, i)
        write_truth(radiograph, [("right", CLASS_CYCLE[(2 * i) % 7]), ("left", CLASS_CYCLE[(2 * i + 1) % 7])])
    version, _ = ml_services.dataset_freeze(seed=1)
    return version


@pytest.fixture
def tiny_version(tiny_bundle, dataset, data_dir):
    return tiny_model_version(tiny_bundle, dataset, data_dir)


@pytest.fixture(scope="session")
def detector_bundle(tmp_path_factory, trained_tiny):
    model, config = trained_tiny
    path = tmp_path_factory.mktemp("detector") / "detector.hipmodel"
    write_bundle(path, model=model, config=config, dataset_hash="test-dataset", kind="detector")
    return path, config


@pytest.fixture
def models(dicom_bytes, tiny_bundle, detector_bundle, data_dir):
    """The tiny classifier and the trained tiny detector, both active, on 20 films of 16 patients."""
    dataset = truth_dataset(dicom_bytes, radiographs=20, patients=16)
    classifier = tiny_model_version(tiny_bundle, dataset, data_dir)
    path, config = detector_bundle
    shutil.copy(path, data_dir / "models" / "detector.hipmodel")
    detector = ModelVersion.objects.create(
        kind=Kind.DETECTOR, config_name="tiny", config=config.as_dict(), dataset=dataset, identity=uuid.uuid4().hex,
        bundle="models/detector.hipmodel", bundle_sha256=sha256_file(path),
    )  # fmt: skip
    ModelVersion.objects.filter(pk__in=[classifier.pk, detector.pk]).update(is_active=True)
    return classifier, detector
