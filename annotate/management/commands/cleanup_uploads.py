"""Adopt or remove what killed web workers left: upload folders and temporary upload files
(annotate.archive.cleanup). Run it at start, before the web tier (the worker and gunicorn do it too)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from annotate.archive.cleanup import upload_orphans_remove


class Command(BaseCommand):
    help = "Remove orphaned upload folders and temporary upload files; adopt those of waiting import jobs."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--min-age", type=float, default=None, help="seconds (default: the UPLOAD_ORPHAN_SECONDS setting)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        counts = upload_orphans_remove(min_age_seconds=options["min_age"])
        self.stdout.write(
            f"removed: {counts['removed']} folder(s), {counts['temporary_removed']} temporary file(s); "
            f"adopted: {counts['adopted']}"
        )
