"""Reader studies: frozen cases, invited readers, per-phase orderings and immutable answers.

Three phases, one per condition (model_quality, full_quality after a washout, model_aided for the
cases where the reader disagreed with the model); each reader's order is seeded per reader and phase.
Design: docs/architecture/design-site.md
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from annotate.labels import HipClass
from ml.models import DatasetHip, DatasetVersion, ModelVersion
from readerstudy.analysis.readers import TRAINING_PATTERN


class Condition(models.TextChoices):
    MODEL_QUALITY = "model_quality", "Model quality"
    FULL_QUALITY = "full_quality", "Full quality"
    MODEL_AIDED = "model_aided", "Model aided"


# The phases in the order a reader takes them.
PHASES: tuple[str, ...] = (Condition.MODEL_QUALITY, Condition.FULL_QUALITY, Condition.MODEL_AIDED)


class Group(models.TextChoices):
    EXPERT = "expert", "Expert"
    RESIDENT = "resident", "Resident"


# The trainings the paper's readers had; a researcher may name others (a slug).
TRAININGS: tuple[str, ...] = (
    "orthopedics_attending",
    "radiology_attending",
    "orthopedics_resident",
    "radiology_resident",
    "emergency_resident",
)
# The rule reader_report applies to a responses.csv from elsewhere too (readerstudy.analysis.readers).
training_validator = RegexValidator(
    TRAINING_PATTERN, "a training is a lower-case key like orthopedics_attending (letters, digits, _)"
)


class ReadingProtocol(models.TextChoices):
    """How a study's model readings were frozen (``ReaderStudy.test_time``), in the vocabulary of
    ``ml.core.configs.TEST_TIME_PROTOCOLS``."""

    SINGLE = "single", "single: the phase-1 crop itself (the zoom-1.0 crop readers see; the paper's)"
    ZOOM_AVERAGE = "zoom-average", "zoom-average: the mean over the model's zooms (more context than readers had)"


class ReaderStudy(models.Model):
    """One reader study: its cases are drawn from the test split of ``dataset`` with ``seed``,
    and the predictions of ``model_version`` are frozen with them, by the protocol ``test_time``."""

    class Status(models.TextChoices):
        PREPARING = "preparing"
        OPEN = "open"
        FAILED = "failed"
        CLOSED = "closed"

    name = models.CharField(
        max_length=100,
        unique=True,
        validators=[RegexValidator(r"^[\w.-]+$", "letters, digits, '.', '-' and '_' only")],
    )
    description = models.TextField(blank=True)
    dataset = models.ForeignKey(DatasetVersion, on_delete=models.PROTECT, related_name="reader_studies")
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="reader_studies"
    )
    seed = models.BigIntegerField(default=0)
    case_count = models.PositiveIntegerField(default=100, help_text="hips drawn from the test split")
    washout = models.DurationField(default=dt.timedelta(days=7), help_text="from finishing phase 1 to phase 2")
    aided_phase = models.BooleanField(default=True, help_text="phase 3 (model aided); needs a model")
    test_time = models.CharField(
        max_length=16,
        choices=ReadingProtocol.choices,
        default=ReadingProtocol.SINGLE,
        help_text="the test-time protocol the model's readings were frozen with",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PREPARING)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "reader studies"

    def __str__(self) -> str:
        return self.name

    @property
    def phases(self) -> tuple[str, ...]:
        return PHASES if self.aided_phase else PHASES[:2]


class Case(models.Model):
    """One hip of the study, frozen at creation: where it is, its crop as the model sees it,
    and the model's reading of it (probabilities in ``annotate.labels.CLASSES`` order)."""

    study = models.ForeignKey(ReaderStudy, on_delete=models.CASCADE, related_name="cases")
    number = models.PositiveIntegerField(help_text="the case's number in the study (1..N), as exported")
    dataset_hip = models.ForeignKey(DatasetHip, on_delete=models.PROTECT, related_name="+")
    crop = models.FileField(
        max_length=200, help_text="8-bit PNG: the phase-1 crop (zoom 1.0, the model's input size), as readers get it"
    )
    model_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    probabilities = models.JSONField(null=True, blank=True)
    predicted_class = models.CharField(max_length=32, blank=True)
    top2 = models.JSONField(null=True, blank=True)
    fracture_probability = models.FloatField(null=True, blank=True)
    heatmap = models.FileField(max_length=200, blank=True)
    heatmap_rect = models.JSONField(null=True, blank=True, help_text="x0, y0, x1, y1 on the radiograph")

    class Meta:
        ordering = ["study_id", "number"]
        constraints = [
            models.UniqueConstraint(fields=["study", "number"], name="case_number_once"),
            models.UniqueConstraint(fields=["study", "dataset_hip"], name="case_hip_once"),
        ]

    def __str__(self) -> str:
        return f"Case {self.number} of {self.study}"

    @property
    def truth(self) -> str:
        return self.dataset_hip.hip_class


