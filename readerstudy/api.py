"""The readers' REST API (the reading page uses it too).

A reader reaches only their own studies, and in them only what their current phase
shows: nothing here ever contains the ground truth, another reader's answers, or
(before the model-aided phase) anything the model said. Every case is addressed by
its id inside the study; the radiograph behind it is never named.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from django.core.files.storage import default_storage
from django.http import FileResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.exceptions import APIException, NotAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from annotate.labelling.api import pixels_response
from annotate.labels import CLASSES, HipClass
from common.api_fields import IsoDateTimeField
from common.api_schema import ErrorSerializer
from readerstudy import services
from readerstudy.models import PHASES, Case, Condition, Reader
from readerstudy.models import Response as StudyResponse


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
# Each builds its answer and is the shape the schema documents.


class StepOutputSerializer(serializers.Serializer):
    """Where the reader stands in the study."""

    condition = serializers.ChoiceField(Condition.choices, allow_null=True, help_text="null when done")
    phase = serializers.SerializerMethodField(help_text="1, 2, 3 in the study's order; null when done")
    status = serializers.ChoiceField(["open", "washout", "done", "preparing"])
    opens_at = serializers.SerializerMethodField(help_text="when the washout ends (washout only)")
    answered = serializers.IntegerField()
    total = serializers.IntegerField()

    def get_phase(self, step: services.Step) -> int | None:
        return PHASES.index(step.condition) + 1 if step.condition else None

    @extend_schema_field(IsoDateTimeField(allow_null=True))
    def get_opens_at(self, step: services.Step) -> str | None:
        return step.opens_at.isoformat() if step.opens_at and step.status == "washout" else None


class MyStudySerializer(serializers.Serializer):
    """One of the user's studies, with their step in it."""

    id = serializers.IntegerField(source="study_id")
    name = serializers.CharField(source="study.name")
    code = serializers.CharField()
    step = serializers.SerializerMethodField()

    @extend_schema_field(StepOutputSerializer)
    def get_step(self, reader: Reader) -> dict[str, Any]:
        return dict(StepOutputSerializer(services.reader_step(reader=reader)).data)


class Top2Serializer(serializers.Serializer):
    # "class" is a Python keyword: the field is added in get_fields.
    probability = serializers.FloatField(allow_null=True)

    def get_fields(self) -> dict[str, serializers.Field]:
        return {"class": serializers.ChoiceField(HipClass.choices), **super().get_fields()}


@dataclass(frozen=True)
class ReaderState:
    """The reader's step in the study and the case on their screen (None when there is none),
    with what the screen may show of the case (each only where its phase shows it)."""

    reader: Reader
    step: services.Step
    case: Case | None

    @property
    def shown(self) -> Case:
        assert self.case is not None  # the state's serializer writes null for no case
        return self.case

    @property
    def position(self) -> int:
        return self.step.answered + 1

    @property
    def crop_url(self) -> str:
        return reverse("reader-case-crop", args=[self.shown.pk])

    @property
    def pixels_url(self) -> str:
        return reverse("reader-case-pixels", args=[self.shown.pk])

    @property
    def box(self) -> list[float]:
        hip = self.shown.dataset_hip
        return [hip.x, hip.y, hip.width, hip.height]

    @property
    def own_answer(self) -> str:
        return self.reader.responses.get(case=self.shown, condition=Condition.FULL_QUALITY).answer

    @property
    def heatmap_url(self) -> str:
        return reverse("reader-case-heatmap", args=[self.shown.pk])

    @property
    def top2(self) -> list[dict[str, Any]]:
        probabilities = dict(zip(CLASSES, self.shown.probabilities or [], strict=False))
        return [{"class": key, "probability": probabilities.get(key)} for key in self.shown.top2 or []]


# What each phase shows of a case; nothing else is ever read for it.
CASE_FIELDS_SHOWN: dict[str, tuple[str, ...]] = {
    Condition.MODEL_QUALITY: ("id", "condition", "position", "crop_url"),
    Condition.FULL_QUALITY: ("id", "condition", "position", "pixels_url", "rows", "columns", "window_center",
                             "window_width", "side", "box"),
}  # fmt: skip
CASE_FIELDS_SHOWN[Condition.MODEL_AIDED] = (
    *CASE_FIELDS_SHOWN[Condition.FULL_QUALITY], "own_answer", "heatmap_url", "heatmap_rect", "top2"
)  # fmt: skip


