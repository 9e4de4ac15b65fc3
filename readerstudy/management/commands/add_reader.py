"""``manage.py add_reader --study NAME --user U --group expert --training orthopedics_attending``.

Invites a user into a reader study (``services.reader_add``: a reader code R01, R02, ... and the
reader role). ``--create`` makes the user first when missing, with ``--password`` or, without it,
an unusable password (set one later, e.g. with ``manage.py changepassword``).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from readerstudy import services
from readerstudy.models import TRAININGS, Group, ReaderStudy


class Command(BaseCommand):
    help = "Invite a user into a reader study with a group (expert or resident) and a training."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--study", required=True, metavar="NAME", help="the study's name")
        parser.add_argument("--user", required=True, metavar="U", help="username")
        parser.add_argument("--group", required=True, help=f"one of {', '.join(Group.values)}")
        parser.add_argument(
            "--training", required=True, help=f"e.g. {', '.join(TRAININGS)} (or another lower-case key)"
        )
        parser.add_argument("--create", action="store_true", help="create the user if missing")
        parser.add_argument("--password", help="with --create: the new user's password (default: unusable)")

    def handle(self, *args: Any, **options: Any) -> None:
        study = ReaderStudy.objects.filter(name=options["study"]).first()
        if study is None:
            raise CommandError(f"no reader study named {options['study']!r}")
        if options["password"] is not None and not options["create"]:
            raise CommandError("--password only goes with --create (it sets a new user's password)")
        User = get_user_model()
        username = options["user"].strip()
        user = User.objects.filter(username=username).first()
        created = False
        if user is None:
            if not options["create"]:
                raise CommandError(f"no user named {username!r} (pass --create to make one)")
            if not username:
                raise CommandError("a username cannot be empty")
            user = User.objects.create_user(username=username, password=options["password"])
            created = True
        elif not user.is_active:
            raise CommandError(f"user {username!r} is inactive")
        try:
            reader = services.reader_add(
                study=study, user=user, group=options["group"].strip(), training=options["training"].strip()
            )
        except services.StudyError as error:
            if created:
                user.delete()  # leave nothing behind from a refused invitation
            raise CommandError(str(error)) from error
        note = " (new user)" if created else ""
        self.stdout.write(
            f"{reader.code}: {user.username}{note} reads {study.name} as {reader.group} ({reader.training})"
        )
