"""Roles of the platform, kept as Django groups: ``labeler``, ``adjudicator``, ``reader``,
``researcher``, and staff (everything, plus the admin). Who may see and do what:
docs/user/roles-and-pages.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseBase
from rest_framework.permissions import BasePermission

LABELER = "labeler"
ADJUDICATOR = "adjudicator"
READER = "reader"
RESEARCHER = "researcher"
ROLES = (LABELER, ADJUDICATOR, READER, RESEARCHER)

#: request.user: a signed-in user or an anonymous one.
AnyUser = User | AnonymousUser


def user_roles(user: AnyUser) -> frozenset[str]:
    """The roles a user holds; staff hold every role."""
    if not user.is_authenticated or not user.is_active:
        return frozenset()
    if user.is_staff:
        return frozenset(ROLES)
    cached = getattr(user, "_role_cache", None)
    if cached is None:
        cached = frozenset(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
        user._role_cache = cached  # type: ignore[attr-defined]  # a cache on this request's user object
    return cached


def has_role(user: AnyUser, *roles: str) -> bool:
    return bool(user_roles(user) & set(roles))


def role_required(*roles: str) -> Callable[[Callable[..., HttpResponseBase]], Callable[..., HttpResponseBase]]:
    """View decorator: anonymous users go to the login page, others need a role."""

    def decorator(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not has_role(request.user, *roles):
                raise PermissionDenied(f"This page needs the role {' or '.join(roles)}.")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


class HasRole(BasePermission):
    """DRF permission: ``permission_classes = [HasRole.of(RESEARCHER)]``."""

    roles: Iterable[str] = ()

    @classmethod
    def of(cls, *roles: str) -> type[HasRole]:
        return type(f"HasRole_{'_'.join(roles)}", (cls,), {"roles": roles})

    def has_permission(self, request: Any, view: Any) -> bool:
        return has_role(request.user, *self.roles)


def roles_context(request: HttpRequest) -> dict[str, Any]:
    roles = user_roles(request.user)
    return {"roles": roles, **{f"is_{role}": role in roles for role in ROLES}}
