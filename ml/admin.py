from django.contrib import admin

from ml.models import DatasetHip, DatasetVersion


class DatasetHipInline(admin.TabularInline):
    model = DatasetHip
    extra = 0
    can_delete = False
    fields = ("radiograph", "patient", "side", "hip_class", "x", "y", "width", "height", "split")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:  # noqa: ANN001
        return False


@admin.register(DatasetVersion)
class DatasetVersionAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "seed", "content_hash", "created_by", "created_at")
    search_fields = ("name", "content_hash")
    readonly_fields = ("seed", "fractions", "content_hash", "counts", "created_by", "created_at")
    inlines = [DatasetHipInline]
