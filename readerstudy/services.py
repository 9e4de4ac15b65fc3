"""Reader-study services: creating a study, inviting readers, running each reader through
the phases, storing answers once, and the exports.

Every rule a reader could try to get around is enforced here, on the server: the washout,
the phase order, the case on the reader's screen, the immutability of an answer. Errors
are ``StudyError`` subclasses whose message is meant for the person who caused them.

Equal information in phase 1: ``study_prepare`` stores each case's phase-1 crop (the zoom-1.0
crop at the model's input size, as an 8-bit PNG: what readers get) and computes the model's
frozen reading by feeding that very PNG, decoded, to the model (``Predictor.predict_crops``), so
the model reads exactly the pixels the readers see. That is the paper's ``single`` protocol; a
model trained with ``test_time="zoom-average"`` is still read from the phase-1 crop alone, and the
study records the protocol it froze with (``ReaderStudy.test_time``, see ``frozen_protocol``).
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.contrib.auth.models import Group as AuthGroup
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotate.labels import CLASSES
from common import csvfile
from common.roles import READER
from common.storage import Buffers
from ml.core.configs import NetConfig
from ml.core.crops import CropSpec, hip_crop
from ml.core.serving import Hip, heatmap_png
from ml.models import DatasetHip, DatasetVersion, Kind, ModelVersion, Split
from ml.scoring import load_pixels, predictor
from readerstudy.models import (
    PHASES,
    Case,
    Condition,
    Group,
    Phase,
    Reader,
    ReaderStudy,
    ReadingProtocol,
    Response,
    training_validator,
)

logger = logging.getLogger(__name__)

RESPONSE_COLUMNS = ("reader", "group", "training", "condition", "case", "patient", "truth", "answer")
#: The zoom of the phase-1 crop: the hip's bounding box itself, as the paper shows it to readers.
PHASE1_ZOOM = 1.0
#: Cases whose phase-1 crops the model reads in one batch while a study is frozen.
FREEZE_BATCH = 32
PREDICTION_COLUMNS = ("case", "patient", "truth", *(f"p_{key}" for key in CLASSES))


class StudyError(Exception):
    """A request the study's rules refuse; ``status`` is the HTTP status that says why."""

    status = 400


class NotFound(StudyError):
    status = 404


class Forbidden(StudyError):
    status = 403


class NotOpen(StudyError):
    """The phase or case is not open to this reader (yet, or any more)."""

    status = 409


class AnswerLocked(StudyError):
    """An answer was already stored and cannot be changed."""

    status = 409


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


