"""The triage worklist (page and API): who may see it, its two orders, its filters, the CT/MRI
flag at, below and above the ideal threshold of fn_nondisplaced (and none without one), rows
of the active classifier only, pages of 50, and ``after`` for the live updates."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from annotate.models import Radiograph
from ml.core.vocab import CLASSES
from ml.models import Kind, ModelVersion
from tests.ml.helpers import FRACTURE, NORMAL, THRESHOLD, empty_dataset, ingest, make_classifier, predict, probabilities
from triage import worklist

pytestmark = pytest.mark.django_db

PAGE = "/models/worklist/"
API = "/api/worklist/"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def arrived(radiograph: Radiograph, when: datetime) -> Radiograph:
    Radiograph.objects.filter(pk=radiograph.pk).update(imported_at=when)
    radiograph.refresh_from_db()
    return radiograph


@pytest.fixture
def films(dicom_bytes):
    """Six radiographs, arrived a day apart from T0."""
    return [arrived(ingest(dicom_bytes, i), T0 + timedelta(days=i)) for i in range(6)]


@pytest.fixture
def classifier(db):
    return make_classifier(empty_dataset())


def ids(answer) -> list[int]:
    return [row["radiograph"] for row in answer["results"]]


# --------------------------------------------------------------------------- who may


@pytest.mark.parametrize(
    ("role", "page_status", "api_status"),
    [
        ("researcher", 200, 200),
        ("staff", 200, 200),
        ("adjudicator", 403, 403),
        ("labeler", 403, 403),
        ("reader", 403, 403),
        ("norole", 403, 403),
    ],
)
def test_only_researchers_and_staff_see_the_worklist(client_as, classifier, films, role, page_status, api_status):
    predict(classifier, films[0], "right", NORMAL)
    client = client_as(role)
    assert client.get(PAGE).status_code == page_status
    answer = client.get(API)
    assert answer.status_code == api_status
    if api_status == 200:
        assert ids(answer.json()) == [films[0].pk]
    else:
        assert "results" not in answer.json()


def test_anonymous_users_go_to_the_login_page_and_get_no_api(client_as, classifier, films):
    predict(classifier, films[0], "right", NORMAL)
    response = client_as(None).get(PAGE)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next=/models/worklist/")
    assert client_as(None).get(API).status_code in (401, 403)


def test_the_role_check_is_one_tuple():
    assert worklist.WORKLIST_ROLES == ("researcher",)


# --------------------------------------------------------------------------- rows and orders


def test_a_row_has_both_hips_with_top2_heatmap_and_pseudonym(client_as, classifier, films):
    film = films[2]
    right = predict(classifier, film, "right", probabilities(normal=0.6, fn_nondisplaced=0.35), box_source="detector")
    left = predict(classifier, film, "left", FRACTURE, scored_at=T0 + timedelta(days=9))
    answer = client_as("researcher").get(API).json()
    assert answer["model_version"] == classifier.pk and answer["count"] == 1
    assert answer["flag_threshold"] == THRESHOLD and answer["flag_available"] is True
    row = answer["results"][0]
    assert row["radiograph"] == film.pk
    assert row["patient"] == film.study.patient.code and row["patient"].startswith("P-")
    assert row["study_date"] == "2019-03-15"
    assert datetime.fromisoformat(row["arrived"]) == T0 + timedelta(days=2)
    assert datetime.fromisoformat(row["scored_at"]) == max(right.created_at, left.created_at)
    assert row["max_fracture_probability"] == pytest.approx(left.fracture_probability)
    assert row["fracture"] is True and row["flagged"] is True
    assert row["preview_url"] == f"/radiographs/{film.pk}/preview.jpg"
    assert [hip["side"] for hip in row["hips"]] == ["right", "left"]
    r, lt = row["hips"]
    assert r["predicted_class"] == "normal" and r["box_source"] == "detector" and r["flagged"] is True
    assert r["top2"] == [{"class": "normal", "probability": 0.6}, {"class": "fn_nondisplaced", "probability": 0.35}]
    assert lt["predicted_class"] == "fn_displaced" and lt["flagged"] is False
    assert lt["fracture_probability"] == pytest.approx(0.8 + 0.05 + 0.15 / 4 * 1)
    assert set(r["probabilities"]) == set(CLASSES)
    client = client_as("researcher")
    heatmap = client.get(r["heatmap_url"])
    assert heatmap.status_code == 200 and heatmap["Content-Type"] == "image/png"
    page = client.get(PAGE).content.decode()
    assert f"Radiograph {film.pk}" in page and row["patient"] in page and "CT/MRI" in page
    assert 'id="worklist-data"' in page and "MRN" not in page


def test_newest_first_by_default_and_by_probability_on_request(client_as, classifier, films):
    p = {0: 0.2, 1: 0.9, 2: 0.6, 3: 0.05}
    for i, fracture in p.items():
        probs = probabilities(fn_displaced=fracture, normal=(1 - fracture) * 0.9)
        predict(classifier, films[i], "right", probs, scored_at=T0 + timedelta(hours=i))
    client = client_as("researcher")
    newest = client.get(API).json()
    assert ids(newest) == [films[3].pk, films[2].pk, films[1].pk, films[0].pk]
    assert newest["order"] == "newest"
    by_p = client.get(API, {"order": "probability"}).json()
    assert ids(by_p) == [films[1].pk, films[2].pk, films[0].pk, films[3].pk]
    probs = [row["max_fracture_probability"] for row in by_p["results"]]
    assert probs == sorted(probs, reverse=True)
    page = client.get(PAGE, {"order": "probability"}).content.decode()
    assert page.index(f"Radiograph {films[1].pk}<") < page.index(f"Radiograph {films[2].pk}<")


def test_the_radiograph_counts_its_latest_scoring_and_highest_probability(client_as, classifier, films):
    predict(classifier, films[0], "right", probabilities(fn_displaced=0.7), scored_at=T0)
    predict(classifier, films[0], "left", probabilities(normal=0.9), scored_at=T0 + timedelta(hours=5))
    predict(classifier, films[1], "right", probabilities(fn_displaced=0.5), scored_at=T0 + timedelta(hours=3))
    answer = client_as("researcher").get(API).json()
    assert ids(answer) == [films[0].pk, films[1].pk]
    assert datetime.fromisoformat(answer["results"][0]["scored_at"]) == T0 + timedelta(hours=5)
    assert answer["results"][0]["max_fracture_probability"] == pytest.approx(0.7 + 2 * 0.3 / 5)


# --------------------------------------------------------------------------- the CT/MRI flag


@pytest.mark.parametrize(
    ("probs", "flagged"),
    [
        (probabilities(normal=0.7, fn_nondisplaced=THRESHOLD), True),  # exactly at the threshold
        (probabilities(normal=0.7, fn_nondisplaced=0.299), False),  # just below
        (probabilities(normal=0.5, fn_nondisplaced=0.45), True),  # above, top class normal
        (probabilities(fn_displaced=0.5, fn_nondisplaced=0.4), True),  # above, top class another fracture
        (probabilities(fn_nondisplaced=0.7, normal=0.2), False),  # the top class says it already
    ],
)
def test_the_flag_rule(client_as, classifier, films, probs, flagged):
    predict(classifier, films[0], "right", probs)
    predict(classifier, films[0], "left", NORMAL)
    client = client_as("researcher")
    row = client.get(API).json()["results"][0]
    assert row["hips"][0]["flagged"] is flagged and row["hips"][1]["flagged"] is False
    assert row["flagged"] is flagged
    # The flag filter (in the database) agrees with the rule.
    assert ids(client.get(API, {"flagged": "1"}).json()) == ([films[0].pk] if flagged else [])
    assert worklist.hip_flagged(probabilities=probs, predicted_class=row["hips"][0]["predicted_class"],
                                threshold=THRESHOLD) is flagged  # fmt: skip


@pytest.mark.parametrize("evaluation", ["none", "threshold_none", "no_thresholds"])
def test_no_flag_without_an_evaluated_threshold(client_as, films, evaluation):
    version = make_classifier(empty_dataset(), evaluated=evaluation != "none", threshold=None)
    if evaluation == "no_thresholds":
        ModelVersion.objects.filter(pk=version.pk).update(evaluation={"binary_accuracy": {"mean": 0.9}})
    predict(version, films[0], "right", probabilities(normal=0.5, fn_nondisplaced=0.45))
    client = client_as("researcher")
    answer = client.get(API).json()
    assert answer["flag_threshold"] is None and answer["flag_available"] is False
    assert answer["results"][0]["flagged"] is False and answer["results"][0]["hips"][0]["flagged"] is False
    assert client.get(API, {"flagged": "1"}).json()["results"] == []
    page = client.get(PAGE).content.decode()
    assert 'id="no-threshold"' in page and "no radiograph can be flagged" in page
    assert 'id="flag-rule"' not in page


# --------------------------------------------------------------------------- which rows


def test_rows_only_for_the_active_classifier(client_as, films):
    dataset = empty_dataset()
    old = make_classifier(dataset, active=False)
    active = make_classifier(dataset)
    detector = make_classifier(dataset, kind=Kind.DETECTOR)
    predict(old, films[0], "right", FRACTURE)
    predict(active, films[1], "right", NORMAL)
    predict(detector, films[2], "right", NORMAL)
    client = client_as("researcher")
    answer = client.get(API).json()
    assert answer["model_version"] == active.pk and ids(answer) == [films[1].pk]
    ModelVersion.objects.filter(pk=active.pk).update(is_active=False)
    answer = client.get(API).json()
    assert answer["model_version"] is None and answer["results"] == [] and "No classifier is active" in answer["detail"]
    assert 'id="no-model"' in client.get(PAGE).content.decode()


def test_filters_by_arrival_date_flag_and_fracture(client_as, classifier, films):
    flagged = probabilities(normal=0.55, fn_nondisplaced=0.4)
    for i, probs in enumerate([NORMAL, FRACTURE, flagged, FRACTURE, NORMAL, flagged]):
        predict(classifier, films[i], "right", probs, scored_at=T0 + timedelta(days=10, hours=i))
    client = client_as("researcher")

    def get(**params):
        return set(ids(client.get(API, params).json()))

    # arrival dates T0 + i days; both ends inclusive
    assert get(since="2026-03-02", until="2026-03-04") == {films[1].pk, films[2].pk, films[3].pk}
    assert get(since="2026-03-05") == {films[4].pk, films[5].pk}
    assert get(until="2026-03-01") == {films[0].pk}
    assert get(flagged="1") == {films[2].pk, films[5].pk}
    assert get(fracture="true") == {films[1].pk, films[3].pk}
    assert get(flagged="1", since="2026-03-04") == {films[5].pk}
    assert get(flagged="0") == {f.pk for f in films}
    page = client.get(PAGE, {"flagged": "1"}).content.decode()
    assert f"Radiograph {films[2].pk}<" in page and f"Radiograph {films[1].pk}<" not in page


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"order": "random"}, "order must be one of newest, probability"),
        ({"since": "2026-13-01"}, "since must be a date"),
        ({"until": "yesterday"}, "until must be a date"),
        ({"since": "2026-03-05", "until": "2026-03-01"}, "is after until"),
        ({"flagged": "maybe"}, "flagged must be 1 or 0"),
        ({"page": "0"}, "page must be a whole number"),
        ({"page": "two"}, "page must be a whole number"),
        ({"after": "noon"}, "after must be an ISO 8601 timestamp"),
    ],
)
def test_bad_parameters_get_a_clear_message(client_as, classifier, params, message):
    client = client_as("researcher")
    answer = client.get(API, params)
    assert answer.status_code == 400 and message in answer.json()["detail"]
    page = client.get(PAGE, params)
    assert page.status_code == 400 and message in page.content.decode()


def test_pages_of_fifty(client_as, classifier, dicom_bytes):
    radiographs = [ingest(dicom_bytes, i) for i in range(worklist.PAGE_SIZE + 3)]
    for i, film in enumerate(radiographs):
        predict(classifier, film, "right", NORMAL, scored_at=T0 + timedelta(minutes=i))
    client = client_as("researcher")
    first = client.get(API).json()
    assert first["count"] == 53 and first["pages"] == 2 and len(first["results"]) == 50
    second = client.get(API, {"page": "2"}).json()
    assert ids(second) == [r.pk for r in radiographs[2::-1]]
    assert set(ids(first)).isdisjoint(ids(second))
    assert client.get(API, {"page": "3"}).json()["results"] == []
    page = client.get(PAGE, {"page": "2"}).content.decode()
    assert "page 2 of 2" in page and 'rel="prev"' in page and 'rel="next"' not in page
    assert "page 2 of 2" in client.get(PAGE, {"page": "9"}).content.decode()  # the page clamps to the last


def test_after_returns_only_radiographs_scored_since(client_as, classifier, films):
    for i in range(4):
        predict(classifier, films[i], "right", NORMAL, scored_at=T0 + timedelta(minutes=i))
    client = client_as("researcher")
    answer = client.get(API).json()
    # The cursor lies a little before the newest scoring: clients de-duplicate what they see twice.
    cursor = datetime.fromisoformat(answer["cursor"])
    assert cursor == T0 + timedelta(minutes=3) - worklist.POLL_OVERLAP
    after = (T0 + timedelta(minutes=1)).isoformat()
    assert ids(client.get(API, {"after": after}).json()) == [films[3].pk, films[2].pk]
    assert ids(client.get(API, {"after": (T0 + timedelta(minutes=3)).isoformat()}).json()) == []
    # A radiograph read again later counts as newly scored; filters still apply.
    predict(classifier, films[0], "left", probabilities(normal=0.5, fn_nondisplaced=0.45),
            scored_at=T0 + timedelta(minutes=10))  # fmt: skip
    since_3 = {"after": (T0 + timedelta(minutes=3)).isoformat()}
    assert ids(client.get(API, since_3).json()) == [films[0].pk]
    assert ids(client.get(API, {**since_3, "flagged": "1"}).json()) == [films[0].pk]
    assert ids(client.get(API, {**since_3, "fracture": "1"}).json()) == []
    # A naive timestamp is read in the site's time zone (UTC here); '+' sent unescaped still parses.
    assert ids(client.get(API, {"after": "2026-03-01T12:02:30"}).json()) == [films[0].pk, films[3].pk]
    assert ids(client.get(API + "?after=2026-03-01T12:02:30+00:00").json()) == [films[0].pk, films[3].pk]


def test_the_cursor_without_predictions_is_shortly_before_now(client_as, classifier):
    before = timezone.now()
    answer = client_as("researcher").get(API).json()
    assert answer["count"] == 0 and answer["results"] == []
    cursor = datetime.fromisoformat(answer["cursor"])
    assert before - worklist.POLL_OVERLAP <= cursor <= timezone.now() - worklist.POLL_OVERLAP


def test_the_api_is_in_the_openapi_schema(client_as):
    schema = client_as("researcher").get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    operation = json.loads(schema.content)["paths"]["/api/worklist/"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {
        "order",
        "since",
        "until",
        "flagged",
        "fracture",
        "after",
        "page",
    }
