"""Password reset is offered only where the site can send mail (EMAIL_HOST)."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client

pytestmark = pytest.mark.django_db

RESET_PAGES = ["/accounts/password_reset/", "/accounts/password_reset/done/", "/accounts/reset/done/",
               "/accounts/reset/MQ/set-password/"]  # fmt: skip


def test_without_mail_there_is_no_reset_link_and_no_reset_page(users, client, settings):
    settings.EMAIL_HOST = ""
    login = client.get("/accounts/login/").content.decode()
    assert "/accounts/password_reset/" not in login and "Forgot" not in login
    for path in RESET_PAGES:
        assert client.get(path).status_code == 404, path
    assert client.post("/accounts/password_reset/", {"email": "alice@example.org"}).status_code == 404
    assert mail.outbox == []


def test_with_mail_the_login_page_offers_a_reset_that_works(users, client, settings):
    settings.EMAIL_HOST = "smtp.hospital.example"
    users["researcher"].email = "alice@hospital.example"
    users["researcher"].save()
    assert 'href="/accounts/password_reset/"' in client.get("/accounts/login/").content.decode()

    sent = client.post("/accounts/password_reset/", {"email": "alice@hospital.example"})
    assert sent.status_code == 302 and sent["Location"] == "/accounts/password_reset/done/"
    assert [message.to for message in mail.outbox] == [["alice@hospital.example"]]
    link = re.search(r"/accounts/reset/[^/\s]+/[^/\s]+/", mail.outbox[0].body).group(0)
    form = client.get(link, follow=True)
    assert form.status_code == 200
    new = "a-new-long-passphrase-42"
    done = client.post(form.redirect_chain[-1][0], {"new_password1": new, "new_password2": new})
    assert done.status_code == 302 and done["Location"] == "/accounts/reset/done/"
    assert Client().post("/accounts/login/", {"username": "alice", "password": new}).status_code == 302
