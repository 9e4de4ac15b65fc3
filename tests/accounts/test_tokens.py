"""API tokens (django-rest-knox): made by POST /api/token/, sent as ``Authorization: Token …``,
stored only as a digest, refused once expired (TOKEN_TTL_DAYS), revoked, or while their user
is deactivated or locked out by django-axes."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from knox.models import AuthToken

from tests.accounts.factories import PASSWORD

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
# DRF answers a refused credential with the first authentication class' header; session
# authentication comes first and has none, so a refused token is a 403 (as it always was here).
REFUSED = 403


def obtain(username: str, password: str = PASSWORD) -> str:
    response = Client().post("/api/token/", {"username": username, "password": password})
    assert response.status_code == 200, response.content
    return response.json()["token"]


def get(token: str, path: str = "/api/reader/studies/"):
    """An API call as a script would make it: no session, the token in the header."""
    return Client().get(path, HTTP_AUTHORIZATION=f"Token {token}")


def test_a_token_lasts_token_ttl_days_and_only_its_digest_is_stored(users):
    before = timezone.now()
    response = Client().post("/api/token/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 200
    token, expiry = response.json()["token"], parse_datetime(response.json()["expiry"])
    assert timedelta(days=30) <= expiry - before <= timedelta(days=30, minutes=1)  # TOKEN_TTL_DAYS' default
    row = AuthToken.objects.get(user=users["researcher"])
    assert row.expiry == expiry and token not in (row.digest, row.token_key) and len(row.token_key) < len(token)
    assert get(token, "/api/radiographs/").status_code == 200


def test_each_call_makes_a_token_of_its_own(users):
    first, second = obtain("alice"), obtain("alice")
    assert first != second and AuthToken.objects.filter(user=users["researcher"]).count() == 2
    assert get(first).status_code == get(second).status_code == 200


def test_an_expired_token_is_refused_and_forgotten(users, settings):
    settings.REST_KNOX = {**settings.REST_KNOX, "TOKEN_TTL": timedelta(seconds=1)}
    token = obtain("alice")
    assert get(token).status_code == 200
    time.sleep(1.5)  # the token's lifetime passes
    expired = get(token)
    assert expired.status_code == REFUSED and expired.json()["detail"] == "Invalid token."
    assert not AuthToken.objects.filter(user=users["researcher"]).exists()


def test_a_deactivated_users_tokens_stop_working(users):
    token, others = obtain("alice"), obtain("adam")
    users["researcher"].is_active = False
    users["researcher"].save()
    refused = get(token)
    assert refused.status_code == REFUSED and "inactive" in refused.json()["detail"]
    assert get(others).status_code == 200


def test_a_locked_out_users_tokens_stop_working_until_the_lockout_ends(users):
    token, others = obtain("rita"), obtain("alice")
    assert get(token).status_code == 200
    browser = Client()
    for _ in range(5):  # AXES_FAILURE_LIMIT wrong passwords on the login form: rita is locked out
        browser.post("/accounts/login/", {"username": "rita", "password": "wrong"})
    assert browser.post("/accounts/login/", {"username": "rita", "password": PASSWORD}).status_code == 429
    refused = get(token)
    assert refused.status_code == REFUSED and "Account locked" in refused.json()["detail"]
    assert get(token, "/api/radiographs/").status_code == REFUSED
    assert get(others).status_code == 200  # alice is not locked out
    call_command("axes_reset_username", "rita")
    assert get(token).status_code == 200


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("Token", id="no-token"),
        pytest.param("Token ", id="empty"),
        pytest.param("Token a b", id="spaces"),
        pytest.param("Token abc", id="short"),
        pytest.param("Token " + "g" * 64, id="not-hex"),
        pytest.param("Token " + "0" * 64, id="unknown"),  # well formed, but no such token
        pytest.param("Token " + "é" * 64, id="not-ascii"),  # latin-1 on the wire; knox raised
        pytest.param("Token " + "\x00" * 64, id="nul-bytes"),  # PostgreSQL refuses NUL; knox sent it
        pytest.param("Token " + "f" * 10_000, id="long"),
    ],
)
def test_a_malformed_or_unknown_token_is_refused_never_500(users, header):
    response = Client().get("/api/reader/studies/", HTTP_AUTHORIZATION=header)
    assert response.status_code == REFUSED, response.content[:200]
    assert "token" in response.json()["detail"].lower()
    assert response["Content-Type"] == "application/json"


def test_token_ttl_days_is_read_from_the_environment_and_a_bad_value_fails_loudly(tmp_path):
    environment = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "DEBUG"}}
    environment.update(DEBUG="true", DATA_DIR=str(tmp_path))
    show = "from django.conf import settings; print(settings.REST_KNOX['TOKEN_TTL'].days)"

    def shell(days: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "manage.py", "shell", "--no-imports", "-c", show]
        env = {**environment, "TOKEN_TTL_DAYS": days}
        return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)

    seven = shell("7")
    assert seven.returncode == 0 and seven.stdout.strip() == "7", seven.stderr
    zero = shell("0")
    assert zero.returncode != 0 and "TOKEN_TTL_DAYS=0" in zero.stderr


def test_create_token_prints_a_working_token_for_a_service_account(users):
    out, err = io.StringIO(), io.StringIO()
    call_command("create_token", "alice", stdout=out, stderr=err)
    token = out.getvalue().strip()
    assert len(token) == 64 and "valid until" in err.getvalue()
    assert get(token, "/api/radiographs/").status_code == 200
    with pytest.raises(CommandError, match="no user"):
        call_command("create_token", "nobody", stdout=io.StringIO(), stderr=io.StringIO())
