"""The readers' API: who reaches what, blinding in every phase, forged and repeated requests.

Who may see what:
- the invited reader (rita here): her own next case, in her current phase only;
- another reader of the same study (bob): nothing of rita's, ever;
- researchers, labellers, users with no role: no reader endpoint answers them with data.
"""

from __future__ import annotations

import json

import pytest
from django.test import Client

from readerstudy import services
from readerstudy.models import Case, Response
from tests.readerstudy.helpers import answer_phase, invite

pytestmark = pytest.mark.django_db

MODEL_KEYS = {"probabilities", "top2", "heatmap_url", "heatmap_rect", "predicted_class", "fracture_probability"}
TRUTH_KEYS = {"truth", "hip_class", "ground_truth"}
CASE_KEYS = {
    "model_quality": {"id", "condition", "position", "crop_url"},
    "full_quality": {"id", "condition", "position", "pixels_url", "rows", "columns", "window_center",
                     "window_width", "side", "box"},
}  # fmt: skip
CASE_KEYS["model_aided"] = CASE_KEYS["full_quality"] | {"own_answer", "heatmap_url", "heatmap_rect", "top2"}


@pytest.fixture
def rita(study, users):
    return services.reader_add(study=study, user=users["reader"], group="resident", training="emergency_resident")


def keys_of(value):
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in keys_of(v)}
    if isinstance(value, list):
        return {k for v in value for k in keys_of(v)}
    return set()


def current(client, study):
    response = client.get(f"/api/reader/studies/{study.pk}/current/")
    assert response.status_code == 200, response.content
    return response.json()


def post_answer(client, study, case, condition, answer):
    return client.post(
        f"/api/reader/studies/{study.pk}/answers/",
        {"case": case, "condition": condition, "answer": answer},
        content_type="application/json",
    )


def test_a_reader_goes_through_the_three_phases_blind_until_phase_three(study, rita, client_as, settings):
    bob = invite(study, "bob")
    for _ in range(3):
        answer_phase(bob, choose=lambda c: "arthroplasty")  # another reader's answers: never shown to rita
    client = client_as("reader")
    seen = []
    state = current(client, study)
    answers = {}
    while state["case"] is not None or state["step"]["status"] == "washout":
        seen.append(state)
        if state["step"]["status"] == "washout":
            assert state["case"] is None and state["step"]["opens_at"]
            study.washout = study.washout * 0
            study.save()
            state = current(client, study)
            continue
        case = state["case"]
        condition = case["condition"]
        assert set(case) == CASE_KEYS[condition], condition
        assert state["step"]["condition"] == condition and case["position"] == state["step"]["answered"] + 1
        answer = "fn_nondisplaced" if condition != "model_aided" else "intertrochanteric"
        if condition == "full_quality" and case["id"] % 2:
            answer = Case.objects.get(pk=case["id"]).predicted_class  # agree with the model now and then
        if condition == "model_aided":
            assert case["own_answer"] == answers["full_quality", case["id"]]
            model = Case.objects.get(pk=case["id"])
            assert case["own_answer"] != model.predicted_class
            assert [t["class"] for t in case["top2"]] == model.top2
        reply = post_answer(client, study, case["id"], condition, answer)
        assert reply.status_code == 201, reply.content
        answers[condition, case["id"]] = answer
        state = reply.json()["state"]
    assert state["step"]["status"] == "done"
    for body in seen:
        text = json.dumps(body)
        assert not keys_of(body) & TRUTH_KEYS
        assert "arthroplasty" not in text or body["case"]["condition"] == "model_aided"  # bob's answers never
        assert "R02" not in text
        if body["case"] and body["case"]["condition"] != "model_aided":
            assert not keys_of(body) & MODEL_KEYS
    stored = {(r.condition, r.case_id): r.answer for r in Response.objects.filter(reader=rita, carried_over=False)}
    assert stored == {key: value for key, value in answers.items()}
    assert Response.objects.filter(reader=rita).count() == 18


def test_double_submit_and_changed_answers(study, rita, client_as):
    client = client_as("reader")
    case = current(client, study)["case"]
    first = post_answer(client, study, case["id"], "model_quality", "orif")
    second = post_answer(client, study, case["id"], "model_quality", "orif")
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["created"] is False
    changed = post_answer(client, study, case["id"], "model_quality", "normal")
    assert changed.status_code == 409 and "cannot be changed" in changed.json()["detail"]
    assert Response.objects.filter(reader=rita).count() == 1


