"""Login lockout (django-axes), API throttling, and what a production answer carries.

- The sixth login of one username from one address after five wrong passwords is refused
  with a lockout page, even with the right password; other users, and the same user from
  another address, still log in. The API token endpoint is locked out alike.
- An anonymous or logged-in API client over its rate gets 429; with the throttle cache (Redis)
  unreachable the API still answers. A JSON body over DATA_UPLOAD_MAX_MEMORY_SIZE gets 413.
- With production settings (DEBUG off), answers carry HSTS, CSP, Permissions-Policy,
  Referrer-Policy, COOP, nosniff and X-Frame-Options, cookies are Secure (and the session's
  HttpOnly), and plain HTTP is redirected to HTTPS. ``check --deploy`` is tests/test_settings.py's.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.core.cache import caches
from django.db import connection

from tests.accounts.factories import PASSWORD

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.django_db


def login(client, username: str, password: str, **extra):
    return client.post("/accounts/login/", {"username": username, "password": password}, **extra)


def test_the_sixth_login_after_five_wrong_passwords_is_locked_out(client, users, settings):
    assert settings.AXES_FAILURE_LIMIT == 5
    for _ in range(4):
        refused = login(client, "alice", "wrong")
        assert refused.status_code == 200 and "Please enter a correct username and password" in refused.content.decode()
    fifth = login(client, "alice", "wrong")
    assert fifth.status_code == 429 and "Account locked" in fifth.content.decode()

    locked = login(client, "alice", PASSWORD)
    page = locked.content.decode()
    assert locked.status_code == 429, page
    assert "Account locked" in page and "Too many failed logins" in page and "alice" in page
    assert "_auth_user_id" not in client.session  # not logged in

    # Another user from the same address, and alice from another address, are unaffected.
    assert login(client, "adam", PASSWORD).status_code == 302
    other_desk = login(client.__class__(), "alice", PASSWORD, REMOTE_ADDR="10.1.2.3")
    assert other_desk.status_code == 302 and other_desk["Location"] == "/"


def test_a_success_resets_the_count(client, users):
    for _ in range(4):
        login(client, "alice", "wrong")
    assert login(client, "alice", PASSWORD).status_code == 302
    client.logout()
    for _ in range(4):
        assert login(client, "alice", "wrong").status_code == 200  # counting from zero again
    assert login(client, "alice", PASSWORD).status_code == 302


def test_force_login_is_untouched_by_the_lockout(client, client_as, users):
    for _ in range(6):
        login(client, "alice", "wrong")
    assert client_as("researcher").get("/radiographs/").status_code == 200


def test_the_api_token_endpoint_is_locked_out_too(client, users):
    def token(password: str):
        return client.post("/api/token/", {"username": "rita", "password": password})

    assert token(PASSWORD).status_code == 200 and token(PASSWORD).json()["token"]
    for _ in range(4):
        assert token("wrong").status_code == 400
    assert token("wrong").status_code == 429
    locked = token(PASSWORD)
    assert locked.status_code == 429 and "token" not in locked.json()
    assert "Account locked: too many login attempts" in locked.json()["detail"]
    assert client.post("/api/token/", {"username": "alice", "password": PASSWORD}).status_code == 200


@pytest.fixture
def small_rates(settings):
    """Rates of 2 and 3 a minute, counted in the real throttle cache (Redis when REDIS_URL is set)
    under a key prefix of this test's own, so that no other test run's counts mix in."""
    throttle = {**settings.CACHES["throttle"], "KEY_PREFIX": f"test-throttle-{uuid.uuid4().hex}"}
    settings.CACHES = {**settings.CACHES, "throttle": throttle}
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"anon": "2/minute", "user": "3/minute"},
    }
    keys: list[str] = []
    yield keys
    caches["throttle"].delete_many(keys)


def test_an_anonymous_client_over_its_rate_gets_429(client, small_rates):
    small_rates.append("throttle_anon_127.0.0.1")
    # The schema is the one API view open to anonymous clients; the rest refuse them before counting.
    assert [client.get("/api/schema/").status_code for _ in range(2)] == [200, 200]
    third = client.get("/api/schema/")
    assert third.status_code == 429 and b"throttled" in third.content.lower()
    assert int(third["Retry-After"]) > 0
    assert caches["throttle"].get("throttle_anon_127.0.0.1")  # counted where the settings say


def test_a_user_over_the_user_rate_gets_429_and_others_do_not(client_as, users, small_rates):
    small_rates += [f"throttle_user_{users[role].pk}" for role in ("researcher", "adjudicator")]
    alice = client_as("researcher")
    assert [alice.get("/api/radiographs/").status_code for _ in range(4)] == [200, 200, 200, 429]
    assert client_as("adjudicator").get("/api/radiographs/").status_code == 200


def test_the_default_rates_leave_room_for_a_reader_study(settings):
    """bench/readers.py: 50 readers at about one answer a second each, plus their media."""
    from config.security import UserRateThrottle

    throttle = UserRateThrottle()
    assert throttle.num_requests / throttle.duration >= 10  # per user, per second, sustained
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE >= 1024**2


PRODUCTION_PROBE = """
import json, django
django.setup()
from django.conf import settings
from django.test import Client, override_settings
# Hashed static names need collectstatic's manifest; the rest is the production settings as loaded.
# The test suite stores passwords with its fast hasher, which production does not list.
override_settings(STORAGES={**settings.STORAGES, "staticfiles": {
    "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}},
    PASSWORD_HASHERS=[*settings.PASSWORD_HASHERS, "django.contrib.auth.hashers.MD5PasswordHasher"]).enable()
c = Client(HTTP_HOST="hip.example.org")
plain = c.get("/accounts/login/")
page = c.get("/accounts/login/", secure=True)
csrf = page.cookies["csrftoken"]
done = c.post("/accounts/login/", {"username": "alice", "password": USER_PASSWORD,
              "csrfmiddlewaretoken": csrf.value}, secure=True)
session = done.cookies.get("sessionid")
print(json.dumps({
    "plain": [plain.status_code, plain.get("Location", "")],
    "status": page.status_code,
    "headers": {k: page.get(k, "") for k in ("Strict-Transport-Security", "Content-Security-Policy",
        "Permissions-Policy", "Referrer-Policy", "Cross-Origin-Opener-Policy", "X-Content-Type-Options",
        "X-Frame-Options")},
    "csrf": {"secure": bool(csrf["secure"]), "samesite": csrf["samesite"]},
    "login": done.status_code,
    "session": session and {"secure": bool(session["secure"]), "httponly": bool(session["httponly"]),
                            "max_age": session["max-age"], "expires": session["expires"]},
}))
"""


@pytest.mark.django_db(transaction=True)
def test_production_answers_carry_security_headers_and_secure_cookies(users, tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("the probe process shares the test database over PostgreSQL")
    database = connection.settings_dict
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "DJANGO_SETTINGS_MODULE"}}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings", DEBUG="false", ALLOWED_HOSTS="hip.example.org",
        SECRET_KEY="p" * 20 + "-production-secret-key-0123456789-abcdefghij", DATA_DIR=str(tmp_path),
        DATABASE_URL=f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
    )  # fmt: skip
    probe = PRODUCTION_PROBE.replace("USER_PASSWORD", repr(PASSWORD))
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])

    assert seen["plain"][0] == 301 and seen["plain"][1].startswith("https://hip.example.org/")
    assert seen["status"] == 200
    headers = seen["headers"]
    assert headers["Strict-Transport-Security"].startswith("max-age=31536000")
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert "object-src 'none'" in headers["Content-Security-Policy"]
    assert "camera=()" in headers["Permissions-Policy"]
    assert headers["Referrer-Policy"] == "same-origin" and headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["X-Frame-Options"] == "DENY"
    assert seen["csrf"]["secure"]
    assert seen["login"] == 302
    session = seen["session"]
    assert session["secure"] and session["httponly"]
    # Ends with the browser (no lasting cookie); the server still ends it after a shift.
    assert session["max_age"] == "" and session["expires"] == ""


def test_an_oversized_json_body_is_refused_with_the_limit_and_nothing_stored(client_as, settings):
    from ml.models import DatasetVersion

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    body = '{"seed": 1, "note": "' + "x" * 4096 + '"}'
    response = client_as("researcher").post("/api/datasets/", body, content_type="application/json")
    assert response.status_code == 413
    assert "DATA_UPLOAD_MAX_MEMORY_SIZE" in response.json()["detail"]
    assert not DatasetVersion.objects.exists()


def test_the_api_keeps_answering_when_the_throttle_cache_is_down(client_as, settings, caplog):
    """Redis stopped: the limit is suspended (and says so in the log), the request is answered."""
    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.CACHES = {
        **settings.CACHES,
        "throttle": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        },
    }
    with caplog.at_level("WARNING", logger="config.security"):
        assert client_as("researcher").get("/api/radiographs/").status_code == 200
    assert "throttling suspended" in caplog.text
