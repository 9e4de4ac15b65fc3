"""Pages that belong to no single app: the home page (the health checks are ``common.health``)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render

from annotate.labels import Adjudication, Assignment
from annotate.models import ImportJob, Radiograph
from common.http import AuthenticatedHttpRequest
from common.roles import ADJUDICATOR, LABELER, READER, RESEARCHER, has_role
from readerstudy.reader_views import reader_studies


@login_required
def home(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Each user sees what they can do next, by role."""
    context: dict[str, object] = {}
    if has_role(request.user, RESEARCHER, ADJUDICATOR):
        context["radiograph_count"] = Radiograph.objects.count()
    if has_role(request.user, RESEARCHER):
        context["running_imports"] = ImportJob.objects.filter(
            created_by=request.user, status__in=[ImportJob.Status.QUEUED, ImportJob.Status.RUNNING]
        ).count()
    if has_role(request.user, ADJUDICATOR):
        context["pending_adjudications"] = Adjudication.objects.filter(status=Adjudication.Status.PENDING).count()
    if has_role(request.user, LABELER):
        mine = Assignment.objects.filter(labeler=request.user)
        context["labelling_in_progress"] = mine.filter(status=Assignment.Status.IN_PROGRESS).exists()
        context["labelling_done"] = mine.filter(status=Assignment.Status.SUBMITTED).count()
        context["labelling_available"] = (
            Assignment.objects.filter(status=Assignment.Status.OPEN)
            .exclude(radiograph__in=mine.values("radiograph"))
            .values("radiograph")
            .distinct()
            .count()
        )
    if has_role(request.user, READER):
        context["reader_studies"] = reader_studies(request.user)
    return render(request, "home.html", context)
