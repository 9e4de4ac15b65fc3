"""The researchers' study API answers (a study's progress, a report), built from the models and
``services.study_progress``; each serializer is also the shape the OpenAPI schema documents.
The dashboard and the report page show the same data."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from common.api_fields import IsoDateTimeField, serialize_many
from readerstudy import services
from readerstudy.models import Condition, ReaderStudy, StudyReport
from readerstudy.report import reports
from readerstudy.report.reader_report import REPORT_FILES
from readerstudy.report.reporting import REPORTING_FILES


class PhaseProgressSerializer(serializers.Serializer):
    condition = serializers.ChoiceField(Condition.choices)
    answered = serializers.IntegerField()
    carried_over = serializers.IntegerField()
    total = serializers.IntegerField(
        allow_null=True, help_text="null for the aided phase until it starts (its cases are the disagreeing ones)"
    )
    text = serializers.CharField()
    started_at = IsoDateTimeField(allow_null=True)
    finished_at = IsoDateTimeField(allow_null=True)


class ReaderProgressSerializer(serializers.Serializer):
    """One reader's progress (a row of ``services.study_progress``)."""

    code = serializers.CharField(source="reader.code")
    user = serializers.CharField(source="reader.user.username")
    group = serializers.CharField(source="reader.group")
    training = serializers.CharField(source="reader.training")
    phases = PhaseProgressSerializer(many=True)
    washout_ends = IsoDateTimeField(allow_null=True)
    washout_over = serializers.BooleanField()
    median_seconds = serializers.FloatField(allow_null=True)
    done = serializers.BooleanField()


class StudyProgressSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    status = serializers.ChoiceField(ReaderStudy.Status.choices)
    error = serializers.CharField(allow_blank=True)
    cases = serializers.IntegerField(source="case_count")
    phases = serializers.ListField(child=serializers.ChoiceField(Condition.choices))
    readers = serializers.SerializerMethodField()

    @extend_schema_field(ReaderProgressSerializer(many=True))
    def get_readers(self, study: ReaderStudy) -> list[Any]:
        return serialize_many(ReaderProgressSerializer, services.study_progress(study=study))


class ReportFileSerializer(serializers.Serializer):
    name = serializers.CharField()
    url = serializers.CharField()


class StudyReportSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    study = serializers.IntegerField(source="study_id")
    status = serializers.ChoiceField(StudyReport.Status.choices)
    progress = serializers.FloatField(help_text="0..1")
    stage = serializers.SerializerMethodField(help_text="while it runs")
    iterations = serializers.IntegerField()
    seed = serializers.IntegerField()
    margin = serializers.FloatField(allow_null=True)
    inputs_sha256 = serializers.SerializerMethodField()
    summary = serializers.SerializerMethodField(help_text="when done")
    error = serializers.CharField(allow_blank=True)
    created_at = IsoDateTimeField()
    finished_at = IsoDateTimeField(allow_null=True)
    url = serializers.SerializerMethodField()
    files = serializers.SerializerMethodField()

    def get_stage(self, report: StudyReport) -> str | None:
        return None if _done(report) else (report.summary or {}).get("stage")

    def get_inputs_sha256(self, report: StudyReport) -> str | None:
        return report.inputs_sha256 or None

    @extend_schema_field(serializers.JSONField(allow_null=True))
    def get_summary(self, report: StudyReport) -> Any:
        return (report.summary or {}) if _done(report) else None

    def get_url(self, report: StudyReport) -> str:
        return reverse("study_report_detail", args=[report.study_id, report.pk])

    @extend_schema_field(ReportFileSerializer(many=True))
    def get_files(self, report: StudyReport) -> list[dict[str, str]]:
        if not _done(report):
            return []
        return [
            {"name": name, "url": reverse("study_report_file", args=[report.study_id, report.pk, name])}
            for name in (*REPORT_FILES, *REPORTING_FILES, *reports.INPUT_FILES)
            if reports.report_file_path(report, name) is not None
        ]


def _done(report: StudyReport) -> bool:
    return report.status == StudyReport.Status.DONE
