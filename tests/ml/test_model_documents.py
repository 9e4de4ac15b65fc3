"""A model report's reporting documents on real PostgreSQL: evaluating the tiny classifier writes
CLAIM and TRIPOD+AI (.md, .html) and the flow diagram into its evaluation folder, each item the
platform claims filled with its figures, and the model page offers them."""

from __future__ import annotations

import pytest

from ml.checklists import MODEL_CHECKLISTS, MODEL_DOCUMENTS, model_facts
from ml.core.checklists import fill
from ml.evaluation import evaluate_version

pytestmark = pytest.mark.django_db


def test_evaluation_writes_the_checklists_filled_from_the_records(tiny_version, client_as):
    report = evaluate_version(tiny_version, iterations=20)
    folder = tiny_version.evaluation_dir
    for name in MODEL_DOCUMENTS:
        assert (folder / name).is_file(), name
    facts = model_facts(version=tiny_version, evaluation=report)
    answers = {}
    for checklist in MODEL_CHECKLISTS:
        rows = fill(checklist, facts)
        claimed = [r for r in rows if r["claimed"]]
        assert claimed and all(r["filled"] for r in claimed), [r["number"] for r in claimed if not r["filled"]]
        answers[checklist.key] = {r["number"]: r["answer"] for r in rows}
        assert (folder / f"{checklist.key}.html").read_text().count('class="filled"') == len(claimed)
    claim, tripod = answers["claim"], answers["tripod_ai"]
    assert f"Test split ({report['n_cases']} hips, {report['n_patients']} patients)" in claim["35"]
    assert f"{report['binary_accuracy']['mean']:.3f}" in claim["35"]
    assert tiny_version.bundle_sha256 in claim["22"] and "Initialisation: random" in claim["24"]
    if report.get("calibration"):
        assert f"{report['calibration']['binary']['ece']['mean']:.3f}" in tripod["12f"]
    else:
        assert "not computed" in tripod["12f"]
    hips = sum(s["hips"] for s in facts["table1"]["per_split"])
    assert f"0 of {hips} hips (0.0%) began as a model's proposal" in claim["18"]
    page = client_as("researcher").get(f"/models/versions/{tiny_version.pk}/").content.decode()
    for name in ("claim.html", "tripod_ai.html", "flow.svg"):
        assert f'href="/api/models/{tiny_version.pk}/files/{name}"' in page, name
