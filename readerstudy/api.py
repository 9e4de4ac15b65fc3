"""The readers' REST API (the reading page uses it too).

A reader reaches only their own studies, and in them only what their current phase
shows: nothing here ever contains the ground truth, another reader's answers, or
(before the model-aided phase) anything the model said. Every case is addressed by
its id inside the study; the radiograph behind it is never named.
"""

from __future__ import annotations

from typing import Any, cast

from django.core.files.storage import default_storage
from django.http import FileResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.exceptions import APIException, NotAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from annotate.labelling.api import pixels_response
from annotate.labels import CLASSES, HipClass
from common.api_schema import ErrorSerializer
from readerstudy import services
from readerstudy.models import PHASES, Case, Condition, Reader


class StudyRefused(APIException):
    """A ``services.StudyError`` as an HTTP answer with the service's message."""

    def __init__(self, error: services.StudyError) -> None:
        super().__init__(detail=str(error))
        self.status_code = error.status


def _reader(request: Request, study_id: int) -> Reader:
    if not request.user.is_authenticated:
        raise NotAuthenticated("log in first")
    try:
        return services.reader_of(user=request.user, study_id=study_id)
    except services.StudyError as exc:
        raise StudyRefused(exc) from None


# --------------------------------------------------------------------------- output serializers
# The exact shape of each answer (built by the *_json functions below).


class StepOutputSerializer(serializers.Serializer):
    condition = serializers.ChoiceField(Condition.choices, allow_null=True, help_text="null when done")
    phase = serializers.IntegerField(allow_null=True, help_text="1, 2, 3 in the study's order; null when done")
    status = serializers.ChoiceField(["open", "washout", "done", "preparing"])
    opens_at = serializers.DateTimeField(allow_null=True, help_text="when the washout ends (washout only)")
    answered = serializers.IntegerField()
    total = serializers.IntegerField()


class MyStudySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    code = serializers.CharField()
    step = StepOutputSerializer()


class Top2Serializer(serializers.Serializer):
    # "class" is a Python keyword: the field is added in get_fields.
    probability = serializers.FloatField(allow_null=True)

    def get_fields(self) -> dict[str, serializers.Field]:
        return {"class": serializers.ChoiceField(HipClass.choices), **super().get_fields()}


class CaseOutputSerializer(serializers.Serializer):
    """The case on the reader's screen: what its phase shows, and nothing more."""

    id = serializers.IntegerField()
    condition = serializers.ChoiceField(Condition.choices)
    position = serializers.IntegerField()
    crop_url = serializers.CharField(required=False, help_text="model-quality phase only")
    pixels_url = serializers.CharField(required=False, help_text="full-quality and aided phases")
    rows = serializers.IntegerField(required=False)
    columns = serializers.IntegerField(required=False)
    window_center = serializers.FloatField(required=False, allow_null=True)
    window_width = serializers.FloatField(required=False, allow_null=True)
    side = serializers.CharField(required=False)
    box = serializers.ListField(child=serializers.FloatField(), required=False, help_text="x, y, width, height")
    own_answer = serializers.ChoiceField(HipClass.choices, required=False, help_text="aided phase only")
    heatmap_url = serializers.CharField(required=False, help_text="aided phase only")
    heatmap_rect = serializers.ListField(child=serializers.FloatField(), required=False, allow_null=True)
    top2 = Top2Serializer(many=True, required=False, help_text="aided phase only")


class StudyRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    phases = serializers.ListField(child=serializers.ChoiceField(Condition.choices))


class ReaderRefSerializer(serializers.Serializer):
    code = serializers.CharField()


class StateOutputSerializer(serializers.Serializer):
    study = StudyRefSerializer()
    reader = ReaderRefSerializer()
    step = StepOutputSerializer()
    case = CaseOutputSerializer(allow_null=True)


class StoredAnswerSerializer(serializers.Serializer):
    case = serializers.IntegerField()
    condition = serializers.ChoiceField(Condition.choices)
    answer = serializers.ChoiceField(HipClass.choices)
    displayed_at = serializers.DateTimeField()
    submitted_at = serializers.DateTimeField()
    carried_over = serializers.BooleanField()


class AnswerOutputSerializer(serializers.Serializer):
    answer = StoredAnswerSerializer()
    created = serializers.BooleanField()
    state = StateOutputSerializer()


def step_json(step: services.Step) -> dict[str, Any]:
    return {
        "condition": step.condition,
        "phase": PHASES.index(step.condition) + 1 if step.condition else None,
        "status": step.status,
        "opens_at": step.opens_at.isoformat() if step.opens_at and step.status == "washout" else None,
        "answered": step.answered,
        "total": step.total,
    }


