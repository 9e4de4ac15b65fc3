"""The API's OpenAPI schema: one error body (``ErrorSerializer``) for every error answer, documented
on every operation by ``AutoSchema``: 400 everywhere, 401/403 behind a login or role, 404 for an
object or a page past the last, 415 where there is a body, 429 for the throttles.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from rest_framework import serializers
from rest_framework.permissions import AllowAny


class ErrorSerializer(serializers.Serializer):
    """An API error: ``detail`` says what went wrong; an input error may instead (or also)
    carry one key per rejected field, with that field's messages."""

    detail = serializers.CharField(required=False, help_text="what went wrong")


class DetailSerializer(serializers.Serializer):
    """An answer with a message only (e.g. 409: the training run has ended already)."""

    detail = serializers.CharField()


def _takes_input(schema: AutoSchema) -> bool:
    return schema.method in {"POST", "PUT", "PATCH"}


class AutoSchema(SpectacularAutoSchema):
    """drf-spectacular's schema, plus the error answers (see the module's docstring)."""

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        codes = ["400", "429"]
        if _takes_input(self):
            codes.append("415")
        if not all(isinstance(p, AllowAny) for p in self.view.get_permissions()):
            codes += ["401", "403"]
        if "{" in self.path or self.method == "GET" and self._is_list_view() and self._get_paginator():
            codes.append("404")  # an object that is not there, or a page past the last
        for code in codes:
            if code not in responses:
                responses[code] = self._get_response_for_code(ErrorSerializer, code, direction=direction)
        return dict(sorted(responses.items()))
