"""Dataset versions: freezing the ground truth, its hash, the patient split,
Table 1, the make_dataset command, and who may see the pages and API."""

from __future__ import annotations

import csv
import hashlib
import io
import json

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.urls import include, path
from scipy.stats import chi2_contingency

from annotate.labelling import services as labelling
from annotate.labelling.services import HipInput
from annotate.labels import GroundTruthHip
from config import urls as config_urls
from ml import services as ml_services
from ml.core.vocab import FRACTURE_CLASSES
from ml.models import DatasetHip, DatasetVersion
from ml.urls import api_urlpatterns
from tests.accounts.factories import UserFactory
from tests.ml.helpers import CLASS_CYCLE, N_PATIENTS, ingest, write_truth

# The pages and API as config/urls.py includes them (ours first, so this
# works whether or not config/urls.py already includes them).
urlpatterns = [
    path("models/", include("ml.urls")),
    path("api/", include(api_urlpatterns)),
    *config_urls.urlpatterns,
]

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.ml.test_datasets")]

N_RADIOGRAPHS = 14


@pytest.fixture
def truth(dicom_bytes):
    """14 radiographs of 9 patients, two hips each (one excluded radiograph more)."""
    radiographs = []
    for i in range(N_RADIOGRAPHS):
        sex = "M" if i % N_PATIENTS in (1, 4) else "F"
        radiograph = ingest(dicom_bytes, i, PatientSex=sex)
        write_truth(
            radiograph,
            [("right", CLASS_CYCLE[(2 * i) % 7]), ("left", CLASS_CYCLE[(2 * i + 1) % 7])],
        )
        radiographs.append(radiograph)
    excluded = ingest(dicom_bytes, 99)
    write_truth(excluded, [], excluded="cross_table_lateral")
    return radiographs


def test_freeze_copies_the_ground_truth_split_by_patient(truth):
    version, created = ml_services.dataset_freeze(seed=1, name="pilot")
    assert created and version.name == "pilot" and version.seed == 1
    hips = list(version.hips.all())
    assert len(hips) == 2 * N_RADIOGRAPHS
    assert {h.radiograph_id for h in hips} == {r.id for r in truth}  # the excluded one is left out
    splits_of_patient: dict[int, set[str]] = {}
    for hip in hips:
        assert hip.patient_id == hip.radiograph.study.patient_id
        splits_of_patient.setdefault(hip.patient_id, set()).add(hip.split)
    assert len(splits_of_patient) == N_PATIENTS
    assert all(len(s) == 1 for s in splits_of_patient.values())
    assert {h.split for h in hips} == {"train", "validation", "test"}
    assert version.counts["train"]["normal"] == sum(h.split == "train" and h.hip_class == "normal" for h in hips)
    assert version.fractions == pytest.approx([0.6, 0.25, 0.15])


def test_hash_is_stable_and_a_refreeze_returns_the_same_version(truth):
    version, _ = ml_services.dataset_freeze(seed=5)
    again, created = ml_services.dataset_freeze(seed=5)
    assert not created and again.pk == version.pk
    assert DatasetVersion.objects.count() == 1
    # The hash is the SHA-256 over the sorted rows, as documented.
    lines = sorted(
        json.dumps([h.radiograph.sha256, h.side, h.hip_class, repr(h.x), repr(h.y), repr(h.width), repr(h.height),
                    h.split])
        for h in version.hips.select_related("radiograph")
    )  # fmt: skip
    assert version.content_hash == hashlib.sha256("".join(f"{line}\n" for line in lines).encode()).hexdigest()


def test_a_later_change_of_the_truth_makes_a_new_version_and_leaves_the_old_one(truth):
    old, _ = ml_services.dataset_freeze(seed=5)
    before = list(old.hips.values_list("radiograph_id", "side", "hip_class", "split"))
    hip = GroundTruthHip.objects.filter(hip_class="normal").first()
    hip.hip_class = "fn_displaced"
    hip.save()
    new, created = ml_services.dataset_freeze(seed=5)
    assert created and new.content_hash != old.content_hash
    assert list(old.hips.values_list("radiograph_id", "side", "hip_class", "split")) == before
    assert new.hips.get(radiograph_id=hip.radiograph_id, side=hip.side).hip_class == "fn_displaced"


