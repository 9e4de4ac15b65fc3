"""Security pieces that Django 5.2 and DRF do not ship as settings alone.

The CSP and Permissions-Policy headers, 413 for oversized bodies (and a Content-Length limit on the
anonymous endpoints), and DRF's throttles counted in the shared ``throttle`` cache.
Design: docs/architecture/design-site.md
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.core.cache import caches
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from rest_framework import throttling
from rest_framework.settings import api_settings

logger = logging.getLogger(__name__)


def lockout_response(request: HttpRequest, original_response: Any = None, credentials: Any = None) -> HttpResponse:
    """django-axes' answer to a locked-out login (AXES_LOCKOUT_CALLABLE): JSON for the API,
    the lockout page for the login form; 429 either way."""
    from axes.helpers import get_client_username, get_cool_off, get_failure_limit, get_lockout_message

    cool_off = get_cool_off(request)
    context = {
        "username": get_client_username(request, credentials) or "",
        "failure_limit": get_failure_limit(request, credentials),
        "cooloff_timedelta": cool_off,
    }
    status = settings.AXES_HTTP_RESPONSE_CODE  # type: ignore[misc]  # django-axes adds its defaults at import
    if request.path_info.startswith("/api/"):
        detail = f"{get_lockout_message()} ({context['failure_limit']} failed logins from this address)"
        return JsonResponse({"detail": detail}, status=status)
    return render(request, "registration/lockout.html", context, status=status)


def lockout_reaches_django_request(sender: Any, credentials: Any = None, request: Any = None, **kwargs: Any) -> None:
    """DRF's token view hands axes its own Request; axes marks the lockout on that wrapper,
    which AxesMiddleware never sees. Copy the mark to the Django request underneath so the API
    client gets the same 429 lockout answer as the login form. Connected by
    SecurityHeadersMiddleware when the handler starts, after every app is ready, so it runs
    after axes' own receiver has marked the request."""
    inner = getattr(request, "_request", None)
    if inner is not None and getattr(request, "axes_locked_out", False):
        inner.axes_locked_out = True
        inner.axes_credentials = getattr(request, "axes_credentials", None)


class SecurityHeadersMiddleware:
    """Adds ``CONTENT_SECURITY_POLICY`` (report-only while ``CSP_REPORT_ONLY``, the default with
    DEBUG on) and ``PERMISSIONS_POLICY`` (settings) to every answer that has not set its own."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        user_login_failed.connect(lockout_reaches_django_request, dispatch_uid="config.security.lockout_mark")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        policy = getattr(settings, "CONTENT_SECURITY_POLICY", "")
        header = "Content-Security-Policy-Report-Only" if settings.CSP_REPORT_ONLY else "Content-Security-Policy"
        if policy and "Content-Security-Policy" not in response and header not in response:
            response[header] = policy
        permissions = getattr(settings, "PERMISSIONS_POLICY", "")
        if permissions and "Permissions-Policy" not in response:
            response["Permissions-Policy"] = permissions
        return response


class BodyTooLargeMiddleware:
    """A body that a view reads over DATA_UPLOAD_MAX_MEMORY_SIZE (or with more fields than
    DATA_UPLOAD_MAX_NUMBER_FIELDS/FILES) is refused with 413 and a message that names the
    limit, instead of Django's bare "Bad Request (400)". That covers the JSON APIs; a form body
    that the CSRF check reads first still gets Django's 400."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent

        if isinstance(exception, RequestDataTooBig):
            detail = (
                f"the request body is over {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes "
                "(DATA_UPLOAD_MAX_MEMORY_SIZE); files go in multipart uploads"
            )
        elif isinstance(exception, TooManyFieldsSent | TooManyFilesSent):
            detail = f"the request has too many fields or files ({exception})"
        else:
            return None
        if request.path_info.startswith("/api/"):
            return JsonResponse({"detail": detail}, status=413)
        return HttpResponse(detail, status=413, content_type="text/plain; charset=utf-8")


class AnonymousBodyLimitMiddleware:
    """413 for a body over ``ANONYMOUS_BODY_MAX_BYTES`` (8 KB) posted to an endpoint that takes
    requests from anyone (``ANONYMOUS_BODY_URL_NAMES``: the API token, login and password reset).
    First in MIDDLEWARE: the answer comes from the Content-Length alone, nothing of the body is
    read or written to disk. (A body without a Content-Length, chunked, is not read by Django's
    request at all: it sees an empty body.)"""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method not in ("GET", "HEAD", "OPTIONS") and self._anonymous_endpoint(request):
            limit = settings.ANONYMOUS_BODY_MAX_BYTES
            length = request.META.get("CONTENT_LENGTH") or "0"
            size = int(length) if length.isascii() and length.isdigit() and len(length) < 19 else None
            if size is None or size > limit:
                detail = f"the request body is over {limit} bytes (ANONYMOUS_BODY_MAX_BYTES)"
                if size is None:
                    detail = f"the Content-Length {length[:40]!r} is not a number"
                if request.path_info.startswith("/api/"):
                    return JsonResponse({"detail": detail}, status=413 if size else 400)
                return HttpResponse(detail, status=413 if size else 400, content_type="text/plain; charset=utf-8")
        return self.get_response(request)

    @staticmethod
    def _anonymous_endpoint(request: HttpRequest) -> bool:
        from django.urls import Resolver404, resolve

        try:
            match = resolve(request.path_info)
        except Resolver404:
            return False
        return match.url_name in settings.ANONYMOUS_BODY_URL_NAMES


class _SharedCacheThrottle:
    """Counts in ``caches["throttle"]``, reads its rate when asked (so settings changes apply),
    and lets the request through when the cache is down."""

    cache_alias = "throttle"
    scope: str | None  # DRF's throttles set it

    @property
    def cache(self) -> Any:  # DRF reads ``self.cache``
        return caches[self.cache_alias]

    def get_rate(self) -> str | None:
        # DRF-stubs type the rates as numbers, DRF's rates are strings such as "100/min"; a scope of
        # None finds no rate, as in DRF's own get_rate.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)  # type: ignore[arg-type,return-value]

    def allow_request(self, request: Any, view: Any) -> bool:
        try:
            return super().allow_request(request, view)  # type: ignore[misc]
        except Exception as exc:  # noqa: BLE001 - any cache failure (Redis down) suspends the limit
            logger.warning("API throttling suspended: the throttle cache is unavailable (%s)", exc)
            return True


# DRF-stubs declare ``cache`` a plain attribute; DRF only reads it, so the read-only property is enough.
class AnonRateThrottle(_SharedCacheThrottle, throttling.AnonRateThrottle):  # type: ignore[override]
    """Requests without a logged-in user, per client address (``THROTTLE_ANON_RATE``)."""

    def __init__(self) -> None:  # DRF parses the rate at construction: do it from live settings
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)


class UserRateThrottle(_SharedCacheThrottle, throttling.UserRateThrottle):  # type: ignore[override]  # as above
    """Requests of one logged-in user or API token (``THROTTLE_USER_RATE``); anonymous ones
    are AnonRateThrottle's alone (DRF's would count them under this rate too, per address)."""

    def __init__(self) -> None:
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        if not (request.user and request.user.is_authenticated):
            return None
        return super().get_cache_key(request, view)
