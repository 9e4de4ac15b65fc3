"""The one CSV writer: every CSV the site and its commands produce is written through it.

A text cell that a spreadsheet would read as a formula (it begins with one of
:data:`FORMULA_STARTS`) is written with a single quote in front, as OWASP recommends; numbers stay
numbers, and quoting is the ``csv`` module's.
Design: docs/architecture/design-site.md
"""

from __future__ import annotations

import csv
import io
import numbers
import re
from collections.abc import Collection, Iterable
from typing import IO, Any

__all__ = ["FORMULA_STARTS", "PLAIN_NUMBER", "DictWriter", "Writer", "safe_cell", "unquote", "writer"]

#: The first characters that make a spreadsheet read a cell as a formula (OWASP's list).
FORMULA_STARTS: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")
#: One plain decimal number, sign and exponent allowed: left alone even when it begins with + or -.
PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def safe_cell(value: Any) -> Any:
    """``value`` as the writer writes it: numbers unchanged, None as "", formula-like text quoted."""
    if value is None:
        return ""
    if isinstance(value, numbers.Number):  # int, float, bool, Decimal, Fraction, NumPy scalars
        return value
    text = value if isinstance(value, str) else str(value)
    if text.startswith(FORMULA_STARTS) and PLAIN_NUMBER.fullmatch(text) is None:
        return "'" + text
    return text


def unquote(text: str) -> str:
    """The text a :func:`safe_cell` quote was put in front of (other text unchanged)."""
    if text.startswith("'") and text[1:].startswith(FORMULA_STARTS):
        return text[1:]
    return text


class Writer:
    """``csv.writer`` whose every cell goes through :func:`safe_cell`. Same arguments as ``csv.writer``.

    A cell holding a carriage return or a line feed is always quoted, whatever the line terminator:
    ``csv.writer(..., lineterminator="\\n")`` leaves a bare ``\\r`` unquoted, and a reader (or a
    spreadsheet) then ends the row there, so that ``x\\r=cmd`` would start a new row with a formula.
    Each row is formatted with a ``\\r\\n`` terminator (which makes the ``csv`` module quote both) and
    written with the terminator asked for.
    """

    def __init__(self, stream: IO[str], dialect: str | type[csv.Dialect] = "excel", **fmtparams: Any) -> None:
        self._stream = stream
        self._terminator = csv.writer(io.StringIO(), dialect, **fmtparams).dialect.lineterminator
        self._line = io.StringIO()
        self._writer = csv.writer(self._line, dialect, **{**fmtparams, "lineterminator": "\r\n"})

    def writerow(self, row: Iterable[Any]) -> Any:
        self._line.seek(0)
        self._line.truncate()
        self._writer.writerow([safe_cell(value) for value in row])
        return self._stream.write(self._line.getvalue()[:-2] + self._terminator)

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def writer(stream: IO[str], dialect: str | type[csv.Dialect] = "excel", **fmtparams: Any) -> Writer:
    """The site's ``csv.writer``."""
    return Writer(stream, dialect, **fmtparams)


class DictWriter(csv.DictWriter):
    """``csv.DictWriter`` whose every cell goes through :func:`safe_cell`."""

    def __init__(
        self,
        f: IO[str],
        fieldnames: Collection[str],
        restval: Any = "",
        extrasaction: str = "raise",
        dialect: str | type[csv.Dialect] = "excel",
        **fmtparams: Any,
    ) -> None:
        super().__init__(f, fieldnames, restval, extrasaction, dialect, **fmtparams)  # type: ignore[arg-type]
        # csv.DictWriter writes every row through this; it calls only writerow and writerows, which Writer has.
        self.writer = Writer(f, dialect, **fmtparams)  # type: ignore[assignment]
