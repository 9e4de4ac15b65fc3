"""The API token endpoint, the tokens page, and the login and password-reset pages.

Password reset exists only where mail is configured (``EMAIL_HOST``): without it, a reset
form that said "we have sent you a mail" would be a lie, so its pages answer 404 and the
login page offers no link.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.signals import user_logged_in
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import tokens
from common.api_schema import ErrorSerializer
from common.http import AuthenticatedHttpRequest
from config.parsers import BoundedJSONParser


def mail_configured() -> bool:
    """Whether the site can send mail: an SMTP host is set (``EMAIL_HOST``)."""
    return bool(settings.EMAIL_HOST)


class TokenObtainView(APIView):
    """``POST /api/token/`` with username and password: a new token, valid for
    ``TOKEN_TTL_DAYS``. Each call makes another token; each can be revoked on its own."""

    authentication_classes: list[Any] = []  # the credentials are the input
    permission_classes = [AllowAny]
    parser_classes = [FormParser, MultiPartParser, BoundedJSONParser]
    serializer_class = AuthTokenSerializer

    class NewTokenSerializer(serializers.Serializer):
        """The answer: the token (shown once, never stored) and when it expires."""

        token = serializers.CharField()
        expiry = serializers.DateTimeField()

    @extend_schema(
        request=AuthTokenSerializer,
        # 400: wrong credentials; 403: locked out by django-axes.
        responses={200: NewTokenSerializer, 400: ErrorSerializer, 403: ErrorSerializer},
    )
    def post(self, request: Request) -> Response:
        # authenticate() through the serializer: django-axes counts failures and locks out.
        form = AuthTokenSerializer(data=request.data, context={"request": request})
        form.is_valid(raise_exception=True)
        user = form.validated_data["user"]
        row, token = tokens.token_create(user=user)
        # A successful login as far as axes is concerned: it resets the failure count.
        user_logged_in.send(sender=user.__class__, request=request._request, user=user)
        return Response(self.NewTokenSerializer({"token": token, "expiry": row.expiry}).data)


@login_required
def token_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The user's own API tokens: when each was made and when it expires, each revocable."""
    context = {"tokens": tokens.tokens_of(user=request.user), "ttl_days": settings.TOKEN_TTL_DAYS}
    return render(request, "accounts/tokens.html", context)


@login_required
@require_POST
def token_revoke(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Revoke one of the user's own tokens (``key``: its first characters, as the list shows)."""
    key = request.POST.get("key", "")
    if not key or len(key) > 64:
        return HttpResponse("say which token to revoke (key)", status=400, content_type="text/plain")
    if not tokens.token_revoke(user=request.user, key=key):
        raise Http404("no such token of yours")
    messages.success(request, f"Token {key[:8]}… revoked: it no longer works.")
    return redirect("account_tokens")


class LoginView(auth_views.LoginView):
    """Django's login page, which offers password reset only where mail can be sent."""

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["password_reset_available"] = mail_configured()
        return context


def mail_required(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """404 instead of ``view`` where mail is not configured."""

    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not mail_configured():
            raise Http404("password reset needs mail, and no mail is configured")
        return view(request, *args, **kwargs)

    wrapped.__doc__ = view.__doc__
    return wrapped
