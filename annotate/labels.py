"""Labelling models: assignments, labellers' hips, adjudication, ground truth and the detector's
proposals. Apart from models.py (the archive); both are the annotate app's models. Every change is
kept by django-simple-history; hips are never deleted, only marked removed.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from simple_history.models import HistoricalRecords

from annotate.models import Radiograph
from ml.core.vocab import CLASS_NAMES, CLASSES

# The six classes as Django choices (HipClass.NORMAL ... HipClass.ARTHROPLASTY), from ml.core.vocab.
# django-stubs type only the one- and two-argument forms of the functional API, not Enum's module=.
HipClass = models.TextChoices(  # type: ignore[call-overload]
    "HipClass", [(key.upper(), (key, CLASS_NAMES[key])) for key in CLASSES], module=__name__
)


class Side(models.TextChoices):
    # The patient's side: on a standard AP film the patient's left hip is on
    # the image's right-hand half.
    RIGHT = "right", "Right"
    LEFT = "left", "Left"


class Exclusion(models.TextChoices):
    CROSS_TABLE_LATERAL = "cross_table_lateral", "Cross-table lateral"
    NO_HIP = "no_hip", "No hip in view"
    NOT_DIAGNOSTIC = "not_diagnostic", "Not diagnostic"


class Provenance(models.TextChoices):
    """Where a hip's label came from, as far as the model's proposals go (see
    ``HipLabel.provenance_of`` for a labeller's hip and
    ``labelling.truth_provenance`` for a ground-truth hip). Decided by the
    server, never taken from the page."""

    DRAWN = "drawn", "Drawn by hand"
    # An accepted proposal's box; the labeller chose the class without being shown the model's.
    PROPOSAL_BOX = "proposal_box", "Proposal box, own class"
    PROPOSAL_CLASS_KEPT = "proposal_class_kept", "Proposal with its shown class kept"
    PROPOSAL_CLASS_CHANGED = "proposal_class_changed", "Proposal with its shown class changed"


FROM_PROPOSAL = (Provenance.PROPOSAL_BOX, Provenance.PROPOSAL_CLASS_KEPT, Provenance.PROPOSAL_CLASS_CHANGED)


class TruthSource(models.TextChoices):
    AGREEMENT = "agreement", "Agreement of two labellers"
    CONSENSUS = "consensus", "Radiograph consensus"
    CT = "ct", "CT"
    MRI = "mri", "MRI"
    POSTOP = "postop", "Post-operative imaging"
    OPERATIVE = "operative", "Fixation chosen at operation"


class Assignment(models.Model):
    """One labelling slot of one radiograph. Each radiograph has
    ``LABELS_PER_RADIOGRAPH`` slots, taken by different labellers."""

    class Status(models.TextChoices):
        OPEN = "open"  # in the pool
        IN_PROGRESS = "in_progress"
        SUBMITTED = "submitted"

    radiograph = models.ForeignKey(Radiograph, on_delete=models.PROTECT, related_name="assignments")
    slot = models.PositiveSmallIntegerField()
    labeler = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="assignments"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN, db_index=True)
    taken_at = models.DateTimeField(null=True, blank=True)
    last_saved_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    # Seconds the image was open in front of the labeller (sent by the page).
    active_seconds = models.FloatField(default=0)
    excluded = models.CharField(max_length=32, choices=Exclusion.choices, blank=True)
    note = models.TextField(blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["radiograph_id", "slot"]
        constraints = [
            models.UniqueConstraint(fields=["radiograph", "slot"], name="assignment_slot_once"),
            models.UniqueConstraint(
                fields=["radiograph", "labeler"],
                condition=models.Q(labeler__isnull=False),
                name="assignment_one_labeler_per_radiograph",
            ),
        ]

    def __str__(self) -> str:
        return f"Assignment {self.pk} (radiograph {self.radiograph_id}, slot {self.slot}, {self.status})"


class BoxFields(models.Model):
    """A hip: box in original-image pixel coordinates, side and class."""

    side = models.CharField(max_length=8, choices=Side.choices)
    hip_class = models.CharField(max_length=24, choices=HipClass.choices)
    x = models.FloatField()
    y = models.FloatField()
    width = models.FloatField()
    height = models.FloatField()

    class Meta:
        abstract = True

    @property
    def box(self) -> tuple[float, float, float, float]:
        return (self.x, self.y, self.width, self.height)


class HipLabel(BoxFields):
    class Source(models.TextChoices):
        MANUAL = "manual"
        MODEL = "model", "Model proposal"
        IMPORT = "import"

    assignment = models.ForeignKey(Assignment, on_delete=models.PROTECT, related_name="hips")
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.MANUAL)
    # The class the accepted proposal showed the labeller ("" when none was shown:
    # a hand-drawn hip, or proposals shown as boxes only), kept from the moment
    # of acceptance; the evidence ``provenance`` is computed from.
    proposal_class = models.CharField(max_length=24, choices=HipClass.choices, blank=True)
    provenance = models.CharField(max_length=24, choices=Provenance.choices, default=Provenance.DRAWN)
    removed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.side} {self.hip_class}"

    def provenance_of(self) -> str:
        """The provenance this hip's source, shown class and class make: a box
        adjusted after accepting stays a proposal (the anchoring happened when
        it was accepted); kept or changed compares the class now with the one shown."""
        if self.source != self.Source.MODEL:
            return Provenance.DRAWN
        if not self.proposal_class:
            return Provenance.PROPOSAL_BOX
        if self.hip_class == self.proposal_class:
            return Provenance.PROPOSAL_CLASS_KEPT
        return Provenance.PROPOSAL_CLASS_CHANGED


class Adjudication(models.Model):
    """What became of a radiograph once all its labellers submitted."""

    class Status(models.TextChoices):
        AGREED = "agreed"  # ground truth by itself
        PENDING = "pending"  # in the adjudication queue
        RESOLVED = "resolved"

    radiograph = models.OneToOneField(Radiograph, on_delete=models.PROTECT, related_name="adjudication")
    status = models.CharField(max_length=16, choices=Status.choices, db_index=True)
    # Why the labellers disagreed, as short codes and sentences.
    disagreements = models.JSONField(default=list, blank=True)
    excluded = models.CharField(max_length=32, choices=Exclusion.choices, blank=True)
    truth_source = models.CharField(max_length=16, choices=TruthSource.choices, blank=True)
    note = models.TextField(blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"Adjudication of radiograph {self.radiograph_id} ({self.status})"


class GroundTruthHip(BoxFields):
    """The one table of truth that the model and the reader study read."""

    radiograph = models.ForeignKey(Radiograph, on_delete=models.PROTECT, related_name="truth_hips")
    adjudication = models.ForeignKey(Adjudication, on_delete=models.PROTECT, related_name="hips")
    # From the labellers' hips of its side (``labelling.truth_provenance``).
    provenance = models.CharField(max_length=24, choices=Provenance.choices, default=Provenance.DRAWN)
    removed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["radiograph_id", "side"]
        constraints = [
            models.UniqueConstraint(
                fields=["radiograph", "side"],
                condition=models.Q(removed_at__isnull=True),
                name="truth_one_hip_per_side",
            )
        ]

    def __str__(self) -> str:
        return f"Truth {self.side} {self.hip_class} on radiograph {self.radiograph_id}"


class HipProposal(BoxFields):
    """A hip the active detector proposes on a radiograph, shown to its
    labellers as a dashed box until one of them accepts it (the accepted hip is
    then a ``HipLabel`` with source "model"). Model output, not anyone's work:
    written by an ml service through ``labelling.proposals_replace``; annotate
    keeps the model's name as text so that it depends on no other app."""

    radiograph = models.ForeignKey(Radiograph, on_delete=models.CASCADE, related_name="hip_proposals")
    # The classifier's top class for this box, when a classifier read it. It
    # leaves the server only where PROPOSALS_SHOW_CLASS is on (anchoring).
    hip_class = models.CharField(max_length=24, choices=HipClass.choices, blank=True)
    score = models.FloatField(help_text="the detector's confidence, 0 to 1")
    model = models.CharField(max_length=100, help_text="the model version that made it, e.g. 'detector 3 (cpu-small)'")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["radiograph_id", "side"]
        constraints = [models.UniqueConstraint(fields=["radiograph", "side"], name="proposal_one_per_side")]

    def __str__(self) -> str:
        return f"Proposal {self.side} ({self.score:.2f}, {self.model}) on radiograph {self.radiograph_id}"
