"""Reader-study report: the paper's Tables 3–5, the OR cross-check and Figures 3, 4 and 7 in --out.

From two CSV files (``--responses``/``--predictions``; bad input writes nothing and names the file,
row and column) or from a study (``--study``, kept as a new report of the study, its files copied
into --out).
Design: docs/architecture/design-statistics.md
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from readerstudy import services
from readerstudy.analysis import readers
from readerstudy.analysis.verdicts import DEFAULT_ESTIMATE, ESTIMATES, shown_estimate
from readerstudy.models import ReaderStudy
from readerstudy.report import reporting, reports
from readerstudy.report.reader_report import REPORT_FILES, build_report, inputs_sha256, write_report


class Command(BaseCommand):
    help = (
        "Reader-study report (Krogue et al. 2020, Tables 3-5): κ of model and readers with bootstrap CIs, "
        "noninferiority verdicts, Obuchowski-Rockette cross-check, figures, report.html and report.pdf. "
        "From two CSV files (--responses, --predictions), or from a study of this site (--study NAME): "
        "then the report is also kept with the study, like its Report button does, and copied into --out."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--responses", metavar="CSV", help="the readers' answers (responses.csv)")
        parser.add_argument("--predictions", metavar="CSV", help="the model's probabilities per case")
        parser.add_argument(
            "--study",
            metavar="NAME",
            help="instead of --responses/--predictions: a study of this site; the report is kept with the study "
            "(as its Report button does) and its files and the two input CSVs are copied into --out",
        )
        parser.add_argument("--out", required=True, metavar="DIR", help="folder for the CSV, JSON, figures, HTML, PDF")
        parser.add_argument("--iterations", type=int, default=2000, help="bootstrap iterations (default 2000)")
        parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
        parser.add_argument(
            "--margin",
            type=float,
            default=None,
            help="noninferiority margin (default: from pairs of readers of the same group and training)",
        )
        parser.add_argument(
            "--estimate",
            choices=ESTIMATES,
            default=DEFAULT_ESTIMATE,
            help="the point estimate the tables and the forest plot show: the mean of the bootstrap samples (the "
            "paper's, default) or the statistic on all cases; the CSV has both",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["iterations"] < 1:
            raise CommandError("--iterations must be at least 1")
        if options["margin"] is not None and not options["margin"] >= 0:
            raise CommandError("--margin must be >= 0")
        if options["study"] is not None:
            if options["responses"] is not None or options["predictions"] is not None:
                raise CommandError("give either --study or --responses and --predictions, not both")
            self._study_report(options)
            return
        if options["responses"] is None or options["predictions"] is None:
            raise CommandError("give --responses and --predictions (or --study NAME)")
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
                estimate=options["estimate"],
            )
        except (OSError, ValueError) as error:  # ReaderDataError is a ValueError: file, row and column
            raise CommandError(str(error)) from error
        try:
            paths = write_report(report, options["out"], inputs_sha256=digest)
        except OSError as error:
            raise CommandError(f"cannot write {options['out']}: {error}") from error
        self._print_summary(report)
        self.stdout.write(f"wrote {len(paths)} files in {time.perf_counter() - started:.1f} s:")
        for path in paths:
            self.stdout.write(f"  {path}")

    def _study_report(self, options: dict[str, Any]) -> None:
        import json

        study = ReaderStudy.objects.filter(name=options["study"]).first()
        if study is None:
            raise CommandError(f"there is no study named {options['study']!r}")
        started = time.perf_counter()
        try:
            row = reports.report_start(
                study=study,
                user=None,
                iterations=options["iterations"],
                seed=options["seed"],
                margin=options["margin"],
                queue=False,
            )
        except services.StudyError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"report {row.pk} of study {study.name}")
        row = reports.report_build(report_id=row.pk, progress=self._progress_bar, estimate=options["estimate"])
        self.stderr.write("")
        if row.status != row.Status.DONE:
            raise CommandError(f"report {row.pk} failed: {row.error}")
        folder = reports.report_folder(row)
        out = Path(options["out"])
        try:
            out.mkdir(parents=True, exist_ok=True)
            paths = []
            for name in reports.INPUT_FILES:
                paths.append(Path(shutil.copy2(folder / "inputs" / name, out / name)))
            for name in (*REPORT_FILES, *reporting.present(folder / "report")):  # with the checklists and flow
                paths.append(Path(shutil.copy2(folder / "report" / name, out / name)))
        except OSError as error:
            raise CommandError(f"cannot write {out}: {error}") from error
        report = json.loads((folder / "report" / "report.json").read_text(encoding="utf-8"))
        self._print_summary(report)
        self.stdout.write(f"inputs SHA-256 {row.inputs_sha256}")
        self.stdout.write(f"kept in {folder}; copied {len(paths)} files in {time.perf_counter() - started:.1f} s:")
        for path in paths:
            self.stdout.write(f"  {path}")

    def _progress_bar(self, value: float, stage: str) -> None:
        width = 30
        filled = round(width * value)
        stream = self.stderr
        stream.write(f"\r[{'#' * filled}{' ' * (width - filled)}] {value * 100:3.0f}% {stage:<10}", ending="")
        stream.flush()

    def _print_summary(self, report: dict[str, Any]) -> None:
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
            self.stdout.write(
                f"margin {margin['value']:.3f} (mean kappa difference of {pairs} same-group, same-training pairs)"
            )
        choice = report.get("estimate", DEFAULT_ESTIMATE)
        self.stdout.write(f"point estimates: {choice}")
        for row in report["comparisons"]:
            if row["a"] == readers.MODEL:
                low = "–" if row["ci_low"] is None else f"{row['ci_low']:.3f}"
                high = "–" if row["ci_high"] is None else f"{row['ci_high']:.3f}"
                point = shown_estimate(row, choice)
                estimate = "–" if point is None else f"{point:.3f}"
                mark = " (borderline: may flip with another seed)" if row.get("borderline") else ""
                self.stdout.write(
                    f"{row['task']}: model − {row['b']} ({row['condition_b']}) κ {estimate} "
                    f"(95% CI {low} to {high}): {row['verdict']}{mark}"
                )
