"""The reader study's rules, on real PostgreSQL: drawing cases, phase order, washout,
orderings, phase-3 case list and carry-over, immutable and idempotent answers."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection
from django.utils import timezone

from ml.models import DatasetHip, ModelVersion, Split
from readerstudy import services
from readerstudy.models import Case, Phase, Response
from tests.readerstudy.helpers import answer_phase, invite

pytestmark = pytest.mark.django_db


def test_cases_come_from_the_test_split_and_are_frozen(study):
    cases = list(study.cases.select_related("dataset_hip"))
    assert [c.number for c in cases] == [1, 2, 3, 4, 5, 6]
    assert {c.dataset_hip.split for c in cases} == {Split.TEST}
    assert len({c.dataset_hip_id for c in cases}) == 6
    for case in cases:
        assert case.crop.name and case.heatmap.name
        assert len(case.probabilities) == 6 and abs(sum(case.probabilities) - 1) < 1e-4
        assert case.predicted_class == case.top2[0]
        assert len(case.heatmap_rect) == 4
        from PIL import Image

        with case.crop.open("rb") as handle:
            size = study.model_version.config["input_size"]  # the model's input: 224 for the paper's net
            assert Image.open(handle).size == (size, size)


def test_the_same_seed_draws_the_same_hips_and_another_seed_others(study):
    again = services.study_create(name="again", dataset=study.dataset, cases=6, seed=3)
    other = services.study_create(name="other", dataset=study.dataset, cases=6, seed=4)
    hips = lambda s: list(s.cases.order_by("number").values_list("dataset_hip_id", flat=True))  # noqa: E731
    assert hips(again) == hips(study)
    assert hips(other) != hips(study)


def test_refuses_hips_outside_the_test_split_too_many_cases_and_a_taken_name(study):
    train_hip = DatasetHip.objects.filter(dataset=study.dataset, split=Split.TRAIN).first()
    with pytest.raises(services.StudyError, match="not in the test split"):
        services.study_create(name="forged", dataset=study.dataset, hip_ids=[train_hip.pk])
    with pytest.raises(services.StudyError, match="test hips"):
        services.study_create(name="big", dataset=study.dataset, cases=10_000)
    with pytest.raises(services.StudyError, match="exists already"):
        services.study_create(name=study.name, dataset=study.dataset, cases=2)


def test_refuses_a_study_without_an_active_model_unless_phase_three_is_off(study):
    ModelVersion.objects.update(is_active=False)
    with pytest.raises(services.StudyError, match="no classifier is active"):
        services.study_create(name="no-model", dataset=study.dataset, cases=2)
    plain = services.study_create(name="no-model", dataset=study.dataset, cases=2, aided_phase=False)
    plain = services.study_prepare(study_id=plain.pk)
    assert plain.phases == ("model_quality", "full_quality")
    assert all(c.crop.name and c.probabilities is None for c in plain.cases.all())


def test_orders_are_seeded_per_reader_and_phase(study):
    a, b = invite(study, "ann"), invite(study, "bob")
    answer_phase(a)
    answer_phase(a)
    answer_phase(b)
    order = {(p.reader_id, p.condition): p.case_ids for p in Phase.objects.all()}
    ids = sorted(study.cases.values_list("pk", flat=True))
    assert sorted(order[a.pk, "model_quality"]) == ids == sorted(order[a.pk, "full_quality"])
    assert order[a.pk, "model_quality"] != order[a.pk, "full_quality"]
    assert order[a.pk, "model_quality"] != order[b.pk, "model_quality"]
    assert services._order(a, "model_quality", ids) == order[a.pk, "model_quality"]  # the same when recomputed


def test_phase_two_waits_for_the_washout(study):
    reader = invite(study, "ann")
    answer_phase(reader)
    step = services.reader_step(reader=reader)
    assert step.status == "washout" and step.condition == "full_quality"
    finished = reader.phases.get(condition="model_quality").finished_at
    assert step.opens_at == finished + dt.timedelta(days=7)
    shown, case = services.case_show(reader=reader)
    assert case is None and shown.status == "washout"
    with pytest.raises(services.NotOpen):
        services.answer_submit(reader=reader, case_id=study.cases.first().pk, condition="full_quality", answer="normal")
    later = finished + dt.timedelta(days=7, seconds=1)
    step, case = services.case_show(reader=reader, now=later)
    assert step.status == "open" and step.condition == "full_quality" and case is not None


def test_phase_three_holds_exactly_the_disagreements_and_carries_the_rest_over(study):
    reader = invite(study, "ann")
    answer_phase(reader)
    cases = list(study.cases.all())
    agree = {c.pk for c in cases[:3]}
    full = answer_phase(
        reader,
        choose=lambda c: (
            c.predicted_class if c.pk in agree else ("normal" if c.predicted_class != "normal" else "orif")
        ),
    )
    assert len(full) == 6
    phase3 = services.reader_step(reader=reader, ignore_washout=True)
    assert phase3.condition == "model_aided" and phase3.total == 3
    assert set(reader.phases.get(condition="model_aided").case_ids) == {c.pk for c in cases} - agree
    carried = Response.objects.filter(reader=reader, condition="model_aided", carried_over=True)
    assert {r.case_id: r.answer for r in carried} == {r.case_id: r.answer for r in full if r.case_id in agree}
    aided = answer_phase(reader, choose=lambda c: "arthroplasty")
    assert {r.case_id for r in aided} == {c.pk for c in cases} - agree
    assert services.reader_step(reader=reader).status == "done"
    assert Response.objects.filter(reader=reader).count() == 18


def test_answers_are_immutable_and_a_double_submit_stores_one(study):
    reader = invite(study, "ann")
    step, case = services.case_show(reader=reader)
    first, created = services.answer_submit(reader=reader, case_id=case.pk, condition=step.condition, answer="orif")
    again, created_again = services.answer_submit(
        reader=reader, case_id=case.pk, condition=step.condition, answer="orif"
    )
    assert created and not created_again and again.pk == first.pk
    with pytest.raises(services.AnswerLocked, match="cannot be changed"):
        services.answer_submit(reader=reader, case_id=case.pk, condition=step.condition, answer="normal")
    assert Response.objects.get(pk=first.pk).answer == "orif"


def test_only_the_case_on_screen_of_the_open_phase_can_be_answered(study):
    reader, other = invite(study, "ann"), invite(study, "bob")
    step, case = services.case_show(reader=reader)
    order = reader.phases.get(condition="model_quality").case_ids
    with pytest.raises(services.NotOpen, match="on your screen"):
        services.answer_submit(reader=reader, case_id=order[1], condition="model_quality", answer="normal")
    with pytest.raises(services.NotOpen, match="not started"):
        services.answer_submit(reader=reader, case_id=case.pk, condition="full_quality", answer="normal")
    foreign = services.study_create(name="foreign", dataset=study.dataset, cases=1, seed=9).cases.get()
    with pytest.raises(services.NotFound):
        services.answer_submit(reader=reader, case_id=foreign.pk, condition="model_quality", answer="normal")
    with pytest.raises(services.StudyError, match="answer must be one of"):
        services.answer_submit(reader=reader, case_id=case.pk, condition="model_quality", answer="broken")
    assert not Response.objects.filter(reader=other).exists()


def test_display_time_is_kept_from_the_first_showing(study):
    reader = invite(study, "ann")
    shown_at = timezone.now() - dt.timedelta(seconds=30)
    step, case = services.case_show(reader=reader, now=shown_at)
    step, again = services.case_show(reader=reader)  # a reload does not restart the clock
    assert again.pk == case.pk
    response, _ = services.answer_submit(reader=reader, case_id=case.pk, condition=step.condition, answer="normal")
    assert response.displayed_at == shown_at
    assert 29 < response.seconds < 60


@pytest.mark.django_db(transaction=True)
def test_concurrent_double_submits_store_one_answer(study):
    reader = invite(study, "ann")
    step, case = services.case_show(reader=reader)
    barrier = threading.Barrier(4)
    results: list[object] = []

    def submit():
        try:
            barrier.wait()
            results.append(
                services.answer_submit(reader=reader, case_id=case.pk, condition=step.condition, answer="orif")[1]
            )
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            results.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(map(str, results)) == ["False", "False", "False", "True"]
    assert Response.objects.filter(reader=reader, case=case).count() == 1


def test_media_follow_the_phase(study):
    reader = invite(study, "ann")
    case = Case.objects.get(pk=services.case_show(reader=reader)[1].pk)
    assert services.case_media_allowed(reader=reader, case=case, media="crop")
    assert not services.case_media_allowed(reader=reader, case=case, media="pixels")
    assert not services.case_media_allowed(reader=reader, case=case, media="heatmap")
    answer_phase(reader)
    answer_phase(reader, choose=lambda c: "normal" if c.predicted_class != "normal" else "orif")
    services.case_show(reader=reader, ignore_washout=True)
    assert not services.case_media_allowed(reader=reader, case=case, media="crop")
    assert services.case_media_allowed(reader=reader, case=case, media="pixels") and services.case_media_allowed(
        reader=reader, case=case, media="heatmap"
    )


def test_progress_for_the_dashboard(study):
    ann, bob = invite(study, "ann"), invite(study, "bob", group="resident", training="emergency_resident")
    answer_phase(ann)
    rows = {row["reader"].code: row for row in services.study_progress(study=study)}
    assert rows[ann.code]["phases"][0]["answered"] == 6 and rows[ann.code]["phases"][0]["finished_at"]
    assert rows[ann.code]["washout_ends"] == rows[ann.code]["phases"][0]["finished_at"] + dt.timedelta(days=7)
    assert rows[ann.code]["median_seconds"] is not None and not rows[ann.code]["done"]
    assert rows[bob.code]["phases"][0]["answered"] == 0 and rows[bob.code]["washout_ends"] is None


def test_export_holds_one_row_per_reader_condition_and_case(study):
    reader = invite(study, "ann")
    given = {}
    for condition in ("model_quality", "full_quality", "model_aided"):
        for r in answer_phase(reader, choose=lambda c: "fn_displaced"):
            given[condition, r.case.number] = r.answer
    files = services.study_export(study=study)
    lines = files["responses.csv"].decode().splitlines()
    assert lines[0] == "reader,group,training,condition,case,patient,truth,answer,seconds"
    assert len(lines) == 1 + 18
    truth = {c.number: c.truth for c in study.cases.select_related("dataset_hip")}
    for line in lines[1:]:
        code, group, training, condition, number, patient, row_truth, answer, seconds = line.split(",")
        assert float(seconds) >= 0
        assert (code, group, training) == ("R01", "expert", "orthopedics_attending")
        assert row_truth == truth[int(number)] and patient.startswith("P-")
        assert given.get((condition, int(number)), answer) == answer
    predictions = files["model_predictions.csv"].decode().splitlines()
    assert predictions[0] == (
        "case,patient,truth,p_normal,p_fn_displaced,p_fn_nondisplaced,p_intertrochanteric,p_orif,p_arthroplasty"
    )
    assert len(predictions) == 7
