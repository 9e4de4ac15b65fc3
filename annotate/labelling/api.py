"""REST API of labelling and adjudication (the labelling pages use it too).

Blinding is enforced here and in the services: a labeller reaches only their
own assignments and the pixels of radiographs assigned to them; nothing a
labeller can fetch contains another labeller's hips or the ground truth.
"""

from __future__ import annotations

import io
from typing import Any, cast

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.storage import default_storage
from django.http import FileResponse, HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view, permission_classes
from rest_framework.exceptions import PermissionDenied as ApiPermissionDenied
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from annotate.archive.pixels import gzip_body
from annotate.labelling import exchange
from annotate.labelling import services as labelling
from annotate.labelling.api_serializers import (
    AdjudicationOutputSerializer,
    AdjudicationRowSerializer,
    AgreementSerializer,
    AnnotationImportReportSerializer,
    AssignmentOutputSerializer,
    BoxFieldsSerializer,
    GroundTruthHipSerializer,
    LabellingProgressSerializer,
)
from annotate.labels import Adjudication, Assignment, Exclusion, HipClass, Side, TruthSource
from annotate.models import Radiograph
from common.roles import ADJUDICATOR, LABELER, RESEARCHER, AnyUser, HasRole, has_role


class HipSerializer(BoxFieldsSerializer):
    id = serializers.IntegerField(required=False, allow_null=True)
    side = serializers.ChoiceField(Side.choices)
    hip_class = serializers.ChoiceField(HipClass.choices)
    source = serializers.CharField(read_only=True)  # type: ignore[assignment]  # a field named like Field.source


SOURCE_RULE = 'source must be "manual" (drawn by hand) or "model" (an accepted model proposal)'


class LabellerHipSerializer(HipSerializer):
    """A labeller's hip: drawn by hand, or an accepted (perhaps adjusted) model proposal."""

    # DRF lets a subclass redeclare a field with another field class.
    source = serializers.ChoiceField(  # type: ignore[assignment]
        labelling.LABELLER_SOURCES,
        required=False,
        default="manual",
        error_messages={
            "invalid_choice": f'{SOURCE_RULE}, not "{{input}}"',
            "blank": f"{SOURCE_RULE}, not blank",
            "null": f"{SOURCE_RULE}, not null",
        },
    )


class LabellingInputSerializer(serializers.Serializer):
    hips = LabellerHipSerializer(many=True)
    excluded = serializers.ChoiceField([("", "not excluded"), *Exclusion.choices], required=False, default="")
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    active_seconds = serializers.FloatField(required=False, allow_null=True, min_value=0, default=None)


class ResolveInputSerializer(LabellingInputSerializer):
    hips = HipSerializer(many=True)  # type: ignore[assignment]  # ground truth has no source of its own to send
    truth_source = serializers.ChoiceField([c for c in TruthSource.choices if c[0] != TruthSource.AGREEMENT])
    active_seconds = None  # type: ignore[assignment]  # DRF: None removes the inherited field


def _hip_inputs(data: dict[str, Any], source: str = "manual") -> list[labelling.HipInput]:
    """The hips of a validated input; ``source`` for hips that do not say theirs."""
    return [
        labelling.HipInput(
            side=h["side"], hip_class=h["hip_class"], x=h["x"], y=h["y"], width=h["width"], height=h["height"],
            id=h.get("id"), source=h.get("source", source),
        )
        for h in data["hips"]
    ]  # fmt: skip


def _call(service: Any, **kwargs: Any) -> Any:
    """Turn the services' Django errors into API errors with a clear message."""
    try:
        return service(**kwargs)
    except ValidationError as exc:
        raise ApiValidationError({"detail": " ".join(exc.messages)}) from None
    except PermissionDenied as exc:
        raise ApiPermissionDenied(str(exc)) from None


def _own_assignment(request: Request, pk: int) -> Assignment:
    assignment = get_object_or_404(Assignment.objects.select_related("radiograph"), pk=pk)
    if assignment.labeler_id != request.user.id:
        # Not "not found": a labeller guessing ids learns nothing either way,
        # and the message is clearer for someone who followed an old link.
        raise ApiPermissionDenied("this image is not assigned to you")
    return assignment


def _save_with(service: Any, request: Request, assignment: Assignment) -> Assignment:
    """Validate the page's labelling and hand it to a save or submit service."""
    data = LabellingInputSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    return _call(
        service, assignment_id=assignment.id, user=request.user, hips=_hip_inputs(data.validated_data),
        excluded=data.validated_data["excluded"], note=data.validated_data["note"],
        active_seconds=data.validated_data["active_seconds"],
    )  # fmt: skip


