"""Running a reader through a study: inviting readers, each reader's seeded order per phase, the
washout and phase order, the case on the reader's screen and answers stored once, all enforced
here on the server.
Design: docs/architecture/design-site.md
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from django.contrib.auth.models import Group as AuthGroup
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from annotate.labels import CLASSES
from common.roles import READER
from readerstudy.models import (
    PHASES,
    Case,
    Condition,
    Group,
    Phase,
    Reader,
    ReaderStudy,
    Response,
    training_validator,
)
from readerstudy.services.errors import AnswerLocked, NotFound, NotOpen, StudyError

# --------------------------------------------------------------------------- readers


def reader_add(*, study: ReaderStudy, user: User, group: str, training: str) -> Reader:
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


def reader_of(*, user: User, study_id: int) -> Reader:
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
    *, reader: Reader, now: dt.datetime | None = None, ignore_washout: bool = False, count: bool = True
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
    *, reader: Reader, now: dt.datetime | None = None, ignore_washout: bool = False
) -> tuple[Step, Case | None]:
    """The reader's step and the case now on their screen (the next one they have not answered),
    recording when the server first showed it."""
    now = now or timezone.now()
    step = reader_step(reader=reader, now=now, ignore_washout=ignore_washout, count=False)
    if step.status != "open" or step.condition is None:
        return step, None
    with transaction.atomic():
        phase = _lock_phase(reader, step.condition)
        answered = _answered_ids(reader, step.condition)
        step.answered = len(answered & set(phase.case_ids))
        pending = [pk for pk in phase.case_ids if pk not in answered]
        if not pending:  # finished by a concurrent request
            return reader_step(reader=reader, now=now, ignore_washout=ignore_washout), None
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


def case_media_allowed(*, reader: Reader, case: Case, media: str) -> bool:
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
