"""Pages that belong to no single app: the home page and the health check."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from annotate.labels import Adjudication, Assignment
from annotate.models import ImportJob, Radiograph
from annotate.roles import ADJUDICATOR, LABELER, READER, RESEARCHER, has_role
from readerstudy.reader_views import reader_studies


@login_required
def home(request: HttpRequest) -> HttpResponse:
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


def health(request: HttpRequest) -> JsonResponse:
    """Readiness of the whole service: {"database": "ok"|"error: ...", "broker": "ok"|"error: ...",
    "workers": {"default": n, "ml": n}}; 200 only when the database and the broker answer and
    each queue has at least one worker, otherwise 503. Takes at most about a second (the
    workers' answer is kept a few seconds, see ``ml.operations.worker_counts``)."""
    from ml.operations import service_health

    body, healthy = service_health()
    return JsonResponse(body, status=200 if healthy else 503)


def health_live(request: HttpRequest) -> JsonResponse:
    """Liveness, for a load balancer: the process answers and the database is reachable."""
    from ml.operations import database_check

    database = database_check()
    return JsonResponse({"database": database}, status=200 if database == "ok" else 503)
