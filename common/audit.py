"""The access log: who looked at which radiograph, reader-study case, ground truth or export.

``AuditMiddleware`` writes one row per answered (or 403/404-refused) authenticated request to a URL
named in an app's ``audited`` table, from the resolved URL name and its arguments, after the view
answered.
Design: docs/architecture/design-site.md
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse

logger = logging.getLogger(__name__)

# Refusals worth keeping: someone asked for an object they may not see (or that is not there).
REFUSALS_LOGGED = frozenset({403, 404})
# The actions of a row (``annotate.audit.AccessLog.Action``'s values).
VIEW = "view"
EXPORT = "export"
CHANGE = "change"  # a POST/PUT/PATCH/DELETE on the object (a label, a resolution, an answer)

ObjectId = Callable[[HttpRequest, HttpResponse, dict[str, Any]], str]


def from_kwarg(name: str) -> ObjectId:
    """The object id is the URL's keyword argument ``name``."""

    def get(request: HttpRequest, response: HttpResponse, kwargs: dict[str, Any]) -> str:
        return str(kwargs.get(name, ""))

    return get


def no_id(request: HttpRequest, response: HttpResponse, kwargs: dict[str, Any]) -> str:
    """No object id (a list, an export of everything)."""
    return ""


@dataclass(frozen=True)
class Audited:
    """How a URL name is logged: the object type, how its id is found, and the action of a GET."""

    object_type: str
    object_id: ObjectId = from_kwarg("pk")
    action: str = VIEW


@functools.cache
def audited_urls() -> dict[str, Audited]:
    """Every URL that shows or exports patient data, reader-study cases or ground truth: the union
    of the ``audited`` tables the apps declare on their AppConfig. tests/test_url_permissions.py
    holds every URL of the site; this table is the subset that is logged."""
    table: dict[str, Audited] = {}
    for config in apps.get_app_configs():
        for name, entry in getattr(config, "audited", {}).items():
            if name in table:
                raise ValueError(f"URL name {name!r} is audited by two apps")
            table[name] = entry
    return table


READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def client_ip(request: HttpRequest) -> str | None:
    """The client's address as django-axes sees it (its AXES_IPWARE_* settings for proxies)."""
    from axes.helpers import get_client_ip_address

    return get_client_ip_address(request) or None


def access_from_request(request: HttpRequest, response: HttpResponse) -> Any:
    """The row for this request, written when its URL is audited and its user logged in."""
    match = getattr(request, "resolver_match", None)
    if match is None or match.namespace:
        return None
    entry = audited_urls().get(match.url_name or "")
    if entry is None:
        return None
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    status = response.status_code
    if status >= 400 and status not in REFUSALS_LOGGED:
        return None
    action = entry.action if request.method in READ_METHODS else CHANGE
    access_record = apps.get_model("annotate", "AccessLog").record
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
