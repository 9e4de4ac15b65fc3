"""Blind double reading: the queue, saving, submitting, agreement and adjudication."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from annotate import services
from annotate.labelling import services as labelling
from annotate.labelling.services import HipInput
from annotate.labels import Adjudication, Assignment, GroundTruthHip, HipLabel
from annotate.models import Radiograph
from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.django_db

RIGHT = HipInput("right", "normal", 10, 20, 100, 100)
LEFT = HipInput("left", "fn_displaced", 130, 20, 100, 100)


@pytest.fixture
def radiographs(dicom_bytes):
    ids = [services.radiograph_ingest(data=dicom_bytes(seed=s), name=f"{s}.dcm", source="cli").radiograph_id
           for s in range(3)]  # fmt: skip
    return list(Radiograph.objects.filter(id__in=ids).order_by("id"))


@pytest.fixture
def labelers(users):
    from django.contrib.auth.models import Group

    second = UserFactory(username="luke")
    second.groups.add(Group.objects.get(name="labeler"))
    return users["labeler"], second


def label(user, hips, excluded=""):
    assignment = labelling.assignment_next(user=user)
    return labelling.assignment_submit(assignment_id=assignment.id, user=user, hips=hips, excluded=excluded)


def test_every_radiograph_gets_two_slots_at_import(radiographs):
    assert Assignment.objects.count() == 2 * len(radiographs)
    assert set(Assignment.objects.values_list("status", flat=True)) == {"open"}


def test_next_resumes_then_moves_on_and_never_gives_one_labeller_both_slots(radiographs, labelers):
    lena, _ = labelers
    first = labelling.assignment_next(user=lena)
    assert labelling.assignment_next(user=lena) == first  # leave and resume
    labelling.assignment_submit(assignment_id=first.id, user=lena, hips=[RIGHT])
    second = labelling.assignment_next(user=lena)
    assert second.radiograph_id != first.radiograph_id


def test_agreement_becomes_ground_truth(radiographs, labelers):
    lena, luke = labelers
    label(lena, [RIGHT, LEFT])
    shifted = HipInput("left", "fn_displaced", 135, 25, 100, 100)  # IoU 0.82
    label(luke, [RIGHT, shifted])
    adjudication = Adjudication.objects.get()
    assert adjudication.status == "agreed" and adjudication.truth_source == "agreement"
    truth = {h.side: h for h in GroundTruthHip.objects.all()}
    assert truth["left"].hip_class == "fn_displaced"
    assert truth["left"].x == pytest.approx(132.5)  # the mean of the two boxes


@pytest.mark.parametrize(
    "other, reason",
    [
        ([RIGHT, HipInput("left", "normal", 130, 20, 100, 100)], "left hip: fn_displaced / normal"),
        ([RIGHT, HipInput("left", "fn_displaced", 130, 100, 100, 100)], "IoU"),
        ([RIGHT], "left hip labelled by one labeller only"),
    ],
)
def test_disagreement_goes_to_adjudication(radiographs, labelers, other, reason):
    lena, luke = labelers
    label(lena, [RIGHT, LEFT])
    label(luke, other)
    adjudication = Adjudication.objects.get()
    assert adjudication.status == "pending"
    assert any(reason in r for r in adjudication.disagreements)
    assert not GroundTruthHip.objects.exists()


def test_adjudication_records_truth_source_and_who(radiographs, labelers, users):
    lena, luke = labelers
    label(lena, [RIGHT, LEFT])
    label(luke, [RIGHT, HipInput("left", "intertrochanteric", 130, 20, 100, 100)])
    adjudication = Adjudication.objects.get()
    with pytest.raises(ValidationError):
        labelling.adjudication_resolve(adjudication_id=adjudication.id, user=users["adjudicator"], hips=[RIGHT],
                                       truth_source="agreement")  # fmt: skip
    chosen = HipInput("left", "intertrochanteric", 131, 21, 99, 99)
    labelling.adjudication_resolve(adjudication_id=adjudication.id, user=users["adjudicator"],
                                   hips=[RIGHT, chosen], truth_source="ct", note="CT next day")  # fmt: skip
    adjudication.refresh_from_db()
    assert (adjudication.status, adjudication.truth_source, adjudication.decided_by) == (
        "resolved", "ct", users["adjudicator"])  # fmt: skip
    truth = labelling.ground_truth_hips().get(side="left")
    assert (truth.hip_class, truth.x, truth.width) == ("intertrochanteric", 131, 99)


def test_both_excluded_for_the_same_reason_agree(radiographs, labelers):
    lena, luke = labelers
    label(lena, [], excluded="cross_table_lateral")
    label(luke, [], excluded="cross_table_lateral")
    adjudication = Adjudication.objects.get()
    assert adjudication.status == "agreed" and adjudication.excluded == "cross_table_lateral"


def test_double_submit_stores_one_labelling(radiographs, labelers):
    lena, _ = labelers
    assignment = labelling.assignment_next(user=lena)
    first = labelling.assignment_submit(assignment_id=assignment.id, user=lena, hips=[RIGHT])
    again = labelling.assignment_submit(assignment_id=assignment.id, user=lena, hips=[RIGHT, LEFT])
    assert again.submitted_at == first.submitted_at
    assert HipLabel.objects.filter(assignment=assignment).count() == 1


def test_saving_edits_in_place_and_keeps_history(radiographs, labelers):
    lena, _ = labelers
    assignment = labelling.assignment_next(user=lena)
    labelling.assignment_save(assignment_id=assignment.id, user=lena, hips=[RIGHT, LEFT])
    hip = HipLabel.objects.get(side="left")
    moved = HipInput("left", "intertrochanteric", 131, 20, 100, 100, id=hip.id)
    labelling.assignment_save(assignment_id=assignment.id, user=lena, hips=[moved])
    hip.refresh_from_db()
    assert hip.hip_class == "intertrochanteric" and hip.x == 131
    right = HipLabel.objects.get(side="right")
    assert right.removed_at is not None  # removed, never deleted
    history = list(hip.history.order_by("history_date").values_list("hip_class", flat=True))
    assert history == ["fn_displaced", "intertrochanteric"]


@pytest.mark.parametrize(
    "hips, excluded, message",
    [
        ([RIGHT, HipInput("right", "normal", 0, 0, 10, 10)], "", "one hip"),
        ([HipInput("right", "normal", 200, 200, 100, 100)], "", "outside the image"),
        ([HipInput("right", "broken", 10, 10, 10, 10)], "", "unknown class"),
        ([RIGHT], "no_hip", "no hips"),
    ],
)
def test_invalid_labellings_are_refused(radiographs, labelers, hips, excluded, message):
    lena, _ = labelers
    assignment = labelling.assignment_next(user=lena)
    with pytest.raises(ValidationError, match=message):
        labelling.assignment_save(assignment_id=assignment.id, user=lena, hips=hips, excluded=excluded)


def test_submit_needs_a_hip_or_an_exclusion(radiographs, labelers):
    lena, _ = labelers
    assignment = labelling.assignment_next(user=lena)
    with pytest.raises(ValidationError, match="at least one hip"):
        labelling.assignment_submit(assignment_id=assignment.id, user=lena, hips=[])


def test_nobody_else_can_save_into_an_assignment(radiographs, labelers):
    lena, luke = labelers
    assignment = labelling.assignment_next(user=lena)
    with pytest.raises(PermissionDenied):
        labelling.assignment_save(assignment_id=assignment.id, user=luke, hips=[RIGHT])


def test_unfinished_assignment_goes_back_to_the_pool_blind(radiographs, labelers):
    lena, luke = labelers
    assignment = labelling.assignment_next(user=lena)
    labelling.assignment_save(assignment_id=assignment.id, user=lena, hips=[RIGHT])
    Assignment.objects.filter(id=assignment.id).update(
        taken_at=timezone.now() - timedelta(hours=5), last_saved_at=timezone.now() - timedelta(hours=5)
    )
    assert labelling.assignments_release_expired() == 1
    assignment.refresh_from_db()
    assert assignment.status == "open" and assignment.labeler is None
    assert not assignment.hips.filter(removed_at__isnull=True).exists()


def test_agreement_statistics(radiographs, labelers):
    lena, luke = labelers
    label(lena, [RIGHT, LEFT])
    label(luke, [RIGHT, LEFT])
    label(lena, [RIGHT])
    label(luke, [HipInput("right", "fn_nondisplaced", 10, 20, 100, 100)])
    stats = labelling.agreement_statistics()
    assert stats["radiographs_double_read"] == 2 and stats["hips_compared"] == 3
    assert stats["agreed"] == 1 and stats["pending"] == 1
    assert stats["disagreement_reasons"] == {"class differs": 1}
    assert stats["iou"]["mean"] == pytest.approx(1.0)
    # classes (normal, fn_displaced, normal) vs (normal, fn_displaced, fn_nondisplaced)
    from sklearn.metrics import cohen_kappa_score

    expected = cohen_kappa_score(["normal", "fn_displaced", "normal"], ["normal", "fn_displaced", "fn_nondisplaced"])
    assert stats["kappa_six_class"] == pytest.approx(expected)


def test_iou_histogram_counts_every_hip():
    from annotate.labelling import agreement

    box = (10.1, 20.3, 100.7, 99.9)
    assert agreement.iou(box, box) == 1.0
    assert agreement.iou((0, 0, 10, 10), (5, 0, 10, 10)) == 50 / 150
    assert agreement.iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
