"""REST API of dataset versions, training runs, model versions and predictions (researchers only)."""

from __future__ import annotations

from typing import Any, cast

from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.uploadedfile import UploadedFile
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view, parser_classes, permission_classes
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from annotate.archive.dicom import DicomRejected, decode_dicom
from annotate.archive.ingest import decode_limits
from annotate.models import Radiograph
from common.api_schema import ErrorSerializer
from common.queueing import QueueUnavailable
from common.roles import RESEARCHER, HasRole
from ml import detection, operations, scoring, services, training
from ml.api_serializers import (
    DatasetCreatedOutputSerializer,
    DatasetDetailOutputSerializer,
    DatasetOutputSerializer,
    ModelActivatedOutputSerializer,
    ModelVersionOutputSerializer,
    PredictAnswer,
    PredictionOutputSerializer,
    PredictOutputSerializer,
    TrainingRunOutputSerializer,
)
from ml.evaluation import DOWNLOADS
from ml.hips import BadBoxes, parse_boxes
from ml.models import DatasetVersion, HipPrediction, Kind, ModelVersion, TrainingRun


class DatasetCreateSerializer(serializers.Serializer):
    seed = serializers.IntegerField(min_value=0, max_value=2**63 - 1)
    name = serializers.CharField(required=False, allow_blank=True, default="", max_length=100)


@extend_schema(
    methods=["GET"],
    responses=DatasetOutputSerializer(many=True),
    summary="List dataset versions",
    operation_id="datasets_list",
)
@extend_schema(
    methods=["POST"], request=DatasetCreateSerializer,
    responses={201: DatasetCreatedOutputSerializer, 200: DatasetCreatedOutputSerializer},
    summary="Freeze the ground truth into a dataset version (200 with the existing one if unchanged)",
    operation_id="datasets_create",
)  # fmt: skip
@api_view(["GET", "POST"])
@permission_classes([HasRole.of(RESEARCHER)])
def dataset_list(request: Request) -> Response:
    if request.method == "GET":
        versions = DatasetVersion.objects.select_related("created_by")
        return Response(DatasetOutputSerializer(versions, many=True).data)
    serializer = DatasetCreateSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    try:
        version, created = services.dataset_freeze(
            seed=serializer.validated_data["seed"],
            name=serializer.validated_data["name"],
            user=cast(User, request.user),  # HasRole: signed in
        )
    except ValueError as error:
        raise ApiValidationError({"detail": str(error)}) from error
    data = DatasetCreatedOutputSerializer(version, context={"created": created}).data
    return Response(data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


@extend_schema(
    responses=DatasetDetailOutputSerializer,
    summary="A dataset version with its Table 1",
    operation_id="datasets_retrieve",
)
@api_view(["GET"])
@permission_classes([HasRole.of(RESEARCHER)])
def dataset_detail(request: Request, pk: int) -> Response:
    version = get_object_or_404(DatasetVersion.objects.select_related("created_by"), pk=pk)
    return Response(DatasetDetailOutputSerializer(version).data)


@extend_schema(
    responses={(200, "text/csv"): bytes},
    summary="The frozen hips of a dataset version as CSV",
    operation_id="datasets_hips_csv",
)
@api_view(["GET"])
@permission_classes([HasRole.of(RESEARCHER)])
def dataset_hips_csv(request: Request, pk: int) -> HttpResponse:
    version = get_object_or_404(DatasetVersion, pk=pk)
    return HttpResponse(
        services.hips_csv(version=version),
        content_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="dataset-{version.pk}-hips.csv"'},
    )


# --------------------------------------------------------------------------- training runs and models


class TrainingRunCreateSerializer(serializers.Serializer):
    dataset = serializers.IntegerField(min_value=1)
    kind = serializers.ChoiceField(Kind.choices, default=Kind.CLASSIFIER)
    config = serializers.CharField(max_length=50, default="cpu-small")
    seed = serializers.IntegerField(min_value=0, max_value=2**63 - 1, default=0)
    activate = serializers.BooleanField(default=False)
    random_init = serializers.BooleanField(
        default=False,
        help_text="start the backbone from random weights; without it `paper` is refused (400) when "
        "DENSENET169_WEIGHTS names no ImageNet weights file",
    )


def _bad_request(message: str) -> Response:
    return Response({"detail": message}, status=status.HTTP_400_BAD_REQUEST)


def _queue_unavailable(error: QueueUnavailable) -> Response:
    """503: the broker did not take the task; nothing was kept that would wait for it."""
    return Response({"detail": str(error)}, status=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "30"})


