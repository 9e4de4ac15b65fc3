"""factory_boy factories of the readerstudy app: an open study (its dataset and model version),
its cases, readers (each with a user of their own), phases, responses and reports. Rows only:
no crops or heatmaps are written, so use them where the images are not fetched; tests of the
reading itself prepare a real study (tests.readerstudy.helpers.study_with_model)."""

import factory
from django.utils import timezone

from readerstudy.models import Case, Condition, Group, Phase, Reader, ReaderStudy, Response, StudyReport
from tests.accounts.factories import UserFactory
from tests.ml.factories import DatasetHipFactory, DatasetVersionFactory, ModelVersionFactory


class ReaderStudyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ReaderStudy

    name = factory.Sequence(lambda n: f"study-{n}")
    dataset = factory.SubFactory(DatasetVersionFactory)
    model_version = factory.SubFactory(ModelVersionFactory, dataset=factory.SelfAttribute("..dataset"))
    case_count = 1
    status = ReaderStudy.Status.OPEN


class CaseFactory(factory.django.DjangoModelFactory):
    """A test hip of the study's dataset, read by the study's model as ``normal``."""

    class Meta:
        model = Case

    study = factory.SubFactory(ReaderStudyFactory)
    number = factory.Sequence(lambda n: n + 1)
    dataset_hip = factory.SubFactory(DatasetHipFactory, dataset=factory.SelfAttribute("..study.dataset"))
    crop = factory.Sequence(lambda n: f"reader-studies/crops/{n}.png")
    model_version = factory.SelfAttribute("study.model_version")
    predicted_class = "normal"


class ReaderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Reader

    study = factory.SubFactory(ReaderStudyFactory)
    user = factory.SubFactory(UserFactory)
    code = factory.Sequence(lambda n: f"R{n + 1:02d}")
    group = Group.EXPERT
    training = "orthopedics_attending"


class PhaseFactory(factory.django.DjangoModelFactory):
    """The reader's first phase, started now, with no cases ordered."""

    class Meta:
        model = Phase

    reader = factory.SubFactory(ReaderFactory)
    condition = Condition.MODEL_QUALITY
    order = factory.LazyFunction(list)


class ResponseFactory(factory.django.DjangoModelFactory):
    """``normal`` in the model-quality phase, for a case of the reader's study."""

    class Meta:
        model = Response

    reader = factory.SubFactory(ReaderFactory)
    case = factory.SubFactory(CaseFactory, study=factory.SelfAttribute("..reader.study"))
    condition = Condition.MODEL_QUALITY
    answer = "normal"
    displayed_at = factory.LazyFunction(timezone.now)
    submitted_at = factory.LazyFunction(timezone.now)


class StudyReportFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = StudyReport

    study = factory.SubFactory(ReaderStudyFactory)
