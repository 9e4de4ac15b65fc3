"""File storage that never leaves a half-written file under its final name, and whose files
and folders no other user of the machine can read (0640 / 0750 by default)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any

from django.core.files.base import File
from django.core.files.storage import FileSystemStorage

from common.atomicfile import atomic_write

FILE_MODE = 0o640  # settings FILE_UPLOAD_PERMISSIONS, unless set otherwise there
DIRECTORY_MODE = 0o750  # settings FILE_UPLOAD_DIRECTORY_PERMISSIONS


def private_dir(path: Path | str, mode: int = 0o700) -> Path:
    """Create a folder (and its parents) that only the service's user may enter, and make an
    existing one so: for received files before they are de-identified."""
    path = Path(path)
    path.mkdir(mode=mode, parents=True, exist_ok=True)
    os.chmod(path, mode)
    return path


class Buffers(File):
    """File content given as a few in-memory buffers (bytes, memoryviews),
    written as they are: no copy into one big bytes object, no chunking."""

    def __init__(self, *parts: bytes | memoryview) -> None:
        super().__init__(None)
        self.parts = parts

    @property
    def size(self) -> int:
        return sum(memoryview(part).nbytes for part in self.parts)

    def chunks(self, chunk_size: int | None = None) -> Any:
        return iter(self.parts)

    def close(self) -> None:
        pass


class AtomicFileSystemStorage(FileSystemStorage):
    """FileSystemStorage that writes to a temporary file and renames it.

    A crash mid-write leaves at most a stray ``.tmp`` file, never a truncated
    file that looks whole. Names are content-addressed by the callers, so a
    name that already exists already holds the same bytes and is kept as is.
    """

    def _save(self, name: str, content: IO[Any]) -> str:
        full_path = self.path(name)
        directory = os.path.dirname(full_path)
        self._makedirs(directory)
        # The group (a backup user) may read, others never.
        mode = self.file_permissions_mode if self.file_permissions_mode is not None else FILE_MODE
        with atomic_write(full_path, mode=mode, prefix=".") as handle:
            if isinstance(content, Buffers):
                for part in content.parts:
                    handle.write(part)
            elif hasattr(content, "chunks"):
                for chunk in content.chunks():
                    handle.write(chunk)
            else:
                handle.write(content.read())
        return name.replace("\\", "/")

    def _makedirs(self, directory: str) -> None:
        mode = self.directory_permissions_mode if self.directory_permissions_mode is not None else DIRECTORY_MODE
        if os.path.isdir(directory):
            return
        # Each new level gets the mode exactly (os.makedirs' mode is filtered by the umask).
        parent = os.path.dirname(directory)
        if parent and parent != directory and not os.path.isdir(parent):
            self._makedirs(parent)
        try:
            os.mkdir(directory, mode)
        except FileExistsError:
            return  # another thread made it
        os.chmod(directory, mode)

    def get_available_name(self, name: str, max_length: int | None = None) -> str:
        # Content-addressed names: the same name means the same bytes, so an
        # existing file is overwritten with identical content, not renamed.
        return name
