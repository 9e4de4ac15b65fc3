"""Send (again) the latest results of one radiograph, or of every radiograph read since a date,
to the destinations of their sources: queued on ``default``, or sent here with ``--now``."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_date
from tqdm import tqdm

from ml.models import HipPrediction
from triage.results.sending import queue_results, send_one


class Command(BaseCommand):
    help = "Resend the results (SR and overlay) of --radiograph ID, or of the radiographs read since --since DATE."

    def add_arguments(self, parser: CommandParser) -> None:
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--radiograph", type=int, metavar="ID")
        which.add_argument("--since", metavar="DATE", help="YYYY-MM-DD: radiographs read on or after this date")
        parser.add_argument("--now", action="store_true", help="send here and now instead of queueing")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["radiograph"] is not None:
            ids = [options["radiograph"]]
            if not HipPrediction.objects.filter(radiograph_id=ids[0]).exists():
                raise CommandError(f"radiograph {ids[0]} has no stored prediction")
        else:
            day = parse_date(options["since"] or "")
            if day is None:
                raise CommandError(f"--since must be a date as YYYY-MM-DD, not {options['since']!r}")
            start = datetime.combine(day, time.min, tzinfo=timezone.get_current_timezone())
            ids = sorted(
                set(HipPrediction.objects.filter(created_at__gte=start).values_list("radiograph_id", flat=True))
            )
        rows = queue_results(radiograph_ids=ids)
        if not rows:
            self.stdout.write("no destination for these radiographs (RESULTS_DESTINATIONS or the admin)")
            return
        if options["now"]:
            for row in tqdm(rows, desc="sending", unit="sending", disable=None):
                send_one(sending_id=row.pk)
        for row in rows:
            row.refresh_from_db()
            reason = f": {row.reason}" if row.reason else ""
            self.stdout.write(f"radiograph {row.radiograph_id} -> {row.destination.name}: {row.status}{reason}")
