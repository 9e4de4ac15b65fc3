"""The researcher's view of a reader study and its exports: each reader's progress per phase, and
``responses.csv`` and ``model_predictions.csv`` as the reader-study analysis reads them.
Design: docs/architecture/design-site.md
"""

from __future__ import annotations

import datetime as dt
import io
import statistics
from collections.abc import Iterable, Sequence
from typing import Any

from django.utils import timezone

from annotate.labels import CLASSES
from common import csvfile
from readerstudy.models import (
    PHASES,
    Condition,
    ReaderStudy,
    Response,
)

# ``seconds``: from the case's display to the answer (0 for an aided answer carried over from phase 2).
RESPONSE_COLUMNS = ("reader", "group", "training", "condition", "case", "patient", "truth", "answer", "seconds")
PREDICTION_COLUMNS = ("case", "patient", "truth", *(f"p_{key}" for key in CLASSES))

# --------------------------------------------------------------------------- the researcher's view


def study_progress(*, study: ReaderStudy, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Per reader: answered/total and dates per phase, when the washout ends, median seconds per case.

    ``answered`` counts the reader's own answers only; the model-aided answers carried over from
    full quality (where the reader agreed with the model) are ``carried_over``, apart: the aided
    phase's ``total`` is the cases shown, so "10/44" for a reader who answered none of 44 and
    carried 10 over would overstate their progress. ``text`` says it in words for the dashboard:
    "0 of 44, plus 10 carried over"."""
    now = now or timezone.now()
    readers = list(study.readers.select_related("user").prefetch_related("phases"))
    answered: dict[tuple[int, str], int] = {}
    carried_over: dict[tuple[int, str], int] = {}
    seconds: dict[int, list[float]] = {}
    for reader_id, condition, carried, shown, submitted in Response.objects.filter(reader__study=study).values_list(
        "reader_id", "condition", "carried_over", "displayed_at", "submitted_at"
    ):
        counts = carried_over if carried else answered
        counts[reader_id, condition] = counts.get((reader_id, condition), 0) + 1
        if not carried:
            seconds.setdefault(reader_id, []).append((submitted - shown).total_seconds())
    rows = []
    for reader in readers:
        phases = {p.condition: p for p in reader.phases.all()}
        first = phases.get(Condition.MODEL_QUALITY)
        washout_ends = first.finished_at + study.washout if first and first.finished_at else None
        per_phase = []
        for condition in study.phases:
            phase = phases.get(condition)
            total = len(phase.case_ids) if phase else (study.case_count if condition != Condition.MODEL_AIDED else None)
            own = answered.get((reader.pk, condition), 0)
            carried_count = carried_over.get((reader.pk, condition), 0)
            text = f"{own} of {'?' if total is None else total}" + (
                f", plus {carried_count} carried over" if carried_count else ""
            )
            per_phase.append(
                {
                    "condition": condition,
                    "answered": own,
                    "carried_over": carried_count,
                    "text": text,
                    "shown": len(phase.case_ids) if phase else 0,
                    "total": total,
                    "started_at": phase.started_at if phase else None,
                    "finished_at": phase.finished_at if phase else None,
                }
            )
        times = seconds.get(reader.pk, [])
        rows.append(
            {
                "reader": reader,
                "phases": per_phase,
                "washout_ends": washout_ends,
                "washout_over": washout_ends is not None and washout_ends <= now,
                "median_seconds": statistics.median(times) if times else None,
                "done": all(p["finished_at"] for p in per_phase),
            }
        )
    return rows


# --------------------------------------------------------------------------- exports


def responses_rows(*, study: ReaderStudy, complete_only: bool = False) -> list[dict[str, Any]]:
    """``responses.csv``'s rows: one per reader, condition and case, in reader, condition, case order.
    ``complete_only`` keeps the readers who answered every case under every condition."""
    rows: list[dict[str, Any]] = []
    query = Response.objects.filter(reader__study=study).select_related(
        "reader", "case__dataset_hip__patient", "case__dataset_hip"
    )
    by_reader: dict[int, list[Response]] = {}
    for response in query:
        by_reader.setdefault(response.reader_id, []).append(response)
    conditions = {c: i for i, c in enumerate(PHASES)}
    for responses in by_reader.values():
        if complete_only and len(responses) != study.case_count * len(PHASES):
            continue
        for r in sorted(responses, key=lambda r: (r.reader.code, conditions[r.condition], r.case.number)):
            rows.append(
                {
                    "reader": r.reader.code,
                    "group": r.reader.group,
                    "training": r.reader.training,
                    "condition": r.condition,
                    "case": r.case.number,
                    "patient": r.case.dataset_hip.patient.code,
                    "truth": r.case.dataset_hip.hip_class,
                    "answer": r.answer,
                    "seconds": f"{r.seconds:.3f}",
                }
            )
    rows.sort(key=lambda row: (row["reader"], conditions[row["condition"]], row["case"]))
    return rows


def predictions_rows(*, study: ReaderStudy) -> list[dict[str, Any]]:
    """``model_predictions.csv``'s rows: the frozen model probabilities of each case."""
    rows = []
    for case in study.cases.select_related("dataset_hip__patient").order_by("number"):
        if case.probabilities is None:
            continue
        row = {"case": case.number, "patient": case.dataset_hip.patient.code, "truth": case.dataset_hip.hip_class}
        row.update({f"p_{key}": repr(float(p)) for key, p in zip(CLASSES, case.probabilities, strict=True)})
        rows.append(row)
    return rows


def csv_bytes(*, columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csvfile.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()


def study_export(*, study: ReaderStudy, complete_only: bool = False) -> dict[str, bytes]:
    """The study's two exports, by file name. Their columns are a contract; how the readings in
    ``model_predictions.csv`` were frozen is ``frozen_protocol(study)`` (``study.test_time``)."""
    files = {
        "responses.csv": csv_bytes(
            columns=RESPONSE_COLUMNS, rows=responses_rows(study=study, complete_only=complete_only)
        )
    }
    if study.model_version_id is not None:
        files["model_predictions.csv"] = csv_bytes(columns=PREDICTION_COLUMNS, rows=predictions_rows(study=study))
    return files
