"""Reader-study report: the paper's Tables 3–5, the OR cross-check and Figures 3, 4 and 7 in --out.

``python manage.py reader_report --responses R.csv --predictions P.csv --out DIR`` reads the two
CSV files (:mod:`ml.core.readers`), computes everything (:func:`ml.core.reader_report.build_report`)
and only then writes (:func:`ml.core.reader_report.write_report`, via a temporary folder), so bad
input writes nothing: a :class:`~ml.core.readers.ReaderDataError` becomes a CommandError that names
the file, row and column.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ml.core import readers
from ml.core.reader_report import build_report, inputs_sha256, write_report


class Command(BaseCommand):
    help = (
        "Reader-study report (Krogue et al. 2020, Tables 3-5): κ of model and readers with bootstrap CIs, "
        "noninferiority verdicts, Obuchowski-Rockette cross-check, figures, report.html and report.pdf."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--responses", required=True, metavar="CSV", help="the readers' answers (responses.csv)")
        parser.add_argument("--predictions", required=True, metavar="CSV", help="the model's probabilities per case")
        parser.add_argument("--out", required=True, metavar="DIR", help="folder for the CSV, JSON, figures, HTML, PDF")
        parser.add_argument("--iterations", type=int, default=2000, help="bootstrap iterations (default 2000)")
        parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
        parser.add_argument(
            "--margin", type=float, default=None, help="noninferiority margin (default: from pairs of readers)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["iterations"] < 1:
            raise CommandError("--iterations must be at least 1")
        if options["margin"] is not None and not options["margin"] >= 0:
            raise CommandError("--margin must be >= 0")
        responses, predictions = options["responses"], options["predictions"]
        started = time.perf_counter()
        try:
            digest = inputs_sha256(responses, predictions)
            report = build_report(
                responses,
                predictions,
                iterations=options["iterations"],
                seed=options["seed"],
                margin=options["margin"],
            )
        except (OSError, ValueError) as error:  # ReaderDataError is a ValueError: file, row and column
            raise CommandError(str(error)) from error
        try:
            paths = write_report(report, options["out"], inputs_sha256=digest)
        except OSError as error:
            raise CommandError(f"cannot write {options['out']}: {error}") from error

        n_readers = len(
            {r["observer"] for r in report["observers"] if r["group"] in readers.GROUPS} - set(readers.GROUPS)
        )
        margin = report["margin"]
        self.stdout.write(
            f"{report['n_cases']} cases of {report['n_patients']} patients, {n_readers} readers and the model, "
            f"{report['iterations']} bootstrap iterations (seed {report['seed']})"
        )
        if margin["source"] == "argument":
            self.stdout.write(f"margin {margin['value']:.3f} (given with --margin)")
        else:
            pairs = len(margin["pairs"])
            self.stdout.write(f"margin {margin['value']:.3f} (mean kappa difference of {pairs} same-training pairs)")
        for row in report["comparisons"]:
            if row["a"] == readers.MODEL:
                low = "–" if row["ci_low"] is None else f"{row['ci_low']:.3f}"
                high = "–" if row["ci_high"] is None else f"{row['ci_high']:.3f}"
                estimate = "–" if row["estimate"] is None else f"{row['estimate']:.3f}"
                self.stdout.write(
                    f"{row['task']}: model − {row['b']} ({row['condition_b']}) κ {estimate} "
                    f"(95% CI {low} to {high}): {row['verdict']}"
                )
        self.stdout.write(f"wrote {len(paths)} files in {time.perf_counter() - started:.1f} s:")
        for path in paths:
            self.stdout.write(f"  {path}")
