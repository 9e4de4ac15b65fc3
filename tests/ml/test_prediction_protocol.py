"""Predictions follow their model version's test-time protocol and say which one: ``single`` (the
paper's: the zoom-1.0 crop alone) or ``zoom-average`` (the mean over the zooms), in the predict
API, the stored-predictions API, the ``predict`` command and the radiograph's predictions page.

Real tiny classifiers (random weights); the expected probabilities are recomputed here from the
model itself on the crops of the decoded DICOM."""
# ruff: noqa: F811 - the fixtures imported from test_model_pages are redefined as arguments

from __future__ import annotations

import io
import json
import uuid

import numpy as np
import pytest
from django.core.management import call_command

from annotate.archive.dicom import decode_dicom
from annotate.models import Radiograph
from ml import scoring
from ml.models import ModelVersion
from tests.ml.helpers import BOXES

keras = pytest.importorskip("keras")

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]


def version_with(tiny_bundle, dataset, data_dir, test_time):
    """A classifier version whose bundle and stored config both say ``test_time``."""
    from ml.core.modelfile import load_bundle, sha256_file, write_bundle

    path, config = tiny_bundle
    model, _, _ = load_bundle(path)
    config = config.replace(test_time=test_time)
    (data_dir / "models").mkdir(parents=True, exist_ok=True)
    name = f"models/{test_time}-{uuid.uuid4().hex[:8]}.hipmodel"
    write_bundle(data_dir / name, model=model, config=config, dataset_hash="test-dataset")
    return ModelVersion.objects.create(
        config_name="tiny",
        config=config.as_dict(),
        dataset=dataset,
        identity=uuid.uuid4().hex,
        bundle=name,
        bundle_sha256=sha256_file(data_dir / name),
    )


def expected(version, data, zooms):
    """The model's softmax on the decoded DICOM's crops at ``zooms``, averaged, per hip of BOXES."""
    from ml.core.crops import CropSpec, hip_crop, to_model_input
    from ml.core.modelfile import load_bundle

    model, config, _ = load_bundle(version.bundle_path)
    image = decode_dicom(data)
    window = (image.window_center, image.window_width)
    out, size = {}, config.input_size
    for hip in BOXES:
        crops = [
            hip_crop(image.pixels, hip["box"], hip["side"], window=window, spec=CropSpec(size=size, zoom=z))
            for z in zooms
        ]
        out[hip["side"]] = np.asarray(model(to_model_input(np.stack(crops)), training=False)).mean(axis=0)
    return out


@pytest.mark.parametrize(("test_time", "zooms"), [("single", [1.0]), ("zoom-average", [1.0, 1.5])])
def test_predict_api_follows_and_states_the_protocol(
    test_time,
    zooms,
    tiny_bundle,
    dataset,
    data_dir,
    client_as,
    dicom_bytes,
):
    version = version_with(tiny_bundle, dataset, data_dir, test_time)
    scoring.activate(version, score=False)
    data = dicom_bytes(seed=123, patient_id="MRN-PROTOCOL", accession="ACC-PROTOCOL")
    upload = io.BytesIO(data)
    upload.name = "x.dcm"
    response = client_as("researcher").post("/api/predict/", {"file": upload, "boxes": json.dumps(BOXES)})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["test_time"] == test_time and body["test_time_zooms"] == zooms
    want = expected(version, data, zooms)
    other = expected(version, data, [1.0, 1.5] if test_time == "single" else [1.0])
    for hip in body["hips"]:
        got = np.array(list(hip["probabilities"].values()))
        np.testing.assert_allclose(got, want[hip["side"]], atol=1e-5)
        assert not np.allclose(got, other[hip["side"]], atol=1e-6)  # the other protocol gives other numbers


def test_stored_predictions_api_page_and_command_state_the_protocol(
    tiny_bundle,
    dataset,
    data_dir,
    client_as,
    dicom_bytes,
    tmp_path,
    capsys,
):
    single = version_with(tiny_bundle, dataset, data_dir, "single")
    average = version_with(tiny_bundle, dataset, data_dir, "zoom-average")
    radiograph = Radiograph.objects.order_by("pk").first()
    scoring.predict_radiograph(single, radiograph)
    scoring.predict_radiograph(average, radiograph)
    client = client_as("researcher")
    for version, test_time, zooms in ((single, "single", [1.0]), (average, "zoom-average", [1.0, 1.5])):
        rows = client.get(f"/api/radiographs/{radiograph.pk}/predictions/?model={version.pk}").json()
        assert len(rows) == 2
        assert {(r["test_time"], tuple(r["test_time_zooms"])) for r in rows} == {(test_time, tuple(zooms))}
        page = client.get(f"/models/radiographs/{radiograph.pk}/predictions/?model={version.pk}").content.decode()
        assert f'data-test-time="{test_time}"' in page
        assert ("zoom-1.0 crop alone" in page) == (test_time == "single")
        assert ("averaged over the crops at zooms 1.0, 1.5" in page) == (test_time == "zoom-average")

    # a config stored before the field existed was served zoom-averaged and says so
    legacy = {k: v for k, v in single.config.items() if k != "test_time"}
    ModelVersion.objects.filter(pk=single.pk).update(config=legacy)
    assert scoring.test_time(ModelVersion.objects.get(pk=single.pk)) == {
        "test_time": "zoom-average",
        "test_time_zooms": [1.0, 1.5],
    }

    path = tmp_path / "new.dcm"
    path.write_bytes(dicom_bytes(seed=501, patient_id="NEW2", accession="NEWACC2"))
    capsys.readouterr()
    call_command("predict", str(path), "--boxes", json.dumps(BOXES), "--model", str(average.pk))
    out = json.loads(capsys.readouterr().out)
    assert out["test_time"] == "zoom-average" and out["test_time_zooms"] == [1.0, 1.5]
    want = expected(average, path.read_bytes(), [1.0, 1.5])
    for hip in out["hips"]:
        np.testing.assert_allclose(list(hip["probabilities"].values()), want[hip["side"]], atol=1e-5)


@pytest.mark.parametrize(("test_time", "zooms"), [("single", [1.0]), ("zoom-average", [1.0, 1.5])])
def test_test_split_evaluation_follows_the_protocol(test_time, zooms, tiny_bundle, dataset, data_dir):
    from ml.core.crops import CropSpec, hip_crop, to_model_input
    from ml.core.modelfile import load_bundle
    from ml.evaluation import test_predictions
    from ml.models import DatasetHip, Split

    version = version_with(tiny_bundle, dataset, data_dir, test_time)
    data = test_predictions(version)
    model, config, _ = load_bundle(version.bundle_path)
    hips = DatasetHip.objects.filter(dataset=dataset, split=Split.TEST).select_related("radiograph")
    by_key = {(h.radiograph_id, h.side): h for h in hips}
    assert len(data["hips"]) == len(by_key) > 0
    for (radiograph_id, side, _), probabilities in zip(data["hips"], data["probabilities"], strict=True):
        hip = by_key[radiograph_id, side]
        window = (hip.radiograph.window_center, hip.radiograph.window_width)
        pixels = scoring.load_pixels(hip.radiograph)
        crops = [
            hip_crop(pixels, hip.box, side, window=window, spec=CropSpec(size=config.input_size, zoom=z)) for z in zooms
        ]
        want = np.asarray(model(to_model_input(np.stack(crops)), training=False)).mean(axis=0)
        np.testing.assert_allclose(probabilities, want, atol=1e-5)
