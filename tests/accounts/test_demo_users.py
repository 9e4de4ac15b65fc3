"""create_demo_users sets known passwords, admin's included: only with DEBUG on."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db


def test_refused_with_debug_off_and_nothing_changes(settings):
    User = get_user_model()
    admin = User.objects.create_superuser("admin", password="the-real-admin-password")
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG"):
        call_command("create_demo_users", stdout=io.StringIO())
    admin.refresh_from_db()
    assert admin.check_password("the-real-admin-password")
    assert not User.objects.filter(username="researcher").exists()


def test_with_debug_on_it_makes_one_account_per_role(settings):
    settings.DEBUG = True
    call_command("create_demo_users", "--quiet", stdout=io.StringIO())
    assert get_user_model().objects.get(username="admin").check_password("demo-password")
    assert get_user_model().objects.get(username="labeler1").groups.filter(name="labeler").exists()
