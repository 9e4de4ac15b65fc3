"""Shared fixtures: one named user per role, DICOM files built in memory, a stored radiograph,
four radiographs labelled by two labellers, the tiny classifier's bundle and the tiny detector
(both made once a session), a prepared reader study, and the Celery broker out of reach.

Who may see what (the rules the role tests hold the pages to):
- alice, researcher: imports data and sees every radiograph.
- adam, adjudicator: sees every radiograph, imports nothing.
- lena, labeler: sees only the work assigned to her, never the archive.
- rita, reader: sees only her reader studies, never radiographs or ground truth.
- nora: logged in with no role; sees her home page and nothing else.
- sam, staff: everything, and the admin.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from annotate import services
from annotate.labelling.services import HipInput
from annotate.labels import Adjudication
from annotate.models import Radiograph
from common import health
from devtools.dicom import make_dicom
from devtools.processes import free_port
from devtools.sample_data import write_tiny_bundle
from readerstudy.models import ReaderStudy
from tests.accounts.factories import UserFactory
from tests.annotate.helpers import labeller, submit
from tests.readerstudy.helpers import study_with_model
from tests.support import ROLE_USERS

pytest_plugins = ["tests.celery_worker", "tests.pacs"]


@pytest.fixture(autouse=True)
def data_dir(settings: Any, tmp_path: Any) -> Any:
    """Each test gets an empty data folder (stored files, uploads)."""
    settings.DATA_DIR = tmp_path / "data"
    settings.MEDIA_ROOT = str(tmp_path / "data" / "media")
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "data" / "tmp" / "uploads")
    os.makedirs(settings.FILE_UPLOAD_TEMP_DIR, mode=0o700)
    return settings.DATA_DIR


@pytest.fixture
def users(db: Any) -> dict[str, Any]:
    result = {}
    for key, (username, roles, staff) in ROLE_USERS.items():
        user = UserFactory(username=username, is_staff=staff)
        user.groups.set([Group.objects.get_or_create(name=role)[0] for role in roles])
        result[key] = user
    return result


@pytest.fixture
def client_as(users: dict[str, Any]) -> Callable[[str | None], Client]:
    def make(role: str | None) -> Client:
        client = Client()
        if role is not None:
            client.force_login(users[role])
        return client

    return make


@pytest.fixture
def dicom_bytes() -> Callable[..., bytes]:
    return make_dicom


# --------------------------------------------------------------------------- radiographs and labels


@pytest.fixture
def radiograph(dicom_bytes: Callable[..., bytes]) -> Radiograph:
    outcome = services.radiograph_ingest(data=dicom_bytes(), name="x.dcm", source="cli")
    return Radiograph.objects.get(id=outcome.radiograph_id)


@pytest.fixture
def radiographs(dicom_bytes: Callable[..., bytes]) -> list[Radiograph]:
    """Four small (240 x 256) radiographs of two patients."""
    ids = [
        services.radiograph_ingest(
            data=dicom_bytes(seed=s, patient_id=f"MRN00{s % 2}", accession=f"ACC9988{s}"), name=f"{s}.dcm",
            source="cli",
        ).radiograph_id
        for s in range(4)
    ]  # fmt: skip
    return list(Radiograph.objects.filter(id__in=ids).order_by("id"))


@pytest.fixture
def lena(db: Any) -> Any:
    return labeller("lena")


@pytest.fixture
def luke(db: Any) -> Any:
    return labeller("luke")


THIRD = 1 / 3


@pytest.fixture
def labelled(radiographs: list[Radiograph], lena: Any, luke: Any) -> list[Radiograph]:
    """0: agreed (boxes differ a little, classes equal), 1: disagree on a class, 2: both excluded,
    3: labelled by lena only."""
    r0, r1, r2, r3 = radiographs
    submit(lena, r0, [HipInput("right", "fn_displaced", 10 + THIRD, 20.1, 100.7, 90 + THIRD),
                      HipInput("left", "normal", 130.25, 21.5, 99.125, 88.0)])  # fmt: skip
    submit(luke, r0, [HipInput("right", "fn_displaced", 12.2, 20.3, 101.1, 91.7),
                      HipInput("left", "normal", 131.0, 22.0, 98.0, 89.0)])  # fmt: skip
    submit(lena, r1, [HipInput("right", "orif", 5, 5, 80, 80)])
    submit(luke, r1, [HipInput("right", "normal", 5, 5, 80, 80)])
    submit(lena, r2, [], excluded="cross_table_lateral")
    submit(luke, r2, [], excluded="cross_table_lateral")
    submit(lena, r3, [HipInput("left", "arthroplasty", 100.5, 30.5, 120.0, 150.0)])
    assert Adjudication.objects.filter(status="agreed").count() == 2
    return radiographs


# --------------------------------------------------------------------------- models and reader studies


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The untrained tiny classifier as a bundle (path, config), written once a session."""
    pytest.importorskip("ml.core.serving")
    return write_tiny_bundle(tmp_path_factory.mktemp("bundle"))


@pytest.fixture(scope="session")
def trained_tiny() -> Any:
    """The tiny detector trained 18 epochs on 12 films (about 40 s on 2 CPU cores; once per
    session: tests/ml_core/test_detector.py tests it, tests/ml reads radiographs with it)."""
    import keras  # the detector's tests only: keras loads when this runs

    from ml.core import detector as D
    from ml.core.nets import recalibrate_batch_norm
    from tests.ml_core.helpers import records

    keras.utils.set_random_seed(0)
    config = D.get_detector_config("tiny")
    train = records(12)
    steps = D.steps_per_epoch(train, config)
    model = D.build_detector(config, steps_per_epoch=steps)
    model.fit(D.make_detector_dataset(train, config, seed=0), epochs=18, steps_per_epoch=steps, verbose=0)
    recalibrate_batch_norm(model, [x for x, _ in D.epoch_batches(train, config, augment=False, seed=0, epoch=0)])
    return model, config


@pytest.fixture
def study(dicom_bytes: Callable[..., bytes], tiny_bundle: Any, data_dir: Any) -> ReaderStudy:
    """A prepared reader study of 6 cases read by the tiny classifier (no readers yet)."""
    return study_with_model(dicom_bytes, tiny_bundle, data_dir, cases=6)


# --------------------------------------------------------------------------- the broker away


@pytest.fixture
def broker_away(settings: Any) -> Iterator[str]:
    """This process's Celery app pointed at a loopback port where nothing listens."""
    from config.celery import app
    from tests.celery_worker import _point_sender_at, _restore_sender  # a plugin: imported once pytest has it

    url = f"redis://127.0.0.1:{free_port()}/0"
    settings.CELERY_BROKER_URL = url
    saved = _point_sender_at(app, url)
    app.conf.broker_transport_options = dict(settings.CELERY_BROKER_TRANSPORT_OPTIONS)
    health._workers_cache.clear()
    yield url
    _restore_sender(app, saved)
    health._workers_cache.clear()
