"""The results of a reading as downloads and sendings: ``GET /api/radiographs/<id>/results/sr.dcm``
and ``.../overlay.dcm`` (the worklist and the predictions page link them), ``POST
/api/radiographs/<id>/results/send`` (queue a resend) and ``GET /api/results/sendings/``."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response

from annotate.models import Radiograph
from common.api_schema import ErrorSerializer
from common.roles import RESEARCHER, HasRole
from ml.models import Kind, ModelVersion
from triage.results.files import KINDS, build, dicom_bytes
from triage.results.reading import NoResults, latest_reading
from triage.results.sending import queue_results, sendings_json
from triage.worklist import WORKLIST_ROLES

SEND_ROLES = (RESEARCHER,)  # staff hold every role


class SendingSerializer(serializers.Serializer):
    radiograph = serializers.IntegerField()
    destination = serializers.CharField()
    target = serializers.CharField()
    status = serializers.ChoiceField(choices=["queued", "sent", "failed"])
    attempts = serializers.IntegerField()
    reason = serializers.CharField(allow_blank=True)
    queued_at = serializers.DateTimeField()
    sent_at = serializers.DateTimeField(allow_null=True)
    retry_at = serializers.DateTimeField(allow_null=True)


class SendingsSerializer(serializers.Serializer):
    counts = serializers.DictField(child=serializers.IntegerField(), help_text="sendings by status")
    recent = SendingSerializer(many=True)


class QueuedSerializer(serializers.Serializer):
    queued = serializers.IntegerField(help_text="sendings queued (one per destination of the radiograph's source)")


def _not_found(detail: str) -> Response:
    return Response({"detail": detail}, status=404)


@extend_schema(
    parameters=[
        OpenApiParameter("kind", str, OpenApiParameter.PATH, enum=list(KINDS), description="sr or overlay"),
        OpenApiParameter("model", int, description="the classifier's reading (default: the latest)"),
    ],
    responses={
        (200, "application/dicom"): OpenApiResponse(OpenApiTypes.BINARY, description="the DICOM file"),
        404: ErrorSerializer,
    },
    summary="A reading's DICOM SR (TID 1500) or heatmap overlay (secondary capture), for the PACS",
    operation_id="results_download",
)
@api_view(["GET"])
@permission_classes([HasRole.of(*WORKLIST_ROLES)])
def results_download(request: Request, pk: int, kind: str) -> Response | HttpResponse:
    radiograph = Radiograph.objects.filter(pk=pk).first()
    if radiograph is None:
        return _not_found(f"no radiograph {pk}")
    if kind not in KINDS:
        return _not_found(f"no result {kind!r}: use one of {', '.join(KINDS)}")
    wanted = str(request.query_params.get("model", "")).strip()
    version = None
    if wanted:
        if not (wanted.isascii() and wanted.isdigit() and len(wanted) <= 9):
            return Response({"detail": f"model must be a model version id, not {wanted[:40]!r}"}, status=400)
        version = ModelVersion.objects.filter(pk=int(wanted), kind=Kind.CLASSIFIER).first()
        if version is None:
            return _not_found(f"no classifier version {wanted}")
    try:
        data = dicom_bytes(build(latest_reading(radiograph=radiograph, version=version), kind))
    except (NoResults, ValueError) as exc:
        return _not_found(str(exc))
    except OSError as exc:  # the stored radiograph is gone (a 404 of the object, not a server fault)
        return _not_found(f"radiograph {pk}'s stored image cannot be read: {exc.__class__.__name__}")
    response = HttpResponse(data, content_type="application/dicom")
    response["Content-Disposition"] = f'attachment; filename="radiograph-{pk}-{kind}.dcm"'
    return response


@extend_schema(
    request=None,
    responses={202: QueuedSerializer, 404: ErrorSerializer},
    summary="Queue (again) the sending of a radiograph's results to the destinations of its source",
    operation_id="results_send",
)
@api_view(["POST"])
@permission_classes([HasRole.of(*SEND_ROLES)])
def results_send(request: Request, pk: int) -> Response:
    radiograph = Radiograph.objects.filter(pk=pk).first()
    if radiograph is None:
        return _not_found(f"no radiograph {pk}")
    try:
        latest_reading(radiograph=radiograph)
    except (NoResults, ValueError) as exc:
        return _not_found(str(exc))
    rows = queue_results(radiograph_ids=[pk])
    return Response({"queued": len(rows)}, status=202)


@extend_schema(
    responses={200: SendingsSerializer},
    summary="Results sent to the PACS: counts by status and the latest sendings",
    operation_id="results_sendings",
)
@api_view(["GET"])
@permission_classes([HasRole.of(*SEND_ROLES)])
def results_sendings(request: Request) -> Response:
    return Response(sendings_json())
