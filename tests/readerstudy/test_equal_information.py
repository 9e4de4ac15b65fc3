"""Equal information in phase 1 (Krogue et al.: readers see the hip "at the same quality and
resolution that the model uses"): the model's frozen reading of each case comes from exactly the
image readers get in the model-quality phase, the 8-bit zoom-1.0 crop. Feeding that stored image
(as the crop endpoint serves it) to the study's model gives the frozen probabilities back, also
for a model trained with ``test_time="zoom-average"``; the study records and shows the protocol.

A real tiny classifier (random weights), real radiographs, real PostgreSQL."""
# ruff: noqa: F811 - the fixture imported from test_model_pages is redefined as an argument

from __future__ import annotations

import io
import uuid

import numpy as np
import pytest
from PIL import Image

from ml.models import ModelVersion
from readerstudy import services
from readerstudy.models import ReaderStudy
from tests.readerstudy.helpers import invite, study_with_model

keras = pytest.importorskip("keras")

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]


def model_reading(version: ModelVersion, png: bytes) -> np.ndarray:
    """The study's model, loaded from its bundle, on a phase-1 PNG as readers get it."""
    from ml.core.crops import to_model_input
    from ml.core.modelfile import load_bundle

    model, config, _ = load_bundle(version.bundle_path)
    pixels = np.asarray(Image.open(io.BytesIO(png)))
    assert pixels.dtype == np.uint8 and pixels.shape == (config.input_size, config.input_size)
    x = to_model_input(pixels.astype(np.float32) / 255.0)[None]
    return np.asarray(model(x, training=False))[0]


def average_bundle(tiny_bundle, folder):
    """The tiny model's weights under a config that says ``test_time="zoom-average"``."""
    from ml.core.modelfile import load_bundle, write_bundle

    path, config = tiny_bundle
    model, _, _ = load_bundle(path)
    config = config.replace(test_time="zoom-average")
    out = folder / f"average-{uuid.uuid4().hex[:8]}.hipmodel"
    write_bundle(out, model=model, config=config, dataset_hash="test-dataset")
    return out, config


def check_identity(study: ReaderStudy, client) -> None:
    """Every case's stored phase-1 PNG, fed to the model, gives its frozen probabilities; the case
    on the reader's screen is checked through the crop endpoint, as the reader's browser gets it."""
    version = study.model_version
    for case in study.cases.order_by("number"):
        with case.crop.open("rb") as handle:
            png = handle.read()
        got = model_reading(version, png)
        np.testing.assert_allclose(case.probabilities, got, atol=1e-5)
        assert case.predicted_class == case.top2[0]
    case = client.get(f"/api/reader/studies/{study.pk}/current/").json()["case"]
    served = client.get(case["crop_url"])
    assert served.status_code == 200
    frozen = study.cases.get(pk=case["id"]).probabilities
    np.testing.assert_allclose(frozen, model_reading(version, b"".join(served.streaming_content)), atol=1e-5)


def test_the_frozen_reading_is_the_model_on_the_phase_one_image(dicom_bytes, tiny_bundle, data_dir, client_as):
    study = study_with_model(dicom_bytes, tiny_bundle, data_dir, cases=6)
    assert study.status == "open" and study.test_time == "single"
    assert study.model_version.config["test_time"] == "single"
    reader = invite(study, "rita")
    client = client_as(None)
    client.force_login(reader.user)
    check_identity(study, client)

    # The reading comes from the quantised PNG, not from the float crop it was made from.
    from ml.core.crops import CropSpec, hip_crop, to_model_input
    from ml.core.modelfile import load_bundle
    from ml.scoring import load_pixels

    model, config, _ = load_bundle(study.model_version.bundle_path)
    case = study.cases.select_related("dataset_hip__radiograph").order_by("number").first()
    hip, radiograph = case.dataset_hip, case.dataset_hip.radiograph
    window = (radiograph.window_center, radiograph.window_width)
    floats = hip_crop(load_pixels(radiograph), hip.box, hip.side, window=window, spec=CropSpec(size=config.input_size))
    with case.crop.open("rb") as handle:
        stored = np.asarray(Image.open(handle))
    np.testing.assert_array_equal(stored, np.round(floats * 255).astype(np.uint8))  # zoom 1.0, the model's size
    from_floats = np.asarray(model(to_model_input(floats)[None], training=False))[0]
    assert np.abs(from_floats - np.asarray(case.probabilities)).max() < 1e-3  # close, but not the source


def test_a_zoom_average_model_is_still_read_from_the_phase_one_crop(
    dicom_bytes, tiny_bundle, data_dir, client_as, tmp_path
):
    from ml.core.serving import Predictor
    from ml.scoring import load_pixels

    bundle = average_bundle(tiny_bundle, tmp_path)
    study = study_with_model(dicom_bytes, bundle, data_dir, cases=4)
    version = study.model_version
    assert version.config["test_time"] == "zoom-average"
    assert study.status == "open" and study.test_time == "single"
    reader = invite(study, "rita")
    client = client_as(None)
    client.force_login(reader.user)
    check_identity(study, client)
    # The model's own protocol would have given other numbers: it sees the wider zoom-1.5 crop too.
    averaged = Predictor.from_bundle(version.bundle_path)
    assert averaged.test_time == "zoom-average"
    case = study.cases.select_related("dataset_hip__radiograph").order_by("number").first()
    radiograph = case.dataset_hip.radiograph
    (own,) = averaged.predict_hips(
        load_pixels(radiograph),
        (radiograph.window_center, radiograph.window_width),
        [(case.dataset_hip.side, case.dataset_hip.box)],
    )
    assert not np.allclose(own.probabilities, case.probabilities, atol=1e-5)

    protocol = services.frozen_protocol(study=study)
    assert protocol["equal_information"] is True and protocol["model_test_time"] == "zoom-average"
    assert "does not use it" in protocol["description"]


def test_the_page_and_export_state_the_protocol(dicom_bytes, tiny_bundle, data_dir, client_as, capsys, tmp_path):
    from django.core.management import call_command

    study = study_with_model(dicom_bytes, tiny_bundle, data_dir, cases=3)
    client = client_as("researcher")
    page = client.get(f"/studies/{study.pk}/").content.decode()
    assert 'data-test-time="single"' in page and "(equal information)" in page
    assert "model_predictions.csv: the frozen readings, test_time single" in page
    export = client.get(f"/studies/{study.pk}/export/model_predictions.csv")
    assert export.status_code == 200 and export["X-Test-Time"] == "single"
    header = export.content.decode().splitlines()[0].split(",")
    assert tuple(header) == services.PREDICTION_COLUMNS  # the contract: no column added
    capsys.readouterr()
    call_command("export_responses", "--study", study.name, "--out", str(tmp_path / "out"))
    assert "model_predictions.csv: test_time single" in capsys.readouterr().out

    # A study prepared before readings were frozen from the phase-1 crop says it is not equal information.
    ReaderStudy.objects.filter(pk=study.pk).update(test_time="zoom-average")
    study.refresh_from_db()
    page = client.get(f"/studies/{study.pk}/").content.decode()
    assert 'data-test-time="zoom-average"' in page and "(not equal information)" in page
    assert "wider context than the readers" in page
    assert client.get(f"/studies/{study.pk}/export/model_predictions.csv")["X-Test-Time"] == "zoom-average"
    assert services.frozen_protocol(study=study)["equal_information"] is False
