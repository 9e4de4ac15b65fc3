"""Simulated answers, for demos and tests: each reader of the study who has not started answers
every phase through the services a browser calls (so every rule holds), with seeded plausible
answers (``readerstudy.simulation``) and times that look real, all in the past.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from readerstudy import services, simulation
from readerstudy.models import Condition, Reader, ReaderStudy, Response


class SimulationError(Exception):
    pass


def simulate_reader(reader: Reader, *, seed: int, now: dt.datetime) -> Counter[str]:
    """Answer every phase for ``reader`` (who has not started); returns answers per condition,
    with ``carried_over`` counting the aided answers carried over from phase 2."""
    study = reader.study
    code, group = reader.code, reader.group
    timing = simulation.timing_rng(seed, code)
    skill = simulation.reader_skill(seed, code)
    slowest = simulation.SECONDS[group][1] + 2.0
    span = study.washout + dt.timedelta(hours=13, seconds=len(study.phases) * study.case_count * slowest)
    t = now - span - dt.timedelta(hours=float(timing.uniform(0.0, 24.0)))  # readers start on different days
    full: dict[int, str] = {}
    counts: Counter[str] = Counter()
    with transaction.atomic():
        for _ in range(len(study.phases) * study.case_count + 2):
            step, case = services.case_show(reader=reader, now=t, ignore_washout=True)
            if case is None:
                if step.status != "done":
                    raise SimulationError(f"reader {code} stopped at {step.condition or '-'}: {step.status}")
                break
            condition = step.condition
            assert condition is not None  # a case shown belongs to a phase
            answer = simulation.simulated_answer(
                truth=case.truth,
                group=group,
                condition=condition,
                rng=simulation.case_rng(seed, code, case.number, condition),
                model_top=case.predicted_class or None,
                own=full.get(case.pk),
                skill=skill,
            )
            t += dt.timedelta(seconds=simulation.answer_seconds(group, timing))
            services.answer_submit(reader=reader, case_id=case.pk, condition=condition, answer=answer, now=t)
            if condition == Condition.FULL_QUALITY:
                full[case.pk] = answer
            counts[condition] += 1
            if step.answered + 1 < step.total:
                t += dt.timedelta(seconds=float(timing.uniform(0.5, 2.0)))  # the next case loads
            elif condition == Condition.MODEL_QUALITY:
                t += study.washout + dt.timedelta(hours=float(timing.uniform(0.0, 12.0)))
            else:
                t += dt.timedelta(minutes=float(timing.uniform(1.0, 10.0)))
        else:
            raise SimulationError(f"reader {code} did not finish after every case of every phase was answered")
        carried = Response.objects.filter(reader=reader, condition=Condition.MODEL_AIDED, carried_over=True).count()
    counts["carried_over"] = carried
    counts[Condition.MODEL_AIDED] += carried
    return counts


class Command(BaseCommand):
    help = "Answer every phase for each reader of a study who has not started, with simulated plausible answers."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--study", required=True, metavar="NAME", help="the study's name")
        parser.add_argument("--seed", type=int, default=0, help="seed of the simulated answers (default 0)")
        parser.add_argument(
            "--user", action="append", default=[], metavar="U", help="only these readers (username; repeatable)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        study = ReaderStudy.objects.filter(name=options["study"]).first()
        if study is None:
            raise CommandError(f"no reader study named {options['study']!r}")
        if study.status != ReaderStudy.Status.OPEN:
            detail = f": {study.error}" if study.error else ""
            raise CommandError(f"study {study.name} is {study.status}, not open{detail}")
        readers = study.readers.select_related("user", "study").filter(phases__isnull=True).distinct()
        if options["user"]:
            known = set(study.readers.values_list("user__username", flat=True))
            unknown = sorted(set(options["user"]) - known)
            if unknown:
                raise CommandError(f"not readers of {study.name}: {', '.join(unknown)}")
            readers = readers.filter(user__username__in=options["user"])
        waiting = list(readers.order_by("code"))
        if not waiting:
            self.stdout.write(f"No reader of {study.name} is waiting to start: nothing to simulate.")
            return
        now = timezone.now()
        for reader in waiting:
            try:
                counts = simulate_reader(reader, seed=options["seed"], now=now)
            except (SimulationError, services.StudyError) as error:
                raise CommandError(f"simulating {reader.code} ({reader.user}) failed: {error}") from error
            given = ", ".join(f"{counts[c]} {c}" for c in study.phases)
            carried = ""
            if Condition.MODEL_AIDED in study.phases:
                carried = f" ({counts['carried_over']} carried over from phase 2)"
            self.stdout.write(f"{reader.code} {reader.group} {reader.training} ({reader.user}): {given}{carried}")
        self.stdout.write(f"Simulated {len(waiting)} reader(s) of {study.name} with seed {options['seed']}.")