def case_json(reader: Reader, step: services.Step, case: Case) -> dict[str, Any]:
    """What the reader's screen shows of ``case`` in the current phase, and nothing more."""
    condition = step.condition
    data: dict[str, Any] = {"id": case.pk, "condition": condition, "position": step.answered + 1}
    if condition == Condition.MODEL_QUALITY:
        data["crop_url"] = reverse("reader-case-crop", args=[case.pk])
        return data
    hip, radiograph = case.dataset_hip, case.dataset_hip.radiograph
    data.update(
        {
            "pixels_url": reverse("reader-case-pixels", args=[case.pk]),
            "rows": radiograph.rows,
            "columns": radiograph.columns,
            "window_center": radiograph.window_center,
            "window_width": radiograph.window_width,
            "side": hip.side,
            "box": [hip.x, hip.y, hip.width, hip.height],
        }
    )
    if condition == Condition.MODEL_AIDED:
        own = reader.responses.get(case=case, condition=Condition.FULL_QUALITY)
        probabilities = dict(zip(CLASSES, case.probabilities or [], strict=False))
        data.update(
            {
                "own_answer": own.answer,
                "heatmap_url": reverse("reader-case-heatmap", args=[case.pk]),
                "heatmap_rect": case.heatmap_rect,
                "top2": [{"class": key, "probability": probabilities.get(key)} for key in case.top2 or []],
            }
        )
    return data


def state_json(reader: Reader) -> dict[str, Any]:
    """The reader's step in the study and the case on their screen (shown now if new)."""
    step, case = services.case_show(reader=reader)
    return {
        "study": {"id": reader.study_id, "name": reader.study.name, "phases": list(reader.study.phases)},
        "reader": {"code": reader.code},
        "step": step_json(step),
        "case": case_json(reader, step, case) if case is not None else None,
    }


@extend_schema(responses=MyStudySerializer(many=True))
@api_view(["GET"])
def my_studies(request: Request) -> Response:
    """The studies the user reads in, with their current step in each."""
    if not request.user.is_authenticated:
        raise NotAuthenticated("log in first")
    readers = Reader.objects.filter(user=request.user).select_related("study").order_by("-study__created_at")
    return Response(
        [
            {"id": r.study_id, "name": r.study.name, "code": r.code, "step": step_json(services.reader_step(reader=r))}
            for r in readers
        ]
    )


@extend_schema(responses=StateOutputSerializer)
@api_view(["GET"])
def study_current(request: Request, pk: int) -> Response:
    """The reader's current step and the case to answer (its display time starts now)."""
    return Response(state_json(_reader(request, pk)))


class AnswerSerializer(serializers.Serializer):
    case = serializers.IntegerField()
    condition = serializers.ChoiceField(Condition.choices)
    answer = serializers.ChoiceField(HipClass.choices)


@extend_schema(
    request=AnswerSerializer,
    responses={201: AnswerOutputSerializer, 200: AnswerOutputSerializer, 409: ErrorSerializer},
)
@api_view(["POST"])
def answer(request: Request, pk: int) -> Response:
    """Answer the case on the reader's screen. 201 when stored, 200 when this very answer was
    stored already (a double submit), 409 when a different answer was, or the case or phase is
    not open. The reply carries the next state, so one request per case is enough."""
    reader = _reader(request, pk)
    serializer = AnswerSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    try:
        response, created = services.answer_submit(
            reader=reader,
            case_id=serializer.validated_data["case"],
            condition=serializer.validated_data["condition"],
            answer=serializer.validated_data["answer"],
        )
    except services.StudyError as exc:
        raise StudyRefused(exc) from None
    return Response(
        {"answer": response.as_dict(), "created": created, "state": state_json(reader)},
        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
    )


def _case_for(request: Request, pk: int, media: str) -> Case:
    if not request.user.is_authenticated:
        raise NotAuthenticated("log in first")
    case = get_object_or_404(Case.objects.select_related("dataset_hip__radiograph"), pk=pk)
    reader = Reader.objects.filter(study_id=case.study_id, user=request.user).first()
    if reader is None:
        raise StudyRefused(services.NotFound("you are not a reader of this study"))
    if not services.case_media_allowed(reader=reader, case=case, media=media):
        raise StudyRefused(services.Forbidden(f"this case's {media} is not part of your current phase"))
    return case


def _png(name: str) -> FileResponse:
    response = FileResponse(default_storage.open(name, "rb"), content_type="image/png")
    response["Cache-Control"] = "private, no-store"
    return response


@extend_schema(responses={(200, "image/png"): bytes})
@api_view(["GET"])
def case_crop(request: Request, pk: int) -> FileResponse:
    """The hip as the model gets it (model-quality phase)."""
    return _png(cast(str, _case_for(request, pk, "crop").crop.name))  # a prepared study's case has its crop


@extend_schema(responses={(200, "application/octet-stream"): bytes})
@api_view(["GET"])
def case_pixels(request: Request, pk: int) -> FileResponse:
    """The whole radiograph's 16-bit pixels (full-quality and aided phases)."""
    return pixels_response(_case_for(request, pk, "pixels").dataset_hip.radiograph)


@extend_schema(responses={(200, "image/png"): bytes})
@api_view(["GET"])
def case_heatmap(request: Request, pk: int) -> FileResponse:
    """The model's heatmap of the case (aided phase, disagreeing cases only)."""
    return _png(cast(str, _case_for(request, pk, "heatmap").heatmap.name))  # an aided case has its heatmap
