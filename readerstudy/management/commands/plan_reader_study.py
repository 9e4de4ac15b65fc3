"""Planning a reader study: the power of each κ comparison for planned numbers of cases and readers.

From a pilot's (or a finished study's) two CSVs, the ones ``reader_report`` reads; writes
``power.csv``, ``power.json`` and the figure (PNG, SVG) into --out, with a progress bar.
Docs: docs/research/power.md
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from readerstudy.analysis import power
from readerstudy.analysis.power_outputs import write_plan


def int_list(text: str) -> list[int]:
    """``"50,100,200"`` as integers; argparse shows the ValueError's message as a usage error."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"{text!r} is not a comma-separated list of whole numbers") from None
    if not values:
        raise ValueError("an empty list")
    return values


class Command(BaseCommand):
    help = (
        "Power of a planned reader study (Krogue et al. 2020's κ comparisons): from a pilot's responses.csv and "
        "model_predictions.csv, the probability that each comparison gets the verdict the pilot points to "
        "(superior or noninferior), for each planned number of cases and readers per training, by resampling "
        "cases (by patient) and readers from the pilot. Writes power.csv, power.json, power.png and power.svg."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--responses", required=True, metavar="CSV", help="the pilot's answers (responses.csv)")
        parser.add_argument("--predictions", required=True, metavar="CSV", help="the model's probabilities per case")
        parser.add_argument("--out", required=True, metavar="DIR", help="folder for power.csv, power.json, figures")
        parser.add_argument(
            "--cases",
            type=_arg(int_list),
            default=list(power.DEFAULT_CASES),
            help="planned numbers of cases (patients), comma-separated (default 50,100,200)",
        )
        parser.add_argument(
            "--readers-per-training",
            type=_arg(int_list),
            default=list(power.DEFAULT_READERS),
            help="planned readers of each group and training, comma-separated (default 2,3)",
        )
        parser.add_argument(
            "--simulations", type=int, default=power.DEFAULT_SIMULATIONS, help="simulated studies per design (500)"
        )
        parser.add_argument(
            "--iterations",
            type=int,
            default=2000,
            help="bootstrap iterations of each simulated study's report and of the pilot's (default 2000, the paper's)",
        )
        parser.add_argument("--seed", type=int, default=0, help="seed of the pilot's bootstrap and the simulations")
        parser.add_argument(
            "--margin",
            type=float,
            default=None,
            help="noninferiority margin (default: from pairs of readers of one group and training, in each study)",
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        settings = {
            "cases": sorted(set(options["cases"])),
            "readers_per_training": sorted(set(options["readers_per_training"])),
            "simulations": options["simulations"],
            "iterations": options["iterations"],
            "seed": options["seed"],
            "margin": options["margin"],
        }
        if settings["simulations"] < 1 or settings["iterations"] < 1:
            raise CommandError("--simulations and --iterations must be at least 1")
        if min(settings["cases"]) < 2 or min(settings["readers_per_training"]) < 2:
            raise CommandError("--cases and --readers-per-training must be at least 2 (the margin needs pairs)")
        if settings["margin"] is not None and not settings["margin"] >= 0:
            raise CommandError("--margin must be >= 0")
        started = time.perf_counter()
        try:
            pilot = power.load_pilot(
                options["responses"],
                options["predictions"],
                iterations=settings["iterations"],
                seed=settings["seed"],
                margin=settings["margin"],
            )
        except (OSError, ValueError) as error:  # ReaderDataError is a ValueError: file, row and column
            raise CommandError(str(error)) from error
        total = len(settings["cases"]) * len(settings["readers_per_training"]) * settings["simulations"]
        with tqdm(total=total, unit="study", disable=options["no_progress"], file=self.stderr._out) as bar:
            rows = power.plan(pilot, **settings, progress=bar.update)
        result = power.plan_result(pilot, rows, **settings)
        try:
            paths = write_plan(result, options["out"])
        except OSError as error:
            raise CommandError(f"cannot write {options['out']}: {error}") from error
        for target in result["skipped"]:
            self.stdout.write(
                f"no power for {target['task']} {target['a']} ({target['condition_a']}) − {target['b']} "
                f"({target['condition_b']}): the pilot's verdict is {target['verdict']}"
            )
        for note in result["notes"]:
            self.stdout.write(f"note: {note}")
        self.stdout.write(
            f"{len(rows)} power rows for {len(result['targets']) - len(result['skipped'])} comparisons; "
            f"wrote {len(paths)} files in {time.perf_counter() - started:.1f} s:"
        )
        for path in paths.values():
            self.stdout.write(f"  {path}")


def _arg(parse: Any) -> Any:
    """An argparse type from ``parse``: its ValueError becomes argparse's error with the message."""
    import argparse

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return convert
