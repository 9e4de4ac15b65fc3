"""The reader-study services' errors: :class:`StudyError` and its subclasses, whose message is meant
for the person who caused them and whose ``status`` is the HTTP status that says why.
Design: docs/architecture/design-site.md
"""

from __future__ import annotations


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
