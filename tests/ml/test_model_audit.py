"""The model audit end to end: films whose headers vary sex, age, view, scanner and modality are
ingested, a model version is evaluated, and metrics.json, the evaluation folder and the model
page hold the calibration, the subgroups (counted as the database has them) and the failures."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter

import pytest
from django.utils.html import escape

from devtools.dicom import make_dicom
from devtools.sample_data import tiny_model_version, truth_dataset
from ml.core.subgroups import ATTRIBUTES, MIN_HIPS, TOO_FEW, age_band
from ml.evaluation import DOWNLOADS, evaluate_version
from ml.models import DatasetHip, Split

pytestmark = pytest.mark.django_db

SCANNERS = (("Agfa", "CR 85-X", "CR"), ("SIEMENS", "Ysio Max", "DX"), ("GE Healthcare", "Discovery XR656", "DX"))
AGES = (52, 71, 80, 88)


def varied_dicom(*, seed: int, patient_id: str, **kwargs):
    """make_dicom with the header fields of the subgroups varied by film and patient."""
    maker, model, modality = SCANNERS[seed % 3]
    patient = int(patient_id.removeprefix("MRN"))
    view = {} if seed % 4 else {"ViewPosition": "", "SeriesDescription": "FROG LEG LAT PELVIS"}
    return make_dicom(
        seed=seed, patient_id=patient_id, Manufacturer=maker, ManufacturerModelName=model, Modality=modality,
        PatientSex="MF"[patient % 2], PatientAge=f"{AGES[patient % 4]:03d}Y", **view, **kwargs,
    )  # fmt: skip


@pytest.fixture
def evaluated(tiny_bundle, data_dir, settings):
    settings.BOOTSTRAP_ITERATIONS = 100
    dataset = truth_dataset(varied_dicom, radiographs=64, patients=40)
    version = tiny_model_version(tiny_bundle, dataset, data_dir)
    report = evaluate_version(version)
    version.refresh_from_db()
    return version, report


def test_metrics_json_holds_calibration_subgroups_and_failures(evaluated):
    version, report = evaluated
    folder = version.evaluation_dir
    metrics = json.loads((folder / "metrics.json").read_text())
    figure = {"estimate", "mean", "ci_low", "ci_high"}
    calibration = metrics["calibration"]
    assert set(calibration["binary"]["ece"]) == set(calibration["binary"]["brier"]) == figure
    assert set(calibration["per_class"]) == {"normal", "fn_displaced", "fn_nondisplaced", "intertrochanteric",
                                             "orif", "arthroplasty"}  # fmt: skip
    assert all(set(c["ece"]) == set(c["brier"]) == figure for c in calibration["per_class"].values())
    assert list(metrics["subgroups"]) == list(ATTRIBUTES)

    # Each subgroup's count is what the database says of the test hips' headers.
    hips = DatasetHip.objects.filter(dataset=version.dataset, split=Split.TEST).select_related(
        "radiograph__study", "patient"
    )
    expected = {
        "sex": Counter({"M": "male", "F": "female"}[h.patient.sex] for h in hips),
        "age_band": Counter(age_band(h.radiograph.study.patient_age_years) for h in hips),
        "view": Counter("AP" if h.radiograph.view_position == "AP" else "frog-leg lateral" for h in hips),
        "manufacturer": Counter(f"{h.radiograph.manufacturer} {h.radiograph.manufacturer_model}" for h in hips),
        "modality": Counter(h.radiograph.modality for h in hips),
        "side": Counter(h.side for h in hips),
    }
    assert expected["manufacturer"].keys() <= {f"{m} {n}" for m, n, _ in SCANNERS}
    assert len(expected["manufacturer"]) > 1 and len(expected["age_band"]) > 1 and len(expected["view"]) > 1
    for attribute, counts in expected.items():
        groups = metrics["subgroups"][attribute]
        assert {value: g["hips"] for value, g in groups.items()} == dict(counts), attribute
        for group in groups.values():
            if group["hips"] < MIN_HIPS:
                assert group["note"] == TOO_FEW and "binary_accuracy" not in group
            else:
                assert set(group["multiclass_accuracy"]) == figure and "note" not in group

    # The failures are the wrong rows of predictions.csv, grouped by (truth, call).
    rows = list(csv.DictReader(io.StringIO((folder / "predictions.csv").read_text())))
    wrong = Counter((r["truth"], r["predicted"]) for r in rows if r["truth"] != r["predicted"])
    assert {(g["truth"], g["predicted"]): len(g["hips"]) for g in metrics["failures"]} == dict(wrong)
    assert len((folder / "failures.csv").read_text().splitlines()) == 1 + sum(wrong.values())
    for name in ("failures.png", "failures.svg", "calibration_binary.png", "calibration_per_class.svg",
                 "subgroups.csv", "calibration.csv", "reliability.csv"):  # fmt: skip
        assert name in DOWNLOADS and (folder / name).stat().st_size > 0, name
    assert version.evaluation["calibration"] == calibration and version.evaluation["subgroups"] == metrics["subgroups"]


def test_the_model_page_shows_calibration_subgroups_and_the_gallery(evaluated, client_as):
    version, report = evaluated
    page = client_as("researcher").get(f"/models/versions/{version.pk}/").content.decode()
    ece = report["calibration"]["binary"]["ece"]
    assert 'id="calibration"' in page and 'data-curve="binary"' in page and f"{ece['estimate']:.3f}" in page
    for name in ("calibration_binary.png", "calibration_per_class.png", "failures.png"):
        assert f'src="/api/models/{version.pk}/files/{name}"' in page, name
    for attribute, groups in report["subgroups"].items():
        for value in groups:
            assert f'data-attribute="{attribute}" data-value="{escape(value)}"' in page
    if any(g.get("note") for groups in report["subgroups"].values() for g in groups.values()):
        assert TOO_FEW in page
    for group in report["failures"]:
        assert f'data-truth="{group["truth"]}" data-predicted="{group["predicted"]}"' in page
        hip = group["hips"][0]
        assert f'href="/models/radiographs/{hip["radiograph"]}/predictions/?model={version.pk}"' in page
