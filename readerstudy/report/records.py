"""A study report's reporting documents from the records: its flow and its three checklists.

:func:`study_flow` counts the dataset version's flow down to the study's cases and each phase's
answers; :func:`study_facts_of` adds the readers, the reading protocol, times per case and the
report's statistics to the model's facts (``ml.checklists``); :func:`write_study_documents`
writes CLAIM, STARD-AI and TRIPOD+AI beside report.html.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from django.db.models import Count

from ml.checklists import MODEL_CHECKLISTS, model_facts, write_documents
from ml.core.flow import FlowCounts, PhaseCount
from ml.flow import dataset_flow
from readerstudy.analysis import readers as analysis
from readerstudy.models import Condition, Reader, ReaderStudy, Response
from readerstudy.report.checklists.stard_ai import STARD_AI

STUDY_CHECKLISTS = (MODEL_CHECKLISTS[0], STARD_AI, MODEL_CHECKLISTS[1])  # CLAIM, STARD-AI, TRIPOD+AI


def study_flow(*, study: ReaderStudy) -> FlowCounts:
    """The dataset version's flow, then the study's cases and, per phase, its readers (those with
    an answer), their answers and the cases every one of them answered."""
    labels = dict(Condition.choices)
    phases = []
    for number, condition in enumerate(study.phases, start=1):
        answers = Response.objects.filter(case__study=study, condition=condition)
        n_readers = answers.values("reader_id").distinct().count()
        by_case = answers.values("case_id").annotate(n=Count("reader_id", distinct=True))
        phases.append(
            PhaseCount(
                condition=condition,
                label=f"Phase {number}, {labels[condition].lower()}",
                readers=n_readers,
                answers=answers.count(),
                cases_answered_by_all=sum(1 for row in by_case if n_readers and row["n"] == n_readers),
            )
        )
    return dataclasses.replace(
        dataset_flow(version=study.dataset), study=study.name, cases=study.cases.count(), phases=tuple(phases)
    )


def _seconds_per_case(study: ReaderStudy, complete: Sequence[Reader]) -> dict[str, float | None]:
    seconds: dict[str, list[float]] = {c: [] for c in study.phases}
    rows = Response.objects.filter(reader__in=complete, carried_over=False).values_list(
        "condition", "displayed_at", "submitted_at"
    )
    for condition, shown, submitted in rows:
        seconds.setdefault(condition, []).append((submitted - shown).total_seconds())
    return {c: (statistics.median(v) if v else None) for c, v in seconds.items()}


def _model_on_cases(report: Mapping[str, Any]) -> dict[str, Any]:
    """The model's figures on the study's cases, from the report's rows (κ with its CI)."""
    out: dict[str, Any] = {}
    for row in report["observers"]:
        if row["observer"] != analysis.MODEL:
            continue
        task = row["task"]
        out[f"{task} κ"] = {"mean": row["kappa"], "ci_low": row["kappa_ci_low"], "ci_high": row["kappa_ci_high"]}
        out[f"{task} accuracy"] = row["accuracy"]
    auc = ((report.get("figures") or {}).get("roc_model") or {}).get("auc")
    if auc is not None:
        out["binary AUC"] = auc
    return out


def study_facts_of(
    *, study: ReaderStudy, report: Mapping[str, Any], complete: Sequence[Reader], flow: FlowCounts
) -> dict[str, Any]:
    """What the study's checklists read: the model's facts, the flow down to the answers, the
    readers, the reading protocol, the report's statistics and its deviations."""
    version = study.model_version
    if version is None:
        raise ValueError(f"study {study.name} has no model version")
    facts = model_facts(version=version)
    margin = report["margin"]
    facts.update(
        flow=flow.as_dict(),
        study={
            "name": study.name,
            "cases": report["n_cases"],
            "patients": report["n_patients"],
            "seed": study.seed,
            "phases": [dict(Condition.choices)[c].lower() for c in study.phases],
            "washout_days": round(study.washout.total_seconds() / 86400, 1),
            "readers": [r.code for r in complete],
            "invited": study.readers.count(),
            "reader_groups": dict(Counter(r.group for r in complete)),
            "reader_trainings": dict(Counter(r.training for r in complete)),
            "seconds_per_case": _seconds_per_case(study, complete),
            "model_on_cases": _model_on_cases(report),
        },
        statistics={
            "iterations": report["iterations"],
            "seed": report["seed"],
            "margin": margin["value"],
            "margin_source": "from reader pairs" if margin["source"] == "pairs" else "given",
            "pairs": sum(1 for p in margin.get("pairs", []) if p["task"] == analysis.TASKS[0]),
        },
        deviations=list(report.get("deviations", [])),
    )
    return facts


def write_study_documents(
    *, study: ReaderStudy, report: Mapping[str, Any], complete: Sequence[Reader], folder: Path
) -> list[Path]:
    """CLAIM, STARD-AI and TRIPOD+AI (.md, .html) of the study into ``folder`` (beside report.html;
    the flow diagram is drawn with the report itself from ``report["reporting"]``)."""
    flow = FlowCounts.from_dict(report["reporting"]["flow"])
    facts = study_facts_of(study=study, report=report, complete=complete, flow=flow)
    return write_documents(
        folder=folder,
        checklists=STUDY_CHECKLISTS,
        facts=facts,
        subject=f"Reader study {study.name}, model version {study.model_version_id}, dataset version "
        f"{study.dataset_id}",
    )
