"""Moved to ``common.storage``; this name stays only for annotate/ingest.py's import until that
module moves too."""

from common.storage import Buffers

__all__ = ["Buffers"]
