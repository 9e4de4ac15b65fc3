"""The ML API's output serializers: the shapes of the dataset versions, training runs, model versions
and predictions the endpoints of :mod:`ml.api` answer with, for the OpenAPI schema."""

from __future__ import annotations

from rest_framework import serializers

from ml.models import Kind, TrainingRun

# --------------------------------------------------------------------------- output serializers


class DatasetOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField(allow_blank=True)
    seed = serializers.IntegerField()
    fractions = serializers.JSONField()
    content_hash = serializers.CharField()
    counts = serializers.JSONField()
    created_by = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    url = serializers.CharField()
    hips_csv_url = serializers.CharField()


class DatasetDetailOutputSerializer(DatasetOutputSerializer):
    table1 = serializers.JSONField(help_text="Table 1: the dataset's characteristics per split")


class DatasetCreatedOutputSerializer(DatasetDetailOutputSerializer):
    created = serializers.BooleanField(help_text="false: the ground truth had not changed, this is the existing one")


class TrainingRunOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(TrainingRun.Status.choices)
    config_name = serializers.CharField()
    config = serializers.JSONField()
    dataset = serializers.IntegerField()
    seed = serializers.IntegerField()
    activate_when_done = serializers.BooleanField()
    epoch = serializers.IntegerField()
    epochs = serializers.IntegerField()
    steps = serializers.IntegerField()
    steps_per_epoch = serializers.IntegerField()
    history = serializers.ListField(child=serializers.DictField())
    best_val_accuracy = serializers.FloatField(allow_null=True)
    log = serializers.CharField(allow_blank=True)
    error = serializers.CharField(allow_blank=True)
    attempts = serializers.IntegerField()
    cancel_requested = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    epoch_started_at = serializers.DateTimeField(allow_null=True)
    time_left_seconds = serializers.FloatField(allow_null=True)
    model_version = serializers.IntegerField(allow_null=True)
    model_version_url = serializers.CharField(allow_null=True)
    url = serializers.CharField()
    page_url = serializers.CharField()


class ModelVersionOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(Kind.choices)
    config_name = serializers.CharField()
    config = serializers.JSONField()
    dataset = serializers.IntegerField(allow_null=True)
    training_run = serializers.IntegerField(allow_null=True)
    identity = serializers.JSONField()
    bundle_sha256 = serializers.CharField(allow_blank=True)
    is_active = serializers.BooleanField()
    evaluation = serializers.JSONField(allow_null=True)
    evaluated_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    files = serializers.DictField(child=serializers.CharField(), help_text="evaluation file name -> URL")
    url = serializers.CharField()
    page_url = serializers.CharField()


class ModelActivatedOutputSerializer(ModelVersionOutputSerializer):
    warning = serializers.CharField(required=False, help_text="e.g. scoring could not be queued")


class TestTimeFieldsSerializer(serializers.Serializer):
    test_time = serializers.ChoiceField(["single", "zoom-average"])
    test_time_zooms = serializers.ListField(child=serializers.FloatField())


class PredictionOutputSerializer(TestTimeFieldsSerializer):
    id = serializers.IntegerField()
    radiograph = serializers.IntegerField()
    model_version = serializers.IntegerField()
    side = serializers.CharField()
    box = serializers.ListField(child=serializers.FloatField())
    box_source = serializers.CharField()
    probabilities = serializers.DictField(child=serializers.FloatField())
    top2 = serializers.ListField(child=serializers.CharField())
    predicted_class = serializers.CharField()
    fracture_probability = serializers.FloatField()
    heatmap_url = serializers.CharField()
    heatmap_rect = serializers.ListField(child=serializers.FloatField())


class PredictedHipSerializer(serializers.Serializer):
    side = serializers.CharField()
    box = serializers.ListField(child=serializers.FloatField())
    probabilities = serializers.DictField(child=serializers.FloatField())
    top2 = serializers.ListField(child=serializers.CharField())
    predicted_class = serializers.CharField()
    fracture_probability = serializers.FloatField()
    heatmap_rect = serializers.ListField(child=serializers.FloatField())
    box_source = serializers.ChoiceField(["manual", "detector"])
    heatmap_png_base64 = serializers.CharField()


class PredictOutputSerializer(TestTimeFieldsSerializer):
    model_version = serializers.IntegerField()
    detector_version = serializers.IntegerField(allow_null=True)
    hips = PredictedHipSerializer(many=True)
