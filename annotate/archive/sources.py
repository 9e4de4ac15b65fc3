"""Finding the files to import: single files, folders (recursively) and .zip archives.

No Django here. Archives are read entry by entry in memory, never extracted,
and an entry whose name would escape the archive's folder (absolute path,
``..``) is refused outright, as is an archive that would expand past a limit.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

ZIP_MAGIC = b"PK\x03\x04"
# A DICOM compresses well, but not a thousand times: past this ratio an entry
# is a zip bomb, whatever its declared size.
MAX_COMPRESSION_RATIO = 200


class SourceError(Exception):
    """A file that cannot be read; its message is the one-line reason."""


@dataclass
class SourceItem:
    name: str
    read: Callable[[], bytes] = field(repr=False)
    error: str = ""
    # A plain file may be read in any thread (the ingest reads it in its pool); a zip entry is
    # read in order by the thread that iterates the archive.
    any_thread: bool = False


def _read_file(path: Path, max_bytes: int) -> Callable[[], bytes]:
    def read() -> bytes:
        try:
            size = path.stat().st_size
            if size > max_bytes:
                raise SourceError(f"file too large ({size // 1024**2} MB; the limit is {max_bytes // 1024**2} MB)")
            return path.read_bytes()
        except OSError as exc:
            raise SourceError(f"cannot read file: {exc.strerror or exc}") from None

    return read


def _is_zip(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == ZIP_MAGIC
    except OSError:
        return False


def _unsafe_entry(name: str) -> bool:
    posix = PurePosixPath(name.replace("\\", "/"))
    return posix.is_absolute() or ".." in posix.parts or (len(name) > 1 and name[1] == ":")


def _zip_items(path: Path, label: str, max_bytes: int, max_expanded: int) -> Iterator[SourceItem]:
    try:
        archive = zipfile.ZipFile(path)
        entries = [info for info in archive.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        yield SourceItem(label, lambda: b"", f"corrupt zip archive: {exc}")
        return
    expanded = sum(info.file_size for info in entries)
    if expanded > max_expanded:
        archive.close()
        yield SourceItem(
            label,
            lambda: b"",
            f"zip archive expands to {expanded // 1024**2} MB, over the limit of {max_expanded // 1024**2} MB",
        )
        return
    with archive:
        for info in sorted(entries, key=lambda i: i.filename):
            name = f"{label}/{info.filename}"
            if _unsafe_entry(info.filename):
                yield SourceItem(name, lambda: b"", "zip entry escapes the target folder")
                continue
            if info.file_size > max_bytes:
                yield SourceItem(
                    name,
                    lambda: b"",
                    f"file too large ({info.file_size // 1024**2} MB; the limit is {max_bytes // 1024**2} MB)",
                )
                continue
            if info.compress_size and info.file_size / info.compress_size > MAX_COMPRESSION_RATIO:
                yield SourceItem(name, lambda: b"", "zip entry compressed suspiciously well (zip bomb?)")
                continue
            yield SourceItem(name, _zip_reader(archive, info, max_bytes))


def _zip_reader(archive: zipfile.ZipFile, info: zipfile.ZipInfo, max_bytes: int) -> Callable[[], bytes]:
    def read() -> bytes:
        try:
            with archive.open(info) as handle:
                # Never trust the declared size: read one byte past the limit.
                data = handle.read(max_bytes + 1)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, RuntimeError) as exc:
            raise SourceError(f"corrupt zip entry: {exc}") from None
        if len(data) > max_bytes:
            raise SourceError(f"file too large (the limit is {max_bytes // 1024**2} MB)")
        return data

    return read


def iter_sources(
    paths: Iterable[Path | str],
    *,
    max_file_bytes: int,
    max_zip_expanded_bytes: int | None = None,
    relative_to: Path | None = None,
) -> Iterator[SourceItem]:
    """Yield one item per candidate file, in a stable (sorted) order.

    Names are the paths as given (or relative to ``relative_to``); a zip
    entry is named ``archive.zip/entry``. Items are read lazily, so one zip
    entry is in memory at a time.
    """
    max_expanded = max_zip_expanded_bytes if max_zip_expanded_bytes is not None else 64 * max_file_bytes

    def label(path: Path) -> str:
        if relative_to is not None:
            try:
                return path.relative_to(relative_to).as_posix()
            except ValueError:
                pass
        return str(path)

    def one(path: Path) -> Iterator[SourceItem]:
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for file_name in sorted(files):
                    yield from one(Path(root) / file_name)
        elif not path.exists():
            yield SourceItem(label(path), lambda: b"", "no such file or folder")
        elif _is_zip(path):
            yield from _zip_items(path, label(path), max_file_bytes, max_expanded)
        else:
            yield SourceItem(label(path), _read_file(path, max_file_bytes), any_thread=True)

    for path in paths:
        yield from one(Path(path))
