"""Files written per file, made durable per batch: the ingest's write path.

``stage`` writes a file's bytes to a temporary name beside its final one, without waiting for the
disk; ``make_durable`` then, for a whole batch, fdatasyncs each temporary file, renames it into
place and fsyncs the folders. A final name thus only ever holds bytes that are on the disk, and the
caller commits its rows after ``make_durable``: no row names a file a crash could lose.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.core.files.storage import default_storage

from common.storage import DIRECTORY_MODE, FILE_MODE, Buffers


@dataclass
class Staged:
    """A file written under a temporary name (``fd`` open), not yet durable nor in place; or, where
    the storage is not a local folder (``temporary`` empty), saved already."""

    name: str  # the storage name
    path: str = ""  # its final path
    temporary: str = ""
    fd: int = -1
    synced: bool = False  # its bytes are on the disk already (fdatasynced where it was written)


def _storage_path(name: str) -> str | None:
    try:
        return str(default_storage.path(name))
    except NotImplementedError:
        return None


def stage(name: str, content: Buffers, *, sync: bool = False) -> Staged | None:
    """Write ``content`` to a temporary file beside ``name``'s final path, not renamed; None when
    ``name`` exists already (content-addressed: it holds these bytes). ``sync``: fdatasync it here
    (in the writing thread, so that the disk's wait overlaps the other threads' work), else in
    ``make_durable``."""
    path = _storage_path(name)
    if path is None:  # not a local folder: the storage's own (atomic) save
        if default_storage.exists(name):
            return None
        default_storage.save(name, content)
        return Staged(name)
    if os.path.exists(path):
        return None
    folder = os.path.dirname(path)
    makedirs: Any = getattr(default_storage, "_makedirs", None)  # AtomicFileSystemStorage: exact modes
    makedirs(folder) if makedirs is not None else os.makedirs(folder, mode=DIRECTORY_MODE, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=folder, prefix=".", suffix=".tmp")
    try:
        mode: Any = getattr(default_storage, "file_permissions_mode", None)
        os.fchmod(fd, FILE_MODE if mode is None else mode)
        for part in content.parts:
            view = memoryview(part).cast("B")
            while view:
                view = view[os.write(fd, view) :]
        if sync:
            os.fdatasync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(temporary)
        raise
    return Staged(name, path, temporary, fd, synced=sync)


def make_durable(staged: Iterable[Staged]) -> None:
    """Put a batch's staged files in place durably: fdatasync each not synced yet, rename
    it onto its final name, then fsync each folder that got a new entry (and a new folder's parent).
    Raises OSError (e.g. ENOSPC, which delayed allocation may report only here); the files of the
    batch not yet in place are then removed (``discard``), those in place stay (they are whole)."""
    staged = [s for s in staged if s.temporary]
    try:
        for s in staged:
            if not s.synced:
                os.fdatasync(s.fd)
        folders: set[str] = set()
        for s in staged:
            os.close(s.fd)
            s.fd = -1
            os.replace(s.temporary, s.path)
            s.temporary = ""
            folder = os.path.dirname(s.path)
            folders.update((folder, os.path.dirname(folder)))
        for folder in sorted(folders):
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    except BaseException:
        discard(staged)
        raise


def discard(staged: Iterable[Staged]) -> None:
    """Remove staged files not yet put in place (an error, or rows that will not be written)."""
    for s in staged:
        if s.fd >= 0:
            os.close(s.fd)
            s.fd = -1
        if s.temporary:
            try:
                os.unlink(s.temporary)
            except FileNotFoundError:
                pass
            s.temporary = ""
