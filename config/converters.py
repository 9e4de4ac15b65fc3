"""The ``id`` path converter: a database id in a URL, bounded to 63 bits.

Django's ``int`` converter takes any number of digits, and an id beyond a 64-bit integer
raises OverflowError (SQLite) or DataError (PostgreSQL): a 500. Eighteen digits stay below
2**63 - 1, so a longer number does not match and the answer is 404. Registered on import;
every urls.py imports this module and writes ``<id:pk>``."""

from __future__ import annotations

from django.urls import register_converter

ID_REGEX = "[0-9]{1,18}"  # 10**18 - 1 < 2**63 - 1: every such id fits a BigAutoField


class IdConverter:
    regex = ID_REGEX

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int | str) -> str:
        return str(int(value))


register_converter(IdConverter, "id")
