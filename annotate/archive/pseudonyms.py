"""The platform's keys applied: keyed pseudonyms of identifiers and UIDs, the de-identification
policy, and the encrypted link from a radiograph back to its PACS originals.

Keys come from settings (the environment), never from DATA_DIR: ``PSEUDONYM_KEY`` for every
keyed hash, ``PACS_LINK_KEY`` (a Fernet key) for the link. See docs/operations/data-protection.md.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from functools import cache

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

from annotate.archive.deidentify import Identity, Policy, pseudonymous_uid


def pseudonym(value: str, *, purpose: str) -> str:
    """Keyed hash (HMAC-SHA256) of an identifier; ``purpose`` keeps the hash of
    a patient ID apart from the hash of an equal accession number."""
    key = settings.PSEUDONYM_KEY.encode()
    return hmac.new(key, f"{purpose}:{value.strip()}".encode(), hashlib.sha256).hexdigest()


def uid_pseudonym(uid: str) -> str:
    """The pseudonymous UID that the stored copy, the rows, the pages, the API and every export
    carry in place of ``uid`` (the same one the ingest wrote)."""
    return pseudonymous_uid(uid, settings.PSEUDONYM_KEY.encode())


def short_pseudonym(value: str, *, purpose: str) -> str:
    """Twelve hex digits of ``pseudonym``: enough to tell things apart in a log line."""
    return pseudonym(value, purpose=purpose)[:12]


def deidentification_policy() -> Policy:
    """What ``annotate.archive.deidentify.deidentify`` applies: the key, and whether dates are shifted
    (setting ``DICOM_DATE_SHIFT``)."""
    return Policy(key=settings.PSEUDONYM_KEY.encode(), shift_dates=settings.DICOM_DATE_SHIFT == "shift")


@cache
def _fernet(key: str) -> Fernet:
    return Fernet(key.encode())


def pacs_link_key() -> str:
    """``PACS_LINK_KEY`` if set; otherwise a Fernet key derived from SECRET_KEY."""
    if settings.PACS_LINK_KEY:
        return str(settings.PACS_LINK_KEY)
    derived = hmac.new(settings.SECRET_KEY.encode(), b"pacs-link", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(derived).decode()


def pacs_link_seal(identity: Identity) -> str:
    """The original Study, Series and SOP Instance UIDs, encrypted (Fernet: AES-128-CBC with an
    HMAC-SHA256 tag) for ``Radiograph.pacs_link``: what a result sent back to the PACS names."""
    plain = {
        "study_instance_uid": identity.study_instance_uid,
        "series_instance_uid": identity.series_instance_uid,
        "sop_instance_uid": identity.sop_instance_uid,
    }
    return _fernet(pacs_link_key()).encrypt(json.dumps(plain).encode()).decode()


def pacs_link_open(token: str) -> dict[str, str]:
    """The original UIDs sealed by ``pacs_link_seal``; ValueError with another key or a bad token."""
    try:
        return dict(json.loads(_fernet(pacs_link_key()).decrypt(token.encode())))
    except (InvalidToken, ValueError) as exc:
        raise ValueError("the PACS link cannot be opened with this PACS_LINK_KEY") from exc