def crop_pixels(png: bytes) -> np.ndarray:
    """A stored phase-1 crop (8-bit grey PNG) as the model reads it: float32 (S, S) in [0, 1],
    the PNG's values / 255, exactly what readers' screens get before display scaling."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        values = np.asarray(image.convert("L"), dtype=np.float32)
    return values / np.float32(255.0)


def frozen_protocol(study: ReaderStudy) -> dict[str, Any]:
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
        crops = np.stack([crop_pixels(png) for _, png in batch])
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


# --------------------------------------------------------------------------- readers


def reader_add(*, study: ReaderStudy, user: Any, group: str, training: str) -> Reader:
    """Invite ``user`` into ``study`` as a reader (and give them the reader role)."""
    from django.core.exceptions import ValidationError

    if group not in Group.values:
        raise StudyError(f"group must be one of {', '.join(Group.values)}, got {group!r}")
    try:
        training_validator(training)
    except ValidationError as exc:
        raise StudyError(f"training {training!r}: {exc.messages[0]}") from None
    with transaction.atomic():
        list(ReaderStudy.objects.select_for_update().filter(pk=study.pk))  # one code at a time
        if Reader.objects.filter(study=study, user=user).exists():
            raise StudyError(f"{user} is a reader of {study} already")
        code = f"R{study.readers.count() + 1:02d}"
        reader = Reader.objects.create(study=study, user=user, code=code, group=group, training=training)
    user.groups.add(AuthGroup.objects.get_or_create(name=READER)[0])
    return reader


def reader_of(user: Any, study_id: int) -> Reader:
    """The user's reader row in a study, or ``NotFound`` (the same answer for a study that
    does not exist and for one the user is not invited to)."""
    reader = Reader.objects.select_related("study").filter(study_id=study_id, user=user).first()
    if reader is None or not user.is_authenticated:
        raise NotFound("you are not a reader of this study")
    return reader


# --------------------------------------------------------------------------- phases


def _order(reader: Reader, condition: str, case_ids: Sequence[int]) -> list[int]:
    """The reader's seeded order of ``case_ids`` for one phase: different per reader and phase,
    the same every time it is computed."""
    rng = np.random.default_rng([reader.study.seed, reader.pk, PHASES.index(condition)])
    ids = sorted(case_ids)
    return [ids[int(i)] for i in rng.permutation(len(ids))]


@dataclass
class Step:
    """Where a reader stands: the phase to work on (or None when done), whether it is open,
    when it opens (washout), and how far they are."""

    condition: str | None
    status: str  # "open", "washout", "done", "preparing"
    opens_at: dt.datetime | None
    answered: int
    total: int
    phase: Phase | None = None


def _answered_ids(reader: Reader, condition: str) -> set[int]:
    return set(Response.objects.filter(reader=reader, condition=condition).values_list("case_id", flat=True))


def _start_phase(reader: Reader, condition: str, now: dt.datetime) -> Phase:
    """Create the reader's phase row (idempotent: a concurrent start finds the first one)."""
    study = reader.study
    if condition == Condition.MODEL_AIDED:
        full = dict(
            Response.objects.filter(reader=reader, condition=Condition.FULL_QUALITY).values_list("case_id", "answer")
        )
        model = dict(study.cases.values_list("pk", "predicted_class"))
        disagree = [pk for pk, answer in full.items() if answer != model[pk]]
        order = _order(reader, condition, disagree)
    else:
        order = _order(reader, condition, list(study.cases.values_list("pk", flat=True)))
    with transaction.atomic():
        phase, created = Phase.objects.get_or_create(
            reader=reader, condition=condition, defaults={"order": order, "started_at": now}
        )
        if created and condition == Condition.MODEL_AIDED:
            # Where the reader agreed with the model, their phase-2 answer stands as the aided answer.
            carried = Response.objects.filter(reader=reader, condition=Condition.FULL_QUALITY).exclude(
                case_id__in=order
            )
            Response.objects.bulk_create(
                [
                    Response(
                        reader=reader,
                        case_id=r.case_id,
                        condition=Condition.MODEL_AIDED,
                        answer=r.answer,
                        displayed_at=now,
                        submitted_at=now,
                        carried_over=True,
                    )
                    for r in carried
                ],
                ignore_conflicts=True,
            )
        if created and not order:
            phase.finished_at = now
            phase.save(update_fields=["finished_at"])
    return phase


def reader_step(
    reader: Reader, *, now: dt.datetime | None = None, ignore_washout: bool = False, count: bool = True
) -> Step:
    """The reader's current step, starting the next phase when it is due (``count=False``: leave
    ``answered`` at 0 for a caller that counts it itself)."""
    now = now or timezone.now()
    study = reader.study
    total = study.case_count
    if study.status != ReaderStudy.Status.OPEN:
        return Step(None, "preparing" if study.status == ReaderStudy.Status.PREPARING else "closed", None, 0, total)
    phases = {p.condition: p for p in reader.phases.all()}
    previous: Phase | None = None
    for condition in study.phases:
        phase = phases.get(condition)
        if phase is None:
            opens_at = None
            if condition == Condition.FULL_QUALITY and previous is not None and previous.finished_at is not None:
                opens_at = previous.finished_at + study.washout
                if now < opens_at and not ignore_washout:
                    return Step(condition, "washout", opens_at, 0, total)
            phase = _start_phase(reader, condition, now)
        if phase.finished_at is None:
            answered = len(_answered_ids(reader, condition) & set(phase.case_ids)) if count else 0
            return Step(condition, "open", phase.started_at, answered, len(phase.case_ids), phase)
        previous = phase
    return Step(None, "done", None, total, total)


def _lock_phase(reader: Reader, condition: str) -> Phase:
    phase = Phase.objects.select_for_update().filter(reader=reader, condition=condition).first()
    if phase is None:
        raise NotOpen(f"the {Condition(condition).label.lower()} phase has not started for you")
    return phase


