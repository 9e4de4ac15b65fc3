"""File storage that never leaves a half-written file under its final name."""

from __future__ import annotations

import os
import tempfile
from typing import IO, Any

from django.core.files.base import File
from django.core.files.storage import FileSystemStorage


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
        os.makedirs(directory, exist_ok=True)
        fd, tmp_path = tempfile.mkstemp(dir=directory, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                if isinstance(content, Buffers):
                    for part in content.parts:
                        handle.write(part)
                elif hasattr(content, "chunks"):
                    for chunk in content.chunks():
                        handle.write(chunk)
                else:
                    handle.write(content.read())
                handle.flush()
                os.fsync(handle.fileno())
            if self.file_permissions_mode is not None:
                os.chmod(tmp_path, self.file_permissions_mode)
            else:
                os.chmod(tmp_path, 0o644)
            os.replace(tmp_path, full_path)
        except BaseException:
            if os.path.exists(tmp_path):
                os.unlink(tmp_path)
            raise
        return name.replace("\\", "/")

    def get_available_name(self, name: str, max_length: int | None = None) -> str:
        # Content-addressed names: the same name means the same bytes, so an
        # existing file is overwritten with identical content, not renamed.
        return name
