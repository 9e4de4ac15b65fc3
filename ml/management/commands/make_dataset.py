"""Freeze a dataset version from the current ground truth; print Table 1 and,
on the last line, the version id."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ml import services


class Command(BaseCommand):
    help = "Freeze the current ground truth into a dataset version (60:25:15 split by patient)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seed", type=int, required=True)
        parser.add_argument("--name", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            version, created = services.dataset_freeze(seed=options["seed"], name=options["name"])
        except ValueError as error:
            raise CommandError(str(error)) from error
        if not created:
            self.stdout.write(f"Same content as dataset version {version.pk}: returning it.")
        self.stdout.write(services.table1_text(version=version))
        self.stdout.write(str(version.pk))
