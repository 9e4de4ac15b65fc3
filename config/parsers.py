"""A JSON parser with a bound on nesting depth (REST_FRAMEWORK's default parser).

``json.loads`` recurses once per level: a body of a few thousand ``[`` raises RecursionError,
a 500 for anyone who can post JSON, the anonymous token endpoint included. The depth is
counted first, outside strings, without recursion, and a body deeper than ``JSON_MAX_DEPTH``
is a 400 that says so."""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth(data: bytes) -> int:
    """The deepest nesting of arrays and objects in a JSON text (strings skipped); a text
    that is not valid JSON still gets a number, and the parser reports what is wrong."""
    brackets = np.frombuffer(_STRING.sub(b"", data).translate(None, _NOT_BRACKET), dtype=np.uint8)
    if brackets.size == 0:
        return 0
    steps = np.where((brackets == ord("[")) | (brackets == ord("{")), 1, -1)
    return int(np.cumsum(steps).max(initial=0))


class BoundedJSONParser(JSONParser):
    """DRF's JSONParser after a depth check (``JSON_MAX_DEPTH``, default 64)."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        data = stream.read() if stream is not None else b""
        limit = settings.JSON_MAX_DEPTH
        if json_depth(data) > limit:
            raise ParseError(f"JSON parse error - nested deeper than {limit} levels (JSON_MAX_DEPTH)")
        try:
            return super().parse(io.BytesIO(data), media_type, parser_context)
        except RecursionError:  # a backstop: the depth check comes first
            raise ParseError("JSON parse error - nested too deeply") from None
