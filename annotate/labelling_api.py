"""REST API of labelling and adjudication (the labelling pages use it too).

Blinding is enforced here and in the services: a labeller reaches only their
own assignments and the pixels of radiographs assigned to them; nothing a
labeller can fetch contains another labeller's hips or the ground truth.
"""

from __future__ import annotations

import io
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.storage import default_storage
from django.http import FileResponse, HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view, permission_classes
from rest_framework.exceptions import PermissionDenied as ApiPermissionDenied
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from annotate import exchange, labelling
from annotate.labels import Adjudication, Assignment, Exclusion, HipClass, Side, TruthSource
from annotate.models import Radiograph
from annotate.pixels import gzip_body
from common.roles import ADJUDICATOR, LABELER, RESEARCHER, HasRole, has_role


class HipSerializer(serializers.Serializer):
    id = serializers.IntegerField(required=False, allow_null=True)
    side = serializers.ChoiceField(Side.choices)
    hip_class = serializers.ChoiceField(HipClass.choices)
    x = serializers.FloatField()
    y = serializers.FloatField()
    width = serializers.FloatField()
    height = serializers.FloatField()
    source = serializers.CharField(read_only=True)


SOURCE_RULE = 'source must be "manual" (drawn by hand) or "model" (an accepted model proposal)'


