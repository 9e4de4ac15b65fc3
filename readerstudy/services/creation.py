"""Creating and freezing a reader study: the cases drawn from a dataset's test split, their phase-1
crops (what readers get) and the model's frozen reading of those very pixels (``study_prepare``),
and the protocol it froze with (``frozen_protocol``).
Design: docs/architecture/design-site.md
"""

from __future__ import annotations

import datetime as dt
import io
import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction

from common.storage import Buffers
from ml.core.configs import NetConfig
from ml.core.crops import CropSpec, hip_crop
from ml.core.serving import Hip, heatmap_png
from ml.models import DatasetHip, DatasetVersion, Kind, ModelVersion, Split
from ml.scoring import load_pixels, predictor
from readerstudy.models import (
    Case,
    ReaderStudy,
    ReadingProtocol,
)
from readerstudy.services.errors import StudyError

logger = logging.getLogger("readerstudy.services")  # the module's name before the split, kept for log filters

#: The zoom of the phase-1 crop: the hip's bounding box itself, as the paper shows it to readers.
PHASE1_ZOOM = 1.0
#: Cases whose phase-1 crops the model reads in one batch while a study is frozen.
FREEZE_BATCH = 32

# --------------------------------------------------------------------------- creating a study


def _draw_hips(dataset: DatasetVersion, count: int, seed: int, hip_ids: Sequence[int] | None) -> list[DatasetHip]:
    test = DatasetHip.objects.filter(dataset=dataset, split=Split.TEST)
    if hip_ids is not None:
        chosen = list(test.filter(pk__in=hip_ids))
        outside = sorted(set(hip_ids) - {hip.pk for hip in chosen})
        if outside:
            raise StudyError(
                f"hips {outside} are not in the test split of dataset {dataset.pk}: a study reads test hips only"
            )
        order = {pk: i for i, pk in enumerate(hip_ids)}
        return sorted(chosen, key=lambda hip: order[hip.pk])
    pool = list(test.order_by("pk"))
    if count < 1:
        raise StudyError("a study needs at least one case")
    if count > len(pool):
        raise StudyError(f"dataset {dataset.pk} has {len(pool)} test hips; a study of {count} cases needs more")
    picks = np.random.default_rng(seed).choice(len(pool), size=count, replace=False)
    return [pool[int(i)] for i in picks]


def study_create(
    *,
    name: str,
    dataset: DatasetVersion,
    cases: int = 100,
    seed: int = 0,
    washout: dt.timedelta = dt.timedelta(days=7),
    aided_phase: bool = True,
    model_version: ModelVersion | None = None,
    hip_ids: Sequence[int] | None = None,
    description: str = "",
    created_by: Any = None,
) -> ReaderStudy:
    """A new study in status ``preparing``: its cases are checked and drawn here and frozen
    by ``study_prepare`` (inline, or by the ``prepare_study`` task)."""
    name = name.strip()
    if not name:
        raise StudyError("a study needs a name")
    if ReaderStudy.objects.filter(name=name).exists():
        raise StudyError(f"a study named {name!r} exists already")
    if washout < dt.timedelta(0):
        raise StudyError("the washout cannot be negative")
    if model_version is None and aided_phase:
        model_version = ModelVersion.objects.filter(kind=Kind.CLASSIFIER, is_active=True).first()
        if model_version is None:
            raise StudyError(
                "no classifier is active: activate one on the Models page, or switch the model-aided phase off"
            )
    if model_version is not None and model_version.kind != Kind.CLASSIFIER:
        raise StudyError(f"model version {model_version.pk} is a {model_version.kind}, not a classifier")
    hips = _draw_hips(dataset, cases, seed, hip_ids)
    try:
        with transaction.atomic():
            study = ReaderStudy.objects.create(
                name=name,
                description=description,
                dataset=dataset,
                model_version=model_version,
                seed=seed,
                case_count=len(hips),
                washout=washout,
                aided_phase=aided_phase,
                created_by=created_by,
            )
            Case.objects.bulk_create(
                Case(study=study, number=n, dataset_hip=hip, model_version=model_version)
                for n, hip in enumerate(hips, start=1)
            )
    except IntegrityError:
        raise StudyError(f"a study named {name!r} exists already") from None
    return study


