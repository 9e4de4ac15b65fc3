"""The triage API's answers: the worklist (a ``triage.worklist.WorklistPage``) and the operations
status (``triage.operations.ops_status``); each serializer builds its answer and is the shape the
OpenAPI schema documents. The worklist and operations pages embed the same answers."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from annotate.labels import CLASSES, HipClass
from common.api_fields import IsoDateTimeField, serialize_many
from ml.models import HipPrediction
from triage.worklist import FLAG_CLASS, PAGE_SIZE, WorklistPage, hip_flagged

NO_CLASSIFIER = "No classifier is active yet: train one and activate it on the Models page."


class ClassProbabilitySerializer(serializers.Serializer):
    probability = serializers.FloatField(allow_null=True)

    def get_fields(self) -> dict[str, serializers.Field]:
        # "class" is a Python keyword: the field is named here.
        return {"class": serializers.ChoiceField(HipClass.choices), **super().get_fields()}


class WorklistHipSerializer(serializers.Serializer):
    """A hip's prediction on the worklist, with its CT/MRI flag."""

    # ``context["threshold"]``: the flag's threshold (``worklist.flag_threshold``; None: no flag).

    id = serializers.IntegerField()
    side = serializers.CharField()
    fracture_probability = serializers.FloatField()
    predicted_class = serializers.CharField()
    top2 = serializers.SerializerMethodField()
    probabilities = serializers.SerializerMethodField()
    p_flag_class = serializers.SerializerMethodField()
    flagged = serializers.SerializerMethodField()
    box = serializers.ListField(child=serializers.FloatField())
    box_source = serializers.CharField()
    heatmap_url = serializers.SerializerMethodField()
    heatmap_rect = serializers.ListField(child=serializers.FloatField())

    @extend_schema_field(ClassProbabilitySerializer(many=True))
    def get_top2(self, row: HipPrediction) -> list[dict[str, Any]]:
        probabilities = self.get_probabilities(row)
        return [{"class": key, "probability": probabilities.get(key)} for key in row.top2]

    @extend_schema_field(serializers.DictField(child=serializers.FloatField()))
    def get_probabilities(self, row: HipPrediction) -> dict[str, float]:
        return dict(zip(CLASSES, (float(p) for p in row.probabilities), strict=True))

    def get_p_flag_class(self, row: HipPrediction) -> float:
        return self.get_probabilities(row)[FLAG_CLASS]

    def get_flagged(self, row: HipPrediction) -> bool:
        return hip_flagged(
            probabilities=row.probabilities, predicted_class=row.predicted_class, threshold=self.context["threshold"]
        )

    def get_heatmap_url(self, row: HipPrediction) -> str:
        return reverse("prediction-heatmap", args=[row.pk])


class WorklistRowSerializer(serializers.Serializer):
    """A radiograph on the worklist (a row of ``WorklistPage.rows``)."""

    radiograph = serializers.IntegerField()
    arrived = IsoDateTimeField()
    scored_at = IsoDateTimeField(help_text="with microseconds, as the page writes it")
    study_date = serializers.DateField(allow_null=True)
    patient = serializers.CharField()
    modality = serializers.CharField()
    columns = serializers.IntegerField()
    rows = serializers.IntegerField()
    max_fracture_probability = serializers.FloatField()
    fracture = serializers.BooleanField()
    flagged = serializers.BooleanField()
    hips = WorklistHipSerializer(many=True)
    preview_url = serializers.CharField()
    predictions_url = serializers.CharField()


class WorklistSerializer(serializers.Serializer):
    """A page of the worklist (timestamps as ISO 8601 with microseconds, so that the page and the
    API write a radiograph's ``scored_at`` alike)."""

    model_version = serializers.IntegerField(source="version.pk", allow_null=True)
    flag_class = serializers.SerializerMethodField()
    flag_threshold = serializers.FloatField(source="threshold", allow_null=True)
    flag_available = serializers.SerializerMethodField()
    order = serializers.CharField(source="query.order")
    filters = serializers.SerializerMethodField()
    after = IsoDateTimeField(source="query.after", allow_null=True)
    page = serializers.IntegerField(source="query.page")
    pages = serializers.IntegerField()
    page_size = serializers.SerializerMethodField()
    count = serializers.IntegerField()
    cursor = IsoDateTimeField(allow_null=True)
    results = serializers.SerializerMethodField()
    detail = serializers.CharField(required=False, help_text="only when no classifier is active")

    def get_flag_class(self, result: WorklistPage) -> str:
        return FLAG_CLASS

    def get_flag_available(self, result: WorklistPage) -> bool:
        return result.threshold is not None

    @extend_schema_field(serializers.DictField(child=serializers.CharField(allow_blank=True)))
    def get_filters(self, result: WorklistPage) -> dict[str, str]:
        return result.query.as_params()

    def get_page_size(self, result: WorklistPage) -> int:
        return PAGE_SIZE

    @extend_schema_field(WorklistRowSerializer(many=True))
    def get_results(self, result: WorklistPage) -> list[Any]:
        return serialize_many(WorklistRowSerializer, result.rows, context={"threshold": result.threshold})

    def to_representation(self, instance: WorklistPage) -> dict[str, Any]:
        data: dict[str, Any] = super().to_representation(instance)
        if instance.version is None:
            data["detail"] = NO_CLASSIFIER
        return data


class ArrivalStatsSerializer(serializers.Serializer):
    """Arrival-to-score of the radiographs read end to end, and the backlog."""

    scored = serializers.IntegerField()
    median_seconds = serializers.FloatField(allow_null=True)
    p95_seconds = serializers.FloatField(allow_null=True)
    backlog = serializers.IntegerField(help_text="radiographs waiting to be read")
    oldest_waiting_seconds = serializers.FloatField(allow_null=True)


class SourceArrivalsSerializer(serializers.Serializer):
    source = serializers.CharField()  # type: ignore[assignment]  # a field named like Field.source
    label = serializers.CharField()  # type: ignore[assignment]  # a field named like Field.label
    arrived = serializers.IntegerField()
    scored = serializers.IntegerField()


class LastDaySerializer(ArrivalStatsSerializer):
    by_source = SourceArrivalsSerializer(many=True)


class RecentReadingSerializer(serializers.Serializer):
    radiograph = serializers.IntegerField()
    source = serializers.CharField()  # type: ignore[assignment]  # a field named like Field.source
    received_at = IsoDateTimeField()
    scored_at = IsoDateTimeField()
    seconds = serializers.FloatField()
    detector_version = serializers.IntegerField(allow_null=True)
    classifier_version = serializers.IntegerField(allow_null=True)


class OpsSerializer(serializers.Serializer):
    """Everything the operations page shows."""

    now = IsoDateTimeField()
    all_time = ArrivalStatsSerializer(help_text="arrival-to-score statistics")
    last_24h = LastDaySerializer(help_text="the same for the last 24 hours, with arrivals by source")
    recent = RecentReadingSerializer(many=True, help_text="the latest readings")
    broker = serializers.CharField(help_text='"ok", or what went wrong')
    workers = serializers.DictField(child=serializers.IntegerField(), help_text="queue -> workers")
    workers_error = serializers.CharField(allow_blank=True)
    queued_imports = serializers.IntegerField()
    live_training_runs = serializers.IntegerField()
    poll_ms = serializers.IntegerField()
