"""Patients, studies and radiographs, and the import jobs that bring them in.

Direct identifiers (name, patient ID, birth date, address, accession number
in clear) are never stored: a patient is known by a keyed hash of the
hospital's patient ID, a study by a keyed hash of its accession number, and
every UID is the keyed pseudonym the de-identified copy carries.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Patient(models.Model):
    # HMAC-SHA256 (key: settings.PSEUDONYM_KEY) of the DICOM PatientID.
    pseudo_id = models.CharField(max_length=64, unique=True)
    sex = models.CharField(max_length=1, blank=True, help_text="M, F, O or blank")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.code

    @property
    def code(self) -> str:
        """Short pseudonym for pages: enough to tell patients apart."""
        return f"P-{self.pseudo_id[:10]}"


class Study(models.Model):
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="studies")
    study_instance_uid = models.CharField(max_length=64, unique=True)
    # HMAC-SHA256 of the accession number: studies stay linkable to the
    # hospital's records by whoever holds the key, and to nobody else.
    accession_pseudo = models.CharField(max_length=64, db_index=True)
    study_date = models.DateField(null=True, blank=True)
    patient_age_years = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "studies"

    def __str__(self) -> str:
        return self.accession_code

    @property
    def accession_code(self) -> str:
        return f"A-{self.accession_pseudo[:10]}"


class Radiograph(models.Model):
    class Source(models.TextChoices):
        UPLOAD = "upload", "Browser upload"
        API = "api", "API"
        CLI = "cli", "Command line"
        DICOM_STORE = "dicom_store", "DICOM C-STORE (PACS or modality)"
        DICOMWEB = "dicomweb", "DICOMweb pull (QIDO/WADO-RS)"
        STOW = "stow", "DICOMweb STOW-RS"

    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="radiographs")
    # Study, Series and SOP Instance UIDs are keyed pseudonyms (annotate.archive.deidentify), the
    # ones the stored copy carries. The originals, which a result sent back to the PACS
    # must name, are kept only encrypted (annotate.archive.pseudonyms.pacs_link_seal).
    series_instance_uid = models.CharField(max_length=64, blank=True)
    sop_instance_uid = models.CharField(max_length=64, unique=True)
    sop_class_uid = models.CharField(max_length=64)
    modality = models.CharField(max_length=16)
    view_position = models.CharField(max_length=64, blank=True)
    rows = models.PositiveIntegerField()
    columns = models.PositiveIntegerField()
    pixel_spacing_row = models.FloatField(null=True, blank=True, help_text="mm")
    pixel_spacing_col = models.FloatField(null=True, blank=True, help_text="mm")
    bits_stored = models.PositiveSmallIntegerField()
    photometric_interpretation = models.CharField(max_length=16)
    manufacturer = models.CharField(max_length=64, blank=True)
    manufacturer_model = models.CharField(max_length=64, blank=True, help_text="ManufacturerModelName")
    transfer_syntax_uid = models.CharField(max_length=64)
    pacs_link = models.TextField(blank=True, help_text="The original UIDs, encrypted with PACS_LINK_KEY")
    # Default display window, in the units of the stored 16-bit pixel array.
    window_center = models.FloatField()
    window_width = models.FloatField()

    # The original is stored once, named by the SHA-256 of its bytes.
    sha256 = models.CharField(max_length=64, unique=True)
    file_size = models.PositiveBigIntegerField()
    original = models.FileField(max_length=200)
    pixels = models.FileField(
        max_length=200,
        blank=True,
        help_text="Decoded 16-bit array (.npy) of an older ingest; empty: decoded from the original (annotate.pixels)",
    )
    preview = models.FileField(max_length=200, help_text="8-bit JPEG, default window")

    source = models.CharField(max_length=16, choices=Source.choices)
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    imported_at = models.DateTimeField(auto_now_add=True)
    # When the file reached the site (C-STORE or STOW-RS receipt, upload): the
    # arrival-to-score time of the operations page counts from here.
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    import_job = models.ForeignKey(
        "ImportJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="radiographs"
    )

    class Meta:
        ordering = ["-imported_at", "-id"]

    def __str__(self) -> str:
        return f"Radiograph {self.pk} ({self.modality} {self.view_position or '?'})"


class ImportJob(models.Model):
    """One upload (many files or a .zip) imported in the background."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    source = models.CharField(max_length=16, choices=Radiograph.Source.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    # Folder under DATA_DIR/incoming holding the uploaded files until the job ends.
    folder = models.CharField(max_length=200)
    total = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Import {self.pk} ({self.status})"

    def counts(self) -> dict[str, int]:
        counts = {status: 0 for status in ImportItem.Status.values}
        for row in self.items.values("status").annotate(n=models.Count("id")):
            counts[row["status"]] = row["n"]
        return counts


class ImportItem(models.Model):
    """What became of one file of an import job."""

    class Status(models.TextChoices):
        IMPORTED = "imported"
        PRESENT = "present", "already present"
        REJECTED = "rejected"

    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="items")
    # Position of the file in the job's (stable, sorted) walk over its uploads:
    # what a resumed job skips, and how pages name the file. Uploaded file names
    # are never stored: some PACS and CD exports name files after the patient.
    ordinal = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices)
    reason = models.CharField(max_length=500, blank=True)
    radiograph = models.ForeignKey(Radiograph, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["ordinal"]
        constraints = [models.UniqueConstraint(fields=["job", "ordinal"], name="import_item_once_per_job")]

    def __str__(self) -> str:
        return f"{self.label}: {self.status}"

    @property
    def label(self) -> str:
        """How pages and the API name the file: its position in the upload."""
        return f"file {self.ordinal + 1}"


# The labelling models live in their own module; importing them here makes
# them part of this app's models. The access log (who viewed which radiograph or
# reader-study case) lives in annotate.audit.
from annotate.audit import AccessLog  # noqa: E402,F401
from annotate.labels import (  # noqa: E402,F401
    Adjudication,
    Assignment,
    GroundTruthHip,
    HipLabel,
)