class LabellerHipSerializer(HipSerializer):
    """A labeller's hip: drawn by hand, or an accepted (perhaps adjusted) model proposal."""

    source = serializers.ChoiceField(
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
    hips = HipSerializer(many=True)  # ground truth has no source of its own to send
    truth_source = serializers.ChoiceField([c for c in TruthSource.choices if c[0] != TruthSource.AGREEMENT])
    active_seconds = None


def radiograph_json(radiograph: Radiograph) -> dict[str, Any]:
    return {
        "id": radiograph.id,
        "rows": radiograph.rows,
        "columns": radiograph.columns,
        "window_center": radiograph.window_center,
        "window_width": radiograph.window_width,
        "pixel_spacing_row": radiograph.pixel_spacing_row,
        "pixel_spacing_col": radiograph.pixel_spacing_col,
        "modality": radiograph.modality,
        "view_position": radiograph.view_position,
        "pixels_url": f"/api/radiographs/{radiograph.id}/pixels/",
        "preview_url": f"/radiographs/{radiograph.id}/preview.jpg",
    }


def hips_json(hips: Any) -> list[dict[str, Any]]:
    return [
        {"id": h.id, "side": h.side, "hip_class": h.hip_class, "x": h.x, "y": h.y, "width": h.width,
         "height": h.height, "source": getattr(h, "source", "truth")}
        for h in hips
    ]  # fmt: skip


def proposals_json(radiograph_id: int) -> list[dict[str, Any]]:
    """The model's proposals for a radiograph: model output, which labellers may
    see. Boxes only: the model's class leaves the server only where the site
    turned PROPOSALS_SHOW_CLASS on, so that it cannot anchor the ground truth."""
    rows = []
    for p in labelling.proposals_of(radiograph_id=radiograph_id):
        row = {"id": p.id, "side": p.side, "x": p.x, "y": p.y, "width": p.width, "height": p.height,
               "score": p.score, "model": p.model}  # fmt: skip
        if settings.PROPOSALS_SHOW_CLASS:
            row["hip_class"] = p.hip_class
        rows.append(row)
    return rows


def assignment_json(assignment: Assignment) -> dict[str, Any]:
    return {
        "id": assignment.id,
        "status": assignment.status,
        "radiograph": radiograph_json(assignment.radiograph),
        "hips": hips_json(assignment.hips.filter(removed_at__isnull=True)),
        "proposals": proposals_json(assignment.radiograph_id),
        "proposals_show_class": settings.PROPOSALS_SHOW_CLASS,
        "excluded": assignment.excluded,
        "note": assignment.note,
        "active_seconds": assignment.active_seconds,
        "taken_at": assignment.taken_at,
        "last_saved_at": assignment.last_saved_at,
        "submitted_at": assignment.submitted_at,
        "next_url": "/label/",
    }


def adjudication_json(adjudication: Adjudication) -> dict[str, Any]:
    assignments = adjudication.radiograph.assignments.select_related("labeler").order_by("slot")
    return {
        "id": adjudication.id,
        "status": adjudication.status,
        "disagreements": adjudication.disagreements,
        "radiograph": radiograph_json(adjudication.radiograph),
        "labellings": [
            {
                "slot": a.slot,
                "labeler": a.labeler.get_username() if a.labeler else None,
                "excluded": a.excluded,
                "note": a.note,
                "hips": hips_json(a.hips.filter(removed_at__isnull=True)),
            }
            for a in assignments
        ],
        "truth": {
            "hips": hips_json(adjudication.hips.filter(removed_at__isnull=True)),
            "excluded": adjudication.excluded,
            "truth_source": adjudication.truth_source,
            "note": adjudication.note,
            "decided_by": adjudication.decided_by.get_username() if adjudication.decided_by else None,
            "decided_at": adjudication.decided_at,
        },
        "next_url": "/adjudicate/",
    }


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


@extend_schema(request=None, responses={200: dict, 204: None})
@api_view(["POST"])
@permission_classes([HasRole.of(LABELER)])
def labelling_next(request: Request) -> Response:
    """Take the labeller's next image (or their current one)."""
    assignment = labelling.assignment_next(user=request.user)
    if assignment is None:
        return Response(status=status.HTTP_204_NO_CONTENT)
    return Response(assignment_json(assignment))


@extend_schema(request=LabellingInputSerializer, responses=dict)
@api_view(["GET", "PUT"])
@permission_classes([HasRole.of(LABELER)])
def assignment_detail(request: Request, pk: int) -> Response:
    """Get, or save (autosave: the whole state each time), one's own assignment."""
    assignment = _own_assignment(request, pk)
    if request.method == "PUT":
        assignment = _save_with(labelling.assignment_save, request, assignment)
    return Response(assignment_json(assignment))


@extend_schema(request=LabellingInputSerializer, responses=dict)
@api_view(["POST"])
@permission_classes([HasRole.of(LABELER)])
def assignment_submit(request: Request, pk: int) -> Response:
    """Save and submit; submitting twice stores one labelling."""
    assignment = _save_with(labelling.assignment_submit, request, _own_assignment(request, pk))
    return Response(assignment_json(assignment))


@extend_schema(
    operation_id="adjudications_list",
    parameters=[OpenApiParameter("status", str, enum=list(Adjudication.Status.values))],
    responses=dict,
)
@api_view(["GET"])
@permission_classes([HasRole.of(ADJUDICATOR)])
def adjudication_list(request: Request) -> Response:
    adjudications = Adjudication.objects.select_related("radiograph").order_by("created_at", "id")
    wanted = request.query_params.get("status", Adjudication.Status.PENDING)
    adjudications = adjudications.filter(status=wanted)
    return Response(
        [
            {"id": a.id, "status": a.status, "radiograph": a.radiograph_id, "disagreements": a.disagreements,
             "url": f"/adjudicate/{a.id}/"}
            for a in adjudications[:500]
        ]
    )  # fmt: skip


@extend_schema(operation_id="adjudications_retrieve", responses=dict)
@api_view(["GET"])
@permission_classes([HasRole.of(ADJUDICATOR)])
def adjudication_detail(request: Request, pk: int) -> Response:
    adjudication = get_object_or_404(Adjudication.objects.select_related("radiograph", "decided_by"), pk=pk)
    return Response(adjudication_json(adjudication))


@extend_schema(request=ResolveInputSerializer, responses=dict)
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
    return Response(adjudication_json(adjudication))


@extend_schema(responses=dict)
@api_view(["GET"])
@permission_classes([HasRole.of(RESEARCHER, ADJUDICATOR)])
def ground_truth(request: Request) -> Response:
    """Every ground-truth hip, with its radiograph and how it was decided."""
    hips = labelling.ground_truth_hips().order_by("radiograph_id", "side")
    return Response(
        [
            {"radiograph": h.radiograph_id, "patient": h.radiograph.study.patient.code, "side": h.side,
             "hip_class": h.hip_class, "x": h.x, "y": h.y, "width": h.width, "height": h.height,
             "truth_source": h.adjudication.truth_source, "decided_at": h.adjudication.decided_at,
             "provenance": h.provenance}
            for h in hips
        ]
    )  # fmt: skip


@extend_schema(responses=dict)
@api_view(["GET"])
@permission_classes([HasRole.of(RESEARCHER)])
def labelling_progress(request: Request) -> Response:
    return Response(labelling.labelling_progress())


@extend_schema(responses=dict)
@api_view(["GET"])
@permission_classes([HasRole.of(RESEARCHER, ADJUDICATOR)])
def labelling_agreement(request: Request) -> Response:
    return Response(labelling.agreement_statistics())


def may_see_pixels(user: Any, radiograph_id: int) -> bool:
    if has_role(user, RESEARCHER, ADJUDICATOR):
        return True
    return has_role(user, LABELER) and Assignment.objects.filter(radiograph_id=radiograph_id, labeler=user).exists()


def pixels_gzip_name(radiograph: Radiograph) -> str:
    """Where an older version kept the gzip body beside the .npy ("" for newer radiographs)."""
    return radiograph.pixels.name.removesuffix(".npy") + ".u16.gz" if radiograph.pixels.name else ""


def radiograph_pixels_response(user: Any, pk: int) -> HttpResponse:
    """The pixels of radiograph ``pk`` for ``user``, who must be allowed to see them."""
    if not user.is_authenticated:
        raise ApiPermissionDenied("log in first")
    if not may_see_pixels(user, pk):
        raise ApiPermissionDenied("this radiograph is not yours to see")
    return pixels_response(get_object_or_404(Radiograph, pk=pk))


def pixels_response(radiograph: Radiograph) -> HttpResponse:
    """The decoded 16-bit pixels, raw little-endian, gzip-compressed; the browser inflates them
    itself. The body is made from the decoded DICOM and kept in a bounded in-process cache
    (``annotate.pixels``), not on disk; one an older version stored beside its .npy is served as
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
def radiograph_pixels(request: Request, pk: int) -> HttpResponse:
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
    responses={(200, "application/octet-stream"): bytes},
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


@extend_schema(request={"multipart/form-data": AnnotationImportSerializer}, responses=dict)
@api_view(["POST"])
@permission_classes([HasRole.of(RESEARCHER)])
def annotations_import(request: Request) -> Response:
    """Load a COCO or VIA file as a labeller's submitted work; a malformed
    file is refused whole, naming the key or line at fault."""
    import dataclasses

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
    return Response({"summary": report.line(), **dataclasses.asdict(report)})
