"""The shapes of the researchers' study API answers (``readerstudy.views.progress_json`` and
``report_json`` build them; these document them in the OpenAPI schema)."""

from __future__ import annotations

from rest_framework import serializers

from readerstudy.models import Condition, ReaderStudy, StudyReport


class PhaseProgressSerializer(serializers.Serializer):
    condition = serializers.ChoiceField(Condition.choices)
    answered = serializers.IntegerField()
    carried_over = serializers.IntegerField()
    total = serializers.IntegerField(
        allow_null=True, help_text="null for the aided phase until it starts (its cases are the disagreeing ones)"
    )
    text = serializers.CharField()
    started_at = serializers.CharField(allow_null=True, help_text="ISO 8601")
    finished_at = serializers.CharField(allow_null=True, help_text="ISO 8601")


class ReaderProgressSerializer(serializers.Serializer):
    code = serializers.CharField()
    user = serializers.CharField()
    group = serializers.CharField()
    training = serializers.CharField()
    phases = PhaseProgressSerializer(many=True)
    washout_ends = serializers.CharField(allow_null=True, help_text="ISO 8601")
    washout_over = serializers.BooleanField()
    median_seconds = serializers.FloatField(allow_null=True)
    done = serializers.BooleanField()


class StudyProgressSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    status = serializers.ChoiceField(ReaderStudy.Status.choices)
    error = serializers.CharField(allow_blank=True)
    cases = serializers.IntegerField()
    phases = serializers.ListField(child=serializers.ChoiceField(Condition.choices))
    readers = ReaderProgressSerializer(many=True)


class ReportFileSerializer(serializers.Serializer):
    name = serializers.CharField()
    url = serializers.CharField()


class StudyReportSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    study = serializers.IntegerField()
    status = serializers.ChoiceField(StudyReport.Status.choices)
    progress = serializers.FloatField(help_text="0..1")
    stage = serializers.CharField(allow_null=True, help_text="while it runs")
    iterations = serializers.IntegerField()
    seed = serializers.IntegerField()
    margin = serializers.FloatField(allow_null=True)
    inputs_sha256 = serializers.CharField(allow_null=True)
    summary = serializers.JSONField(allow_null=True, help_text="when done")
    error = serializers.CharField(allow_blank=True)
    created_at = serializers.CharField(help_text="ISO 8601")
    finished_at = serializers.CharField(allow_null=True, help_text="ISO 8601")
    url = serializers.CharField()
    files = ReportFileSerializer(many=True)
