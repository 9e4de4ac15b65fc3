"""Pages name classes in words, as the labelling page does ("Displaced femoral neck fracture",
not "fn_displaced"): the template filters over annotate.labels.HipClass, and the adjudication
queue, whose reasons the server writes with keys."""

from __future__ import annotations

from django.contrib.auth.models import Group

from annotate import services
from annotate.labelling import services as labelling
from annotate.labelling.services import HipInput
from annotate.labels import HipClass
from annotate.templatetags.hip_classes import class_words, classes_in_words
from tests.accounts.factories import UserFactory


def test_class_words_are_the_labelling_pages_words():
    for value, label in HipClass.choices:
        assert class_words(value) == label
    assert class_words("fn_displaced") == "Displaced femoral neck fracture"
    assert class_words("something else") == "something else"  # not a class: as it is
    assert classes_in_words("left hip: fn_displaced / normal") == "left hip: Displaced femoral neck fracture / Normal"
    assert classes_in_words("excluded (no_hip)") == "excluded (No hip in view)"


def test_the_adjudication_queue_shows_why_in_words(users, client_as, dicom_bytes):
    services.radiograph_ingest(data=dicom_bytes(seed=1), name="1.dcm", source="cli")
    luke = UserFactory(username="luke")
    luke.groups.add(Group.objects.get(name="labeler"))
    right = HipInput("right", "normal", 10, 20, 100, 100)
    for user, left_class in ((users["labeler"], "fn_displaced"), (luke, "intertrochanteric")):
        assignment = labelling.assignment_next(user=user)
        left = HipInput("left", left_class, 130, 20, 100, 100)
        labelling.assignment_submit(assignment_id=assignment.id, user=user, hips=[right, left])
    page = client_as("adjudicator").get("/adjudicate/").content.decode()
    assert "Displaced femoral neck fracture / Intertrochanteric fracture" in page
    assert "fn_displaced" not in page
