"""Pages of labelling and adjudication: thin views; the pages talk to the API."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from annotate.labelling import services as labelling
from annotate.labels import Adjudication, Assignment, Exclusion
from common.http import AuthenticatedHttpRequest
from common.roles import ADJUDICATOR, LABELER, RESEARCHER, role_required


@role_required(LABELER)
def label_start(request: AuthenticatedHttpRequest) -> HttpResponse:
    """ "Start labelling": the labeller's current image or the next one."""
    assignment = labelling.assignment_next(user=request.user)
    if assignment is None:
        done = Assignment.objects.filter(labeler=request.user, status=Assignment.Status.SUBMITTED).count()
        return render(request, "annotate/label_none.html", {"done": done})
    return redirect("label_page", pk=assignment.pk)


@role_required(LABELER)
def label_page(request: HttpRequest, pk: int) -> HttpResponse:
    assignment = get_object_or_404(Assignment, pk=pk, labeler=request.user)
    if assignment.status == Assignment.Status.SUBMITTED:
        return redirect("label_start")
    api_url = f"/api/labelling/assignments/{pk}/"
    context = {
        "assignment": assignment,
        "api_url": api_url,
        "exclusions": Exclusion.choices,
        "proposals_show_class": settings.PROPOSALS_SHOW_CLASS,
    }
    return render(request, "annotate/label.html", context)


@role_required(ADJUDICATOR)
def adjudication_queue(request: HttpRequest) -> HttpResponse:
    pending = Adjudication.objects.filter(status=Adjudication.Status.PENDING).select_related("radiograph")
    resolved = (
        Adjudication.objects.filter(status=Adjudication.Status.RESOLVED)
        .select_related("decided_by")
        .order_by("-decided_at")[:20]
    )
    return render(request, "annotate/adjudication_queue.html", {"pending": pending, "resolved": resolved})


@role_required(ADJUDICATOR)
def adjudicate_page(request: HttpRequest, pk: int) -> HttpResponse:
    adjudication = get_object_or_404(Adjudication, pk=pk)
    context = {"adjudication": adjudication, "api_url": f"/api/adjudications/{pk}/", "exclusions": Exclusion.choices}
    return render(request, "annotate/adjudicate.html", context)


@role_required(RESEARCHER)
def progress_page(request: HttpRequest) -> HttpResponse:
    return render(request, "annotate/progress.html", labelling.labelling_progress())


@role_required(RESEARCHER, ADJUDICATOR)
def agreement_page(request: HttpRequest) -> HttpResponse:
    return render(request, "annotate/agreement.html", {"stats": labelling.agreement_statistics()})


@role_required(RESEARCHER)
def exchange_page(request: HttpRequest) -> HttpResponse:
    """Download labels in each format; upload a COCO or VIA file as a labeller's work."""
    from django.contrib.auth import get_user_model

    labelers = get_user_model().objects.filter(groups__name=LABELER).order_by("username")
    return render(request, "annotate/exchange.html", {"labelers": labelers})
