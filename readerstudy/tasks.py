"""Celery tasks of the reader-study app: thin wrappers around services, idempotent."""

from __future__ import annotations

import logging

from config.celery import task
from readerstudy import power_plans, services
from readerstudy.report import reports

logger = logging.getLogger(__name__)


@task(queue="ml")
def prepare_study(*, study_id: int) -> None:
    """Freeze the study's crops and model predictions (returns at once for an open study).
    A failure is recorded on the study (status ``failed`` with the error), shown on its page."""

    try:
        services.study_prepare(study_id=study_id)
    except Exception:
        logger.exception("preparing reader study %s failed", study_id)


@task(queue="default")
def build_study_report(*, report_id: int) -> None:
    """Build a study report (a done report is left alone; a running one starts again cleanly)."""

    reports.report_build(report_id=report_id)


@task(queue="default")
def build_power_plan(*, study_id: int, plan: str) -> None:
    """Run a study's power plan (a done plan is left alone; any other starts again)."""

    power_plans.plan_build(study_id=study_id, plan=plan)
