"""Moved to ``annotate.archive.sources``; this name stays only for annotate/ingest.py's import
until that module moves too."""

from annotate.archive.sources import SourceError, SourceItem

__all__ = ["SourceError", "SourceItem"]
