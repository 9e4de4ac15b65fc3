"""The researchers' pages of reader studies: the list and create form, the dashboard, the exports
and the kept statistics reports. Researchers only: a reader never reaches any of these.

Thin: forms are parsed here, the work is done by ``readerstudy.services`` and
``readerstudy.report.reports``; their ``StudyError`` messages are shown as they are.
"""

from __future__ import annotations

import datetime as dt
import mimetypes
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST
from drf_spectacular.utils import extend_schema
from rest_framework.decorators import api_view, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response

from common.http import AuthenticatedHttpRequest
from common.queueing import enqueue, require_broker
from common.roles import RESEARCHER, HasRole, role_required
from ml.models import DatasetVersion
from readerstudy import services
from readerstudy.models import TRAININGS, Group, ReaderStudy, StudyReport
from readerstudy.report import reports
from readerstudy.report.reader_report import REPORT_FILES
from readerstudy.serializers import StudyProgressSerializer, StudyReportSerializer
from readerstudy.tasks import prepare_study

EXPORT_FILES = ("responses.csv", "model_predictions.csv")
# Served inline (opened in the browser); everything else downloads.
INLINE_SUFFIXES = (".html", ".pdf", ".png", ".svg")
# report.html is self-contained (inline CSS, base64 PNGs); nothing else may load or run.
REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


# --------------------------------------------------------------------------- forms


class StudyForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="letters, digits, '.', '-' and '_'")
    dataset = forms.ModelChoiceField(
        queryset=DatasetVersion.objects.order_by("-created_at", "-id"), label="Dataset version", empty_label=None
    )
    cases = forms.IntegerField(min_value=1, max_value=100_000, initial=100, help_text="hips drawn from the test split")
    seed = forms.IntegerField(min_value=0, max_value=2**63 - 1, initial=0)
    washout_days = forms.FloatField(min_value=0, max_value=3650, initial=7, label="Washout (days)")
    aided_phase = forms.BooleanField(required=False, initial=True, label="Model-aided phase (needs an active model)")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A ModelChoiceField (fields[] is typed Field); Django lets an instance override label_from_instance.
        self.fields["dataset"].label_from_instance = (  # type: ignore[attr-defined]
            lambda v: f"{v.pk}{f' {v.name}' if v.name else ''} (seed {v.seed})"
        )


class ReaderForm(forms.Form):
    username = forms.CharField(max_length=150, label="User name", help_text="an existing account")
    group = forms.ChoiceField(choices=Group.choices)
    training = forms.CharField(max_length=50, initial=TRAININGS[0], help_text="one of the list, or a new key")

    def clean_username(self) -> Any:
        username = self.cleaned_data["username"].strip()
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise forms.ValidationError(f"there is no active user named {username!r}")
        return user


class ReportForm(forms.Form):
    iterations = forms.IntegerField(min_value=1, max_value=reports.MAX_ITERATIONS, initial=2000)
    seed = forms.IntegerField(min_value=0, max_value=2**63 - 1, initial=0)
    margin = forms.FloatField(
        min_value=0, required=False, help_text="empty: from pairs of readers of one group and training"
    )


# --------------------------------------------------------------------------- JSON


@extend_schema(responses=StudyProgressSerializer)
@api_view(["GET"])
@permission_classes([HasRole.of(RESEARCHER)])
def study_progress_json(request: Request, pk: int) -> Response:
    """The study's status and every reader's progress per phase, washout end, median seconds per case."""
    return Response(StudyProgressSerializer(get_object_or_404(ReaderStudy, pk=pk)).data)


@extend_schema(responses=StudyReportSerializer)
@api_view(["GET"])
@permission_classes([HasRole.of(RESEARCHER)])
def study_report_json(request: Request, pk: int, report_pk: int) -> Response:
    """One report's status, progress, stage, inputs hash, summary and files."""
    return Response(StudyReportSerializer(get_object_or_404(StudyReport, pk=report_pk, study_id=pk)).data)


# --------------------------------------------------------------------------- pages


@role_required(RESEARCHER)
def study_list(request: HttpRequest) -> HttpResponse:
    """Every study, and the form that creates one (its preparation runs as a task)."""
    form = StudyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        # Its preparation is a task: with the broker away, say so before a study row is kept
        # that nothing would ever prepare (QueueUnavailableMiddleware shows the message).
        require_broker()
        try:
            with transaction.atomic():
                study = services.study_create(
                    name=data["name"],
                    dataset=data["dataset"],
                    cases=data["cases"],
                    seed=data["seed"],
                    washout=dt.timedelta(days=data["washout_days"]),
                    aided_phase=data["aided_phase"],
                    created_by=request.user,
                )
                enqueue(prepare_study, study_id=study.pk)
        except services.StudyError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, f"Study {study.name} created; its cases are being prepared.")
            return redirect("study_detail", pk=study.pk)
    studies = ReaderStudy.objects.select_related("dataset", "model_version").annotate(n_readers=Count("readers"))
    return render(
        request,
        "readerstudy/study_list.html",
        {"studies": studies, "form": form},
        status=400 if form.errors else 200,
    )


