"""Request types for views that only a signed-in user reaches.

Behind ``login_required``, ``role_required`` or DRF's ``IsAuthenticated`` ``request.user`` is a
``User``, never ``AnonymousUser``; annotating the view's request with these types says so to mypy.
They are annotations only: Django and DRF still build their own request objects.
"""

from __future__ import annotations

from django.contrib.auth.models import User
from django.http import HttpRequest
from rest_framework.request import Request


class AuthenticatedHttpRequest(HttpRequest):
    """A Django request whose user has signed in."""

    user: User


class AuthenticatedRequest(Request):
    """A DRF request whose user has signed in."""

    user: User
