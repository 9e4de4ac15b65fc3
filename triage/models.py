"""Results back to the PACS: where each source's results go (``ResultDestination``) and each
sending of a radiograph's SR and overlay to one of them (``ResultSending``, what the operations
page lists). The SR and overlay themselves are built on demand (``triage.results``)."""

from __future__ import annotations

from django.db import models

from annotate.models import Radiograph


class ResultDestination(models.Model):
    """A PACS that receives the results of the radiographs of one source: a C-STORE AE or a
    STOW-RS URL. Rows come from the admin, or from ``RESULTS_DESTINATIONS`` (``from_settings``)."""

    class Kind(models.TextChoices):
        DIMSE = "dimse", "DICOM C-STORE"
        STOW = "stow", "DICOMweb STOW-RS"

    name = models.CharField(max_length=64, unique=True)
    source = models.CharField(
        max_length=16,
        choices=Radiograph.Source.choices,
        blank=True,
        help_text="the radiographs of this source go here (blank: every source)",
    )
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.DIMSE)
    enabled = models.BooleanField(default=True)
    host = models.CharField(max_length=255, blank=True)
    port = models.PositiveIntegerField(null=True, blank=True)
    called_ae = models.CharField(max_length=16, blank=True, help_text="the PACS's AE title")
    calling_ae = models.CharField(max_length=16, blank=True, help_text="ours (blank: DICOM_AE_TITLE)")
    url = models.URLField(max_length=500, blank=True, help_text="STOW-RS base URL (…/dicom-web)")
    username = models.CharField(max_length=150, blank=True)
    password_sealed = models.TextField(blank=True, help_text="the password, encrypted with PACS_LINK_KEY")
    from_settings = models.BooleanField(default=False, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.target})"

    @property
    def target(self) -> str:
        if self.kind == self.Kind.STOW:
            return self.url
        return f"{self.called_ae}@{self.host}:{self.port}"


class ResultSending(models.Model):
    """One radiograph's results (SR and overlay of one classifier's reading) sent to one destination."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        SENT = "sent"
        FAILED = "failed"

    radiograph = models.ForeignKey(Radiograph, on_delete=models.CASCADE, related_name="result_sendings")
    destination = models.ForeignKey(ResultDestination, on_delete=models.CASCADE, related_name="sendings")
    model_version_id = models.PositiveIntegerField(null=True, blank=True, help_text="the classifier read")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    reason = models.TextField(blank=True, help_text="why the last attempt failed")
    sr_uid = models.CharField(max_length=64, blank=True)
    overlay_uid = models.CharField(max_length=64, blank=True)
    queued_at = models.DateTimeField()
    retry_at = models.DateTimeField(null=True, blank=True, help_text="when a failed sending is tried again")
    sent_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["radiograph", "destination"], name="result_sending_once"),
        ]

    def __str__(self) -> str:
        return f"results of radiograph {self.radiograph_id} to {self.destination_id}: {self.status}"
