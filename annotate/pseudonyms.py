"""Moved to ``annotate.archive.pseudonyms``; this name stays only for annotate/ingest.py's import
until that module moves too."""

from annotate.archive.pseudonyms import deidentification_policy, pacs_link_seal, pseudonym

__all__ = ["deidentification_policy", "pacs_link_seal", "pseudonym"]
