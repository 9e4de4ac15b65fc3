"""``manage.py export_responses --study NAME --out DIR``: the study's ``responses.csv`` and
``model_predictions.csv`` (``services.study_export``), the statistics report's inputs, and the
test-time protocol the model's readings were frozen with (``study.test_time``; not a column).

Each file is written to a temporary name in DIR and renamed into place, so a crash never leaves
a half-written file that looks whole.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from common.atomicfile import write_atomic
from readerstudy import services
from readerstudy.models import ReaderStudy


class Command(BaseCommand):
    help = "Write a reader study's responses.csv and model_predictions.csv into a folder."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--study", required=True, metavar="NAME", help="the study's name")
        parser.add_argument("--out", required=True, metavar="DIR", help="folder to write into (created if missing)")
        parser.add_argument(
            "--complete-only",
            action="store_true",
            help="only the readers who answered every case under every condition (what the report needs)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        study = ReaderStudy.objects.filter(name=options["study"]).first()
        if study is None:
            raise CommandError(f"no reader study named {options['study']!r}")
        files = services.study_export(study=study, complete_only=options["complete_only"])
        out = Path(options["out"])
        try:
            out.mkdir(parents=True, exist_ok=True)
            for name, data in files.items():
                write_atomic(out / name, data, mode=0o600)
        except OSError as error:
            raise CommandError(f"cannot write into {out}: {error}") from error
        for name, data in files.items():
            rows = max(data.count(b"\n") - 1, 0)
            self.stdout.write(f"{out / name}: {rows} rows")
        if "model_predictions.csv" not in files:
            self.stdout.write(f"(study {study.name} has no model: no model_predictions.csv)")
        else:
            protocol = services.frozen_protocol(study=study)
            self.stdout.write(f"model_predictions.csv: test_time {study.test_time}. {protocol['description']}")