def test_freezing_nothing_is_refused(db):
    with pytest.raises(ValueError, match="no ground truth"):
        ml_services.dataset_freeze(seed=1)


def test_table1_counts_chi2_and_demographics(truth):
    version, _ = ml_services.dataset_freeze(seed=2)
    table = ml_services.table1(version=version)
    hips = list(version.hips.select_related("radiograph__study", "patient"))
    splits = ["train", "validation", "test"]
    classes = ["normal", "fn_displaced", "fn_nondisplaced", "intertrochanteric", "orif", "arthroplasty"]
    by_hand = np.array([[sum(h.split == s and h.hip_class == c for h in hips) for s in splits] for c in classes])
    assert [row["counts"] for row in table["classes"]] == by_hand.tolist()
    assert [row["total"] for row in table["classes"]] == by_hand.sum(axis=1).tolist()
    fracture = np.array([[sum(h.split == s and (h.hip_class in FRACTURE_CLASSES) == f for h in hips) for s in splits]
                         for f in (True, False)])  # fmt: skip
    assert [row["counts"] for row in table["binary"]] == fracture.tolist()
    assert table["hips"] == by_hand.sum(axis=0).tolist()

    expected = chi2_contingency(by_hand[by_hand.sum(axis=1) > 0], correction=False)
    assert table["chi2_multiclass"]["statistic"] == pytest.approx(expected.statistic)
    assert table["chi2_multiclass"]["dof"] == expected.dof
    assert table["chi2_multiclass"]["p"] == pytest.approx(expected.pvalue)
    expected = chi2_contingency(fracture, correction=False)
    assert table["chi2_binary"]["statistic"] == pytest.approx(expected.statistic)
    assert table["chi2_binary"]["dof"] == expected.dof == 2
    assert table["chi2_binary"]["p"] == pytest.approx(expected.pvalue)

    for row in table["per_split"]:
        mine = [h for h in hips if h.split == row["split"]]
        patients = {h.patient for h in mine}
        assert row["patients"] == len(patients)
        assert row["radiographs"] == len({h.radiograph_id for h in mine})
        ages = [s.patient_age_years for s in {h.radiograph.study for h in mine}]
        assert row["age_mean"] == pytest.approx(np.mean(ages))
        assert row["female_percent"] == pytest.approx(100 * np.mean([p.sex == "F" for p in patients]))
    assert sum(r["patients"] for r in table["per_split"]) == N_PATIENTS
    text = ml_services.table1_text(version=version, table=table)
    assert "fn_displaced" in text and "P = " in text


def test_truth_from_two_agreeing_labellers_is_frozen(users, dicom_bytes):
    from django.contrib.auth.models import Group

    lena = users["labeler"]
    luke = UserFactory(username="luke")
    luke.groups.add(Group.objects.get(name="labeler"))
    for i in range(3):
        ingest(dicom_bytes, i)
    hips = [HipInput("right", "normal", 10, 20, 100, 100), HipInput("left", "intertrochanteric", 130, 20, 100, 100)]
    for user in (lena, luke):
        while (assignment := labelling.assignment_next(user=user)) is not None:
            labelling.assignment_submit(assignment_id=assignment.id, user=user, hips=hips)
    version, created = ml_services.dataset_freeze(seed=0)
    assert created and version.hips.count() == 6
    assert sorted(version.hips.values_list("hip_class", flat=True)) == ["intertrochanteric"] * 3 + ["normal"] * 3


