from typing import Any

from django import forms
from django.contrib import admin

from triage.models import ResultDestination, ResultSending
from triage.results.sending import seal_password


class ResultDestinationForm(forms.ModelForm):
    url = forms.URLField(required=False, max_length=500, assume_scheme="https", help_text="STOW-RS base URL")
    password = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="STOW-RS password (kept encrypted; blank keeps the one stored)",
    )

    class Meta:
        model = ResultDestination
        fields = [
            "name", "source", "kind", "enabled", "host", "port", "called_ae", "calling_ae", "url", "username",
        ]  # fmt: skip

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("kind") == ResultDestination.Kind.STOW and not data.get("url"):
            self.add_error("url", "a STOW-RS destination needs its URL")
        if data.get("kind") == ResultDestination.Kind.DIMSE:
            for name in ("host", "port", "called_ae"):
                if not data.get(name):
                    self.add_error(name, "a C-STORE destination needs its host, port and AE title")
        return data

    def save(self, commit: bool = True) -> Any:
        if self.cleaned_data.get("password"):
            self.instance.password_sealed = seal_password(self.cleaned_data["password"])
        return super().save(commit=commit)


@admin.register(ResultDestination)
class ResultDestinationAdmin(admin.ModelAdmin):
    form = ResultDestinationForm
    list_display = ["name", "source", "kind", "target", "enabled", "from_settings"]
    list_filter = ["kind", "source", "enabled"]
    fields = [*ResultDestinationForm.Meta.fields, "password"]


@admin.register(ResultSending)
class ResultSendingAdmin(admin.ModelAdmin):
    list_display = ["radiograph", "destination", "status", "attempts", "queued_at", "sent_at", "retry_at"]
    list_filter = ["status", "destination"]
    readonly_fields = [f.name for f in ResultSending._meta.fields]
