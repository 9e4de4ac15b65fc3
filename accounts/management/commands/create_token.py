"""python manage.py create_token USERNAME: a new API token for a service account (a PACS's STOW
client, a script), printed once on standard output; its expiry goes to standard error."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.tokens import token_create


class Command(BaseCommand):
    help = "Make an API token for USERNAME and print it (it is shown once; only its digest is kept)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username")

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"no user {options['username']!r}")
        if not user.is_active:
            raise CommandError(f"{user.get_username()} is deactivated: its tokens would not work")
        row, token = token_create(user=user)
        self.stderr.write(f"token for {user.get_username()}, valid until {row.expiry:%Y-%m-%d %H:%M %Z}")
        self.stdout.write(token)
