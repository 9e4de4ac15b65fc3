"""A prepared reader study for the tests: real radiographs, a frozen dataset, a real (tiny,
untrained) classifier that reads the cases, and readers of both groups."""

from __future__ import annotations

import datetime as dt
from typing import Any

from devtools.sample_data import tiny_model_version, truth_dataset
from ml.models import DatasetHip, ModelVersion, Split
from readerstudy import services
from readerstudy.models import Phase, ReaderStudy
from tests.accounts.factories import UserFactory

CONDITIONS = ("model_quality", "full_quality", "model_aided")


def study_with_model(
    dicom_bytes: Any,
    tiny_bundle: Any,
    data_dir: Any,
    *,
    cases: int = 6,
    name: str = "hips",
    washout: dt.timedelta = dt.timedelta(days=7),
    radiographs: int = 30,
    patients: int = 24,
) -> ReaderStudy:
    """A study of ``cases`` test hips, prepared (crops, predictions, heatmaps frozen)."""
    dataset = truth_dataset(dicom_bytes, radiographs=radiographs, patients=patients)
    version = tiny_model_version(tiny_bundle, dataset, data_dir)
    ModelVersion.objects.filter(pk=version.pk).update(is_active=True)
    assert DatasetHip.objects.filter(dataset=dataset, split=Split.TEST).count() >= cases
    study = services.study_create(name=name, dataset=dataset, cases=cases, seed=3, washout=washout)
    return services.study_prepare(study_id=study.pk)


def invite(study: ReaderStudy, username: str, group: str = "expert", training: str = "orthopedics_attending") -> Any:
    user = UserFactory(username=username)
    return services.reader_add(study=study, user=user, group=group, training=training)


def answer_phase(reader: Any, *, choose: Any = None) -> list[Any]:
    """Answer every case of the reader's next phase through the services, washout ignored
    (``choose(case)`` picks the answer; default ``normal``). Returns the stored responses."""
    stored: list[Any] = []
    condition = None
    while True:
        step, case = services.case_show(reader=reader, ignore_washout=True)
        if case is None or condition not in (None, step.condition):
            return stored
        condition = step.condition
        answer = choose(case) if choose else "normal"
        response, _ = services.answer_submit(reader=reader, case_id=case.pk, condition=step.condition, answer=answer)
        stored.append(response)
        if Phase.objects.get(reader=reader, condition=condition).finished_at is not None:
            return stored  # the next phase is left unstarted
