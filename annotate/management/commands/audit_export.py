"""python manage.py audit_export --since DATE [--until DATE] [--user NAME] [--object-type TYPE] --out FILE.csv

Writes the access log (annotate.audit.AccessLog) as CSV, oldest first: who viewed or exported
which radiograph, reader-study case, ground truth or file, when, from where, and the answer's
status. ``--out -`` writes to stdout. The export itself is logged (object type ``access_log``).
"""

from __future__ import annotations

import datetime as dt
import getpass
import sys
from pathlib import Path
from typing import IO, Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from tqdm import tqdm

from annotate.audit import AccessLog, access_record
from common import csvfile
from common.atomicfile import atomic_write

COLUMNS = [
    "created_at", "username", "user_id", "action", "object_type", "object_id", "url_name", "method",
    "status_code", "query", "ip_address", "user_agent",
]  # fmt: skip

FILTERS = ("since", "until", "user", "object_type")


def parse_when(value: str, *, end: bool = False) -> dt.datetime:
    """A date (YYYY-MM-DD: the day's start, or with ``end`` the next day's) or an ISO datetime."""
    moment = parse_datetime(value)
    if moment is None:
        day = parse_date(value)
        if day is None:
            raise CommandError(f"{value!r} is not a date (YYYY-MM-DD) or a date and time (YYYY-MM-DDTHH:MM)")
        moment = dt.datetime.combine(day + dt.timedelta(days=1 if end else 0), dt.time())
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


class Command(BaseCommand):
    help = "Export the access log (who viewed which radiograph or reader-study case) as CSV."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--since", required=True, help="from this date (YYYY-MM-DD) or date and time, inclusive")
        parser.add_argument("--until", help="up to this date (inclusive) or date and time (exclusive)")
        parser.add_argument("--user", help="only this username")
        parser.add_argument("--object-type", help="only this object type (radiograph, reader_case, ground_truth...)")
        parser.add_argument("--out", required=True, help="CSV file to write ('-' for standard output)")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        rows = AccessLog.objects.filter(created_at__gte=parse_when(options["since"])).order_by("created_at", "id")
        if options["until"]:
            rows = rows.filter(created_at__lt=parse_when(options["until"], end=True))
        if options["user"]:
            rows = rows.filter(username=options["user"])
        if options["object_type"]:
            rows = rows.filter(object_type=options["object_type"])
        out = options["out"]
        if out == "-":
            count = self.write(rows, sys.stdout, progress=False)
        else:
            path = Path(out)
            if path.is_dir():
                raise CommandError(f"--out {out} is a folder; give a file name, e.g. {path / 'access-log.csv'}")
            # Written beside the target and renamed: a failed export leaves no half file.
            try:
                with atomic_write(path, text=True, newline="", encoding="utf-8") as stream:
                    count = self.write(rows, stream, progress=not options["no_progress"])
            except OSError as exc:
                raise CommandError(f"could not write {out}: {exc}") from None
        access_record(
            user=f"cli:{getpass.getuser()}",
            action=AccessLog.Action.EXPORT,
            object_type="access_log",
            url_name="audit_export",
            method="CLI",
            query=" ".join(f"--{key.replace('_', '-')} {options[key]}" for key in FILTERS if options[key]),
        )
        if out != "-":
            self.stderr.write(f"{count} access log rows written to {out}")

    def write(self, rows: Any, stream: IO[str], *, progress: bool) -> int:
        # The query and the user agent are what the client sent: common.csvfile keeps a cell such as
        # =HYPERLINK(...) from becoming a formula in the reviewer's spreadsheet.
        writer = csvfile.writer(stream)
        writer.writerow(COLUMNS)
        count = 0
        bar = tqdm(total=rows.count() if progress else None, unit="row", disable=not progress, file=self.stderr._out)
        for row in rows.iterator(chunk_size=2000):
            writer.writerow(
                [
                    row.created_at.isoformat(), row.username, row.user_id or "", row.action, row.object_type,
                    row.object_id, row.url_name, row.method, row.status_code, row.query, row.ip_address or "",
                    row.user_agent,
                ]
            )  # fmt: skip
            count += 1
            bar.update(1)
        bar.close()
        return count