@extend_schema(
    methods=["GET"],
    responses=TrainingRunOutputSerializer(many=True),
    summary="List training runs",
    operation_id="training_runs_list",
)
@extend_schema(
    methods=["POST"], request=TrainingRunCreateSerializer,
    responses={201: TrainingRunOutputSerializer, 400: ErrorSerializer, 503: ErrorSerializer},
    summary="Start a training run (queued on the ml queue; 503 when the queue is unavailable)",
    operation_id="training_runs_create",
)  # fmt: skip
@api_view(["GET", "POST"])
@permission_classes([HasRole.of(RESEARCHER)])
def training_run_list(request: Request) -> Response:
    if request.method == "GET":
        runs = TrainingRun.objects.select_related("model_version")
        return Response(TrainingRunOutputSerializer(runs, many=True).data)
    serializer = TrainingRunCreateSerializer(data=request.data)
    if not serializer.is_valid():
        return Response(serializer.errors, status=status.HTTP_400_BAD_REQUEST)
    data = serializer.validated_data
    dataset = DatasetVersion.objects.filter(pk=data["dataset"]).first()
    if dataset is None:
        return _bad_request(f"no dataset version {data['dataset']}")
    try:
        run = operations.training_queue(
            dataset=dataset,
            config_name=data["config"],
            kind=data["kind"],
            user=request.user,
            seed=data["seed"],
            activate=data["activate"],
            random_init=data["random_init"],
        )
    except training.TrainingRefused as error:
        return _bad_request(str(error))
    except QueueUnavailable as error:
        return _queue_unavailable(error)
    return Response(TrainingRunOutputSerializer(run).data, status=status.HTTP_201_CREATED)


@extend_schema(
    responses=TrainingRunOutputSerializer,
    summary="A training run with its progress",
    operation_id="training_runs_retrieve",
)
@api_view(["GET"])
@permission_classes([HasRole.of(RESEARCHER)])
def training_run_detail(request: Request, pk: int) -> Response:
    run = get_object_or_404(TrainingRun.objects.select_related("model_version"), pk=pk)
    return Response(TrainingRunOutputSerializer(run).data)


@extend_schema(
    request=None, responses={200: TrainingRunOutputSerializer, 409: ErrorSerializer},
    summary="Cancel a training run (409 when it has ended)", operation_id="training_runs_cancel",
)  # fmt: skip
@api_view(["POST"])
@permission_classes([HasRole.of(RESEARCHER)])
def training_run_cancel(request: Request, pk: int) -> Response:
    run = get_object_or_404(TrainingRun, pk=pk)
    if not training.training_cancel(run):
        run.refresh_from_db()
        return Response({"detail": f"training run {run.pk} has already ended ({run.status})"}, status=409)
    run = TrainingRun.objects.select_related("model_version").get(pk=pk)
    return Response(TrainingRunOutputSerializer(run).data)


@extend_schema(
    responses=ModelVersionOutputSerializer(many=True), summary="List model versions", operation_id="models_list"
)
@api_view(["GET"])
@permission_classes([HasRole.of(RESEARCHER)])
def model_list(request: Request) -> Response:
    return Response(ModelVersionOutputSerializer(ModelVersion.objects.all(), many=True).data)


@extend_schema(
    responses=ModelVersionOutputSerializer,
    summary="A model version with its evaluation",
    operation_id="models_retrieve",
)
@api_view(["GET"])
@permission_classes([HasRole.of(RESEARCHER)])
def model_detail(request: Request, pk: int) -> Response:
    return Response(ModelVersionOutputSerializer(get_object_or_404(ModelVersion, pk=pk)).data)


