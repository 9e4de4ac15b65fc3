"""The API's OpenAPI schema: one error body for every error answer, documented on every operation.

Every API error is JSON (config/errors.py, DRF's handler): ``{"detail": "..."}``, or for a
rejected input one key per field with its messages. ``AutoSchema`` (``DEFAULT_SCHEMA_CLASS``)
documents the error answers each operation can give with that one ``ErrorSerializer``, so that
a client (and tests/test_api_schema.py) can rely on the status codes the schema lists:

- 400 on every operation (a rejected input, or a request Django refuses: config.errors);
- 401 and 403 where it needs a login or a role (DRF answers 403 for a missing session login,
  401 for a bad token);
- 404 where its path names an object, or it is a paginated list (a page past the last);
- 415 where it takes a body (a content type its parsers do not read);
- 429 on every operation (config.security's throttles).
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
