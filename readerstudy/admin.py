"""Reader-study admin: a study's settings, its readers, and its frozen cases and answers (read only).

Studies are created and prepared by ``manage.py create_reader_study`` (or the researcher's
dashboard), readers are invited by ``add_reader``: both assign what the admin cannot (a drawn,
frozen case list; reader codes and the reader role). Cases and answers never change once stored.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from readerstudy.models import Case, Reader, ReaderStudy, Response


def _has_responses(study: ReaderStudy | None) -> bool:
    return study is not None and Response.objects.filter(reader__study=study).exists()


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows that are never added, changed or deleted by hand (still viewable)."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReaderInline(ReadOnlyInline):
    model = Reader
    fields = ("code", "user", "group", "training", "added_at")
    readonly_fields = fields


class CaseInline(ReadOnlyInline):
    model = Case
    fields = ("number", "dataset_hip", "predicted_class", "fracture_probability", "model_version")
    readonly_fields = fields


@admin.register(ReaderStudy)
class ReaderStudyAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "dataset",
        "model_version",
        "case_count",
        "washout",
        "aided_phase",
        "status",
        "created_at",
    ]
    list_filter = ["status", "aided_phase"]
    search_fields = ["name", "description"]
    list_select_related = ["dataset", "model_version"]
    # Only these settings may change after creation; the rest is frozen with the cases.
    fields = [
        "name",
        "description",
        "washout",
        "dataset",
        "model_version",
        "seed",
        "case_count",
        "aided_phase",
        "test_time",
        "status",
        "error",
        "created_by",
        "created_at",
    ]
    readonly_fields = [
        "dataset",
        "model_version",
        "seed",
        "case_count",
        "aided_phase",
        "test_time",
        "status",
        "error",
        "created_by",
        "created_at",
    ]
    inlines = [ReaderInline, CaseInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # manage.py create_reader_study or the dashboard draws and freezes the cases

    def has_delete_permission(self, request: HttpRequest, obj: ReaderStudy | None = None) -> bool:
        if _has_responses(obj):
            return False  # the answers are the study's record
        return super().has_delete_permission(request, obj)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        # The bulk delete would go around the per-study check above.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions


@admin.register(Reader)
class ReaderAdmin(admin.ModelAdmin):
    list_display = ["code", "study", "user", "group", "training", "added_at"]
    list_filter = ["study", "group", "training"]
    search_fields = ["code", "user__username", "study__name"]
    list_select_related = ["study", "user"]
    fields = ["study", "code", "user", "group", "training", "added_at"]
    readonly_fields = ["study", "code", "user", "added_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # manage.py add_reader (or the dashboard) assigns the code and the reader role

    def has_delete_permission(self, request: HttpRequest, obj: Reader | None = None) -> bool:
        if obj is not None and obj.responses.exists():
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions


@admin.register(Case)
class CaseAdmin(ReadOnlyAdmin):
    list_display = ["number", "study", "dataset_hip", "predicted_class", "fracture_probability", "model_version"]
    list_filter = ["study", "predicted_class"]
    list_select_related = ["study", "dataset_hip", "model_version"]


@admin.register(Response)
class ResponseAdmin(ReadOnlyAdmin):
    """Answers are immutable: viewable and filterable, never added, changed or deleted here."""

    list_display = ["reader", "case", "condition", "answer", "carried_over", "displayed_at", "submitted_at", "seconds"]
    list_filter = ["reader__study", "condition", "carried_over", "reader__group", "reader__training"]
    search_fields = ["reader__code", "reader__user__username"]
    list_select_related = ["reader__study", "reader__user", "case__study"]
    date_hierarchy = "submitted_at"

    @admin.display(description="seconds")
    def seconds(self, obj: Response) -> str:
        return f"{obj.seconds:.1f}"