@extend_schema(request=None, responses={200: AssignmentOutputSerializer, 204: None})
@api_view(["POST"])
@permission_classes([HasRole.of(LABELER)])
def labelling_next(request: Request) -> Response:
    """Take the labeller's next image (or their current one)."""
    assignment = labelling.assignment_next(user=cast(User, request.user))  # HasRole: signed in
    if assignment is None:
        return Response(status=status.HTTP_204_NO_CONTENT)
    return Response(AssignmentOutputSerializer(assignment).data)


@extend_schema(request=LabellingInputSerializer, responses=AssignmentOutputSerializer)
@api_view(["GET", "PUT"])
@permission_classes([HasRole.of(LABELER)])
def assignment_detail(request: Request, pk: int) -> Response:
    """Get, or save (autosave: the whole state each time), one's own assignment."""
    assignment = _own_assignment(request, pk)
    if request.method == "PUT":
        assignment = _save_with(labelling.assignment_save, request, assignment)
    return Response(AssignmentOutputSerializer(assignment).data)


@extend_schema(request=LabellingInputSerializer, responses=AssignmentOutputSerializer)
@api_view(["POST"])
@permission_classes([HasRole.of(LABELER)])
def assignment_submit(request: Request, pk: int) -> Response:
    """Save and submit; submitting twice stores one labelling."""
    assignment = _save_with(labelling.assignment_submit, request, _own_assignment(request, pk))
    return Response(AssignmentOutputSerializer(assignment).data)


@extend_schema(
    operation_id="adjudications_list",
    parameters=[OpenApiParameter("status", str, enum=list(Adjudication.Status.values))],
    responses=AdjudicationRowSerializer(many=True),
)
@api_view(["GET"])
@permission_classes([HasRole.of(ADJUDICATOR)])
def adjudication_list(request: Request) -> Response:
    adjudications = Adjudication.objects.select_related("radiograph").order_by("created_at", "id")
    wanted = request.query_params.get("status", Adjudication.Status.PENDING)
    adjudications = adjudications.filter(status=wanted)
    return Response(AdjudicationRowSerializer(adjudications[:500], many=True).data)


@extend_schema(operation_id="adjudications_retrieve", responses=AdjudicationOutputSerializer)
@api_view(["GET"])
@permission_classes([HasRole.of(ADJUDICATOR)])
def adjudication_detail(request: Request, pk: int) -> Response:
    adjudication = get_object_or_404(Adjudication.objects.select_related("radiograph", "decided_by"), pk=pk)
    return Response(AdjudicationOutputSerializer(adjudication).data)


@extend_schema(request=ResolveInputSerializer, responses=AdjudicationOutputSerializer)
@api_view(["POST"])
@permission_classes([HasRole.of(ADJUDICATOR)])
def adjudication_resolve(request: Request, pk: int) -> Response:
    data = ResolveInputSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    adjudication = _call(
        labelling.adjudication_resolve, adjudication_id=pk, user=request.user,
        hips=_hip_inputs(data.validated_data, source="truth"), truth_source=data.validated_data["truth_source"],
        note=data.validated_data["note"], excluded=data.validated_data["excluded"],
    )  # fmt: skip
    return Response(AdjudicationOutputSerializer(adjudication).data)


@extend_schema(responses=GroundTruthHipSerializer(many=True))
@api_view(["GET"])
@permission_classes([HasRole.of(RESEARCHER, ADJUDICATOR)])
def ground_truth(request: Request) -> Response:
    """Every ground-truth hip, with its radiograph and how it was decided."""
    hips = labelling.ground_truth_hips().order_by("radiograph_id", "side")
    return Response(GroundTruthHipSerializer(hips, many=True).data)


@extend_schema(responses=LabellingProgressSerializer)
@api_view(["GET"])
@permission_classes([HasRole.of(RESEARCHER)])
def labelling_progress(request: Request) -> Response:
    return Response(LabellingProgressSerializer(labelling.labelling_progress()).data)


@extend_schema(responses=AgreementSerializer)
@api_view(["GET"])
@permission_classes([HasRole.of(RESEARCHER, ADJUDICATOR)])
def labelling_agreement(request: Request) -> Response:
    return Response(AgreementSerializer(labelling.agreement_statistics()).data)


def may_see_pixels(user: AnyUser, radiograph_id: int) -> bool:
    if has_role(user, RESEARCHER, ADJUDICATOR):
        return True
    return (
        isinstance(user, User)
        and has_role(user, LABELER)
        and Assignment.objects.filter(radiograph_id=radiograph_id, labeler=user).exists()
    )


