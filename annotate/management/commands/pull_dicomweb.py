"""Import the hip and pelvis radiographs (CR, DX) of a DICOMweb server: QIDO-RS to find them,
WADO-RS to fetch them (``annotate.archive.dicomweb``); instances held already are skipped. A
server error stops the command, naming the URL and HTTP status; what was imported stays.
"""

from __future__ import annotations

import datetime
import logging
import os
from typing import Any

import requests
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from annotate.archive import dicomweb
from annotate.archive.ingest import IngestOutcome


def _date(text: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"--since {text!r} is not a date; give it as YYYY-MM-DD")


class Command(BaseCommand):
    help = "Import hip and pelvis radiographs from a DICOMweb server (QIDO-RS, WADO-RS)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", required=True, help="the DICOMweb root, e.g. http://pacs:8042/dicom-web")
        parser.add_argument("--since", help="studies dated this day (YYYY-MM-DD) or later; required without --study")
        parser.add_argument("--study", default=None, help="only this Study Instance UID")
        parser.add_argument("--username", default=None, help="HTTP basic authentication")
        parser.add_argument(
            "--password", default=None, help="with --username (default: the DICOMWEB_PASSWORD environment variable)"
        )
        parser.add_argument(
            "--token", default=None, help="bearer token (default: the DICOMWEB_TOKEN environment variable)"
        )
        parser.add_argument("--no-progress", action="store_true", help="do not show the progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        since = _date(options["since"]) if options["since"] else None
        if since is None and not options["study"]:
            raise CommandError("give --since DATE, --study UID, or both")
        session = self._session(options)
        if options["verbosity"] < 2:
            # The client logs every request at INFO, the pull each skipped series and its summary:
            # the command prints those itself, and the bar shows the rest.
            logging.getLogger("dicomweb_client").setLevel(logging.WARNING)
            logging.getLogger("annotate.archive.dicomweb").setLevel(logging.WARNING)
        bar = tqdm(total=None, unit="instance", disable=options["no_progress"], file=self.stderr._out)

        def progress(outcome: IngestOutcome, done: int, total: int) -> None:
            if bar.total != total:
                bar.total = total
                bar.refresh()
            if outcome.status == "rejected":
                tqdm.write(f"rejected {outcome.name}: {outcome.reason}", file=self.stdout._out)
            bar.update(1)

        url = options["url"]
        try:
            summary = dicomweb.pull(url, since, study_uid=options["study"], session=session, progress=progress)
        except dicomweb.PullError as exc:
            bar.close()
            if not exc.summary.outcomes:
                raise CommandError(str(exc))
            self._report(exc.summary)
            raise CommandError(f"{exc}; before that (kept): {exc.summary.line()}")
        finally:
            bar.close()
        self._report(summary)
        self.stdout.write(summary.line())

    def _session(self, options: dict[str, Any]) -> requests.Session | None:
        token = options["token"] or os.environ.get("DICOMWEB_TOKEN")
        username = options["username"]
        if token and username:
            raise CommandError("give --username/--password or --token, not both")
        if username:
            password = options["password"] or os.environ.get("DICOMWEB_PASSWORD")
            if password is None:
                raise CommandError("--username needs --password (or DICOMWEB_PASSWORD in the environment)")
            session = requests.Session()
            session.auth = (username, password)
            return session
        if token:
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {token}"
            return session
        return None

    def _report(self, summary: dicomweb.PullSummary) -> None:
        for line in summary.skipped_series:
            self.stdout.write(line)
        self.stdout.write(
            f"found {summary.studies} studies with CR or DX, {summary.series} hip or pelvis series "
            f"({len(summary.skipped_series)} series of other body parts skipped)"
        )