@extend_schema(
    request=None, responses={200: ModelActivatedOutputSerializer, 503: ErrorSerializer},
    summary="Make a model version the active one of its kind",
    operation_id="models_activate",
)  # fmt: skip
@api_view(["POST"])
@permission_classes([HasRole.of(RESEARCHER)])
def model_activate(request: Request, pk: int) -> Response:
    try:
        version, warning = operations.activate_queued(get_object_or_404(ModelVersion, pk=pk))
    except QueueUnavailable as error:
        return _queue_unavailable(error)
    return Response(ModelActivatedOutputSerializer(version, context={"warning": warning}).data)


@extend_schema(
    parameters=[OpenApiParameter("name", str, OpenApiParameter.PATH, enum=sorted(DOWNLOADS))],
    responses={
        (200, media_type): OpenApiTypes.OBJECT if media_type == "application/json" else bytes
        for media_type in sorted(set(DOWNLOADS.values()))
    },
    summary="A file of a model version's evaluation (metrics, CSV tables, figures)",
    operation_id="models_file",
)
@api_view(["GET"])
@permission_classes([HasRole.of(RESEARCHER)])
def model_file(request: Request, pk: int, name: str) -> FileResponse:
    version = get_object_or_404(ModelVersion, pk=pk)
    if name not in DOWNLOADS:  # only the known names: no path ever comes from the request
        raise Http404("no such evaluation file")
    path = version.evaluation_dir / name
    if not path.is_file():
        raise Http404("this model version has no such evaluation file (not evaluated yet?)")
    attachment = name.endswith((".csv", ".json"))
    return FileResponse(
        path.open("rb"),
        content_type=DOWNLOADS[name],
        as_attachment=attachment,
        filename=f"model-{version.pk}-{name}" if attachment else name,
    )


# --------------------------------------------------------------------------- predictions


def _chosen_version(value: Any) -> ModelVersion:
    """The model version named by ``value`` (an id) or else the active classifier (NoActiveModel)."""

    if value in (None, ""):
        return scoring.require_active_model()
    try:
        pk = int(value)
    except (TypeError, ValueError):
        raise ApiValidationError({"detail": f"model must be a model version id, got {value!r}"}) from None
    try:
        return scoring.chosen_model(pk)
    except LookupError as error:
        raise ApiValidationError({"detail": str(error)}) from None


@extend_schema(
    responses={200: PredictionOutputSerializer(many=True), 409: ErrorSerializer},
    summary="The stored hip predictions of a radiograph (?model=<version id>, default the active model)",
    operation_id="radiograph_predictions",
)
@api_view(["GET"])
@permission_classes([HasRole.of(RESEARCHER)])
def radiograph_predictions(request: Request, pk: int) -> Response:
    radiograph = get_object_or_404(Radiograph, pk=pk)
    try:
        version = _chosen_version(request.query_params.get("model"))
    except scoring.NoActiveModel as error:
        return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
    rows = HipPrediction.objects.filter(model_version=version, radiograph=radiograph).select_related("model_version")
    rows = rows.order_by("side")
    return Response(PredictionOutputSerializer(rows, many=True, context={"request": request}).data)


@extend_schema(
    responses={(200, "image/png"): bytes}, summary="The heatmap of a hip prediction (RGBA PNG)",
    operation_id="prediction_heatmap",
)  # fmt: skip
@api_view(["GET"])
@permission_classes([HasRole.of(RESEARCHER)])
def prediction_heatmap(request: Request, pk: int) -> FileResponse:
    row = get_object_or_404(HipPrediction, pk=pk)
    if not row.heatmap.name or not row.heatmap.storage.exists(row.heatmap.name):
        raise Http404("the heatmap file is missing")
    response = FileResponse(row.heatmap.open("rb"), content_type="image/png")
    response["Cache-Control"] = "private, max-age=3600"
    return response


NO_FILE = "send the DICOM file as the multipart field 'file'"


