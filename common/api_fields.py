"""What the API's output serializers share: a timestamp field written as Python's ``isoformat()``
(an offset such as ``+00:00``, microseconds when there are any), as some answers have always
written theirs, and ``serialize_many`` (a list answer, typed as a list)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any, cast

from rest_framework import serializers


class IsoDateTimeField(serializers.DateTimeField):
    """A timestamp as ``datetime.isoformat()`` writes it, in the time zone it has."""

    def to_representation(self, value: dt.datetime | str | None) -> Any:  # str, or None for no time
        if not value:
            return None
        return value if isinstance(value, str) else value.isoformat()


def serialize_many(serializer: type[serializers.BaseSerializer], items: Iterable[Any], **kwargs: Any) -> list[Any]:
    """``serializer(items, many=True).data``: one answer per item (typed as the list it is)."""
    return cast(list[Any], serializer(items, many=True, **kwargs).data)
