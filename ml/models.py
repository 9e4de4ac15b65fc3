"""Dataset versions: frozen snapshots of the ground-truth hips, split by patient."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from annotate.labels import BoxFields
from annotate.models import Patient, Radiograph


class Split(models.TextChoices):
    TRAIN = "train", "Training"
    VALIDATION = "validation", "Validation"
    TEST = "test", "Test"


class DatasetVersion(models.Model):
    """A frozen copy of the ground truth with its train/validation/test split.

    ``content_hash`` is the SHA-256 over the sorted frozen rows (radiograph
    SHA-256, side, class, box, split): the same seed on unchanged ground
    truth gives the same hash, and freezing it again returns this version."""

    name = models.CharField(max_length=100, blank=True)
    seed = models.BigIntegerField()
    fractions = models.JSONField(help_text="train, validation, test")
    content_hash = models.CharField(max_length=64, unique=True)
    counts = models.JSONField(default=dict, help_text="hips per split and class")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Dataset {self.pk}{f' {self.name}' if self.name else ''} (seed {self.seed})"


class DatasetHip(BoxFields):
    """One frozen ground-truth hip of a dataset version."""

    dataset = models.ForeignKey(DatasetVersion, on_delete=models.CASCADE, related_name="hips")
    radiograph = models.ForeignKey(Radiograph, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    split = models.CharField(max_length=16, choices=Split.choices, db_index=True)

    class Meta:
        ordering = ["dataset_id", "radiograph_id", "side"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "radiograph", "side"], name="dataset_hip_once"),
        ]

    def __str__(self) -> str:
        return f"{self.split} {self.side} {self.hip_class} (radiograph {self.radiograph_id})"


class Kind(models.TextChoices):
    CLASSIFIER = "classifier", "Hip classifier"
    DETECTOR = "detector", "Hip detector"


class TrainingRun(models.Model):
    """One training job: config, dataset version, status, per-epoch history and log.

    The Celery task and ``manage.py train`` run the same code (``ml.training.run_training``).
    The run checkpoints after every epoch under ``DATA_DIR/training/<id>/``; a run whose
    worker died is picked up again from its last checkpoint when the task is redelivered.
    ``identity`` is ``modelfile.bundle_identity(config, dataset hash)``: two live or
    finished runs of one identity are refused by the database, so a double click or a
    retrain on an unchanged dataset with the same config makes no second run."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    LIVE = ("queued", "running")
    ENDED = ("succeeded", "failed", "cancelled")

    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.CLASSIFIER)
    config_name = models.CharField(max_length=50)
    config = models.JSONField(help_text="NetConfig.as_dict()")
    dataset = models.ForeignKey(DatasetVersion, on_delete=models.PROTECT, related_name="training_runs")
    seed = models.BigIntegerField(default=0)
    identity = models.CharField(max_length=64, db_index=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    activate_when_done = models.BooleanField(default=False)
    cancel_requested = models.BooleanField(default=False)
    epoch = models.PositiveIntegerField(default=0, help_text="epochs completed")
    epochs = models.PositiveIntegerField(default=0, help_text="most epochs this run may take")
    steps = models.PositiveIntegerField(default=0, help_text="steps done in the current epoch")
    steps_per_epoch = models.PositiveIntegerField(default=0)
    history = models.JSONField(default=list, help_text="one dict per completed epoch")
    log = models.TextField(blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="times a worker started or resumed it")
    holder = models.CharField(max_length=200, blank=True, help_text="the trainer (task id) holding the run")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    epoch_started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["identity"],
                condition=models.Q(status__in=["queued", "running", "succeeded"]),
                name="training_run_identity_once",
            ),
        ]

    def __str__(self) -> str:
        return f"Training run {self.pk} ({self.config_name}, {self.status})"

    @property
    def is_live(self) -> bool:
        return self.status in self.LIVE


class ModelVersion(models.Model):
    """A trained model: a ``.hipmodel`` bundle (``ml.core.modelfile``) under ``DATA_DIR``.

    At most one version of each kind is active; the active classifier scores new
    radiographs as they arrive. ``evaluation`` holds the test-split report's figures
    (``ml.core.report``), the full report lies under ``evaluation_dir``."""

    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.CLASSIFIER)
    config_name = models.CharField(max_length=50)
    config = models.JSONField()
    dataset = models.ForeignKey(DatasetVersion, on_delete=models.PROTECT, related_name="model_versions")
    training_run = models.OneToOneField(
        TrainingRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="model_version"
    )
    identity = models.CharField(max_length=64, unique=True)
    bundle = models.CharField(max_length=200, help_text="path under DATA_DIR")
    bundle_sha256 = models.CharField(max_length=64)
    is_active = models.BooleanField(default=False)
    evaluation = models.JSONField(null=True, blank=True)
    evaluated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind"], condition=models.Q(is_active=True), name="one_active_model_per_kind"
            ),
        ]

    def __str__(self) -> str:
        return f"Model {self.pk} ({self.kind}, {self.config_name})"

    @property
    def bundle_path(self):
        return settings.DATA_DIR / self.bundle

    @property
    def evaluation_dir(self):
        return settings.DATA_DIR / "evaluations" / str(self.pk)


class HipPrediction(models.Model):
    """One hip of one radiograph as one model version read it."""

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="predictions")
    radiograph = models.ForeignKey(Radiograph, on_delete=models.CASCADE, related_name="hip_predictions")
    side = models.CharField(max_length=8)
    box = models.JSONField(help_text="x, y, w, h in image pixels")
    box_source = models.CharField(max_length=16, default="ground_truth", help_text="where the box came from")
    probabilities = models.JSONField(help_text="six class probabilities, in CLASSES order")
    fracture_probability = models.FloatField(db_index=True)
    predicted_class = models.CharField(max_length=32)
    top2 = models.JSONField()
    heatmap = models.FileField(max_length=200, help_text="RGBA PNG of the class activation map")
    heatmap_rect = models.JSONField(help_text="x0, y0, x1, y1: where the heatmap lies on the radiograph")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["radiograph_id", "side"]
        constraints = [
            models.UniqueConstraint(fields=["model_version", "radiograph", "side"], name="prediction_once"),
        ]

    def __str__(self) -> str:
        return f"{self.side} hip of radiograph {self.radiograph_id}: {self.predicted_class}"


class RadiographReading(models.Model):
    """When a radiograph's end-to-end reading (detector boxes, classifier predictions) was first
    stored: the end of its arrival-to-score time, which starts at ``Radiograph.received_at``.
    Written once, in the transaction that stores the predictions; a later reading (another
    model activated) keeps the first one, which is what the operations page measures."""

    radiograph = models.OneToOneField(Radiograph, on_delete=models.CASCADE, related_name="reading")
    detector_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    classifier_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    scored_at = models.DateTimeField(db_index=True)
    seconds = models.FloatField(help_text="scored_at - radiograph.received_at")

    class Meta:
        ordering = ["-scored_at", "-id"]

    def __str__(self) -> str:
        return f"radiograph {self.radiograph_id} scored {self.seconds:.1f} s after arrival"