def test_table1_gives_the_share_of_hips_from_model_proposals(users, dicom_bytes, client_as, settings):
    """Provenance comes from annotate's ground-truth rows as they were when the version was frozen."""
    from django.contrib.auth.models import Group
    from django.utils import timezone

    lena = users["labeler"]
    luke = UserFactory(username="luke")
    luke.groups.add(Group.objects.get(name="labeler"))
    radiographs = [ingest(dicom_bytes, i) for i in range(3)]
    for radiograph in radiographs[:2]:
        labelling.proposals_replace(
            radiograph_id=radiograph.id,
            proposals=[labelling.ProposalInput("right", 10, 20, 100, 100, 0.9, "normal")],
            model_label="detector v1",
        )
    right, left = HipInput("right", "normal", 10, 20, 100, 100), HipInput("left", "orif", 130, 20, 100, 100)
    accepted = HipInput("right", "normal", 10, 20, 100, 100, source="model")
    # Lena accepts the first radiograph's proposal with its class shown, the second's as a box only.
    for index, show in enumerate((True, False, False)):
        settings.PROPOSALS_SHOW_CLASS = show
        mine = labelling.assignment_next(user=lena)
        assert mine.radiograph_id == radiographs[index].id
        labelling.assignment_submit(assignment_id=mine.id, user=lena, hips=[accepted if index < 2 else right, left])
    while (assignment := labelling.assignment_next(user=luke)) is not None:
        labelling.assignment_submit(assignment_id=assignment.id, user=luke, hips=[right, left])
    version, _ = ml_services.dataset_freeze(seed=0)
    origin = ml_services.table1(version=version)["provenance"]
    assert origin["unknown"] == 0
    assert (origin["total"]["hips"], origin["total"]["from_proposal"], origin["total"]["class_kept"]) == (6, 2, 1)
    assert origin["total"]["from_proposal_percent"] == pytest.approx(100 * 2 / 6)
    assert sum(s["from_proposal"] for s in origin["per_split"]) == 2
    assert [s["hips"] for s in origin["per_split"]] == ml_services.table1(version=version)["hips"]

    page = client_as("researcher").get(f"/models/datasets/{version.pk}/").content.decode()
    assert "Label from a model's proposal" in page
    share_row = page.split('id="proposal-share"')[1].split("</tr>")[0]
    assert "<td>2 (33.3%)</td>" in share_row
    kept_row = page.split('id="class-kept-share"')[1].split("</tr>")[0]
    assert "<td>1 (16.7%)</td>" in kept_row
    assert "from a proposal" in ml_services.table1_text(version=version)
    api = client_as("researcher").get(f"/api/datasets/{version.pk}/").json()
    assert api["table1"]["provenance"]["total"]["from_proposal"] == 2

    # The truth's row replaced later (say, relabelled by hand): the frozen version keeps what it copied.
    old = GroundTruthHip.objects.get(radiograph=radiographs[0], side="right", removed_at__isnull=True)
    old.removed_at = timezone.now()
    old.save()
    GroundTruthHip.objects.create(
        radiograph=old.radiograph, adjudication=old.adjudication, side="right", hip_class=old.hip_class,
        x=old.x, y=old.y, width=old.width, height=old.height, provenance="drawn",
    )  # fmt: skip
    assert ml_services.table1(version=version)["provenance"]["total"]["class_kept"] == 1
    newer, created = ml_services.dataset_freeze(seed=0)
    assert not created and newer.pk == version.pk  # same content: the same version


def test_make_dataset_prints_table1_and_the_id_last(truth):
    out = io.StringIO()
    call_command("make_dataset", "--seed", "3", "--name", "cli", stdout=out)
    lines = out.getvalue().strip().splitlines()
    version = DatasetVersion.objects.get()
    assert lines[-1] == str(version.pk) and version.name == "cli" and version.seed == 3
    assert any("χ²" in line for line in lines) and any(line.startswith("patients") for line in lines)
    out = io.StringIO()
    call_command("make_dataset", "--seed", "3", stdout=out)
    assert out.getvalue().strip().splitlines()[-1] == str(version.pk)
    assert DatasetVersion.objects.count() == 1


def test_make_dataset_without_truth_fails_clearly(db):
    with pytest.raises(CommandError, match="no ground truth"):
        call_command("make_dataset", "--seed", "3", stdout=io.StringIO())


# --- Pages and API -----------------------------------------------------------------


