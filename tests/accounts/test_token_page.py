"""/accounts/tokens/: each user sees their own API tokens and revokes them (POST, CSRF)."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from knox.models import AuthToken

from accounts.tokens import token_create

pytestmark = pytest.mark.django_db


def works(token: str) -> bool:
    return Client().get("/api/reader/studies/", HTTP_AUTHORIZATION=f"Token {token}").status_code == 200


def test_the_page_lists_only_ones_own_tokens_and_is_linked_from_every_page(users, client_as):
    alice_row, _ = token_create(user=users["researcher"])
    adam_row, _ = token_create(user=users["adjudicator"])
    page = client_as("researcher").get("/accounts/tokens/")
    assert page.status_code == 200
    html = page.content.decode()
    assert alice_row.token_key[:8] in html and adam_row.token_key[:8] not in html
    assert 'href="/accounts/tokens/"' in client_as("labeler").get("/").content.decode()  # the user menu
    assert "You have no API tokens" in client_as("reader").get("/accounts/tokens/").content.decode()


def test_revoking_a_token_from_the_page_stops_it_and_only_it(users):
    row, token = token_create(user=users["researcher"])
    _, kept = token_create(user=users["researcher"])
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(users["researcher"])
    page = browser.get("/accounts/tokens/").content.decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    key = re.search(rf'name="key" value="({row.token_key})"', page).group(1)

    assert browser.post("/accounts/tokens/revoke/", {"key": key}).status_code == 403  # no CSRF token
    assert works(token)
    answer = browser.post("/accounts/tokens/revoke/", {"key": key, "csrfmiddlewaretoken": csrf}, follow=True)
    assert answer.status_code == 200 and "revoked" in answer.content.decode()
    assert not works(token) and works(kept)
    assert f'value="{row.token_key}"' not in answer.content.decode()  # gone from the list


def test_nobody_revokes_anothers_token(users, client_as):
    row, token = token_create(user=users["adjudicator"])
    response = client_as("researcher").post("/accounts/tokens/revoke/", {"key": row.token_key})
    assert response.status_code == 404
    assert works(token) and AuthToken.objects.filter(user=users["adjudicator"]).count() == 1


@pytest.mark.parametrize("form", [{}, {"key": ""}, {"key": "x" * 500}])
def test_a_revoke_without_a_proper_key_is_a_400(client_as, form):
    assert client_as("researcher").post("/accounts/tokens/revoke/", form).status_code == 400


def test_anonymous_visitors_are_sent_to_log_in(client):
    response = client.get("/accounts/tokens/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert client.post("/accounts/tokens/revoke/", {"key": "abc"}).status_code == 302
