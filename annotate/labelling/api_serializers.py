"""The labelling API's output serializers: each builds its answer from the model objects (or
the services' data) and is the shape the OpenAPI schema documents. Blinding holds here too: a
proposal's class is written only where the site turned PROPOSALS_SHOW_CLASS on."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from annotate.labelling import services as labelling
from annotate.labels import Adjudication, Assignment, GroundTruthHip, HipClass, HipLabel, HipProposal, Side
from annotate.models import Radiograph
from common.api_fields import serialize_many


class BoxFieldsSerializer(serializers.Serializer):
    """A hip's box in image pixels: the four fields every hip and proposal carries."""

    x = serializers.FloatField()
    y = serializers.FloatField()
    width = serializers.FloatField()
    height = serializers.FloatField()

    # The order of a subclass's fields in its answers (the box where the answers always had it).
    field_order: tuple[str, ...] = ()

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        return {**{name: fields[name] for name in self.field_order}, **fields}  # any field left out: last


class RadiographOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    rows = serializers.IntegerField()
    columns = serializers.IntegerField()
    window_center = serializers.FloatField(allow_null=True)
    window_width = serializers.FloatField(allow_null=True)
    pixel_spacing_row = serializers.FloatField(allow_null=True)
    pixel_spacing_col = serializers.FloatField(allow_null=True)
    modality = serializers.CharField()
    view_position = serializers.CharField()
    pixels_url = serializers.SerializerMethodField()
    preview_url = serializers.SerializerMethodField()

    def get_pixels_url(self, radiograph: Radiograph) -> str:
        return f"/api/radiographs/{radiograph.id}/pixels/"

    def get_preview_url(self, radiograph: Radiograph) -> str:
        return f"/radiographs/{radiograph.id}/preview.jpg"


class HipOutputSerializer(BoxFieldsSerializer):
    """A labeller's hip, or a ground-truth hip (source "truth")."""

    field_order = ("id", "side", "hip_class", "x", "y", "width", "height", "source")

    id = serializers.IntegerField()
    side = serializers.ChoiceField(Side.choices)
    hip_class = serializers.ChoiceField(HipClass.choices)
    source = serializers.SerializerMethodField(  # type: ignore[assignment]  # a field named like Field.source
        help_text='"manual", "model", or "truth" for a ground-truth hip'
    )

    def get_source(self, hip: HipLabel | GroundTruthHip) -> str:
        return hip.source if isinstance(hip, HipLabel) else "truth"


def live_hips(hips: Any) -> list[Any]:
    """The hips of a related manager that are not removed, serialized."""
    return serialize_many(HipOutputSerializer, hips.filter(removed_at__isnull=True))


class ProposalOutputSerializer(BoxFieldsSerializer):
    """A model proposal: a box only, unless the site turned PROPOSALS_SHOW_CLASS on, so that the
    model's class cannot anchor the ground truth."""

    field_order = ("id", "side", "x", "y", "width", "height", "score", "model", "hip_class")

    id = serializers.IntegerField()
    side = serializers.ChoiceField(Side.choices)
    score = serializers.FloatField(allow_null=True)
    model = serializers.CharField()
    hip_class = serializers.ChoiceField(HipClass.choices, required=False, help_text="only with PROPOSALS_SHOW_CLASS")

    def to_representation(self, instance: HipProposal) -> dict[str, Any]:
        data: dict[str, Any] = super().to_representation(instance)
        if not settings.PROPOSALS_SHOW_CLASS:
            del data["hip_class"]
        return data


class AssignmentOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(Assignment.Status.choices)
    radiograph = RadiographOutputSerializer()
    hips = serializers.SerializerMethodField()
    proposals = serializers.SerializerMethodField()
    proposals_show_class = serializers.SerializerMethodField()
    excluded = serializers.CharField(allow_blank=True)
    note = serializers.CharField(allow_blank=True)
    active_seconds = serializers.FloatField()
    taken_at = serializers.DateTimeField(allow_null=True)
    last_saved_at = serializers.DateTimeField(allow_null=True)
    submitted_at = serializers.DateTimeField(allow_null=True)
    next_url = serializers.SerializerMethodField()

    @extend_schema_field(HipOutputSerializer(many=True))
    def get_hips(self, assignment: Assignment) -> list[Any]:
        return live_hips(assignment.hips)

    @extend_schema_field(ProposalOutputSerializer(many=True))
    def get_proposals(self, assignment: Assignment) -> list[Any]:
        return serialize_many(ProposalOutputSerializer, labelling.proposals_of(radiograph_id=assignment.radiograph_id))

    def get_proposals_show_class(self, assignment: Assignment) -> bool:
        return bool(settings.PROPOSALS_SHOW_CLASS)

    def get_next_url(self, assignment: Assignment) -> str:
        return "/label/"


class LabellingOutputSerializer(serializers.Serializer):
    """One labeller's work on the radiograph, as the adjudicator sees it."""

    slot = serializers.IntegerField()
    labeler = serializers.CharField(source="labeler.username", allow_null=True)
    excluded = serializers.CharField(allow_blank=True)
    note = serializers.CharField(allow_blank=True)
    hips = serializers.SerializerMethodField()

    @extend_schema_field(HipOutputSerializer(many=True))
    def get_hips(self, assignment: Assignment) -> list[Any]:
        return live_hips(assignment.hips)


