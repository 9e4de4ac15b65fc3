"""The shapes of the triage API's answers (``triage.worklist.worklist_json``,
``triage.operations.ops_json`` build them; these document them in the OpenAPI schema)."""

from __future__ import annotations

from rest_framework import serializers

from annotate.labels import HipClass


class ClassProbabilitySerializer(serializers.Serializer):
    probability = serializers.FloatField(allow_null=True)

    def get_fields(self) -> dict[str, serializers.Field]:
        # "class" is a Python keyword: the field is named here.
        return {"class": serializers.ChoiceField(HipClass.choices), **super().get_fields()}


class WorklistHipSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    side = serializers.CharField()
    fracture_probability = serializers.FloatField()
    predicted_class = serializers.CharField()
    top2 = ClassProbabilitySerializer(many=True)
    probabilities = serializers.DictField(child=serializers.FloatField())
    p_flag_class = serializers.FloatField()
    flagged = serializers.BooleanField()
    box = serializers.ListField(child=serializers.FloatField())
    box_source = serializers.CharField()
    heatmap_url = serializers.CharField()
    heatmap_rect = serializers.ListField(child=serializers.FloatField())


class WorklistRowSerializer(serializers.Serializer):
    radiograph = serializers.IntegerField()
    arrived = serializers.CharField(help_text="ISO 8601")
    scored_at = serializers.CharField(help_text="ISO 8601, with microseconds")
    study_date = serializers.CharField(allow_null=True, help_text="ISO 8601 date")
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
    model_version = serializers.IntegerField(allow_null=True)
    flag_class = serializers.CharField()
    flag_threshold = serializers.FloatField(allow_null=True)
    flag_available = serializers.BooleanField()
    order = serializers.CharField()
    filters = serializers.DictField(child=serializers.CharField(allow_blank=True))
    after = serializers.CharField(allow_null=True)
    page = serializers.IntegerField()
    pages = serializers.IntegerField()
    page_size = serializers.IntegerField()
    count = serializers.IntegerField()
    cursor = serializers.CharField(allow_null=True)
    results = WorklistRowSerializer(many=True)
    detail = serializers.CharField(required=False, help_text="only when no classifier is active")


class OpsSerializer(serializers.Serializer):
    now = serializers.CharField(help_text="ISO 8601")
    all_time = serializers.JSONField(help_text="arrival-to-score statistics")
    last_24h = serializers.JSONField(help_text="the same for the last 24 hours, with arrivals by source")
    recent = serializers.JSONField(help_text="the latest readings")
    broker = serializers.JSONField()
    workers = serializers.DictField(child=serializers.IntegerField(), help_text="queue -> workers")
    workers_error = serializers.CharField(allow_blank=True)
    queued_imports = serializers.IntegerField()
    live_training_runs = serializers.IntegerField()
    poll_ms = serializers.IntegerField()
