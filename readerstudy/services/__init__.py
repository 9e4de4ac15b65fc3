"""Reader-study services: creating a study, inviting readers, running each reader through the phases,
storing answers once, and the exports; every rule a reader could try to get around is enforced here.
Modules: ``creation``, ``reading``, ``exports``, ``errors``; their names are re-exported here.
Design: docs/architecture/design-site.md
"""

from __future__ import annotations

from readerstudy.services.creation import (
    FREEZE_BATCH,
    PHASE1_ZOOM,
    crop_pixels,
    frozen_protocol,
    study_create,
    study_prepare,
)
from readerstudy.services.errors import AnswerLocked, Forbidden, NotFound, NotOpen, StudyError
from readerstudy.services.exports import (
    PREDICTION_COLUMNS,
    RESPONSE_COLUMNS,
    csv_bytes,
    predictions_rows,
    responses_rows,
    study_export,
    study_progress,
)
from readerstudy.services.reading import (
    Step,
    answer_submit,
    case_media_allowed,
    case_show,
    reader_add,
    reader_of,
    reader_step,
)
from readerstudy.services.reading import _order as _order  # the tests check the seeded order

__all__ = [
    "AnswerLocked",
    "FREEZE_BATCH",
    "Forbidden",
    "NotFound",
    "NotOpen",
    "PHASE1_ZOOM",
    "PREDICTION_COLUMNS",
    "RESPONSE_COLUMNS",
    "Step",
    "StudyError",
    "answer_submit",
    "case_media_allowed",
    "case_show",
    "crop_pixels",
    "csv_bytes",
    "frozen_protocol",
    "predictions_rows",
    "reader_add",
    "reader_of",
    "reader_step",
    "responses_rows",
    "study_create",
    "study_export",
    "study_prepare",
    "study_progress",
]
