"""The per-app factories (tests/<app>/factories.py) build valid rows, and their SubFactory
chains share what must be shared: a study's cases come from its own dataset, a response's case
from its reader's study, a hip's patient is its radiograph's."""

import pytest

from tests.annotate.factories import GroundTruthHipFactory, HipLabelFactory, ImportJobFactory
from tests.ml.factories import HipPredictionFactory, RadiographReadingFactory, TrainingRunFactory
from tests.readerstudy.factories import PhaseFactory, ResponseFactory, StudyReportFactory

pytestmark = pytest.mark.django_db


def test_annotate_chains():
    truth = GroundTruthHipFactory()
    assert truth.radiograph == truth.adjudication.radiograph
    assert truth.radiograph.study.patient.pk is not None
    label = HipLabelFactory(hip_class="orif")
    assert label.assignment.labeler is not None and label.assignment.status == "in_progress"
    assert ImportJobFactory().created_by.pk is not None


def test_ml_chains():
    prediction = HipPredictionFactory(predicted_class="fn_displaced")
    assert prediction.fracture_probability == 1.0 and prediction.top2[0] == "fn_displaced"
    assert prediction.model_version.dataset.pk is not None
    assert RadiographReadingFactory().seconds == 1.0
    assert TrainingRunFactory(config_name="tiny").config == {"name": "tiny"}


def test_readerstudy_chains():
    response = ResponseFactory()
    study = response.reader.study
    assert response.case.study == study
    assert response.case.dataset_hip.dataset == study.dataset == study.model_version.dataset
    assert response.case.dataset_hip.patient == response.case.dataset_hip.radiograph.study.patient
    phase = PhaseFactory(reader=response.reader)
    assert phase.reader.study == study
    assert StudyReportFactory(study=study).study == study