def test_forged_requests_are_refused_with_a_message(study, rita, client_as, users):
    client = client_as("reader")
    state = current(client, study)
    order = rita.phases.get().case_ids
    not_shown = next(pk for pk in order if pk != state["case"]["id"])
    reply = post_answer(client, study, not_shown, "model_quality", "normal")
    assert reply.status_code == 409 and "on your screen" in reply.json()["detail"]
    reply = post_answer(client, study, state["case"]["id"], "full_quality", "normal")
    assert reply.status_code == 409 and "not started" in reply.json()["detail"]
    reply = post_answer(client, study, 10**6, "model_quality", "normal")
    assert reply.status_code == 404
    reply = post_answer(client, study, state["case"]["id"], "model_quality", "broken")
    assert reply.status_code == 400 and "answer" in reply.json()
    # Someone else's study: the researcher is not a reader of it.
    alice = client_as("researcher")
    assert alice.get(f"/api/reader/studies/{study.pk}/current/").status_code == 404
    assert post_answer(alice, study, state["case"]["id"], "model_quality", "normal").status_code == 404
    assert not Response.objects.exists()


def test_media_only_in_the_phase_that_shows_them(study, rita, client_as):
    client = client_as("reader")
    case = current(client, study)["case"]
    crop = client.get(f"/api/reader/cases/{case['id']}/crop.png")
    assert crop.status_code == 200 and crop["Content-Type"] == "image/png"
    assert b"".join(crop.streaming_content)[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.get(f"/api/reader/cases/{case['id']}/pixels/").status_code == 403
    assert client.get(f"/api/reader/cases/{case['id']}/heatmap.png").status_code == 403
    radiograph = Case.objects.get(pk=case["id"]).dataset_hip.radiograph_id
    assert client.get(f"/api/radiographs/{radiograph}/pixels/").status_code == 403  # not through annotate's API
    bob = invite(study, "bob")
    other = Client()
    other.force_login(bob.user)
    assert other.get(f"/api/reader/cases/{case['id']}/crop.png").status_code == 403  # bob has not started


def test_pixels_in_phase_two(study, rita, client_as):
    client = client_as("reader")
    answer_phase(rita)
    study.washout = study.washout * 0
    study.save()
    case = current(client, study)["case"]
    assert case["condition"] == "full_quality"
    pixels = client.get(case["pixels_url"])
    assert pixels.status_code == 200 and pixels["Content-Encoding"] == "gzip"
    assert client.get(f"/api/reader/cases/{case['id']}/crop.png").status_code == 403


@pytest.mark.parametrize("role", [None, "researcher", "labeler", "adjudicator", "norole"])
def test_no_other_role_reaches_a_reader_endpoint(study, rita, client_as, role):
    case = study.cases.first()
    client = client_as(role)
    expected = {401, 403} if role is None else {403, 404}
    for url in (
        f"/api/reader/studies/{study.pk}/current/",
        f"/api/reader/cases/{case.pk}/crop.png",
        f"/api/reader/cases/{case.pk}/pixels/",
        f"/api/reader/cases/{case.pk}/heatmap.png",
    ):
        assert client.get(url).status_code in expected, (role, url)
    assert post_answer(client, study, case.pk, "model_quality", "normal").status_code in expected
    listed = client.get("/api/reader/studies/")
    assert listed.status_code in ({401, 403} if role is None else {200})
    if role is not None:
        assert listed.json() == []


def test_a_session_post_needs_the_csrf_token(study, rita, users):
    client = Client(enforce_csrf_checks=True)
    client.force_login(users["reader"])
    case = current(client, study)["case"]
    reply = post_answer(client, study, case["id"], "model_quality", "normal")
    assert reply.status_code == 403 and "CSRF" in reply.json()["detail"]
    assert not Response.objects.exists()


def test_my_studies_lists_the_next_step(study, rita, client_as):
    listed = client_as("reader").get("/api/reader/studies/").json()
    assert listed == [
        {
            "id": study.pk,
            "name": study.name,
            "code": rita.code,
            "step": {"condition": "model_quality", "phase": 1, "status": "open", "opens_at": None,
                     "answered": 0, "total": 6},
        }
    ]  # fmt: skip