def pixels_gzip_name(radiograph: Radiograph) -> str:
    """Where an older version kept the gzip body beside the .npy ("" for newer radiographs)."""
    return radiograph.pixels.name.removesuffix(".npy") + ".u16.gz" if radiograph.pixels.name else ""


def radiograph_pixels_response(user: AnyUser, pk: int) -> FileResponse:
    """The pixels of radiograph ``pk`` for ``user``, who must be allowed to see them."""
    if not user.is_authenticated:
        raise ApiPermissionDenied("log in first")
    if not may_see_pixels(user, pk):
        raise ApiPermissionDenied("this radiograph is not yours to see")
    return pixels_response(get_object_or_404(Radiograph, pk=pk))


def pixels_response(radiograph: Radiograph) -> FileResponse:
    """The decoded 16-bit pixels, raw little-endian, gzip-compressed; the browser inflates them
    itself. The body is made from the decoded DICOM and kept in a bounded in-process cache
    (``annotate.archive.pixels``), not on disk; one an older version stored beside its .npy is served as
    is. No permission check: the caller has made it (a reader-study case checks the reader's phase)."""

    name = pixels_gzip_name(radiograph)
    if name and default_storage.exists(name):
        response = FileResponse(default_storage.open(name, "rb"), content_type="application/octet-stream")
    else:
        response = FileResponse(io.BytesIO(gzip_body(radiograph)), content_type="application/octet-stream")
    response["Content-Encoding"] = "gzip"
    response["X-Rows"] = str(radiograph.rows)
    response["X-Columns"] = str(radiograph.columns)
    response["Access-Control-Expose-Headers"] = "X-Rows, X-Columns"
    response["Cache-Control"] = "private, max-age=86400"
    return response


@extend_schema(responses={(200, "application/octet-stream"): bytes})
@api_view(["GET"])
def radiograph_pixels(request: Request, pk: int) -> FileResponse:
    return radiograph_pixels_response(request.user, pk)


class AnnotationImportSerializer(serializers.Serializer):
    file = serializers.FileField()
    format = serializers.ChoiceField([("coco", "COCO JSON"), ("via", "VIA 2 project")])
    as_user = serializers.CharField(help_text="the labeller whose submitted work the file becomes")


@extend_schema(
    parameters=[
        OpenApiParameter("format", str, enum=["coco", "via", "csv"]),
        OpenApiParameter("ground_truth", bool, description="the ground truth only, not every labeller's labels"),
    ],
    responses={
        (200, "application/json"): OpenApiResponse(OpenApiTypes.OBJECT, description="COCO or VIA 2 JSON"),
        (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV, one hip a row"),
    },
)
@api_view(["GET"])
@permission_classes([HasRole.of(RESEARCHER)])
def annotations_export(request: Request) -> HttpResponse:
    """Download labels (every labeller's, or the ground truth) as COCO, VIA or CSV."""

    fmt = request.query_params.get("format", "coco")
    if fmt not in exchange.EXPORT_FORMATS:
        raise ApiValidationError({"format": f"use one of {', '.join(exchange.EXPORT_FORMATS)}"})
    ground_truth = request.query_params.get("ground_truth", "").lower() in {"1", "true", "yes"}
    export = exchange.annotations_export(fmt=fmt, ground_truth=ground_truth)
    return HttpResponse(
        export.data,
        content_type=export.content_type,
        headers={"Content-Disposition": f'attachment; filename="{export.filename}"'},
    )


MAX_ANNOTATION_FILE_BYTES = 200 * 1024**2


@extend_schema(request={"multipart/form-data": AnnotationImportSerializer}, responses=AnnotationImportReportSerializer)
@api_view(["POST"])
@permission_classes([HasRole.of(RESEARCHER)])
def annotations_import(request: Request) -> Response:
    """Load a COCO or VIA file as a labeller's submitted work; a malformed
    file is refused whole, naming the key or line at fault."""
    upload = AnnotationImportSerializer(data=request.data)
    upload.is_valid(raise_exception=True)
    file = upload.validated_data["file"]
    if file.size > MAX_ANNOTATION_FILE_BYTES:
        raise ApiValidationError({"file": "annotation file too large (the limit is 200 MB)"})
    try:
        report = exchange.annotations_import(
            fmt=upload.validated_data["format"], data=file.read(), username=upload.validated_data["as_user"]
        )
    except ValueError as exc:
        raise ApiValidationError({"detail": str(exc)}) from None
    return Response(AnnotationImportReportSerializer(report).data)
