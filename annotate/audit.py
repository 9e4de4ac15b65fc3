"""The access log: who looked at which radiograph, reader-study case, ground truth or export.

A hospital asks who saw a patient's film and when. ``AuditMiddleware`` writes one row per
request to a URL named in ``AUDITED`` (an explicit table: a new page that shows patient data
is logged only once it is added here), after the view answered, from the resolved URL name
and its keyword arguments. What is logged:

- authenticated requests that were answered (status < 400), and those refused with 403 or
  404 (a labeller trying radiograph ids one by one is what a forensic review looks for);
  the status code tells them apart;
- not anonymous requests: they reach nothing (login redirect, 401/403), and failed logins
  are django-axes' log (``AccessAttempt``/``AccessFailureLog``);
- not static files (WhiteNoise answers them before this middleware), not /health/, not any
  URL outside the table.

One INSERT per logged request, nothing else. Rows are append-only: the admin shows them
read-only, and on PostgreSQL a trigger (migration 0006) refuses UPDATE and DELETE.
``python manage.py audit_export`` writes them as CSV.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DatabaseError, models
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

logger = logging.getLogger(__name__)

USER_AGENT_LENGTH = 200
QUERY_LENGTH = 300
# Refusals worth keeping: someone asked for an object they may not see (or that is not there).
REFUSALS_LOGGED = frozenset({403, 404})


class AccessLog(models.Model):
    """One request that touched patient data (or tried to)."""

    class Action(models.TextChoices):
        VIEW = "view"
        EXPORT = "export"
        CHANGE = "change"  # a POST/PUT/PATCH/DELETE on the object (a label, a resolution, an answer)

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # Kept without a foreign-key constraint and never cascaded: deleting an account keeps its log.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    username = models.CharField(max_length=150)
    action = models.CharField(max_length=16, choices=Action.choices)
    object_type = models.CharField(max_length=32)
    object_id = models.CharField(max_length=64, blank=True)
    url_name = models.CharField(max_length=64)
    method = models.CharField(max_length=8)
    status_code = models.PositiveSmallIntegerField()
    query = models.CharField(max_length=QUERY_LENGTH, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=USER_AGENT_LENGTH, blank=True)

    class Meta:
        app_label = "annotate"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["user", "created_at"], name="accesslog_user_time"),
            models.Index(fields=["object_type", "object_id", "created_at"], name="accesslog_object_time"),
        ]
        verbose_name = "access log entry"
        verbose_name_plural = "access log"

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.username} {self.action} {self.object_type} {self.object_id}"


def _from_kwarg(name: str) -> Callable[[HttpRequest, HttpResponse, dict[str, Any]], str]:
    def get(request: HttpRequest, response: HttpResponse, kwargs: dict[str, Any]) -> str:
        return str(kwargs.get(name, ""))

    return get


def _reader_case_shown(request: HttpRequest, response: HttpResponse, kwargs: dict[str, Any]) -> str:
    """The case a reader's /current/ reply put on the screen (none between phases)."""
    data = getattr(response, "data", None)
    case = data.get("case") if isinstance(data, dict) else None
    return str(case["id"]) if isinstance(case, dict) and case.get("id") is not None else ""


def _reader_case_answered(request: HttpRequest, response: HttpResponse, kwargs: dict[str, Any]) -> str:
    """The case a reader's answer was stored for (none when the answer was refused)."""
    data = getattr(response, "data", None)
    answer = data.get("answer") if isinstance(data, dict) else None
    return str(answer["case"]) if isinstance(answer, dict) and answer.get("case") is not None else ""


@dataclass(frozen=True)
class Audited:
    """How a URL name is logged: the object type, how its id is found, and the action of a GET."""

    object_type: str
    object_id: Callable[[HttpRequest, HttpResponse, dict[str, Any]], str] = _from_kwarg("pk")
    action: str = AccessLog.Action.VIEW


def _none(request: HttpRequest, response: HttpResponse, kwargs: dict[str, Any]) -> str:
    return ""


