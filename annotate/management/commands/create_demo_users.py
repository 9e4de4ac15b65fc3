"""python manage.py create_demo_users: one account per role, for the demo. It sets every demo
account (``admin`` included, a superuser) to one known password, so it runs only with DEBUG on:
on a production site it would hand out an administrator's login."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError

from common.roles import ADJUDICATOR, LABELER, READER, RESEARCHER, ROLES

DEMO_USERS: list[tuple[str, list[str], bool]] = [
    ("admin", [], True),
    ("researcher", [RESEARCHER], False),
    ("labeler1", [LABELER], False),
    ("labeler2", [LABELER], False),
    ("adjudicator", [ADJUDICATOR], False),
    ("reader1", [READER], False),
    ("reader2", [READER], False),
]


class Command(BaseCommand):
    help = "Create the role groups and a demo account for each role, and print their credentials."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--password", default="demo-password", help="password for every demo account")
        parser.add_argument("--quiet", action="store_true", help="do not print the credentials")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError(
                "create_demo_users sets known passwords (admin's too) and runs only with DEBUG on; "
                "on a real site use manage.py createsuperuser and the admin"
            )
        password = options["password"]
        groups = {role: Group.objects.get_or_create(name=role)[0] for role in ROLES}
        User = get_user_model()
        quiet = options["quiet"]
        if not quiet:
            self.stdout.write("Demo accounts (username / password):")
        for username, roles, staff in DEMO_USERS:
            user, _ = User.objects.get_or_create(username=username)
            user.is_staff = user.is_superuser = staff
            user.set_password(password)
            user.save()
            user.groups.set([groups[role] for role in roles])
            label = "staff (all roles, admin)" if staff else ", ".join(roles)
            if not quiet:
                self.stdout.write(f"  {username:<12} / {password}   {label}")
