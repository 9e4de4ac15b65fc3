"""The one atomic file write: a file appears under its final name whole, or not at all.

Written to ``.<name>.<random>.tmp`` beside the target, fsynced, given its mode and renamed into
place; on error the temporary file is removed. Pure standard library: ``ml.core`` uses it too.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def _umask() -> int:
    """The process's umask, read without changing it where /proc tells it."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_write(
    path: Path | str,
    *,
    mode: int | None = None,
    text: bool = False,
    encoding: str | None = None,
    newline: str | None = None,
    prefix: str | None = None,
    suffix: str = ".tmp",
) -> Iterator[IO[Any]]:
    """``with atomic_write(path) as handle: handle.write(...)``: the file is renamed onto ``path``
    when the block ends without an error. ``mode``: the file's permissions (default: what
    ``open()`` would give, 0666 less the umask); ``text``, ``encoding``, ``newline`` as ``open()``.
    ``prefix`` and ``suffix`` name the temporary file (default ``.<name>.`` and ``.tmp``)."""
    path = Path(path)
    fd, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}." if prefix is None else prefix, suffix=suffix
    )
    try:
        with os.fdopen(fd, "w" if text else "wb", encoding=encoding, newline=newline) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, (0o666 & ~_umask()) if mode is None else mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_atomic(path: Path | str, data: bytes, *, mode: int | None = None) -> Path:
    """Write ``data`` to ``path`` with ``atomic_write``; returns the path."""
    with atomic_write(path, mode=mode) as handle:
        handle.write(data)
    return Path(path)
