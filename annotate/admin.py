from django.contrib import admin

from annotate.models import ImportItem, ImportJob, Patient, Radiograph, Study


@admin.register(Patient)
class PatientAdmin(admin.ModelAdmin):
    list_display = ["code", "sex", "created_at"]
    readonly_fields = ["pseudo_id", "created_at"]


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin):
    list_display = ["accession_code", "patient", "study_date", "patient_age_years"]
    readonly_fields = ["study_instance_uid", "accession_pseudo", "created_at"]
    list_select_related = ["patient"]


@admin.register(Radiograph)
class RadiographAdmin(admin.ModelAdmin):
    list_display = ["id", "study", "modality", "view_position", "rows", "columns", "imported_at"]
    list_filter = ["modality", "photometric_interpretation", "source"]
    list_select_related = ["study"]
    # Stored files and their hashes never change after import.
    readonly_fields = [
        "sha256", "original", "pixels", "preview", "file_size", "sop_instance_uid", "pacs_link", "imported_at",
    ]  # fmt: skip


class ImportItemInline(admin.TabularInline):
    model = ImportItem
    extra = 0
    readonly_fields = ("label", "status", "reason", "radiograph")
    fields = readonly_fields
    can_delete = False


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = ["id", "created_by", "source", "status", "total", "created_at", "finished_at"]
    list_filter = ["status", "source"]
    inlines = [ImportItemInline]


# Labelling: the history of every change is browsable from each row.
from simple_history.admin import SimpleHistoryAdmin  # noqa: E402

from annotate.labels import Adjudication, Assignment, GroundTruthHip, HipLabel, HipProposal  # noqa: E402


class NoDeleteHistoryAdmin(SimpleHistoryAdmin):
    """Labels and truth are never deleted outright, not even from the admin:
    hips are marked removed, and the history keeps every version."""

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Assignment)
class AssignmentAdmin(NoDeleteHistoryAdmin):
    list_display = ["id", "radiograph", "slot", "labeler", "status", "taken_at", "submitted_at"]
    list_filter = ["status"]


@admin.register(HipLabel)
class HipLabelAdmin(NoDeleteHistoryAdmin):
    list_display = ["id", "assignment", "side", "hip_class", "source", "provenance", "removed_at"]
    list_filter = ["hip_class", "side", "source", "provenance"]
    # The server decides provenance from what the page was shown; nobody sets it by hand.
    readonly_fields = ["source", "proposal_class", "provenance"]


@admin.register(Adjudication)
class AdjudicationAdmin(NoDeleteHistoryAdmin):
    list_display = ["id", "radiograph", "status", "truth_source", "decided_by", "decided_at"]
    list_filter = ["status", "truth_source"]


@admin.register(GroundTruthHip)
class GroundTruthHipAdmin(NoDeleteHistoryAdmin):
    list_display = ["id", "radiograph", "side", "hip_class", "provenance", "removed_at"]
    list_filter = ["hip_class", "side", "provenance"]
    readonly_fields = ["provenance"]


@admin.register(HipProposal)
class HipProposalAdmin(admin.ModelAdmin):
    """The detector's proposals: model output, replaced as new detections come in; read only."""

    list_display = ("radiograph", "side", "score", "hip_class", "model", "created_at")
    list_filter = ("side", "model")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


from annotate.audit import AccessLog  # noqa: E402


@admin.register(AccessLog)
class AccessLogAdmin(admin.ModelAdmin):
    """The access log, read-only: nobody adds, edits or deletes a row here (append-only)."""

    list_display = [
        "created_at", "username", "action", "object_type", "object_id", "url_name", "status_code", "ip_address",
    ]  # fmt: skip
    list_filter = ["action", "object_type", "status_code"]
    search_fields = ["username", "object_id", "url_name", "ip_address"]
    date_hierarchy = "created_at"
    readonly_fields = [field.name for field in AccessLog._meta.fields]
    actions = None

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