def _detail(request: HttpRequest, study: ReaderStudy, **forms_: Any) -> dict[str, Any]:
    study_reports = list(study.reports.select_related("created_by"))
    return {
        "study": study,
        "progress": StudyProgressSerializer(study).data,
        "reader_form": forms_.get("reader_form") or ReaderForm(),
        "report_form": forms_.get("report_form") or ReportForm(),
        "trainings": TRAININGS,
        "reports": study_reports,
        "exports": [n for n in EXPORT_FILES if n == "responses.csv" or study.model_version_id is not None],
        "protocol": services.frozen_protocol(study=study),
        "complete_readers": len(reports.complete_readers(study)),
        "report_files": REPORT_FILES,
    }


@role_required(RESEARCHER)
def study_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The dashboard: settings, status, readers' progress (polled live), exports and reports."""
    study = get_object_or_404(ReaderStudy.objects.select_related("dataset", "model_version", "created_by"), pk=pk)
    return render(request, "readerstudy/study_detail.html", _detail(request, study))


@role_required(RESEARCHER)
@require_POST
def study_add_reader(request: HttpRequest, pk: int) -> HttpResponse:
    study = get_object_or_404(ReaderStudy.objects.select_related("dataset", "model_version"), pk=pk)
    form = ReaderForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            reader = services.reader_add(
                study=study, user=data["username"], group=data["group"], training=data["training"].strip()
            )
        except services.StudyError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, f"{reader.user.get_username()} is reader {reader.code} of {study.name}.")
            return redirect("study_detail", pk=study.pk)
    return render(request, "readerstudy/study_detail.html", _detail(request, study, reader_form=form), status=400)


@role_required(RESEARCHER)
def study_export_file(request: HttpRequest, pk: int, name: str) -> HttpResponse:
    """``responses.csv`` (every answer so far) or ``model_predictions.csv`` as a download."""
    study = get_object_or_404(ReaderStudy, pk=pk)
    if name not in EXPORT_FILES:
        raise Http404(f"a study exports {' and '.join(EXPORT_FILES)} only")
    files = services.study_export(study=study)
    if name not in files:
        raise Http404(f"study {study.name} has no model, so no {name}")
    response = HttpResponse(files[name], content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    if name == "model_predictions.csv":  # the columns are a contract: the protocol travels beside them
        response["X-Test-Time"] = study.test_time
    return response


@role_required(RESEARCHER)
@require_POST
def study_report_start(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """The Report button: a new report of the study's own data, built by a task."""
    study = get_object_or_404(ReaderStudy.objects.select_related("dataset", "model_version"), pk=pk)
    form = ReportForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            report = reports.report_start(
                study=study, user=request.user, iterations=data["iterations"], seed=data["seed"], margin=data["margin"]
            )
        except services.StudyError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, f"Report {report.pk} queued.")
            return redirect("study_report_detail", pk=study.pk, report_pk=report.pk)
    return render(request, "readerstudy/study_detail.html", _detail(request, study, report_form=form), status=400)


@role_required(RESEARCHER)
def study_report_detail(request: HttpRequest, pk: int, report_pk: int) -> HttpResponse:
    report = get_object_or_404(StudyReport.objects.select_related("study", "created_by"), pk=report_pk, study_id=pk)
    data = StudyReportSerializer(report).data
    return render(
        request,
        "readerstudy/report_detail.html",
        {"report": report, "study": report.study, "data": data, "files": data["files"]},
    )


@role_required(RESEARCHER)
def study_report_file(request: HttpRequest, pk: int, report_pk: int, name: str) -> FileResponse:
    """One file of a report's folder, by its plain name; anything else is not found."""
    report = get_object_or_404(StudyReport, pk=report_pk, study_id=pk)
    path = reports.report_file_path(report, name)
    if path is None:
        raise Http404("no such file in this report")
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if name.endswith((".csv", ".html", ".svg", ".json")):
        content_type += "; charset=utf-8"
    response = FileResponse(
        path.open("rb"),
        content_type=content_type,
        as_attachment=not name.endswith(INLINE_SUFFIXES),
        filename=f"{report.study.name}-report{report.pk}-{name}",
    )
    response["Content-Security-Policy"] = REPORT_CSP
    response["X-Content-Type-Options"] = "nosniff"
    return response
