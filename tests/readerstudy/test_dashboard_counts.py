"""The dashboard counts the model-aided phase honestly: a reader's own answers of the cases shown,
and the answers carried over from full quality (where they agreed with the model) apart, never
added together as if answered ("0 of 5, plus 3 carried over", not "3/5"). Real rows throughout:
the answers go through the services, the carried-over rows are the ones the phase start stores."""

from __future__ import annotations

import pytest
from django.urls import reverse

from readerstudy import services
from readerstudy.models import Condition, Response
from tests.readerstudy.helpers import answer_phase, invite, study_with_model

pytestmark = pytest.mark.django_db


@pytest.fixture
def study(dicom_bytes, tiny_bundle, data_dir):
    return study_with_model(dicom_bytes, tiny_bundle, data_dir, cases=8)


def _aided(client, study, code):
    data = client.get(reverse("study-progress", args=[study.pk])).json()
    row = next(r for r in data["readers"] if r["code"] == code)
    return next(p for p in row["phases"] if p["condition"] == Condition.MODEL_AIDED)


def test_the_aided_phase_counts_carried_over_answers_apart(study, client_as):
    reader = invite(study, "erin")
    answer_phase(reader)  # model quality
    agreed = set(sorted(study.cases.values_list("pk", flat=True))[:3])

    def full_quality(case):  # agree with the model on three cases, differ on the other five
        if case.pk in agreed:
            return case.predicted_class
        return "normal" if case.predicted_class != "normal" else "orif"

    answer_phase(reader, choose=full_quality)
    step = services.reader_step(reader=reader, ignore_washout=True)  # starts the aided phase, as the reading page does
    assert step.condition == Condition.MODEL_AIDED and step.answered == 0 and step.total == 5
    rows = Response.objects.filter(reader=reader, condition=Condition.MODEL_AIDED)
    assert rows.filter(carried_over=True).count() == 3 and rows.filter(carried_over=False).count() == 0

    client = client_as("researcher")
    aided = _aided(client, study, reader.code)
    assert (aided["answered"], aided["carried_over"], aided["total"]) == (0, 3, 5)
    assert aided["text"] == "0 of 5, plus 3 carried over"
    page = client.get(reverse("study_detail", args=[study.pk])).content.decode()
    assert '<span class="count">0 of 5, plus 3 carried over</span>' in page
    assert "3/5" not in page and "3 of 5" not in page

    for _ in range(2):  # two aided answers of the reader's own
        step, case = services.case_show(reader=reader, ignore_washout=True)
        services.answer_submit(reader=reader, case_id=case.pk, condition=step.condition, answer="normal")
    aided = _aided(client, study, reader.code)
    assert (aided["answered"], aided["carried_over"], aided["text"]) == (2, 3, "2 of 5, plus 3 carried over")
    # the phases without carried answers say only what was answered
    data = client.get(reverse("study-progress", args=[study.pk])).json()
    texts = [p["text"] for p in data["readers"][0]["phases"]]
    assert texts[:2] == ["8 of 8", "8 of 8"]


def test_a_reader_who_agreed_everywhere_has_nothing_to_answer(study, client_as):
    reader = invite(study, "ray")
    answer_phase(reader)
    answer_phase(reader, choose=lambda case: case.predicted_class)
    services.reader_step(reader=reader, ignore_washout=True)
    aided = _aided(client_as("researcher"), study, reader.code)
    assert (aided["answered"], aided["carried_over"], aided["total"]) == (0, 8, 0)
    assert aided["text"] == "0 of 0, plus 8 carried over" and aided["finished_at"] is not None
