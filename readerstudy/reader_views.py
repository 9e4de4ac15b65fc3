"""The readers' pages: their list of studies and the reading page.

The reading page is a shell: everything a reader sees of a case comes from the readers' API
(``readerstudy.api``), which enforces the phases and the blinding. Nothing rendered here names
a class, a truth or a model output.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.http import Http404, HttpResponse
from django.shortcuts import render

from common.http import AuthenticatedHttpRequest
from common.roles import READER, role_required
from readerstudy import services
from readerstudy.models import PHASES, Condition, Reader

PHASE_NAMES: dict[str, str] = {
    Condition.MODEL_QUALITY: "model quality",
    Condition.FULL_QUALITY: "full quality",
    Condition.MODEL_AIDED: "model aided",
}


def step_summary(reader: Reader) -> dict[str, Any]:
    """A reader's next step in a study, for the home card and the readers' list (it starts a
    phase that is due, as the API does)."""
    step = services.reader_step(reader=reader)
    phases = reader.study.phases
    summary: dict[str, Any] = {
        "id": reader.study_id,
        "name": reader.study.name,
        "code": reader.code,
        "status": step.status,
        "answered": step.answered,
        "total": step.total,
        "phase_count": len(phases),
        "opens_at": step.opens_at if step.status == "washout" else None,
        "phase": PHASES.index(step.condition) + 1 if step.condition else None,
        "phase_name": PHASE_NAMES.get(step.condition, "") if step.condition else "",
    }
    if step.status == "open":
        action = "Continue" if step.answered else "Start"
        where = f"Phase {summary['phase']} of {len(phases)} ({summary['phase_name']})"
        summary["text"] = f"{where}: {step.answered} of {step.total} answered"
        summary["action"] = f"{action} phase {summary['phase']}"
    elif step.status == "washout":
        summary["text"] = f"Phase {summary['phase']} ({summary['phase_name']}) opens after the washout"
        summary["action"] = ""
    elif step.status == "done":
        summary["text"] = "All phases done: thank you"
        summary["action"] = ""
    elif step.status == "preparing":
        summary["text"] = "The study is being prepared"
        summary["action"] = ""
    else:
        summary["text"] = "The study is closed"
        summary["action"] = ""
    return summary


def reader_studies(user: User) -> list[dict[str, Any]]:
    """The user's reader studies, newest first, each with its next step."""
    readers = Reader.objects.filter(user=user).select_related("study").order_by("-study__created_at")
    return [step_summary(reader) for reader in readers]


@role_required(READER)
def reader_home(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The studies the reader is invited to, with their next step in each."""
    studies = reader_studies(request.user)
    if not studies:  # a reader invited to no study yet: a page that says so, not a 404
        return render(request, "readerstudy/reader_no_study.html")
    return render(request, "readerstudy/reader_home.html", {"studies": studies})


@role_required(READER)
def reading_page(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """The reading page of one study; the script asks the API for the current case."""
    try:
        reader = services.reader_of(user=request.user, study_id=pk)
    except services.NotFound as exc:
        raise Http404(str(exc)) from None
    return render(
        request,
        "readerstudy/reading.html",
        {"reader": reader, "study": reader.study, "phase_count": len(reader.study.phases)},
    )
