"""Browser pages of the annotate app: thin views over services and the models."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from annotate import services
from annotate.archive.previews import PreviewUnavailable, preview_jpeg
from annotate.labelling.api import may_see_pixels
from annotate.models import ImportItem, ImportJob, Radiograph
from common.http import AuthenticatedHttpRequest
from common.roles import ADJUDICATOR, RESEARCHER, role_required


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    widget = MultipleFileInput

    def clean(self, data: object, initial: object = None) -> list[object]:
        single = super().clean
        if isinstance(data, (list, tuple)):
            return [single(item, initial) for item in data]
        return [single(data, initial)]


class UploadForm(forms.Form):
    # A field named like BaseForm.files: the form metaclass moves declared fields into base_fields.
    files = MultipleFileField(  # type: ignore[assignment]
        help_text="DICOM files or .zip archives; many at once.",
        widget=MultipleFileInput(attrs={"accept": ".dcm,.zip,application/dicom,application/zip"}),
    )


@role_required(RESEARCHER, ADJUDICATOR)
def radiograph_list(request: HttpRequest) -> HttpResponse:
    radiographs = Radiograph.objects.select_related("study__patient").order_by("-imported_at", "-id")
    modality = request.GET.get("modality", "")
    if modality:
        radiographs = radiographs.filter(modality=modality)
    page = Paginator(radiographs, 48).get_page(request.GET.get("page"))
    modalities = Radiograph.objects.order_by("modality").values_list("modality", flat=True).distinct()
    return render(
        request,
        "annotate/radiograph_list.html",
        {"page": page, "modality": modality, "modalities": modalities, "total": radiographs.count()},
    )


@role_required(RESEARCHER, ADJUDICATOR)
def radiograph_detail(request: HttpRequest, pk: int) -> HttpResponse:
    radiograph = get_object_or_404(Radiograph.objects.select_related("study__patient"), pk=pk)
    siblings = radiograph.study.radiographs.exclude(pk=pk)
    return render(request, "annotate/radiograph_detail.html", {"radiograph": radiograph, "siblings": siblings})


@login_required
def radiograph_preview(request: HttpRequest, pk: int) -> HttpResponse:
    # Researchers and adjudicators see every preview, a labeller those of the
    # radiographs assigned to them (the same rule as for the pixels).

    if not may_see_pixels(request.user, pk):
        raise PermissionDenied("This radiograph is not yours to see.")
    radiograph = get_object_or_404(Radiograph, pk=pk)
    try:  # rendered on first view and cached (annotate.archive.previews)
        response = HttpResponse(preview_jpeg(radiograph), content_type="image/jpeg")
    except PreviewUnavailable:
        raise Http404("This radiograph's stored image is unavailable.") from None
    response["Cache-Control"] = "private, max-age=86400"
    return response


@role_required(RESEARCHER)
@require_http_methods(["GET", "POST"])
def import_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = UploadForm()
    upload_error = ""
    if request.method == "POST":
        length = int(request.META.get("CONTENT_LENGTH") or 0)
        if length > settings.MAX_UPLOAD_BYTES:
            upload_error = (
                f"Upload too large ({length // 1024**2} MB; the limit is {settings.MAX_UPLOAD_BYTES // 1024**2} MB)."
            )
        else:
            form = UploadForm(request.POST, request.FILES)
            if form.is_valid():
                job = services.import_job_create(
                    user=request.user, files=form.cleaned_data["files"], source=Radiograph.Source.UPLOAD
                )
                return redirect("import_detail", pk=job.pk)
    jobs = ImportJob.objects.all() if request.user.is_staff else ImportJob.objects.filter(created_by=request.user)
    return render(request, "annotate/import_list.html", {"form": form, "jobs": jobs[:50], "upload_error": upload_error})


@role_required(RESEARCHER)
def import_detail(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    jobs = ImportJob.objects.all() if request.user.is_staff else ImportJob.objects.filter(created_by=request.user)
    job = get_object_or_404(jobs, pk=pk)
    rejected = job.items.filter(status=ImportItem.Status.REJECTED)
    return render(request, "annotate/import_detail.html", {"job": job, "counts": job.counts(), "rejected": rejected})
