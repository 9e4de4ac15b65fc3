"""The readers' pages: who may open them, what the home card and the list say, and that no page
carries a truth class or a model output (the reading page is a shell; the cases come from the API).

- rita (reader, invited): sees her study on the home card and in her list, opens the reading page.
- another reader not invited to the study: 404 on its reading page; no list at all.
- lena (labeler, no reader role): 403.
- anonymous: sent to the login page.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from readerstudy import services
from readerstudy.models import Case
from tests.accounts.factories import UserFactory
from tests.readerstudy.helpers import answer_phase, study_with_model

CLASS_KEYS = ("normal", "fn_displaced", "fn_nondisplaced", "intertrochanteric", "orif", "arthroplasty")


@pytest.fixture
def study(db: None, dicom_bytes: Any, tiny_bundle: Any, data_dir: Any) -> Any:
    return study_with_model(dicom_bytes, tiny_bundle, data_dir, cases=4, washout=dt.timedelta(days=7))


@pytest.fixture
def rita(study: Any, users: dict[str, Any]) -> Any:
    return services.reader_add(study=study, user=users["reader"], group="resident", training="emergency_resident")


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def class_keys_in(html: str) -> list[str]:
    return [key for key in CLASS_KEYS if re.search(rf"\b{key}\b", html, re.IGNORECASE)]


def test_anonymous_users_go_to_the_login_page(study: Any, rita: Any) -> None:
    client = Client()
    for url in (reverse("reader_home"), reverse("reading_page", args=[study.pk])):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login")), response["Location"]


def test_a_reader_of_another_study_gets_404(study: Any, rita: Any) -> None:
    other = UserFactory(username="otto")
    other.groups.add(Group.objects.get_or_create(name="reader")[0])
    client = client_for(other)
    assert client.get(reverse("reading_page", args=[study.pk])).status_code == 404
    assert client.get(reverse("reader_home")).status_code == 200  # invited nowhere: says so (below)
    # A study that does not exist reads the same.
    assert client_for(rita.user).get(reverse("reading_page", args=[study.pk + 1000])).status_code == 404


def test_a_reader_invited_to_no_study_is_told_so(study: Any, rita: Any) -> None:
    newcomer = UserFactory(username="nils")
    newcomer.groups.add(Group.objects.get_or_create(name="reader")[0])
    response = client_for(newcomer).get(reverse("reader_home"))
    assert response.status_code == 200
    assert response.templates[0].name == "readerstudy/reader_no_study.html"
    text = response.content.decode()
    assert "No study yet" in text and "not been invited to a reader study yet" in text
    assert study.name not in text and 'href="/reader/studies/' not in text  # another reader's study stays hidden
    # Once invited, the same page lists the study.
    rita_page = client_for(rita.user).get(reverse("reader_home")).content.decode()
    assert study.name in rita_page and "No study yet" not in rita_page


def test_staff_without_a_reader_row_gets_404(study: Any, rita: Any, users: dict[str, Any]) -> None:
    assert client_for(users["staff"]).get(reverse("reading_page", args=[study.pk])).status_code == 404


def test_other_roles_are_refused(study: Any, rita: Any, users: dict[str, Any]) -> None:
    client = client_for(users["labeler"])
    assert client.get(reverse("reader_home")).status_code == 403
    assert client.get(reverse("reading_page", args=[study.pk])).status_code == 403


def test_home_card_and_list_show_the_study_and_its_next_step(study: Any, rita: Any) -> None:
    client = client_for(rita.user)
    home = client.get(reverse("home")).content.decode()
    card = home[home.index('data-role="reader"') :]
    assert study.name in card
    assert "Phase 1 of 3 (model quality): 0 of 4 answered" in card
    assert f'href="{reverse("reading_page", args=[study.pk])}"' in card
    assert "Start phase 1" in card

    listing = client.get(reverse("reader_home"))
    assert listing.status_code == 200
    text = listing.content.decode()
    assert study.name in text and rita.code in text
    assert f'href="{reverse("reading_page", args=[study.pk])}"' in text


def test_the_next_step_follows_the_reader_through_washout_and_the_end(study: Any, rita: Any) -> None:
    client = client_for(rita.user)
    answer_phase(rita)
    card = client.get(reverse("home")).content.decode()
    assert "Phase 2 (full quality) opens after the washout on" in card
    assert "<time datetime=" in card

    answer_phase(rita)  # phase 2, washout ignored by the helper
    answer_phase(rita)  # phase 3 (the disagreeing cases, if any)
    card = client.get(reverse("home")).content.decode()
    assert "All phases done: thank you" in card
    assert client.get(reverse("reading_page", args=[study.pk])).status_code == 200


def test_no_page_contains_a_truth_class_or_a_model_output(study: Any, rita: Any) -> None:
    """The pages name no class at all (the buttons come from the script), so no truth and no
    model prediction can hide in them, in any phase."""
    client = client_for(rita.user)
    cases = list(Case.objects.filter(study=study))
    numbers = [f"{p:.3f}" for case in cases for p in case.probabilities]

    def check(where: str) -> None:
        for url in (reverse("home"), reverse("reader_home"), reverse("reading_page", args=[study.pk])):
            response = client.get(url)
            assert response.status_code == 200, (where, url)
            html = response.content.decode()
            assert class_keys_in(html) == [], f"{url} ({where}) names classes {class_keys_in(html)}"
            leaked = [n for n in numbers if n in html]
            assert not leaked, f"{url} ({where}) shows model probabilities {leaked}"

    check("phase 1")
    answer_phase(rita, choose=lambda case: case.dataset_hip.hip_class)
    check("washout")
    answer_phase(rita, choose=lambda case: "normal" if case.predicted_class != "normal" else "orif")
    check("phase 3")
    answer_phase(rita)
    check("done")