def _png(array01: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.round(np.clip(array01, 0, 1) * 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def crop_pixels(*, png: bytes) -> np.ndarray:
    """A stored phase-1 crop (8-bit grey PNG) as the model reads it: float32 (S, S) in [0, 1],
    the PNG's values / 255, exactly what readers' screens get before display scaling."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        values = np.asarray(image.convert("L"), dtype=np.float32)
    return values / np.float32(255.0)


def frozen_protocol(*, study: ReaderStudy) -> dict[str, Any]:
    """How the study's model readings were frozen, for its page and exports: ``test_time`` (the
    study's, ``ReaderStudy.test_time``), ``model_test_time`` and ``model_zooms`` (the model
    version's own protocol, None without a model), ``equal_information`` (the model read exactly
    the phase-1 image readers see) and ``description`` (one sentence)."""

    version = study.model_version
    if version is None:
        return {
            "test_time": study.test_time,
            "model_test_time": None,
            "model_zooms": None,
            "equal_information": None,
            "description": "No model: no readings were frozen.",
        }
    config = NetConfig.from_dict(version.config)
    zooms = [float(z) for z in config.zooms]
    if study.test_time == ReadingProtocol.SINGLE:
        description = (
            "The model's readings were frozen from each case's phase-1 crop itself (test_time single: the "
            "zoom-1.0 crop at the model's input size, as readers see it in the model-quality phase; the paper's "
            "equal-information design)."
        )
        if config.test_time != ReadingProtocol.SINGLE:
            description += (
                f" The model's own protocol is {config.test_time} (zooms {zooms}); the study does not use it, so "
                "that readers and model see the same image."
            )
    else:
        description = (
            f"The model's readings were frozen as the mean of its outputs over the crops at zooms {zooms} "
            "(test_time zoom-average): in phase 1 the model saw wider context than the readers, who see the "
            "zoom-1.0 crop alone. This departs from the paper's equal-information design (the study was "
            "prepared before readings were frozen from the phase-1 crop)."
        )
    return {
        "test_time": study.test_time,
        "model_test_time": config.test_time,
        "model_zooms": zooms,
        "equal_information": study.test_time == ReadingProtocol.SINGLE,
        "description": description,
    }


def _save(name: str, data: bytes) -> str:
    if default_storage.exists(name):
        default_storage.delete(name)
    return default_storage.save(name, Buffers(data))


def study_prepare(*, study_id: int, progress: Callable[[int], None] | None = None) -> ReaderStudy:
    """Freeze each case: its phase-1 crop (zoom 1.0 at the model's input size, stored as the
    8-bit PNG readers get) and the model's reading of that very PNG (probabilities, top 2,
    heatmap): the ``single`` protocol whatever the model's ``test_time``, recorded on the study.
    Idempotent: an open study is left as it is; a failed one is tried again."""

    with transaction.atomic():
        study = ReaderStudy.objects.select_for_update().get(pk=study_id)
        if study.status in (ReaderStudy.Status.OPEN, ReaderStudy.Status.CLOSED):
            return study
    cases = list(study.cases.select_related("dataset_hip__radiograph").order_by("number"))
    version = study.model_version
    spec = CropSpec(zoom=PHASE1_ZOOM)
    if version is not None:
        config = NetConfig.from_dict(version.config)
        spec = CropSpec(size=config.input_size, zoom=PHASE1_ZOOM)
        if config.test_time != ReadingProtocol.SINGLE:
            logger.info(
                "reader study %s: model version %s uses test_time %s; the study freezes its readings from the "
                "phase-1 crop alone (single), so that readers and model see the same image",
                study.pk,
                version.pk,
                config.test_time,
            )

    def read(batch: list[tuple[Case, bytes]]) -> None:
        """The model's reading of each case's phase-1 PNG, decoded: the very pixels readers get."""
        assert version is not None  # only cases of a study with a model are read
        crops = np.stack([crop_pixels(png=png) for _, png in batch])
        hips = [Hip(side=case.dataset_hip.side, box=case.dataset_hip.box) for case, _ in batch]
        for (case, _), pred in zip(batch, predictor(version).predict_crops(crops, hips), strict=True):
            case.probabilities = [float(p) for p in pred.probabilities]
            case.predicted_class = pred.predicted_class
            case.top2 = list(pred.top2)
            case.fracture_probability = float(pred.fracture_probability)
            case.heatmap = _save(f"readerstudy/{study.pk}/heatmaps/{case.number}.png", heatmap_png(pred))
            case.heatmap_rect = [float(v) for v in pred.heatmap_rect]
            if progress is not None:
                progress(1)

    try:
        pending: list[tuple[Case, bytes]] = []
        for case in cases:
            hip, radiograph = case.dataset_hip, case.dataset_hip.radiograph
            window = (radiograph.window_center, radiograph.window_width)
            png = _png(hip_crop(load_pixels(radiograph), hip.box, hip.side, window=window, spec=spec))
            case.crop = _save(f"readerstudy/{study.pk}/crops/{case.number}.png", png)
            if version is None:
                if progress is not None:
                    progress(1)
                continue
            pending.append((case, png))
            if len(pending) == FREEZE_BATCH:
                read(pending)
                pending = []
        if pending:
            read(pending)
    except Exception as exc:
        ReaderStudy.objects.filter(pk=study.pk).update(status=ReaderStudy.Status.FAILED, error=str(exc)[:2000])
        raise
    fields = ["crop", "probabilities", "predicted_class", "top2", "fracture_probability", "heatmap", "heatmap_rect"]
    with transaction.atomic():
        Case.objects.bulk_update(cases, fields)
        ReaderStudy.objects.filter(pk=study.pk).update(
            status=ReaderStudy.Status.OPEN, error="", test_time=ReadingProtocol.SINGLE
        )
    study.refresh_from_db()
    logger.info("reader study %s prepared: %d cases (test_time %s)", study.pk, len(cases), study.test_time)
    return study
