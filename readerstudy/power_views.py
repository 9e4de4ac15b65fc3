"""The researchers' power-plan pages of a reader study: the form (on the study's page), a plan's
page with its live status, table and figure, its status JSON and its files. Researchers only.

Thin: the work is ``readerstudy.power_plans``' (a task); its ``StudyError`` messages are shown as
they are. Docs: docs/research/power.md
"""

from __future__ import annotations

import mimetypes
from typing import Any

from django import forms
from django.contrib import messages
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from common.http import AuthenticatedHttpRequest
from common.roles import RESEARCHER, role_required
from readerstudy import power_plans, services
from readerstudy.analysis import power
from readerstudy.analysis.power_outputs import PLAN_FILES, comparison_label
from readerstudy.models import ReaderStudy

INLINE = (".png", ".svg")
FILE_CSP = "default-src 'none'; style-src 'unsafe-inline'"


class IntListField(forms.CharField):
    """``50,100,200``: whole numbers separated by commas."""

    def to_python(self, value: Any) -> list[int]:  # type: ignore[override]
        text = super().to_python(value) or ""
        try:
            numbers = [int(part) for part in text.replace(" ", "").split(",") if part]
        except ValueError:
            raise forms.ValidationError(f"{text!r} is not a list of whole numbers separated by commas") from None
        if not numbers:
            raise forms.ValidationError("give at least one number")
        return numbers


class PlanForm(forms.Form):
    cases = IntListField(initial=",".join(map(str, power.DEFAULT_CASES)), help_text="planned cases, e.g. 50,100,200")
    readers_per_training = IntListField(
        initial=",".join(map(str, power.DEFAULT_READERS)), help_text="readers of each group and training, e.g. 2,3"
    )
    simulations = forms.IntegerField(
        min_value=1, max_value=power_plans.MAX_SIMULATIONS, initial=power.DEFAULT_SIMULATIONS
    )
    iterations = forms.IntegerField(min_value=1, max_value=power_plans.MAX_ITERATIONS, initial=2000)
    seed = forms.IntegerField(min_value=0, max_value=2**63 - 1, initial=0)


def plan_json(study: ReaderStudy, status: dict[str, Any]) -> dict[str, Any]:
    """A plan's status as the page polls it, with its files' URLs once done."""
    done = status["status"] == "done"
    return {
        **{k: status.get(k) for k in ("id", "status", "progress", "settings", "error", "created_at", "finished_at")},
        "url": reverse("study_power_detail", args=[study.pk, status["id"]]),
        "files": [
            {"name": name, "url": reverse("study_power_file", args=[study.pk, status["id"], name])}
            for name in PLAN_FILES
            if done and power_plans.plan_file_path(study, status["id"], name) is not None
        ],
    }


def _status_or_404(study: ReaderStudy, plan: str) -> dict[str, Any]:
    status = power_plans.plan_status(study, plan)
    if status is None:
        raise Http404("no such plan")
    return status


@role_required(RESEARCHER)
@require_POST
def study_power_start(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """The Plan button: a power plan of the study's own answers, run by a task."""
    study = get_object_or_404(ReaderStudy.objects.select_related("model_version"), pk=pk)
    form = PlanForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            plan = power_plans.plan_start(
                study=study,
                user=request.user,
                cases=data["cases"],
                readers_per_training=data["readers_per_training"],
                simulations=data["simulations"],
                iterations=data["iterations"],
                seed=data["seed"],
            )
        except services.StudyError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, f"Power plan {plan} queued.")
            return redirect("study_power_detail", pk=study.pk, plan=plan)
    return render(request, "readerstudy/power_form.html", {"study": study, "power_form": form}, status=400)


@role_required(RESEARCHER)
def study_power_detail(request: HttpRequest, pk: int, plan: str) -> HttpResponse:
    """A plan's page: its settings and live status, then the power table and the figure."""
    study = get_object_or_404(ReaderStudy, pk=pk)
    data = plan_json(study, _status_or_404(study, plan))
    rows = [{**row, "label": comparison_label(row)} for row in power_plans.plan_rows(study, plan)]
    notes = power_plans.plan_notes(study, plan)
    return render(request, "readerstudy/power_plan.html", {"study": study, "data": data, "rows": rows, "notes": notes})


@role_required(RESEARCHER)
def study_power_json(request: HttpRequest, pk: int, plan: str) -> JsonResponse:
    """A plan's status, progress, settings, error and files, for the live page."""
    study = get_object_or_404(ReaderStudy, pk=pk)
    return JsonResponse(plan_json(study, _status_or_404(study, plan)))


@role_required(RESEARCHER)
def study_power_file(request: HttpRequest, pk: int, plan: str, name: str) -> FileResponse:
    """One of a done plan's files by its plain name; anything else is not found."""
    study = get_object_or_404(ReaderStudy, pk=pk)
    path = power_plans.plan_file_path(study, plan, name)
    if path is None:
        raise Http404("no such file in this plan")
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if name.endswith((".csv", ".svg", ".json")):
        content_type += "; charset=utf-8"
    response = FileResponse(
        path.open("rb"),
        content_type=content_type,
        as_attachment=not name.endswith(INLINE),
        filename=f"{study.name}-power-{plan}-{name}",
    )
    response["Content-Security-Policy"] = FILE_CSP
    response["X-Content-Type-Options"] = "nosniff"
    return response
