"""The access log's rows (``AccessLog``) and ``access_record``, which appends one (also for an
access outside HTTP, e.g. a command that exports). What is logged, and when, is ``common.audit``.

Rows are append-only: the admin shows them read-only, and on PostgreSQL a trigger (migration 0006)
refuses UPDATE and DELETE. ``python manage.py audit_export`` writes them as CSV.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import models
from django.utils import timezone

from common.roles import AnyUser

USER_AGENT_LENGTH = 200
QUERY_LENGTH = 300


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

    @classmethod
    def record(
        cls,
        *,
        user: AnyUser | str | None,
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
        """Append one row (also for accesses outside HTTP, e.g. a command that exports: ``user``
        is then a name such as ``cli:alice``)."""
        account = user if isinstance(user, User) and user.is_authenticated else None
        return cls.objects.create(
            user=account,
            username=account.get_username() if account is not None else str(user or ""),
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


# Append one row (also for accesses outside HTTP, e.g. a command that exports).
access_record = AccessLog.record
