"""API tokens: django-rest-knox keeps only a SHA-512 digest of each token and its expiry.

A token works until it expires (``TOKEN_TTL_DAYS``), is revoked, or its user is deactivated or
locked out by django-axes (the same lockout rule as the login form). Clients keep sending
``Authorization: Token <token>``.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import User
from django.db.models import Q, QuerySet
from django.utils import timezone
from knox.auth import TokenAuthentication as KnoxTokenAuthentication
from knox.models import AuthToken
from knox.settings import knox_settings
from rest_framework import exceptions
from rest_framework.request import Request

# What knox hands out: its prefix (none by default) and 64 hex digits.
_TOKEN = re.compile(r"[0-9a-f]+")


def token_create(*, user: User) -> tuple[AuthToken, str]:
    """A new API token of ``user``: its row (digest, created, expiry) and the token itself,
    which is shown once and never stored. Valid for ``TOKEN_TTL_DAYS``."""
    return AuthToken.objects.create(user=user)


def tokens_of(*, user: User) -> QuerySet[AuthToken]:
    """The user's tokens that have not expired, newest first (one without an expiry, made by
    hand, is listed too, so that it can be revoked)."""
    live = Q(expiry__isnull=True) | Q(expiry__gt=timezone.now())
    return AuthToken.objects.filter(live, user=user).order_by("-created")


def token_revoke(*, user: User, key: str) -> bool:
    """Revoke the user's token whose first characters (``token_key``, shown on the tokens page)
    are ``key``. Another user's token is never touched. True when one was revoked."""
    deleted, _ = AuthToken.objects.filter(user=user, token_key=key).delete()
    return deleted > 0


def user_locked_out(request: Request, user: AbstractBaseUser) -> bool:
    """Whether django-axes refuses this user from this request's address, as it would refuse a
    login with the right password (AXES_LOCKOUT_PARAMETERS decides what a lockout covers)."""
    if not settings.AXES_ENABLED:
        return False
    from axes.handlers.proxy import AxesProxyHandler
    from axes.helpers import get_credentials

    django_request = getattr(request, "_request", request)
    return not AxesProxyHandler.is_allowed(django_request, get_credentials(user.get_username()))


class TokenAuthentication(KnoxTokenAuthentication):
    """Knox's token authentication, which refuses expired tokens (and deletes them) and
    deactivated users, plus: a locked-out user's tokens are refused, and a malformed token is
    a 401 (knox would raise on bytes that are not UTF-8, or send a NUL byte to the database)."""

    def authenticate(self, request: Request) -> tuple[Any, AuthToken] | None:
        result = super().authenticate(request)
        if result is not None and user_locked_out(request, result[0]):
            from axes.helpers import get_lockout_message

            raise exceptions.AuthenticationFailed(get_lockout_message())
        return result

    def authenticate_credentials(self, token: bytes) -> tuple[Any, AuthToken]:
        try:
            text = token.decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        prefix = knox_settings.TOKEN_PREFIX
        body = text[len(prefix) :] if text.startswith(prefix) else ""
        if len(body) != knox_settings.AUTH_TOKEN_CHARACTER_LENGTH or not _TOKEN.fullmatch(body):
            raise exceptions.AuthenticationFailed("Invalid token.")
        return super().authenticate_credentials(token)
