"""The demo at any DEMO_STUDIES from 1 (scripts/demo.py, scripts/demo_labels.py), without running it:
disagreements are planted only where agreement remains, so the ground truth keeps every labelled
patient; a dataset version is frozen as soon as there are patients enough, and refused in one line
otherwise; the demo's .env is written once, private, and never overwritten."""

from __future__ import annotations

import importlib.util
import io
import json
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from dotenv import dotenv_values

from devtools.phantoms import generate_phantoms
from ml import services as ml_services

ROOT = Path(__file__).resolve().parent.parent
DEMO_SEED = 2020  # scripts/demo.py's make_phantoms --seed


def _script(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


demo_labels = _script("demo_labels")
demo = _script("demo")


@pytest.fixture(scope="module")
def phantom_sets(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """The demo's phantoms for DEMO_STUDIES 1 to 5."""
    sets = {}
    for studies in range(1, 6):
        out = tmp_path_factory.mktemp(f"phantoms{studies}")
        generate_phantoms(out, studies=studies, seed=DEMO_SEED)
        sets[studies] = out
    return sets


def _truth(phantoms: Path) -> dict:
    return json.loads((phantoms / "annotations.coco.json").read_text())


def _reaching_truth(document: dict) -> dict[Any, str]:
    """image id -> patient, for the images whose agreement puts hips in the ground truth."""
    with_hips = {a["image_id"] for a in document["annotations"]}
    return {i["id"]: i["patient"] for i in document["images"] if not i.get("exclude") and i["id"] in with_hips}


def _changed_images(before: dict, after: dict) -> set[Any]:
    def hips(document: dict) -> dict[Any, list]:
        out: dict[Any, list] = {}
        for a in document["annotations"]:
            out.setdefault(a["image_id"], []).append((a["attributes"]["side"], a["category_id"], a["bbox"]))
        return {k: sorted(v) for k, v in out.items()}

    old, new = hips(before), hips(after)
    return {image for image in old if old[image] != new.get(image)}


@pytest.mark.parametrize("studies", [1, 2, 3, 4, 5])
def test_disagreements_are_planted_only_where_agreement_remains(phantom_sets, studies) -> None:
    labelled = demo_labels._leave_unlabelled(_truth(phantom_sets[studies]), 0.1)
    planted, notes = demo_labels.plant_disagreements(labelled, disagreements=8, seed=0)
    changed = _changed_images(labelled, planted)
    assert len(notes) == len(changed) <= 8
    reaching = _reaching_truth(labelled)
    agreed_patients = {patient for image, patient in reaching.items() if image not in changed}
    assert agreed_patients == set(reaching.values())  # every labelled patient reaches the ground truth
    assert len(changed) < len(reaching) or not reaching  # never every image
    # As many are planted as the patients with a spare image allow (at most the 8 asked for).
    per_patient: dict[str, int] = {}
    for patient in reaching.values():
        per_patient[patient] = per_patient.get(patient, 0) + 1
    assert len(changed) == min(8, sum(count - 1 for count in per_patient.values()))
    # deterministic
    assert demo_labels.plant_disagreements(labelled, disagreements=8, seed=0)[1] == notes


def test_a_document_without_patients_keeps_one_image_agreed() -> None:
    images = [{"id": n, "file_name": f"{n}.dcm", "width": 400, "height": 400} for n in range(1, 4)]
    annotations = [
        {"id": 10 * n + k, "image_id": n, "category_id": 1, "bbox": [20 + 200 * k, 50, 80, 80], "area": 6400,
         "attributes": {"side": side}}
        for n in range(1, 4) for k, side in enumerate(("R", "L"))
    ]  # fmt: skip
    document = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "normal"}]}
    planted, notes = demo_labels.plant_disagreements(document, disagreements=8, seed=0)
    assert len(notes) == 2 and len(_changed_images(document, planted)) == 2


@pytest.mark.django_db
@pytest.mark.parametrize(("studies", "planted", "frozen"), [(1, 0, False), (4, 1, True), (5, 2, True)])
def test_the_demo_labels_freeze_a_dataset_whenever_there_are_patients_enough(
    phantom_sets, settings, data_dir, studies, planted, frozen
) -> None:
    """DEMO_STUDIES=4 died here with "there is no ground truth to freeze yet": every labelled
    radiograph had a planted disagreement."""
    phantoms = phantom_sets[studies]
    call_command("import_dicom", str(phantoms), "--no-progress", stdout=io.StringIO())
    settings.DEBUG = True  # as the demo runs (create_demo_users refuses otherwise)
    call_command("create_demo_users", "--quiet", stdout=io.StringIO())
    result = demo_labels.seed_demo_labels(phantoms)
    assert len(result["planted"]) == planted
    assert result["labeler2"].to_adjudicate == planted
    if frozen:
        version, created = ml_services.dataset_freeze(seed=0, name="demo")
        assert created and sum(sum(c.values()) for c in version.counts.values()) > 0
    else:  # one patient: refused with a reason that fits on a line
        with pytest.raises(ValueError, match=r"cannot split 1 patient\(s\) into 3 parts") as refused:
            ml_services.dataset_freeze(seed=0, name="demo")
        assert "\n" not in str(refused.value)


def test_the_env_file_is_written_once_and_private(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    assert demo.write_env_file(path, tmp_path / "data") is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    values = dotenv_values(path)
    assert values["DEBUG"] == "true" and values["DATA_DIR"] == str(tmp_path / "data")
    assert len(values["SECRET_KEY"]) >= 50 and "$" not in values["SECRET_KEY"]
    assert demo.write_env_file(path, tmp_path / "elsewhere") is False  # a developer's .env is kept
    assert dotenv_values(path) == values
    assert demo.write_env_file(tmp_path / ".env2", tmp_path)  # a new one, a new key
    assert dotenv_values(tmp_path / ".env2")["SECRET_KEY"] != values["SECRET_KEY"]


@pytest.mark.parametrize("raw", ["0", "-3", "many", ""])
def test_a_bad_demo_studies_is_refused_in_one_line(monkeypatch, capsys, raw) -> None:
    monkeypatch.setenv("DEMO_STUDIES", raw)
    monkeypatch.setattr(demo, "write_env_file", lambda *a: pytest.fail("nothing is done before the check"))
    assert demo.main([]) == 1
    err = capsys.readouterr().err
    assert err == f"demo: DEMO_STUDIES={raw!r}: give a whole number of studies, 1 or more\n"


def test_a_failing_step_stops_the_demo_in_one_line(monkeypatch, capsys) -> None:
    monkeypatch.setattr(demo.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 2))
    with pytest.raises(demo.DemoStop, match=r"^`manage.py migrate` failed \(exit status 2\)"):
        demo.manage("migrate", "--no-input")


def test_a_refused_freeze_is_one_line(monkeypatch) -> None:
    stderr = "some warning\nCommandError: cannot split 2 patient(s) into 3 parts without leaving one empty\n"
    monkeypatch.setattr(demo.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 1, stderr=stderr))
    assert demo.freeze_dataset() == "cannot split 2 patient(s) into 3 parts without leaving one empty"
    monkeypatch.setattr(demo.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0, stderr=""))
    assert demo.freeze_dataset() is None