class TruthOutputSerializer(serializers.Serializer):
    """The adjudication's ground truth so far."""

    hips = serializers.SerializerMethodField()
    excluded = serializers.CharField(allow_blank=True)
    truth_source = serializers.CharField(allow_blank=True)
    note = serializers.CharField(allow_blank=True)
    decided_by = serializers.CharField(source="decided_by.username", allow_null=True)
    decided_at = serializers.DateTimeField(allow_null=True)

    @extend_schema_field(HipOutputSerializer(many=True))
    def get_hips(self, adjudication: Adjudication) -> list[Any]:
        return live_hips(adjudication.hips)


class AdjudicationOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(Adjudication.Status.choices)
    disagreements = serializers.JSONField(help_text="why the labellers' work went to adjudication")
    radiograph = RadiographOutputSerializer()
    labellings = serializers.SerializerMethodField()
    truth = TruthOutputSerializer(source="*")
    next_url = serializers.SerializerMethodField()

    @extend_schema_field(LabellingOutputSerializer(many=True))
    def get_labellings(self, adjudication: Adjudication) -> list[Any]:
        assignments = adjudication.radiograph.assignments.select_related("labeler").order_by("slot")
        return serialize_many(LabellingOutputSerializer, assignments)

    def get_next_url(self, adjudication: Adjudication) -> str:
        return "/adjudicate/"


class AdjudicationRowSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(Adjudication.Status.choices)
    radiograph = serializers.IntegerField(source="radiograph_id")
    disagreements = serializers.JSONField()
    url = serializers.SerializerMethodField()

    def get_url(self, adjudication: Adjudication) -> str:
        return f"/adjudicate/{adjudication.id}/"


class GroundTruthHipSerializer(BoxFieldsSerializer):
    field_order = ("radiograph", "patient", "side", "hip_class", "x", "y", "width", "height", "truth_source",
                   "decided_at", "provenance")  # fmt: skip

    radiograph = serializers.IntegerField(source="radiograph_id")
    patient = serializers.CharField(source="radiograph.study.patient.code")
    side = serializers.ChoiceField(Side.choices)
    hip_class = serializers.ChoiceField(HipClass.choices)
    truth_source = serializers.CharField(source="adjudication.truth_source")
    decided_at = serializers.DateTimeField(source="adjudication.decided_at", allow_null=True)
    provenance = serializers.JSONField()


class LabellerProgressSerializer(serializers.Serializer):
    labeler = serializers.CharField()
    submitted = serializers.IntegerField()
    in_progress = serializers.IntegerField()
    median_seconds_per_image = serializers.FloatField(allow_null=True)
    last_submitted_at = serializers.DateTimeField(allow_null=True)


class ProgressTotalsSerializer(serializers.Serializer):
    radiographs = serializers.IntegerField()
    slots_open = serializers.IntegerField()
    slots_in_progress = serializers.IntegerField()
    slots_submitted = serializers.IntegerField()
    agreed = serializers.IntegerField()
    pending_adjudication = serializers.IntegerField()
    resolved = serializers.IntegerField()


class LabellingProgressSerializer(serializers.Serializer):
    """Per labeller: submitted, in progress and time per image; and the totals."""

    labelers = LabellerProgressSerializer(many=True)
    totals = ProgressTotalsSerializer()


class IouHistogramBinSerializer(serializers.Serializer):
    # "from" is a Python keyword: the field is named in the serializer's fields below.
    to = serializers.FloatField()
    count = serializers.IntegerField()

    def get_fields(self) -> dict[str, serializers.Field]:
        return {"from": serializers.FloatField(), **super().get_fields()}


class IouSerializer(serializers.Serializer):
    mean = serializers.FloatField(allow_null=True)
    median = serializers.FloatField(allow_null=True)
    min = serializers.FloatField(allow_null=True)
    histogram = IouHistogramBinSerializer(many=True)


class AgreementSerializer(serializers.Serializer):
    """Inter-labeller agreement: Cohen's kappa, the boxes' IoU, and what went to adjudication and why."""

    radiographs_double_read = serializers.IntegerField()
    hips_compared = serializers.IntegerField()
    kappa_six_class = serializers.FloatField(allow_null=True)
    kappa_binary = serializers.FloatField(allow_null=True)
    kappa_six_class_ci = serializers.ListField(child=serializers.FloatField(), allow_null=True)
    kappa_binary_ci = serializers.ListField(child=serializers.FloatField(), allow_null=True)
    iou = IouSerializer()
    agreed = serializers.IntegerField()
    adjudicated = serializers.IntegerField()
    pending = serializers.IntegerField()
    disagreement_reasons = serializers.DictField(child=serializers.IntegerField())
    provenance = serializers.JSONField()
    proposals_show_class = serializers.BooleanField()


class AnnotationImportReportSerializer(serializers.Serializer):
    """What an annotation import did, with a one-line summary."""

    summary = serializers.CharField(source="line")
    images = serializers.IntegerField()
    matched = serializers.IntegerField()
    submitted = serializers.IntegerField()
    hips = serializers.IntegerField()
    excluded = serializers.IntegerField()
    already_submitted = serializers.IntegerField()
    without_labels = serializers.IntegerField()
    agreed = serializers.IntegerField()
    to_adjudicate = serializers.IntegerField()
    no_free_slot = serializers.ListField(child=serializers.CharField())
    unmatched = serializers.ListField(child=serializers.CharField())
