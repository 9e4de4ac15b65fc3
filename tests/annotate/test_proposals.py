"""Pre-labelling: the detector's proposals, written by ml, shown to a radiograph's
labellers, and the source of the hips they accept."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.test import Client

from annotate import services
from annotate.labelling import services as labelling
from annotate.labelling.services import HipInput, ProposalInput
from annotate.labels import Adjudication, GroundTruthHip, HipLabel, HipProposal
from annotate.models import Radiograph
from ml import proposals as ml_proposals
from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.django_db

RIGHT = ProposalInput("right", 12.0, 22.0, 98.0, 101.0, 0.97, "normal")
LEFT = ProposalInput("left", 131.0, 19.0, 99.0, 102.0, 0.88)


@pytest.fixture
def radiographs(dicom_bytes) -> list[Radiograph]:  # 240 columns x 256 rows each
    ids = [services.radiograph_ingest(data=dicom_bytes(seed=s), name=f"{s}.dcm", source="cli").radiograph_id
           for s in range(2)]  # fmt: skip
    return list(Radiograph.objects.filter(id__in=ids).order_by("id"))


@pytest.fixture
def luke(users):
    user = UserFactory(username="luke")
    user.groups.add(Group.objects.get(name="labeler"))
    return user


def put(client, url, body):
    return client.put(url, json.dumps(body), content_type="application/json")


def post(client, url, body):
    return client.post(url, json.dumps(body), content_type="application/json")


def rows(radiograph: Radiograph) -> dict[str, tuple]:
    return {
        p.side: (p.x, p.y, p.width, p.height, p.score, p.hip_class, p.model)
        for p in HipProposal.objects.filter(radiograph=radiograph)
    }


# --- the service ---------------------------------------------------------------------


def test_proposals_replace_keeps_the_newest_per_side(radiographs):
    first, second = radiographs
    made = labelling.proposals_replace(radiograph_id=first.id, proposals=[LEFT, RIGHT], model_label="detector v1")
    assert [p.side for p in made] == ["right", "left"]
    assert rows(first) == {
        "right": (12.0, 22.0, 98.0, 101.0, 0.97, "normal", "detector v1"),
        "left": (131.0, 19.0, 99.0, 102.0, 0.88, "", "detector v1"),
    }
    labelling.proposals_replace(radiograph_id=second.id, proposals=[RIGHT], model_label="detector v1")

    # A newer model's answer replaces the older per side; a side it did not
    # find keeps no stale box; other radiographs are untouched.
    newer = ProposalInput("right", 15.0, 25.0, 95.0, 96.0, 0.91, "fn_displaced")
    labelling.proposals_replace(radiograph_id=first.id, proposals=[newer], model_label="detector v2")
    assert rows(first) == {"right": (15.0, 25.0, 95.0, 96.0, 0.91, "fn_displaced", "detector v2")}
    assert rows(second) == {"right": (12.0, 22.0, 98.0, 101.0, 0.97, "normal", "detector v1")}

    # Storing the same answer again changes nothing (idempotent for a retried task).
    labelling.proposals_replace(radiograph_id=first.id, proposals=[newer], model_label="detector v2")
    assert HipProposal.objects.filter(radiograph=first).count() == 1


def test_proposals_are_clipped_to_the_image_and_bad_ones_refused(radiographs):
    radiograph = radiographs[0]
    past_edge = ProposalInput("left", 200.0, -5.0, 60.0, 100.0, 0.5)
    labelling.proposals_replace(radiograph_id=radiograph.id, proposals=[past_edge], model_label="detector v1")
    assert rows(radiograph)["left"][:4] == (200.0, 0.0, 40.0, 95.0)

    bad = {
        "one proposal per side": [RIGHT, RIGHT],
        "unknown side": [ProposalInput("middle", 1, 1, 10, 10, 0.5)],
        "unknown class": [ProposalInput("right", 1, 1, 10, 10, 0.5, "broken")],
        "not between 0 and 1": [ProposalInput("right", 1, 1, 10, 10, 1.5)],
        "finite numbers": [ProposalInput("right", float("nan"), 1, 10, 10, 0.5)],
        "outside the image": [ProposalInput("right", 500, 1, 10, 10, 0.5)],
    }
    for message, proposals in bad.items():
        with pytest.raises(ValidationError, match=message):
            labelling.proposals_replace(radiograph_id=radiograph.id, proposals=proposals, model_label="detector v2")
    with pytest.raises(ValidationError, match="which model"):
        labelling.proposals_replace(radiograph_id=radiograph.id, proposals=[RIGHT], model_label=" ")
    # A refused answer leaves the older proposals as they were.
    assert rows(radiograph)["left"][6] == "detector v1"


# --- the assignment API ----------------------------------------------------------------


def test_the_assignment_shows_its_radiographs_proposals_and_nothing_of_another_labeller(
    client_as, users, radiographs, luke
):
    first, second = radiographs
    labelling.proposals_replace(radiograph_id=first.id, proposals=[RIGHT, LEFT], model_label="detector v3")
    labelling.proposals_replace(
        radiograph_id=second.id, proposals=[ProposalInput("right", 7.0, 8.0, 50.0, 60.0, 0.42)], model_label="other"
    )
    # Luke labels the first radiograph before Lena, with a box of his own.
    other = Client()
    other.force_login(luke)
    his = other.post("/api/labelling/next/").json()
    his_hip = {"side": "right", "hip_class": "orif", "x": 33.25, "y": 44.75, "width": 77.5, "height": 66.5}
    post(other, f"/api/labelling/assignments/{his['id']}/submit/", {"hips": [his_hip]})

    lena = client_as("labeler")
    mine = lena.post("/api/labelling/next/").json()
    assert mine["radiograph"]["id"] == first.id and mine["hips"] == []
    assert mine["proposals_show_class"] is False
    proposals = lena.get(f"/api/labelling/assignments/{mine['id']}/").json()["proposals"]
    # Boxes only: the model's class does not leave the server (PROPOSALS_SHOW_CLASS is off).
    assert [(p["side"], p["x"], p["score"], p["model"]) for p in proposals] == [
        ("right", 12.0, 0.97, "detector v3"),
        ("left", 131.0, 0.88, "detector v3"),
    ]
    assert all("hip_class" not in p for p in proposals)
    text = lena.get(f"/api/labelling/assignments/{mine['id']}/").content.decode()
    assert "normal" not in text  # the right proposal's class, nowhere in the answer
    assert "orif" not in text and "33.25" not in text and "luke" not in text  # nothing of Luke's work
    assert "0.42" not in text and "other" not in text  # nor the other radiograph's proposals

    # A radiograph without proposals: an empty list, the page works as before.
    HipProposal.objects.all().delete()
    assert lena.get(f"/api/labelling/assignments/{mine['id']}/").json()["proposals"] == []


def test_accepted_proposals_keep_source_model_through_autosave_edits_and_submit(client_as, users, radiographs):
    client = client_as("labeler")
    taken = client.post("/api/labelling/next/").json()
    url = f"/api/labelling/assignments/{taken['id']}/"
    accepted = {"side": "right", "hip_class": "normal", "x": 12, "y": 22, "width": 98, "height": 101, "source": "model"}
    drawn = {"side": "left", "hip_class": "orif", "x": 130, "y": 20, "width": 100, "height": 100}
    saved = put(client, url, {"hips": [accepted, drawn]}).json()
    assert {h["side"]: h["source"] for h in saved["hips"]} == {"right": "model", "left": "manual"}

    # Adjusted (moved, resized, reclassified) it stays "model"; a later message
    # cannot turn a hand-drawn hip into a model one, nor the other way round.
    by_side = {h["side"]: h for h in saved["hips"]}
    adjusted = dict(by_side["right"], x=15, width=90, hip_class="fn_displaced", source="manual")
    relabelled = dict(by_side["left"], source="model")
    put(client, url, {"hips": [adjusted, relabelled]})
    submitted = post(client, url + "submit/", {"hips": [adjusted, relabelled]}).json()
    assert submitted["status"] == "submitted"
    live = {h.side: h for h in HipLabel.objects.filter(assignment_id=taken["id"], removed_at__isnull=True)}
    assert (live["right"].source, live["right"].x, live["right"].hip_class) == ("model", 15, "fn_displaced")
    assert live["left"].source == "manual"
    assert HipLabel.objects.filter(assignment_id=taken["id"]).count() == 2  # edited in place, not re-created


def test_a_deleted_proposal_redrawn_by_hand_is_manual(client_as, users, radiographs):
    client = client_as("labeler")
    taken = client.post("/api/labelling/next/").json()
    url = f"/api/labelling/assignments/{taken['id']}/"
    hip = {"side": "right", "hip_class": "normal", "x": 12, "y": 22, "width": 98, "height": 101}
    put(client, url, {"hips": [dict(hip, source="model")]})
    saved = put(client, url, {"hips": [hip]}).json()  # no id: the old hip removed, a new one drawn
    assert [h["source"] for h in saved["hips"]] == ["manual"]


def test_a_client_cannot_set_import_or_any_other_source(client_as, users, radiographs):
    client = client_as("labeler")
    taken = client.post("/api/labelling/next/").json()
    url = f"/api/labelling/assignments/{taken['id']}/"
    hip = {"side": "right", "hip_class": "normal", "x": 12, "y": 22, "width": 98, "height": 101}
    for source in ["import", "truth", "MODEL", ""]:
        for send in (put, lambda c, u, b: post(c, u + "submit/", b)):
            response = send(client, url, {"hips": [dict(hip, source=source)]})
            assert response.status_code == 400, source
            message = response.json()["hips"]["0"]["source"][0]
            assert message.startswith('source must be "manual" (drawn by hand) or "model"'), message
    assert not HipLabel.objects.filter(assignment_id=taken["id"]).exists()
    # The services refuse an unknown source too; "import" stays for annotation files.
    lena = users["labeler"]
    with pytest.raises(ValidationError, match="unknown source"):
        labelling.assignment_save(assignment_id=taken["id"], user=lena, hips=[HipInput(**hip, source="robot")])


def test_accepted_proposals_reach_ground_truth_as_any_hip(client_as, users, radiographs, luke):
    """Agreement and truth read boxes and classes, whatever their source."""
    box = ("right", "normal", 12.0, 22.0, 98.0, 101.0)
    for user, source in ((users["labeler"], "model"), (luke, "manual")):
        taken = labelling.assignment_next(user=user)
        labelling.assignment_submit(assignment_id=taken.id, user=user, hips=[HipInput(*box, source=source)])
    adjudication = Adjudication.objects.get(radiograph=radiographs[0])
    assert adjudication.status == Adjudication.Status.AGREED
    truth = GroundTruthHip.objects.get(radiograph=radiographs[0])
    assert (truth.side, truth.hip_class, truth.box) == ("right", "normal", box[2:])


def test_the_adjudicator_still_resolves_with_hips_that_carry_a_source(client_as, users, radiographs, luke):
    for user, cls in ((users["labeler"], "normal"), (luke, "orif")):
        taken = labelling.assignment_next(user=user)
        labelling.assignment_submit(
            assignment_id=taken.id, user=user, hips=[HipInput("right", cls, 12, 22, 98, 101, source="model")]
        )
    adjudication = Adjudication.objects.get()
    client = client_as("adjudicator")
    chosen = client.get(f"/api/adjudications/{adjudication.id}/").json()["labellings"][1]["hips"]
    assert chosen[0]["source"] == "model"
    response = post(client, f"/api/adjudications/{adjudication.id}/resolve/", {"hips": chosen, "truth_source": "ct"})
    assert response.status_code == 200, response.json()
    assert GroundTruthHip.objects.get(removed_at__isnull=True).hip_class == "orif"


# --- the ml service ------------------------------------------------------------------


@dataclass
class Detection:  # what the detector pipeline hands over
    side: str
    box: tuple[float, float, float, float]
    score: float


@dataclass
class Prediction:  # what the classifier hands over
    side: str
    predicted_class: str


@dataclass
class FakeVersion:  # the fields of ml.models.ModelVersion that make the label
    pk: int
    kind: str
    config_name: str


def test_ml_stores_detections_as_proposals(radiographs):
    first, second = radiographs
    detections = [Detection("right", (12.0, 22.0, 98.0, 101.0), 0.97), Detection("left", (131, 19, 99, 102), 0.88)]
    made = ml_proposals.proposals_store(
        radiograph_id=first.id, detections=detections, model_version=FakeVersion(3, "detector", "cpu-small"),
        classifications=[Prediction("right", "fn_nondisplaced")],
    )  # fmt: skip
    assert [p.side for p in made] == ["right", "left"]
    assert rows(first) == {
        "right": (12.0, 22.0, 98.0, 101.0, 0.97, "fn_nondisplaced", "detector 3 (cpu-small)"),
        "left": (131.0, 19.0, 99.0, 102.0, 0.88, "", "detector 3 (cpu-small)"),
    }
    # Classes as a mapping, a model named by a string, numpy-like numbers.
    import numpy as np

    found = Detection("left", np.array([130.5, 20, 90, 95], np.float32), np.float32(0.5))
    ml_proposals.proposals_store(
        radiograph_id=second.id, detections=[found], model_version="detector v9",
        classifications={"left": "arthroplasty"},
    )  # fmt: skip
    assert rows(second) == {"left": (130.5, 20.0, 90.0, 95.0, 0.5, "arthroplasty", "detector v9")}
    # Without detections the radiograph has no proposals left.
    ml_proposals.proposals_store(radiograph_id=second.id, detections=[], model_version="detector v10")
    assert rows(second) == {}
    with pytest.raises(ValidationError, match="four numbers"):
        ml_proposals.proposals_store(
            radiograph_id=second.id, detections=[Detection("left", (1, 2), 0.5)], model_version="detector v10"
        )
