"""The ML API's output serializers: each builds an answer of :mod:`ml.api` (a dataset version,
training run, model version or prediction) from its model object and is the shape the OpenAPI
schema documents. Free-form nested data (counts, Table 1, configs, history, evaluation) is JSON."""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from typing import Any

from django.urls import reverse
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from common.api_fields import serialize_many
from ml import services
from ml.core.serving import HipPrediction as ServedPrediction
from ml.core.serving import heatmap_png
from ml.core.vocab import CLASSES
from ml.evaluation import DOWNLOADS
from ml.models import DatasetVersion, HipPrediction, Kind, ModelVersion, TrainingRun
from ml.scoring import test_time

# --------------------------------------------------------------------------- output serializers


class DatasetOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField(allow_blank=True)
    seed = serializers.IntegerField()
    fractions = serializers.JSONField()
    content_hash = serializers.CharField()
    counts = serializers.JSONField()
    created_by = serializers.CharField(source="created_by.username", allow_null=True)
    created_at = serializers.DateTimeField()
    url = serializers.SerializerMethodField()
    hips_csv_url = serializers.SerializerMethodField()

    def get_url(self, version: DatasetVersion) -> str:
        return f"/api/datasets/{version.pk}/"

    def get_hips_csv_url(self, version: DatasetVersion) -> str:
        return f"/api/datasets/{version.pk}/hips.csv"


class DatasetDetailOutputSerializer(DatasetOutputSerializer):
    table1 = serializers.SerializerMethodField(help_text="Table 1: the dataset's characteristics per split")

    @extend_schema_field(serializers.JSONField())
    def get_table1(self, version: DatasetVersion) -> Any:
        return services.table1(version=version)


class DatasetCreatedOutputSerializer(DatasetDetailOutputSerializer):
    # ``context["created"]``: whether the version is new.
    created = serializers.SerializerMethodField(
        help_text="false: the ground truth had not changed, this is the existing one"
    )

    def get_created(self, version: DatasetVersion) -> bool:
        return bool(self.context["created"])


def time_left_seconds(run: TrainingRun, *, now: Any = None) -> float | None:
    """About how long a running run has left: the mean seconds of its completed epochs (or, before
    the first one ends, the current epoch's pace) times the epochs left, less the part of the
    current epoch already done. None when unknown or not running; early stopping may end it sooner."""
    if run.status != TrainingRun.Status.RUNNING or not run.epochs:
        return None
    fraction = min(run.steps / run.steps_per_epoch, 1.0) if run.steps_per_epoch else 0.0
    seconds = [row["seconds"] for row in run.history if isinstance(row.get("seconds"), int | float)]
    if seconds:
        per_epoch = sum(seconds) / len(seconds)
    elif fraction > 0 and run.epoch_started_at is not None:
        elapsed = ((now or timezone.now()) - run.epoch_started_at).total_seconds()
        per_epoch = max(elapsed, 0.0) / fraction
    else:
        return None
    return round(max(run.epochs - run.epoch - fraction, 0.0) * per_epoch, 1)


def best_val_accuracy(run: TrainingRun) -> float | None:
    """The run's best validation figure: accuracy for a classifier, mean IoU for a detector."""
    key = "val_mean_iou" if run.kind == "detector" else "val_accuracy"
    values = [row.get(key) for row in run.history if isinstance(row.get(key), int | float) and math.isfinite(row[key])]
    return max(values) if values else None


def model_version_id(run: TrainingRun) -> int | None:
    """The model version the run made, or None."""
    try:
        return run.model_version.pk
    except ModelVersion.DoesNotExist:
        return None


def evaluation_files(version: ModelVersion) -> dict[str, str]:
    """The downloadable evaluation files of ``version`` that exist: name -> URL."""

    folder = version.evaluation_dir
    return {name: reverse("model-file", args=[version.pk, name]) for name in DOWNLOADS if (folder / name).is_file()}


class TrainingRunOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(TrainingRun.Status.choices)
    config_name = serializers.CharField()
    config = serializers.JSONField()
    dataset = serializers.IntegerField(source="dataset_id")
    seed = serializers.IntegerField()
    activate_when_done = serializers.BooleanField()
    epoch = serializers.IntegerField()
    epochs = serializers.IntegerField()
    steps = serializers.IntegerField()
    steps_per_epoch = serializers.IntegerField()
    history = serializers.ListField(child=serializers.DictField())
    best_val_accuracy = serializers.SerializerMethodField()
    log = serializers.CharField(allow_blank=True)
    error = serializers.CharField(allow_blank=True)
    attempts = serializers.IntegerField()
    cancel_requested = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    epoch_started_at = serializers.DateTimeField(allow_null=True)
    time_left_seconds = serializers.SerializerMethodField()
    model_version = serializers.SerializerMethodField()
    model_version_url = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()
    page_url = serializers.SerializerMethodField()

    def get_best_val_accuracy(self, run: TrainingRun) -> float | None:
        return best_val_accuracy(run)

    def get_time_left_seconds(self, run: TrainingRun) -> float | None:
        return time_left_seconds(run)

    def get_model_version(self, run: TrainingRun) -> int | None:
        return model_version_id(run)

    def get_model_version_url(self, run: TrainingRun) -> str | None:
        version_id = model_version_id(run)
        return reverse("model_detail", args=[version_id]) if version_id else None

    def get_url(self, run: TrainingRun) -> str:
        return reverse("training-run-detail", args=[run.pk])

    def get_page_url(self, run: TrainingRun) -> str:
        return reverse("run_detail", args=[run.pk])


class ModelVersionOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(Kind.choices)
    config_name = serializers.CharField()
    config = serializers.JSONField()
    dataset = serializers.IntegerField(source="dataset_id", allow_null=True)
    training_run = serializers.IntegerField(source="training_run_id", allow_null=True)
    identity = serializers.JSONField()
    bundle_sha256 = serializers.CharField(allow_blank=True)
    is_active = serializers.BooleanField()
    evaluation = serializers.JSONField(allow_null=True)
    evaluated_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    files = serializers.SerializerMethodField(help_text="evaluation file name -> URL")
    url = serializers.SerializerMethodField()
    page_url = serializers.SerializerMethodField()

    @extend_schema_field(serializers.DictField(child=serializers.CharField()))
    def get_files(self, version: ModelVersion) -> dict[str, str]:
        return evaluation_files(version)

    def get_url(self, version: ModelVersion) -> str:
        return reverse("model-detail", args=[version.pk])

    def get_page_url(self, version: ModelVersion) -> str:
        return reverse("model_detail", args=[version.pk])


class ModelActivatedOutputSerializer(ModelVersionOutputSerializer):
    """A model version just made active; ``warning`` says what went wrong on the side, if anything."""

    # ``context["warning"]``: that message, when there is one.

    warning = serializers.CharField(required=False, help_text="e.g. scoring could not be queued")

    def to_representation(self, instance: ModelVersion) -> dict[str, Any]:
        data: dict[str, Any] = super().to_representation(instance)
        if self.context.get("warning"):
            data["warning"] = self.context["warning"]
        return data


TEST_TIMES = ["single", "zoom-average"]


class PredictionOutputSerializer(serializers.Serializer):
    """A stored hip prediction, with the test-time protocol of its model version."""

    # The heatmap's URL is absolute when ``context["request"]`` is given.

    id = serializers.IntegerField()
    radiograph = serializers.IntegerField(source="radiograph_id")
    model_version = serializers.IntegerField(source="model_version_id")
    side = serializers.CharField()
    box = serializers.ListField(child=serializers.FloatField())
    box_source = serializers.CharField()
    probabilities = serializers.SerializerMethodField()
    top2 = serializers.ListField(child=serializers.CharField())
    predicted_class = serializers.CharField()
    fracture_probability = serializers.FloatField()
    heatmap_url = serializers.SerializerMethodField()
    heatmap_rect = serializers.ListField(child=serializers.FloatField())
    # The test-time protocol of the prediction's model version (``scoring.test_time``).
    test_time = serializers.SerializerMethodField()
    test_time_zooms = serializers.SerializerMethodField()

    @extend_schema_field(serializers.DictField(child=serializers.FloatField()))
    def get_probabilities(self, row: HipPrediction) -> dict[str, float]:
        return dict(zip(CLASSES, row.probabilities, strict=True))

    def get_heatmap_url(self, row: HipPrediction) -> str:
        url = reverse("prediction-heatmap", args=[row.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request is not None else url

    @extend_schema_field(serializers.ChoiceField(TEST_TIMES))
    def get_test_time(self, row: HipPrediction) -> str:
        return str(test_time(row.model_version)["test_time"])

    @extend_schema_field(serializers.ListField(child=serializers.FloatField()))
    def get_test_time_zooms(self, row: HipPrediction) -> list[float]:
        return list(test_time(row.model_version)["test_time_zooms"])


class PredictedHipSerializer(serializers.Serializer):
    """A hip read in the uploaded file, with its heatmap as a PNG."""

    # A fresh ``ml.core.serving.HipPrediction``; ``context["box_source"]``: where its box came from.

    side = serializers.CharField()
    box = serializers.ListField(child=serializers.FloatField())
    probabilities = serializers.SerializerMethodField()
    top2 = serializers.ListField(child=serializers.CharField())
    predicted_class = serializers.CharField()
    fracture_probability = serializers.FloatField()
    heatmap_rect = serializers.ListField(child=serializers.FloatField())
    box_source = serializers.SerializerMethodField()
    heatmap_png_base64 = serializers.SerializerMethodField()

    @extend_schema_field(serializers.DictField(child=serializers.FloatField()))
    def get_probabilities(self, pred: ServedPrediction) -> dict[str, float]:
        return dict(zip(CLASSES, (float(p) for p in pred.probabilities), strict=True))

    @extend_schema_field(serializers.ChoiceField(["manual", "detector"]))
    def get_box_source(self, pred: ServedPrediction) -> str:
        return str(self.context["box_source"])

    def get_heatmap_png_base64(self, pred: ServedPrediction) -> str:
        return base64.b64encode(heatmap_png(pred)).decode("ascii")


@dataclass(frozen=True)
class PredictAnswer:
    """What ``predict`` read in an uploaded file: the hips, by which models, from which boxes."""

    model_version: ModelVersion
    detector: ModelVersion | None
    box_source: str  # "manual" or "detector"
    hips: list[ServedPrediction]
    test_time: str  # the model version's test-time protocol (``scoring.test_time``)
    test_time_zooms: list[float]


class PredictOutputSerializer(serializers.Serializer):
    """What was read in the uploaded file (a ``PredictAnswer``), and by which models."""

    model_version = serializers.IntegerField(source="model_version.pk")
    test_time = serializers.ChoiceField(TEST_TIMES)
    test_time_zooms = serializers.ListField(child=serializers.FloatField())
    detector_version = serializers.IntegerField(source="detector.pk", allow_null=True)
    hips = serializers.SerializerMethodField()

    @extend_schema_field(PredictedHipSerializer(many=True))
    def get_hips(self, answer: PredictAnswer) -> list[Any]:
        return serialize_many(PredictedHipSerializer, answer.hips, context={"box_source": answer.box_source})