class Reader(models.Model):
    """A physician invited to a study. ``code`` (R01, R02, ...) names them in the exports."""

    study = models.ForeignKey(ReaderStudy, on_delete=models.CASCADE, related_name="readers")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reader_roles")
    code = models.CharField(max_length=16)
    group = models.CharField(max_length=16, choices=Group.choices)
    training = models.CharField(max_length=50, validators=[training_validator])
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["study_id", "code"]
        constraints = [
            models.UniqueConstraint(fields=["study", "user"], name="reader_once_per_study"),
            models.UniqueConstraint(fields=["study", "code"], name="reader_code_once"),
        ]

    def __str__(self) -> str:
        return f"{self.code} ({self.user}) in {self.study}"


class Phase(models.Model):
    """One reader's pass through one condition: the seeded case order, and where they are.

    ``current_case``/``displayed_at``: the case on the reader's screen and when the server
    first showed it; the answer's time is measured from there."""

    reader = models.ForeignKey(Reader, on_delete=models.CASCADE, related_name="phases")
    condition = models.CharField(max_length=16, choices=Condition.choices)
    order = models.JSONField(help_text="case ids in the order this reader sees them")
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    current_case = models.ForeignKey(Case, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    displayed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["reader_id", "started_at"]
        constraints = [models.UniqueConstraint(fields=["reader", "condition"], name="phase_once")]

    def __str__(self) -> str:
        return f"{self.reader.code} {self.condition}"

    @property
    def case_ids(self) -> list[int]:
        return [int(pk) for pk in self.order]


class Response(models.Model):
    """One answer of one reader to one case under one condition; never changed once stored."""

    reader = models.ForeignKey(Reader, on_delete=models.CASCADE, related_name="responses")
    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="responses")
    condition = models.CharField(max_length=16, choices=Condition.choices)
    answer = models.CharField(max_length=32, choices=HipClass.choices)
    displayed_at = models.DateTimeField()
    submitted_at = models.DateTimeField()
    carried_over = models.BooleanField(
        default=False, help_text="model aided: the reader agreed with the model in phase 2, so that answer stands"
    )

    class Meta:
        ordering = ["reader_id", "condition", "submitted_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["reader", "case", "condition"], name="response_once"),
        ]

    def __str__(self) -> str:
        return f"{self.reader.code} case {self.case.number} {self.condition}: {self.answer}"

    @property
    def seconds(self) -> float:
        return (self.submitted_at - self.displayed_at).total_seconds()

    def as_dict(self) -> dict[str, Any]:
        return {
            "case": self.case_id,
            "condition": self.condition,
            "answer": self.answer,
            "displayed_at": self.displayed_at.isoformat(),
            "submitted_at": self.submitted_at.isoformat(),
            "carried_over": self.carried_over,
        }


class StudyReport(models.Model):
    """A generated statistics report of a study, kept with the hash of the inputs it came from."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    study = models.ForeignKey(ReaderStudy, on_delete=models.CASCADE, related_name="reports")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    iterations = models.PositiveIntegerField(default=2000)
    seed = models.BigIntegerField(default=0)
    margin = models.FloatField(null=True, blank=True, help_text="override of the noninferiority margin")
    inputs_sha256 = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the two input CSVs")
    progress = models.FloatField(default=0.0, help_text="0..1")
    folder = models.CharField(max_length=200, blank=True, help_text="path under DATA_DIR")
    summary = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Report {self.pk} of {self.study} ({self.status})"