class ModelIdField(serializers.IntegerField):
    """A model version id; blank means the active classifier (None)."""

    def to_internal_value(self, data: Any) -> Any:  # an int, or None for blank
        if data in (None, ""):
            return None
        try:
            return int(data)
        except (TypeError, ValueError):
            raise serializers.ValidationError(f"model must be a model version id, got {data!r}") from None


class DicomUploadField(serializers.FileField):
    """An uploaded file, with or without a name (the name is never used)."""

    def to_internal_value(self, data: Any) -> Any:
        if not hasattr(data, "read") or not hasattr(data, "size"):
            self.fail("invalid")
        return data


class PredictSerializer(serializers.Serializer):
    """The input of ``predict``; its errors are answered one at a time, in the order the view
    checks them (the file, its size, the boxes, the file's content, the model)."""

    file = DicomUploadField(help_text="one DICOM file", error_messages={"required": NO_FILE, "invalid": NO_FILE})
    boxes = serializers.CharField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        default="",
        help_text='JSON: [{"side": "right"|"left", "box": [x, y, w, h]}] in image pixels; without it the active '
        "detector finds the hips",
    )
    model = ModelIdField(
        required=False, allow_null=True, default=None, help_text="model version id (default: the active classifier)"
    )


def _first_error(errors: Any, field: str) -> str | None:
    """The first message of ``field`` in a serializer's ``errors``, or None."""
    messages = errors.get(field)
    return str(messages[0]) if messages else None


@extend_schema(
    request={"multipart/form-data": PredictSerializer},
    responses={200: PredictOutputSerializer, 400: ErrorSerializer, 409: ErrorSerializer, 413: ErrorSerializer},
    summary="Read the hips of an uploaded DICOM file (nothing is stored)", operation_id="predict",
)  # fmt: skip
@api_view(["POST"])
@permission_classes([HasRole.of(RESEARCHER)])
@parser_classes([MultiPartParser, FormParser])
def predict(request: Request) -> Response:
    form = PredictSerializer(data=request.data)
    valid = form.is_valid()
    if (message := _first_error(form.errors, "file")) is not None:
        return _bad_request(message)
    upload = cast(UploadedFile, request.FILES["file"])  # the field's value, checked above
    raw: Any = request.data
    if (upload.size or 0) > settings.MAX_DICOM_BYTES:
        return Response(
            {"detail": f"the file is larger than the limit of {settings.MAX_DICOM_BYTES} bytes"},
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if (message := _first_error(form.errors, "boxes")) is not None:
        return _bad_request(message)
    boxes = form.validated_data["boxes"] if valid else raw.get("boxes")
    detector = scoring.active_model(Kind.DETECTOR)
    if not boxes and detector is None:
        return _bad_request(
            'no detector is active: send the hip boxes as the field \'boxes\': [{"side": "right", "box": [x, y, w, h]}]'
        )
    try:  # the file first: a bomb is refused (bounded decoding) before anything else is looked up
        image = decode_dicom(upload.read(), limits=decode_limits())
    except DicomRejected as error:
        return _bad_request(str(error))
    if (message := _first_error(form.errors, "model")) is not None:
        return _bad_request(message)
    try:
        version = _chosen_version(form.validated_data["model"])
    except scoring.NoActiveModel as error:
        return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
    window = (image.window_center, image.window_width)
    if boxes:
        box_source, detector = "manual", None
        try:
            hips = parse_boxes(boxes, rows=image.pixels.shape[0], columns=image.pixels.shape[1])
        except BadBoxes as error:
            return _bad_request(str(error))
    else:
        box_source = "detector"
        assert detector is not None  # refused above: no boxes and no active detector
        hips = detection.hips_of(detection.detect(detector, image.pixels, window))
    predictions = scoring.predictor(version).predict_hips(image.pixels, window, hips) if hips else []
    answer = PredictAnswer(
        model_version=version, detector=detector, box_source=box_source, hips=predictions, **scoring.test_time(version)
    )
    return Response(PredictOutputSerializer(answer).data)
