"""Provenance of labels: whether each labeller's hip and each ground-truth hip
began as a model's proposal, decided by the server; the model's class sent only
where the site turns it on; the shares on the agreement page and in the
deviations' facts."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from annotate import services
from annotate.labelling import exchange, provenance
from annotate.labelling import services as labelling
from annotate.labelling.services import HipInput, ProposalInput
from annotate.labels import Adjudication, Assignment, GroundTruthHip, HipLabel
from annotate.models import Radiograph
from ml.core import deviations
from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.django_db

RIGHT = (12.0, 22.0, 98.0, 101.0)
LEFT = (131.0, 19.0, 99.0, 102.0)


@pytest.fixture
def radiograph(dicom_bytes) -> Radiograph:  # 240 columns x 256 rows
    outcome = services.radiograph_ingest(data=dicom_bytes(seed=0), name="0.dcm", source="cli")
    radiograph = Radiograph.objects.get(id=outcome.radiograph_id)
    labelling.proposals_replace(
        radiograph_id=radiograph.id,
        proposals=[ProposalInput("right", *RIGHT, 0.97, "normal"), ProposalInput("left", *LEFT, 0.9, "")],
        model_label="detector v3",
    )
    return radiograph


@pytest.fixture
def luke(users):
    user = UserFactory(username="luke")
    user.groups.add(Group.objects.get(name="labeler"))
    return user


def hip(side: str, hip_class: str, source: str = "manual", **extra) -> dict:
    box = RIGHT if side == "right" else LEFT
    return {"side": side, "hip_class": hip_class, "x": box[0], "y": box[1], "width": box[2], "height": box[3],
            "source": source, **extra}  # fmt: skip


def put(client: Client, url: str, body: dict):
    return client.put(url, json.dumps(body), content_type="application/json")


def live(assignment_id: int) -> dict[str, HipLabel]:
    return {h.side: h for h in HipLabel.objects.filter(assignment_id=assignment_id, removed_at__isnull=True)}


# --- a labeller's hip ------------------------------------------------------------------------


def test_by_default_the_class_stays_on_the_server_and_accepted_hips_are_proposal_boxes(client_as, users, radiograph):
    client = client_as("labeler")
    taken = client.post("/api/labelling/next/").json()
    assert taken["proposals_show_class"] is False
    assert [sorted(p) for p in taken["proposals"]] == [
        ["height", "id", "model", "score", "side", "width", "x", "y"]
    ] * 2
    url = f"/api/labelling/assignments/{taken['id']}/"
    # The page claims a kept class: the server decides, from what it showed (nothing).
    body = {"hips": [hip("right", "normal", "model", provenance="proposal_class_kept", proposal_class="normal"),
                     hip("left", "orif")]}  # fmt: skip
    response = put(client, url, body)
    assert response.status_code == 200, response.json()
    assert "provenance" not in response.content.decode() and "proposal_class" not in response.content.decode()
    hips = live(taken["id"])
    assert (hips["right"].source, hips["right"].proposal_class, hips["right"].provenance) == (
        "model", "", "proposal_box"
    )  # fmt: skip
    assert (hips["left"].source, hips["left"].provenance) == ("manual", "drawn")


def test_with_the_class_shown_kept_and_changed_are_computed_from_the_stored_proposal(
    client_as, users, radiograph, settings
):
    settings.PROPOSALS_SHOW_CLASS = True
    client = client_as("labeler")
    taken = client.post("/api/labelling/next/").json()
    assert taken["proposals_show_class"] is True
    assert [(p["side"], p["hip_class"]) for p in taken["proposals"]] == [("right", "normal"), ("left", "")]
    url = f"/api/labelling/assignments/{taken['id']}/"

    # Right: shown "normal", labelled "fn_displaced" (changed), whatever the page says about it.
    # Left: its proposal had no class, so only its box was shown.
    saved = put(client, url, {"hips": [hip("right", "fn_displaced", "model", provenance="proposal_class_kept"),
                                       hip("left", "orif", "model")]}).json()  # fmt: skip
    hips = live(taken["id"])
    assert {s: (h.proposal_class, h.provenance) for s, h in hips.items()} == {
        "right": ("normal", "proposal_class_changed"),
        "left": ("", "proposal_box"),
    }

    # Back to the shown class: kept. A box nudged after accepting stays a proposal.
    right = next(h for h in saved["hips"] if h["side"] == "right")
    left = next(h for h in saved["hips"] if h["side"] == "left")
    put(client, url, {"hips": [dict(right, hip_class="normal", x=15.0, width=90.0), left]})
    assert live(taken["id"])["right"].provenance == "proposal_class_kept"
    assert live(taken["id"])["right"].x == 15.0

    # A newer model reading that shows another class does not rewrite what this labeller was shown.
    labelling.proposals_replace(
        radiograph_id=radiograph.id, proposals=[ProposalInput("right", *RIGHT, 0.9, "orif")], model_label="v4"
    )
    put(client, url, {"hips": [dict(right, hip_class="normal"), left]})
    assert live(taken["id"])["right"].provenance == "proposal_class_kept"

    # Deleted and drawn again by hand (no id, source manual): drawn.
    response = put(client, url, {"hips": [hip("right", "normal"), left]})
    assert response.status_code == 200
    assert live(taken["id"])["right"].provenance == "drawn"


def test_an_accepted_hip_whose_proposal_is_gone_is_a_proposal_box(users, radiograph, settings):
    settings.PROPOSALS_SHOW_CLASS = True
    lena = users["labeler"]
    taken = labelling.assignment_next(user=lena)
    labelling.proposals_replace(radiograph_id=radiograph.id, proposals=[], model_label="v4")
    labelling.assignment_save(
        assignment_id=taken.id, user=lena, hips=[HipInput("right", "normal", *RIGHT, source="model")]
    )
    assert live(taken.id)["right"].provenance == "proposal_box"


def test_switching_the_setting_off_later_keeps_what_was_shown(users, radiograph, settings):
    settings.PROPOSALS_SHOW_CLASS = True
    lena = users["labeler"]
    taken = labelling.assignment_next(user=lena)
    labelling.assignment_save(
        assignment_id=taken.id, user=lena, hips=[HipInput("right", "normal", *RIGHT, source="model")]
    )
    settings.PROPOSALS_SHOW_CLASS = False
    edited = HipInput("right", "orif", *RIGHT, source="model", id=live(taken.id)["right"].id)
    labelling.assignment_save(assignment_id=taken.id, user=lena, hips=[edited])
    assert (live(taken.id)["right"].proposal_class, live(taken.id)["right"].provenance) == (
        "normal", "proposal_class_changed"
    )  # fmt: skip


def test_bad_provenance_input_is_a_400_not_a_500(client_as, users, radiograph):
    client = client_as("labeler")
    taken = client.post("/api/labelling/next/").json()
    url = f"/api/labelling/assignments/{taken['id']}/"
    for bad in ({"hips": [hip("right", "normal", "proposal_box")]}, {"hips": [hip("right", "normal", None)]},
                {"hips": "model"}):  # fmt: skip
        assert put(client, url, bad).status_code == 400, bad
    assert not HipLabel.objects.filter(assignment_id=taken["id"]).exists()


def test_the_admin_shows_provenance_but_cannot_set_it(client_as, users, radiograph):
    lena = users["labeler"]
    taken = labelling.assignment_next(user=lena)
    labelling.assignment_save(
        assignment_id=taken.id, user=lena, hips=[HipInput("right", "normal", *RIGHT, source="model")]
    )
    users["staff"].is_superuser = True
    users["staff"].save()
    page = client_as("staff").get(f"/admin/annotate/hiplabel/{live(taken.id)['right'].id}/change/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Proposal box, own class" in text and 'name="provenance"' not in text and 'name="source"' not in text


# --- the ground truth ------------------------------------------------------------------------


def submit(user, hips: list[HipInput]) -> Assignment:
    taken = labelling.assignment_next(user=user)
    return labelling.assignment_submit(assignment_id=taken.id, user=user, hips=hips)


def truth() -> dict[str, tuple[str, str]]:
    return {h.side: (h.hip_class, h.provenance) for h in GroundTruthHip.objects.filter(removed_at__isnull=True)}


def test_agreed_truth_takes_the_most_anchored_label_of_its_side(users, luke, radiograph, settings):
    settings.PROPOSALS_SHOW_CLASS = True
    # Lena keeps the right proposal's shown class and takes the left box (no class shown);
    # Luke draws both by hand, with the same classes: they agree.
    submit(users["labeler"], [HipInput("right", "normal", *RIGHT, source="model"),
                              HipInput("left", "orif", *LEFT, source="model")])  # fmt: skip
    submit(luke, [HipInput("right", "normal", *RIGHT), HipInput("left", "orif", *LEFT)])
    assert Adjudication.objects.get().status == Adjudication.Status.AGREED
    assert truth() == {"right": ("normal", "proposal_class_kept"), "left": ("orif", "proposal_box")}


def test_agreed_truth_drawn_by_both_is_drawn(users, luke, radiograph):
    for user in (users["labeler"], luke):
        submit(user, [HipInput("right", "normal", *RIGHT)])
    assert truth() == {"right": ("normal", "drawn")}


def test_adjudicated_truth_compares_its_class_with_the_class_shown(users, luke, radiograph, settings, client_as):
    settings.PROPOSALS_SHOW_CLASS = True
    # Lena was shown "normal" and changed it to "orif"; Luke drew "fn_displaced": they disagree.
    submit(users["labeler"], [HipInput("right", "orif", *RIGHT, source="model")])
    submit(luke, [HipInput("right", "fn_displaced", *RIGHT)])
    adjudication = Adjudication.objects.get()
    assert adjudication.status == Adjudication.Status.PENDING
    client = client_as("adjudicator")
    url = f"/api/adjudications/{adjudication.id}/resolve/"

    def resolve(hips: list[dict]) -> None:
        response = client.post(url, json.dumps({"hips": hips, "truth_source": "ct"}), content_type="application/json")
        assert response.status_code == 200, response.json()

    resolve([hip("right", "fn_displaced")])  # Luke's class: not the one shown, but a proposal was in play
    assert truth() == {"right": ("fn_displaced", "proposal_class_changed")}
    # The adjudicator's class equals the model's shown class: kept. A hip no labeller gave: drawn.
    resolve([hip("right", "normal"), hip("left", "arthroplasty")])
    assert truth() == {"right": ("normal", "proposal_class_kept"), "left": ("arthroplasty", "drawn")}
    # The adjudicator cannot set provenance either.
    resolve([hip("right", "fn_displaced", provenance="drawn")])
    assert truth() == {"right": ("fn_displaced", "proposal_class_changed")}
    rows = client_as("researcher").get("/api/ground-truth/").json()
    assert [(r["side"], r["provenance"]) for r in rows] == [("right", "proposal_class_changed")]


def test_agreement_statistics_and_page_show_the_share_from_proposals(users, luke, dicom_bytes, client_as, settings):
    settings.PROPOSALS_SHOW_CLASS = True
    radiographs = []
    for seed in range(2):
        outcome = services.radiograph_ingest(data=dicom_bytes(seed=seed), name=f"{seed}.dcm", source="cli")
        radiographs.append(outcome.radiograph_id)
    labelling.proposals_replace(
        radiograph_id=radiographs[0], proposals=[ProposalInput("right", *RIGHT, 0.9, "normal")], model_label="v3"
    )
    # First radiograph: right hip kept from the proposal, left drawn; second: both drawn.
    for user in (users["labeler"], luke):
        source = "model" if user == luke else "manual"
        submit(user, [HipInput("right", "normal", *RIGHT, source=source), HipInput("left", "orif", *LEFT)])
        submit(user, [HipInput("right", "normal", *RIGHT), HipInput("left", "normal", *LEFT)])
    stats = labelling.agreement_statistics()["provenance"]
    assert stats["hips"] == 4 and stats["from_proposal"] == 1 and stats["class_kept"] == 1
    assert stats["from_proposal_share"] == pytest.approx(0.25) and stats["class_kept_share"] == pytest.approx(0.25)
    assert stats["counts"] == {"drawn": 3, "proposal_box": 0, "proposal_class_kept": 1, "proposal_class_changed": 0}

    page = client_as("researcher").get("/labelling/agreement/").content.decode()
    assert 'id="proposal-share">25.0%' in page and 'id="class-kept-share">25.0%' in page
    assert "<strong>shown</strong> to labellers" in page
    api = client_as("adjudicator").get("/api/labelling/agreement/").json()
    assert api["provenance"]["from_proposal"] == 1

    # The deviations registry's labelling entries, from the same facts.
    facts = provenance.proposal_facts()
    assert facts["proposals_show_class"] is True and facts["proposal_share"] == pytest.approx(0.25)
    keys = [row["key"] for row in deviations.applicable("labelling", facts)]
    assert keys == ["proposal-class-shown", "proposal-boxes"]
    rows = {row["key"]: row for row in deviations.study_deviations(facts)}
    assert rows["proposal-boxes"]["detail"] == "25.0% of ground-truth hips came from a proposal"
    settings.PROPOSALS_SHOW_CLASS = False  # the truth still holds a kept class: it still applies
    assert provenance.proposal_facts()["proposals_show_class"] is True


def test_no_labelling_deviation_without_proposals(users, luke, dicom_bytes):
    services.radiograph_ingest(data=dicom_bytes(seed=0), name="0.dcm", source="cli")
    for user in (users["labeler"], luke):
        submit(user, [HipInput("right", "normal", *RIGHT)])
    facts = provenance.proposal_facts()
    assert facts == {"proposals_show_class": False, "proposal_share": 0.0, "proposal_class_kept_share": 0.0,
                     "ground_truth_hips": 1}  # fmt: skip
    assert deviations.applicable("labelling", facts) == []
    empty = provenance.provenance_summary([])
    assert empty["hips"] == 0 and empty["from_proposal_share"] is None


def test_the_agreement_page_without_ground_truth(client_as, users):
    page = client_as("researcher").get("/labelling/agreement/").content.decode()
    assert 'id="proposal-share">–' in page and "not shown to labellers (boxes only)" in page


# --- the CSV export ------------------------------------------------------------------------------


def test_csv_export_has_the_provenance_of_each_hip_and_imports_ignore_it(users, luke, radiograph, settings):
    settings.PROPOSALS_SHOW_CLASS = True
    submit(users["labeler"], [HipInput("right", "normal", *RIGHT, source="model")])
    submit(luke, [HipInput("right", "normal", *RIGHT)])
    rows = list(csv.DictReader(io.StringIO(exchange.annotations_export(fmt="csv", ground_truth=False).data.decode())))
    assert [(r["labeler"], r["provenance"]) for r in rows] == [("lena", "proposal_class_kept"), ("luke", "drawn")]
    assert list(rows[0])[-1] == "provenance"  # the last column: the others keep their places
    truth_rows = exchange.annotations_export(fmt="csv", ground_truth=True).data.decode()
    (row,) = csv.DictReader(io.StringIO(truth_rows))
    assert (row["labeler"], row["provenance"]) == ("ground_truth", "proposal_class_kept")

    # A COCO export imported as another labeller's work: an import is drawn, whatever its origin was.
    mia = UserFactory(username="mia")
    mia.groups.add(Group.objects.get(name="labeler"))
    Assignment.objects.create(radiograph=radiograph, slot=3)  # a third reading, free for her
    coco = exchange.annotations_export(fmt="coco", ground_truth=False).data
    report = exchange.annotations_import(fmt="coco", data=coco, username="mia", labeler="lena")
    assert report.submitted == 1
    imported = HipLabel.objects.get(assignment__labeler=mia, removed_at__isnull=True)
    assert (imported.source, imported.provenance) == ("import", "drawn")


# --- rows from before provenance -------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_migration_maps_the_old_source_to_a_provenance(users, luke, radiograph):
    """Labels made before provenance existed: "model" becomes proposal_box, the rest drawn,
    and a ground-truth hip whose side a labeller took from a proposal is proposal_box."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    submit(users["labeler"], [HipInput("right", "normal", *RIGHT, source="model"), HipInput("left", "orif", *LEFT)])
    submit(luke, [HipInput("right", "normal", *RIGHT), HipInput("left", "orif", *LEFT)])
    try:
        executor = MigrationExecutor(connection)
        executor.migrate([("annotate", "0006_access_log")])  # the columns go
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate([("annotate", "0007_label_provenance")])  # and come back, filled from the source
        labels = {(h.assignment.labeler.username, h.side): h.provenance for h in HipLabel.objects.all()}
        assert labels == {("lena", "right"): "proposal_box", ("lena", "left"): "drawn",
                          ("luke", "right"): "drawn", ("luke", "left"): "drawn"}  # fmt: skip
        assert truth() == {"right": ("normal", "proposal_box"), "left": ("orif", "drawn")}
    finally:  # the later tests share this database: leave it at the newest schema
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
