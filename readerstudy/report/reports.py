"""Statistics reports of a reader study: the study's own data through :mod:`readerstudy.report.reader_report`.

Every report is kept (a new row and folder each time) with the SHA-256 of its two input CSVs;
``report_start`` creates the row and queues the task, ``report_build`` does the work and records
its progress for the live bar.
Design: docs/architecture/design-statistics.md
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from annotate.labelling import provenance
from common.atomicfile import write_atomic
from common.queueing import enqueue, require_broker
from ml.core.configs import NetConfig
from readerstudy import services
from readerstudy.analysis import readers
from readerstudy.analysis.verdicts import DEFAULT_ESTIMATE, shown_estimate
from readerstudy.models import PHASES, Reader, ReaderStudy, StudyReport
from readerstudy.report import records
from readerstudy.report.reader_report import REPORT_FILES, build_report, inputs_sha256, write_report
from readerstudy.report.reporting import REPORTING_FILES

logger = logging.getLogger(__name__)

REPORTS_DIR = "reader-reports"
INPUT_FILES: tuple[str, ...] = ("responses.csv", "model_predictions.csv")
MIN_READERS = 2
MAX_ITERATIONS = 100_000

# Progress (0..1) at the start of each stage; the stage's name is kept in ``summary["stage"]``
# while the report runs.
STAGES: dict[str, float] = {"export": 0.02, "bootstrap": 0.15, "figures": 0.6, "pdf": 0.8}


def complete_readers(study: ReaderStudy) -> list[Reader]:
    """The readers who answered every case under all three conditions (the report's observers)."""
    counts = {
        condition: Count("responses", filter=Q(responses__condition=condition), distinct=True) for condition in PHASES
    }
    rows = Reader.objects.filter(study=study).annotate(**{f"n_{c}": n for c, n in counts.items()})
    return [r for r in rows if all(getattr(r, f"n_{c}") == study.case_count for c in PHASES)]


def report_folder(report: StudyReport) -> Path:
    """The report's folder on disk (``DATA_DIR/<report.folder>``)."""
    return Path(settings.DATA_DIR) / (report.folder or f"{REPORTS_DIR}/{report.pk}")


def report_file_path(report: StudyReport, name: str) -> Path | None:
    """The path of one of the report's files by its plain name (``report.html``, ``responses.csv``,
    ...), or None when ``name`` is not one of them or is not (yet) there. Only names of the known
    files are accepted, and the resolved path must lie inside the report's folder."""

    if name in INPUT_FILES:
        sub = "inputs"
    elif name in REPORT_FILES or name in REPORTING_FILES:
        sub = "report"
    else:
        return None
    root = report_folder(report).resolve()
    path = (root / sub / name).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path


def report_start(
    *,
    study: ReaderStudy,
    user: User | None,
    iterations: int = 2000,
    seed: int = 0,
    margin: float | None = None,
    queue: bool = True,
) -> StudyReport:
    """A new report of ``study`` in status ``queued``; with ``queue`` the ``build_study_report`` task
    is sent once the transaction commits (the command line builds it inline instead).

    Refused (``StudyError``) for a study without a model or a model-aided phase, with fewer than
    two readers who answered all three conditions, without a margin when no two of those readers
    share a group and a training (the margin comes from such pairs), or with bad settings."""
    if study.status not in (ReaderStudy.Status.OPEN, ReaderStudy.Status.CLOSED):
        raise services.StudyError(f"study {study.name} is {study.status}: its cases are not ready for a report")
    if study.model_version_id is None or not study.aided_phase:
        raise services.StudyError(
            f"study {study.name} has no model or no model-aided phase: the report compares the model with the "
            "readers under all three conditions"
        )
    if not 1 <= iterations <= MAX_ITERATIONS:
        raise services.StudyError(f"iterations must be between 1 and {MAX_ITERATIONS}, got {iterations}")
    if margin is not None and not margin >= 0:
        raise services.StudyError(f"the margin must be 0 or more, got {margin}")
    complete = complete_readers(study)
    if len(complete) < MIN_READERS:
        raise services.StudyError(
            f"a report needs at least {MIN_READERS} readers who answered every case under all three conditions; "
            f"study {study.name} has {len(complete)}"
        )
    if margin is None:
        kinds = [(r.group, r.training) for r in complete]
        if len(set(kinds)) == len(kinds):
            raise services.StudyError(
                "no two readers who answered everything share a group and a training, so there is no "
                "noninferiority margin to compute from them: give a margin"
            )
    if queue:  # with the broker away, no report row that no worker would ever build
        require_broker()
    with transaction.atomic():
        report = StudyReport.objects.create(
            study=study, iterations=iterations, seed=seed, margin=margin, created_by=user
        )
        report.folder = f"{REPORTS_DIR}/{report.pk}"
        report.save(update_fields=["folder"])
        if queue:
            # deferred: the tasks module imports this one
            from readerstudy.tasks import build_study_report

            enqueue(build_study_report, report_id=report.pk)
    return report


def _stage(report_id: int, stage: str, callback: Callable[[float, str], None] | None) -> None:
    value = STAGES[stage]
    StudyReport.objects.filter(pk=report_id).update(progress=value, summary={"stage": stage})
    if callback is not None:
        callback(value, stage)


def _write_inputs(folder: Path, files: dict[str, bytes]) -> list[Path]:
    """The two input CSVs into ``folder``, each written to a temporary name and renamed."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in INPUT_FILES:
        write_atomic(folder / name, files[name], mode=0o644)
        paths.append(folder / name)
    return paths


def summarize(report: dict[str, Any]) -> dict[str, Any]:
    """What the study's pages show of a report: margin, sizes and the model-vs-group verdicts, each
    with the point estimate the report shows (``shown``) and whether it is borderline."""

    estimate = report.get("estimate", DEFAULT_ESTIMATE)
    observers = {r["observer"] for r in report["observers"]} - {readers.MODEL, *readers.GROUPS}
    keys = ("task", "a", "condition_a", "b", "condition_b", "estimate", "boot_mean", "ci_low", "ci_high", "verdict")
    verdicts = [
        {
            **{key: row.get(key) for key in keys},
            "shown": shown_estimate(row, estimate),
            "borderline": bool(row.get("borderline")),
        }
        for row in report["comparisons"]
        if row["a"] == readers.MODEL
    ]
    margin = report["margin"]
    return {
        "margin": margin["value"],
        "margin_source": margin["source"],
        "n_readers": len(observers),
        "n_cases": report["n_cases"],
        "n_patients": report["n_patients"],
        "iterations": report["iterations"],
        "seed": report["seed"],
        "estimate": estimate,
        "verdicts": verdicts,
        "deviations": [d["key"] for d in report.get("deviations", [])],
    }


def _model_facts(study: ReaderStudy) -> tuple[dict[str, Any] | None, str | None]:
    """The study's frozen model version's classifier config (read as its ``NetConfig`` would, so a
    config stored before a choice existed says what it was) and the test-time protocol with which
    the phase-1 readings were frozen (the study's own when it records one, else the config's)."""

    version = getattr(study, "model_version", None)
    config = getattr(version, "config", None)
    if isinstance(config, dict) and config:
        try:
            config = NetConfig.from_dict(config).as_dict()
        except (TypeError, ValueError, KeyError):  # a config this code cannot read: list it as stored
            config = dict(config)
    else:
        config = None
    test_time = getattr(study, "test_time", None) or (config or {}).get("test_time")
    return config, test_time


def _labelling_facts(study: ReaderStudy) -> dict[str, Any]:
    """How the ground truth of the study's cases was labelled, as it was when their dataset version
    was frozen: the share from a model's proposal, and whether a proposed class was shown."""
    hips = [case.dataset_hip for case in study.cases.select_related("dataset_hip")]
    keys = [(h.radiograph_id, h.side) for h in hips]
    origins = provenance.truth_provenance_at(keys=keys, at=study.dataset.created_at)
    return provenance.deviation_facts(provenance.provenance_summary(origins.values()))


def report_build(
    *,
    report_id: int,
    progress: Callable[[float, str], None] | None = None,
    estimate: str | None = None,
) -> StudyReport:
    """Build the report: export the study's complete readers, hash the inputs, run the analysis and
    write every file. Idempotent: a done report is returned as it is; a queued, running (a worker
    died mid-way) or failed one starts again from an empty folder. ``progress(value, stage)`` is
    called at each stage, as the row is updated. ``estimate``: the point estimate the tables show
    (default: the paper's bootstrap mean). The deviations listed include the frozen model's."""

    with transaction.atomic():
        report = StudyReport.objects.select_for_update().select_related("study").get(pk=report_id)
        if report.status == StudyReport.Status.DONE:
            return report
        report.folder = report.folder or f"{REPORTS_DIR}/{report.pk}"
        report.status, report.progress, report.error, report.finished_at = StudyReport.Status.RUNNING, 0.0, "", None
        report.summary = {"stage": "export"}
        report.save(update_fields=["folder", "status", "progress", "error", "finished_at", "summary"])
    folder = report_folder(report)
    try:
        shutil.rmtree(folder, ignore_errors=True)  # a restart begins from nothing
        _stage(report.pk, "export", progress)
        files = services.study_export(study=report.study, complete_only=True)
        if "model_predictions.csv" not in files:
            raise services.StudyError(f"study {report.study.name} has no model predictions")
        responses_path, predictions_path = _write_inputs(folder / "inputs", files)
        digest = inputs_sha256(responses_path, predictions_path)
        StudyReport.objects.filter(pk=report.pk).update(inputs_sha256=digest)
        _stage(report.pk, "bootstrap", progress)
        model_config, test_time = _model_facts(report.study)
        labelling = _labelling_facts(report.study)
        data = build_report(
            responses_path,
            predictions_path,
            iterations=report.iterations,
            seed=report.seed,
            margin=report.margin,
            estimate=estimate or DEFAULT_ESTIMATE,
            model_config=model_config,
            test_time=test_time,
            labelling=labelling,
        )
        data["reporting"] = {"flow": records.study_flow(study=report.study).as_dict()}
        write_report(
            data,
            folder / "report",
            inputs_sha256=digest,
            progress=lambda stage: _stage(report.pk, stage, progress),
        )
        complete = complete_readers(report.study)
        records.write_study_documents(study=report.study, report=data, complete=complete, folder=folder / "report")
        summary = summarize(data)
    except Exception as exc:
        logger.exception("report %s of study %s failed", report.pk, report.study_id)
        StudyReport.objects.filter(pk=report.pk).update(
            status=StudyReport.Status.FAILED, error=str(exc)[:2000] or type(exc).__name__, finished_at=timezone.now()
        )
        report.refresh_from_db()
        return report
    StudyReport.objects.filter(pk=report.pk).update(
        status=StudyReport.Status.DONE, progress=1.0, summary=summary, finished_at=timezone.now(), error=""
    )
    if progress is not None:
        progress(1.0, "done")
    report.refresh_from_db()
    logger.info("report %s of study %s written to %s", report.pk, report.study_id, folder)
    return report