def case_show(
    reader: Reader, *, now: dt.datetime | None = None, ignore_washout: bool = False
) -> tuple[Step, Case | None]:
    """The reader's step and the case now on their screen (the next one they have not answered),
    recording when the server first showed it."""
    now = now or timezone.now()
    step = reader_step(reader, now=now, ignore_washout=ignore_washout, count=False)
    if step.status != "open" or step.condition is None:
        return step, None
    with transaction.atomic():
        phase = _lock_phase(reader, step.condition)
        answered = _answered_ids(reader, step.condition)
        step.answered = len(answered & set(phase.case_ids))
        pending = [pk for pk in phase.case_ids if pk not in answered]
        if not pending:  # finished by a concurrent request
            return reader_step(reader, now=now, ignore_washout=ignore_washout), None
        if phase.current_case_id != pending[0]:
            phase.current_case_id, phase.displayed_at = pending[0], now
            phase.save(update_fields=["current_case", "displayed_at"])
    step.phase = phase
    return step, Case.objects.select_related("dataset_hip__radiograph").get(pk=pending[0])


def answer_submit(
    *, reader: Reader, case_id: int, condition: str, answer: str, now: dt.datetime | None = None
) -> tuple[Response, bool]:
    """Store the reader's answer to the case on their screen. Returns (response, created): a second
    submit of the same answer returns the stored one; a different answer is refused."""
    now = now or timezone.now()
    if answer not in CLASSES:
        raise StudyError(f"answer must be one of {', '.join(CLASSES)}, got {answer!r}")
    if condition not in Condition.values:
        raise StudyError(f"condition must be one of {', '.join(Condition.values)}, got {condition!r}")
    with transaction.atomic():
        # The reader's own phase row is the lock: their concurrent submits run one after the other.
        phase = Phase.objects.select_for_update().filter(reader=reader, condition=condition).first()
        if phase is None or case_id not in phase.case_ids:  # rare: only then ask whether the case exists
            if not Case.objects.filter(pk=case_id, study_id=reader.study_id).exists():
                raise NotFound(f"case {case_id} is not a case of this study")
        if phase is None:
            raise NotOpen(f"the {Condition(condition).label.lower()} phase has not started for you")
        existing = Response.objects.filter(reader=reader, case_id=case_id, condition=condition).first()
        if existing is not None:
            if existing.answer != answer:
                raise AnswerLocked(f"you answered {existing.answer} for this case already; an answer cannot be changed")
            return existing, False
        if phase.finished_at is not None:
            raise NotOpen("this phase is finished")
        if case_id not in phase.case_ids:
            raise NotOpen("this case is not part of this phase for you")
        if phase.current_case_id != case_id or phase.displayed_at is None:
            raise NotOpen("answer the case on your screen: this one has not been shown to you yet")
        response = Response.objects.create(
            reader=reader,
            case_id=case_id,
            condition=condition,
            answer=answer,
            displayed_at=phase.displayed_at,
            submitted_at=now,
        )
        phase.current_case, phase.displayed_at = None, None
        if not set(phase.case_ids) - _answered_ids(reader, condition):
            phase.finished_at = now
        phase.save(update_fields=["current_case", "displayed_at", "finished_at"])
    return response, True


def case_media_allowed(reader: Reader, case: Case, media: str) -> bool:
    """May the reader fetch this case's ``media`` now? ``crop`` only in the model-quality phase,
    ``pixels`` in the full-quality and aided phases, ``heatmap`` only for an aided case."""
    if case.study_id != reader.study_id:
        return False
    allowed = {
        "crop": (Condition.MODEL_QUALITY,),
        "pixels": (Condition.FULL_QUALITY, Condition.MODEL_AIDED),
        "heatmap": (Condition.MODEL_AIDED,),
    }[media]
    for phase in reader.phases.filter(condition__in=allowed, finished_at__isnull=True):
        if case.pk in phase.case_ids:
            return True
    return False


# --------------------------------------------------------------------------- the researcher's view


