"""REST API of the annotate app (the browser pages use the same endpoints)."""

from __future__ import annotations

from typing import Any, cast

from django.conf import settings
from django.contrib.auth.models import User
from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from annotate import services
from annotate.archive.previews import PreviewUnavailable, preview_jpeg
from annotate.models import ImportItem, ImportJob, Radiograph
from common.roles import ADJUDICATOR, RESEARCHER, HasRole
from config.converters import ID_REGEX


class RadiographSerializer(serializers.ModelSerializer):
    patient = serializers.CharField(source="study.patient.code", read_only=True)
    accession = serializers.CharField(source="study.accession_code", read_only=True)
    study_date = serializers.DateField(source="study.study_date", read_only=True)
    preview_url = serializers.SerializerMethodField()

    class Meta:
        model = Radiograph
        fields = [
            "id", "patient", "accession", "study_date", "sop_instance_uid", "modality", "view_position",
            "rows", "columns", "pixel_spacing_row", "pixel_spacing_col", "bits_stored",
            "photometric_interpretation", "manufacturer", "transfer_syntax_uid", "window_center",
            "window_width", "file_size", "source", "imported_at", "preview_url",
        ]  # fmt: skip

    def get_preview_url(self, obj: Radiograph) -> str:
        return f"/api/radiographs/{obj.id}/preview/"


class RadiographViewSet(viewsets.ReadOnlyModelViewSet):
    """Imported radiographs. Researchers and adjudicators only: labellers reach
    their own images through their assignments, readers through their study."""

    serializer_class = RadiographSerializer
    lookup_value_regex = ID_REGEX  # 63-bit ids: a longer number is a 404, not an overflow
    permission_classes = [HasRole.of(RESEARCHER, ADJUDICATOR)]
    queryset = Radiograph.objects.select_related("study__patient").order_by("-imported_at", "-id")

    @extend_schema(responses={(200, "image/jpeg"): bytes})
    @action(detail=True, methods=["get"])
    def preview(self, request: Request, pk: str | None = None, format: str | None = None) -> HttpResponse:
        radiograph = self.get_object()
        try:  # rendered on first view and cached (annotate.archive.previews)
            return HttpResponse(preview_jpeg(radiograph), content_type="image/jpeg")
        except PreviewUnavailable:
            raise NotFound("This radiograph's stored image is unavailable.") from None


class ImportItemSerializer(serializers.ModelSerializer):
    # The file's position in its upload ("file 3"): uploaded file names are never kept.
    name = serializers.CharField(source="label", read_only=True)

    class Meta:
        model = ImportItem
        fields = ["name", "status", "reason", "radiograph"]


class ImportJobSerializer(serializers.ModelSerializer):
    counts = serializers.SerializerMethodField()
    rejected = serializers.SerializerMethodField()

    class Meta:
        model = ImportJob
        fields = ["id", "status", "source", "total", "counts", "rejected", "error", "created_at",
                  "started_at", "finished_at"]  # fmt: skip

    def get_counts(self, job: ImportJob) -> dict[str, int]:
        return job.counts()

    def get_rejected(self, job: ImportJob) -> list[dict[str, Any]]:
        items = job.items.filter(status=ImportItem.Status.REJECTED)[:1000]
        # many=True makes a ListSerializer, whose data is a list; the stubs type it as the dict.
        return cast(list[dict[str, Any]], ImportItemSerializer(items, many=True).data)


class ImportUploadSerializer(serializers.Serializer):
    files = serializers.ListField(child=serializers.FileField(allow_empty_file=True), allow_empty=False)


def check_upload_size(request: Any) -> None:
    """Refuse an oversized upload as a whole, with the limit in the message."""
    length = int(request.META.get("CONTENT_LENGTH") or 0)
    if length > settings.MAX_UPLOAD_BYTES:
        raise ValidationError(
            {"files": f"upload too large ({length // 1024**2} MB; the limit is "
                      f"{settings.MAX_UPLOAD_BYTES // 1024**2} MB)"}
        )  # fmt: skip


class ImportJobViewSet(
    mixins.CreateModelMixin, mixins.RetrieveModelMixin, mixins.ListModelMixin, viewsets.GenericViewSet
):
    """Upload DICOM files or .zip archives; they are imported by a worker and
    the job reports its progress and a reason for every rejected file."""

    serializer_class = ImportJobSerializer
    lookup_value_regex = ID_REGEX
    permission_classes = [HasRole.of(RESEARCHER)]
    parser_classes = [MultiPartParser]
    queryset = ImportJob.objects.all()  # narrowed per user in get_queryset

    def get_queryset(self) -> Any:
        jobs = ImportJob.objects.all()
        user = cast(User, self.request.user)  # HasRole: signed in
        return jobs if user.is_staff else jobs.filter(created_by=user)

    @extend_schema(request={"multipart/form-data": ImportUploadSerializer}, responses={202: ImportJobSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        check_upload_size(request)
        upload = ImportUploadSerializer(data={"files": request.FILES.getlist("files")})
        upload.is_valid(raise_exception=True)
        job = services.import_job_create(
            user=cast(User, request.user), files=upload.validated_data["files"], source=Radiograph.Source.API
        )
        return Response(ImportJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)