@pytest.mark.parametrize("role, allowed", [("researcher", True), ("staff", True), ("labeler", False),
                                           ("reader", False), ("adjudicator", False), ("norole", False)])  # fmt: skip
def test_pages_are_for_researchers(truth, client_as, role, allowed):
    version, _ = ml_services.dataset_freeze(seed=1)
    client = client_as(role)
    for url in ("/models/datasets/", f"/models/datasets/{version.pk}/"):
        response = client.get(url)
        assert response.status_code == (200 if allowed else 403), url
    response = client.post("/models/datasets/", {"seed": 9})
    assert response.status_code == (302 if allowed else 403)
    assert DatasetVersion.objects.count() == (2 if allowed else 1)


def test_pages_send_anonymous_users_to_login(client_as):
    response = client_as(None).get("/models/datasets/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_pages_freeze_and_show_table1(truth, client_as):
    client = client_as("researcher")
    response = client.post("/models/datasets/", {"seed": 4, "name": "web"})
    version = DatasetVersion.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/models/datasets/{version.pk}/"
    assert version.created_by.username == "alice"
    page = client.get(response["Location"]).content.decode()
    assert "Table 1" in page and "fn_displaced" in page and version.content_hash in page and "χ²" in page
    listing = client.get("/models/datasets/").content.decode()
    assert "Freeze a new dataset version" in listing and "web" in listing
    again = client.post("/models/datasets/", {"seed": 4}, follow=True)
    assert DatasetVersion.objects.count() == 1 and "unchanged" in again.content.decode()


def test_page_shows_a_clear_error_without_truth(users, client_as):
    response = client_as("researcher").post("/models/datasets/", {"seed": 1})
    assert response.status_code == 200 and "no ground truth" in response.content.decode()


@pytest.mark.parametrize("role", ["labeler", "reader", "adjudicator", "norole", None])
def test_api_refuses_other_roles(truth, client_as, role):
    version, _ = ml_services.dataset_freeze(seed=1)
    client = client_as(role)
    for url in ("/api/datasets/", f"/api/datasets/{version.pk}/", f"/api/datasets/{version.pk}/hips.csv"):
        assert client.get(url).status_code in (401, 403), url
    assert client.post("/api/datasets/", {"seed": 2}, content_type="application/json").status_code in (401, 403)
    assert DatasetVersion.objects.count() == 1


def test_api_for_researchers(truth, client_as):
    client = client_as("researcher")
    response = client.post("/api/datasets/", {"seed": 6, "name": "api"}, content_type="application/json")
    assert response.status_code == 201
    body = response.json()
    assert body["created"] and body["name"] == "api" and body["created_by"] == "alice"
    assert body["table1"]["chi2_multiclass"]["dof"] >= 2
    again = client.post("/api/datasets/", {"seed": 6}, content_type="application/json")
    assert again.status_code == 200 and again.json()["id"] == body["id"] and not again.json()["created"]
    assert client.post("/api/datasets/", {"seed": "x"}, content_type="application/json").status_code == 400

    listing = client.get("/api/datasets/").json()
    assert [item["id"] for item in listing] == [body["id"]]
    detail = client.get(f"/api/datasets/{body['id']}/").json()
    assert detail["content_hash"] == body["content_hash"] and detail["table1"] == body["table1"]
    assert client.get("/api/datasets/999999/").status_code == 404

    response = client.get(f"/api/datasets/{body['id']}/hips.csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == DatasetHip.objects.filter(dataset_id=body["id"]).count() == 2 * N_RADIOGRAPHS
    assert {r["split"] for r in rows} == {"train", "validation", "test"}
    assert all(r["radiograph_sha256"] and r["patient"].startswith("P-") for r in rows)


def test_api_in_openapi_schema(client_as):
    response = client_as("researcher").get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    schema = json.loads(response.content)
    assert {"/api/datasets/", "/api/datasets/{id}/", "/api/datasets/{id}/hips.csv"} <= set(schema["paths"])
    assert "post" in schema["paths"]["/api/datasets/"]