def study_progress(study: ReaderStudy, *, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Per reader: answered/total and dates per phase, when the washout ends, median seconds per case.

    ``answered`` counts the reader's own answers only; the model-aided answers carried over from
    full quality (where the reader agreed with the model) are ``carried_over``, apart: the aided
    phase's ``total`` is the cases shown, so "10/44" for a reader who answered none of 44 and
    carried 10 over would overstate their progress. ``text`` says it in words for the dashboard:
    "0 of 44, plus 10 carried over"."""
    now = now or timezone.now()
    readers = list(study.readers.select_related("user").prefetch_related("phases"))
    answered: dict[tuple[int, str], int] = {}
    carried_over: dict[tuple[int, str], int] = {}
    seconds: dict[int, list[float]] = {}
    for reader_id, condition, carried, shown, submitted in Response.objects.filter(reader__study=study).values_list(
        "reader_id", "condition", "carried_over", "displayed_at", "submitted_at"
    ):
        counts = carried_over if carried else answered
        counts[reader_id, condition] = counts.get((reader_id, condition), 0) + 1
        if not carried:
            seconds.setdefault(reader_id, []).append((submitted - shown).total_seconds())
    rows = []
    for reader in readers:
        phases = {p.condition: p for p in reader.phases.all()}
        first = phases.get(Condition.MODEL_QUALITY)
        washout_ends = first.finished_at + study.washout if first and first.finished_at else None
        per_phase = []
        for condition in study.phases:
            phase = phases.get(condition)
            total = len(phase.case_ids) if phase else (study.case_count if condition != Condition.MODEL_AIDED else None)
            own = answered.get((reader.pk, condition), 0)
            carried = carried_over.get((reader.pk, condition), 0)
            text = f"{own} of {'?' if total is None else total}" + (f", plus {carried} carried over" if carried else "")
            per_phase.append(
                {
                    "condition": condition,
                    "answered": own,
                    "carried_over": carried,
                    "text": text,
                    "shown": len(phase.case_ids) if phase else 0,
                    "total": total,
                    "started_at": phase.started_at if phase else None,
                    "finished_at": phase.finished_at if phase else None,
                }
            )
        times = seconds.get(reader.pk, [])
        rows.append(
            {
                "reader": reader,
                "phases": per_phase,
                "washout_ends": washout_ends,
                "washout_over": washout_ends is not None and washout_ends <= now,
                "median_seconds": statistics.median(times) if times else None,
                "done": all(p["finished_at"] for p in per_phase),
            }
        )
    return rows


# --------------------------------------------------------------------------- exports


def responses_rows(study: ReaderStudy, *, complete_only: bool = False) -> list[dict[str, Any]]:
    """``responses.csv``'s rows: one per reader, condition and case, in reader, condition, case order.
    ``complete_only`` keeps the readers who answered every case under every condition."""
    rows = []
    query = Response.objects.filter(reader__study=study).select_related(
        "reader", "case__dataset_hip__patient", "case__dataset_hip"
    )
    by_reader: dict[int, list[Response]] = {}
    for response in query:
        by_reader.setdefault(response.reader_id, []).append(response)
    conditions = {c: i for i, c in enumerate(PHASES)}
    for responses in by_reader.values():
        if complete_only and len(responses) != study.case_count * len(PHASES):
            continue
        for r in sorted(responses, key=lambda r: (r.reader.code, conditions[r.condition], r.case.number)):
            rows.append(
                {
                    "reader": r.reader.code,
                    "group": r.reader.group,
                    "training": r.reader.training,
                    "condition": r.condition,
                    "case": r.case.number,
                    "patient": r.case.dataset_hip.patient.code,
                    "truth": r.case.dataset_hip.hip_class,
                    "answer": r.answer,
                }
            )
    rows.sort(key=lambda row: (row["reader"], conditions[row["condition"]], row["case"]))
    return rows


def predictions_rows(study: ReaderStudy) -> list[dict[str, Any]]:
    """``model_predictions.csv``'s rows: the frozen model probabilities of each case."""
    rows = []
    for case in study.cases.select_related("dataset_hip__patient").order_by("number"):
        if case.probabilities is None:
            continue
        row = {"case": case.number, "patient": case.dataset_hip.patient.code, "truth": case.dataset_hip.hip_class}
        row.update({f"p_{key}": repr(float(p)) for key, p in zip(CLASSES, case.probabilities, strict=True)})
        rows.append(row)
    return rows


def csv_bytes(columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csvfile.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()


def study_export(study: ReaderStudy, *, complete_only: bool = False) -> dict[str, bytes]:
    """The study's two exports, by file name. Their columns are a contract; how the readings in
    ``model_predictions.csv`` were frozen is ``frozen_protocol(study)`` (``study.test_time``)."""
    files = {"responses.csv": csv_bytes(RESPONSE_COLUMNS, responses_rows(study, complete_only=complete_only))}
    if study.model_version_id is not None:
        files["model_predictions.csv"] = csv_bytes(PREDICTION_COLUMNS, predictions_rows(study))
    return files
