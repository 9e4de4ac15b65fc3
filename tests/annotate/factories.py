"""factory_boy factories of the annotate app: Patient -> Study -> Radiograph (rows only: the
files they name are not written, so use them where no page or task opens the image; tests that
need real pixels ingest DICOM bytes through annotate.services), labelling slots and labels,
adjudications with their ground truth, and import jobs."""

import factory

from annotate.labels import Adjudication, Assignment, GroundTruthHip, HipLabel
from annotate.models import ImportJob, Patient, Radiograph, Study
from devtools.dicom import CR_IMAGE_STORAGE
from tests.accounts.factories import UserFactory

EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"


class PatientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Patient

    pseudo_id = factory.Sequence(lambda n: f"{n:064x}")
    sex = "F"


class StudyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Study

    patient = factory.SubFactory(PatientFactory)
    study_instance_uid = factory.Sequence(lambda n: f"2.25.1{n}")
    accession_pseudo = factory.Sequence(lambda n: f"{n:064x}")


class RadiographFactory(factory.django.DjangoModelFactory):
    """A 240 x 256 12-bit CR radiograph row (its original, preview and pixels are not written)."""

    class Meta:
        model = Radiograph

    study = factory.SubFactory(StudyFactory)
    series_instance_uid = factory.Sequence(lambda n: f"2.25.2{n}")
    sop_instance_uid = factory.Sequence(lambda n: f"2.25.3{n}")
    sop_class_uid = CR_IMAGE_STORAGE
    modality = "CR"
    view_position = "AP"
    rows = 256
    columns = 240
    bits_stored = 12
    photometric_interpretation = "MONOCHROME2"
    transfer_syntax_uid = EXPLICIT_VR_LITTLE_ENDIAN
    window_center = 2048.0
    window_width = 4096.0
    sha256 = factory.Sequence(lambda n: f"{n:064x}")
    file_size = 1024
    original = factory.LazyAttribute(lambda o: f"originals/{o.sha256}.dcm")
    preview = factory.LazyAttribute(lambda o: f"previews/{o.sha256}.jpg")
    source = Radiograph.Source.CLI


class AssignmentFactory(factory.django.DjangoModelFactory):
    """A labelling slot; with ``labeler`` given, taken by them."""

    class Meta:
        model = Assignment

    radiograph = factory.SubFactory(RadiographFactory)
    slot = 1
    labeler = None
    status = factory.LazyAttribute(
        lambda o: Assignment.Status.OPEN if o.labeler is None else Assignment.Status.IN_PROGRESS
    )


class HipLabelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = HipLabel

    assignment = factory.SubFactory(AssignmentFactory, labeler=factory.SubFactory(UserFactory))
    side = "right"
    hip_class = "normal"
    x, y, width, height = 10.0, 20.0, 100.0, 100.0


class AdjudicationFactory(factory.django.DjangoModelFactory):
    """An agreed adjudication (the labellers agreed)."""

    class Meta:
        model = Adjudication

    radiograph = factory.SubFactory(RadiographFactory)
    status = Adjudication.Status.AGREED
    truth_source = "agreement"


class GroundTruthHipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = GroundTruthHip

    adjudication = factory.SubFactory(AdjudicationFactory)
    radiograph = factory.SelfAttribute("adjudication.radiograph")
    side = "right"
    hip_class = "normal"
    x, y, width, height = 10.0, 20.0, 100.0, 100.0


class ImportJobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ImportJob

    created_by = factory.SubFactory(UserFactory)
    source = Radiograph.Source.CLI
    folder = factory.Sequence(lambda n: f"imports/job{n}")