class CaseOutputSerializer(serializers.Serializer):
    """The case on the reader's screen: what its phase shows, and nothing more."""

    # Built from a ``ReaderState`` with a case; only the fields of ``CASE_FIELDS_SHOWN`` are read.

    id = serializers.IntegerField(source="shown.pk")
    condition = serializers.ChoiceField(Condition.choices, source="step.condition")
    position = serializers.IntegerField()
    crop_url = serializers.CharField(required=False, help_text="model-quality phase only")
    pixels_url = serializers.CharField(required=False, help_text="full-quality and aided phases")
    rows = serializers.IntegerField(source="shown.dataset_hip.radiograph.rows", required=False)
    columns = serializers.IntegerField(source="shown.dataset_hip.radiograph.columns", required=False)
    window_center = serializers.FloatField(
        source="shown.dataset_hip.radiograph.window_center", required=False, allow_null=True
    )
    window_width = serializers.FloatField(
        source="shown.dataset_hip.radiograph.window_width", required=False, allow_null=True
    )
    side = serializers.CharField(source="shown.dataset_hip.side", required=False)
    box = serializers.ListField(child=serializers.FloatField(), required=False, help_text="x, y, width, height")
    own_answer = serializers.ChoiceField(HipClass.choices, required=False, help_text="aided phase only")
    heatmap_url = serializers.CharField(required=False, help_text="aided phase only")
    heatmap_rect = serializers.ListField(
        source="shown.heatmap_rect", child=serializers.FloatField(), required=False, allow_null=True
    )
    top2 = Top2Serializer(many=True, required=False, help_text="aided phase only")

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        state = self.instance
        if not isinstance(state, ReaderState) or state.step.condition is None:
            return fields  # the schema: every field
        shown = CASE_FIELDS_SHOWN[state.step.condition]
        return {name: field for name, field in fields.items() if name in shown}


class StudyRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    phases = serializers.ListField(child=serializers.ChoiceField(Condition.choices))


class ReaderRefSerializer(serializers.Serializer):
    code = serializers.CharField()


class StateOutputSerializer(serializers.Serializer):
    """The reader's step in the study and the case on their screen."""

    study = StudyRefSerializer(source="reader.study")
    reader = ReaderRefSerializer()
    step = StepOutputSerializer()
    case = serializers.SerializerMethodField()

    @extend_schema_field(CaseOutputSerializer(allow_null=True))
    def get_case(self, state: ReaderState) -> dict[str, Any] | None:
        return dict(CaseOutputSerializer(state).data) if state.case is not None else None


def reader_state(reader: Reader) -> ReaderState:
    """The reader's step and the case on their screen (shown now if new: its display time starts)."""
    step, case = services.case_show(reader=reader)
    return ReaderState(reader=reader, step=step, case=case)


class StoredAnswerSerializer(serializers.Serializer):
    """A stored answer."""

    case = serializers.IntegerField(source="case_id")
    condition = serializers.ChoiceField(Condition.choices)
    answer = serializers.ChoiceField(HipClass.choices)
    displayed_at = IsoDateTimeField()
    submitted_at = IsoDateTimeField()
    carried_over = serializers.BooleanField()


@dataclass(frozen=True)
class AnswerResult:
    answer: StudyResponse
    created: bool
    state: ReaderState


class AnswerOutputSerializer(serializers.Serializer):
    """The stored answer, whether it is new, and the reader's next state."""

    answer = StoredAnswerSerializer()
    created = serializers.BooleanField()
    state = StateOutputSerializer()


@extend_schema(responses=MyStudySerializer(many=True))
@api_view(["GET"])
def my_studies(request: Request) -> Response:
    """The studies the user reads in, with their current step in each."""
    if not request.user.is_authenticated:
        raise NotAuthenticated("log in first")
    readers = Reader.objects.filter(user=request.user).select_related("study").order_by("-study__created_at")
    return Response(MyStudySerializer(readers, many=True).data)


@extend_schema(responses=StateOutputSerializer)
@api_view(["GET"])
def study_current(request: Request, pk: int) -> Response:
    """The reader's current step and the case to answer (its display time starts now)."""
    return Response(StateOutputSerializer(reader_state(_reader(request, pk))).data)


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
    result = AnswerResult(answer=response, created=created, state=reader_state(reader))
    return Response(
        AnswerOutputSerializer(result).data,
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