# Every URL that shows or exports patient data, reader-study cases or ground truth.
# tests/test_url_permissions.py holds every URL of the site; this table is the subset that is logged.
AUDITED: dict[str, Audited] = {
    # The archive: a radiograph's page, its image and its pixels (the viewer), by page and by API.
    "radiograph_detail": Audited("radiograph"),
    "radiograph_preview": Audited("radiograph"),
    "radiograph-pixels": Audited("radiograph"),
    "radiograph-detail": Audited("radiograph"),
    "radiograph-preview": Audited("radiograph"),
    # Labelling and adjudication: each shows one radiograph.
    "label_page": Audited("assignment"),
    "assignment-detail": Audited("assignment"),
    "assignment-submit": Audited("assignment"),
    "adjudicate_page": Audited("adjudication"),
    "adjudication-detail": Audited("adjudication"),
    "adjudication-resolve": Audited("adjudication"),
    # The model's reading of a radiograph and its heatmaps (also the worklist's).
    "radiograph_predictions": Audited("radiograph"),
    "radiograph-predictions": Audited("radiograph"),
    "prediction-heatmap": Audited("prediction"),
    "worklist": Audited("worklist", _none),
    "worklist-api": Audited("worklist", _none),
    # Reader studies: the case on a reader's screen, its crop, pixels and heatmap.
    "reading_page": Audited("reader_study"),
    "reader-current": Audited("reader_case", _reader_case_shown),
    "reader-answer": Audited("reader_case", _reader_case_answered),
    "reader-case-crop": Audited("reader_case"),
    "reader-case-pixels": Audited("reader_case"),
    "reader-case-heatmap": Audited("reader_case"),
    # Exports: ground truth, everyone's labels, dataset tables, model files, study results.
    "ground-truth": Audited("ground_truth", _none, AccessLog.Action.EXPORT),
    "annotations-export": Audited("annotations", _none, AccessLog.Action.EXPORT),
    "annotations-import": Audited("annotations", _none),
    "dataset-hips-csv": Audited("dataset", action=AccessLog.Action.EXPORT),
    "model-file": Audited("model_version", action=AccessLog.Action.EXPORT),
    "study_export_file": Audited("reader_study", action=AccessLog.Action.EXPORT),
    "study_report_file": Audited("reader_study", action=AccessLog.Action.EXPORT),
    # Radiographs received over HTTP (STOW-RS): who sent them.
    "dicomweb-stow": Audited("radiograph", _none),
}

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def client_ip(request: HttpRequest) -> str | None:
    """The client's address as django-axes sees it (its AXES_IPWARE_* settings for proxies)."""
    from axes.helpers import get_client_ip_address

    return get_client_ip_address(request) or None


def access_record(
    *,
    user: Any,
    action: str,
    object_type: str,
    object_id: Any = "",
    url_name: str = "",
    method: str = "",
    status_code: int = 200,
    query: str = "",
    ip_address: str | None = None,
    user_agent: str = "",
) -> AccessLog:
    """Append one row (also for accesses outside HTTP, e.g. a command that exports)."""
    authenticated = user is not None and getattr(user, "is_authenticated", False)
    return AccessLog.objects.create(
        user=user if authenticated else None,
        username=user.get_username() if authenticated else str(user or ""),
        action=action,
        object_type=object_type,
        object_id=str(object_id or "")[:64],
        url_name=url_name[:64],
        method=method[:8],
        status_code=status_code,
        query=query[:QUERY_LENGTH],
        ip_address=ip_address,
        user_agent=user_agent[:USER_AGENT_LENGTH],
    )


def access_from_request(request: HttpRequest, response: HttpResponse) -> AccessLog | None:
    """The row for this request, written when its URL is audited and its user logged in."""
    match = getattr(request, "resolver_match", None)
    if match is None or match.namespace:
        return None
    entry = AUDITED.get(match.url_name or "")
    if entry is None:
        return None
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    status = response.status_code
    if status >= 400 and status not in REFUSALS_LOGGED:
        return None
    action = entry.action if request.method in READ_METHODS else AccessLog.Action.CHANGE
    return access_record(
        user=user,
        action=action,
        object_type=entry.object_type,
        object_id=entry.object_id(request, response, match.kwargs),
        url_name=match.url_name,
        method=request.method or "",
        status_code=status,
        query=request.META.get("QUERY_STRING", ""),
        ip_address=client_ip(request),
        user_agent=request.META.get("HTTP_USER_AGENT", ""),
    )


class AuditMiddleware:
    """Writes the access log after the view answered (see the module docstring).

    Placed after AuthenticationMiddleware; DRF's token authentication sets ``request.user``
    on the Django request too, so API clients with a token are logged under their account.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        try:
            access_from_request(request, response)
        except DatabaseError:
            # The answer is already made; a lost log row is reported loudly, not turned into a 500.
            logger.exception("could not write the access log for %s %s", request.method, request.path)
        return response
