"""De-identification of a received DICOM data set before anything of it is stored.

The PS3.15 Annex E Basic Application Level Confidentiality Profile, applied by dicognito, after
the platform's own steps: keyed UIDs, dates kept or shifted per patient, free text blanked, private
tags removed. Pure (no Django). Design: docs/operations/data-protection.md.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import re
import uuid
from dataclasses import dataclass, field
from importlib.metadata import version

from dicognito.anonymizer import Anonymizer
from dicognito.element_anonymizer import ElementAnonymizer
from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from annotate.archive.dicom_header import (  # the age and view rules the ingest already applies
    _AGE,
    _age_years,
    _date,
    _view_position,
)

DATE_SHIFT_MIN_DAYS = 62  # dicognito's own range for its (global) offset, here per patient
DATE_SHIFT_MAX_DAYS = 730
# Free text may hold anything (a name typed into a comment): blanked whatever its keyword.
FREE_TEXT_VRS = frozenset({"LT", "ST", "UT", "UC"})
# Descriptions, comments, histories and reasons are free text too when their VR is LO or SH
# (PS3.15 Table E.1-1 removes them unless the Retain Description option is chosen). The view
# position the science needs is read from them before this step (annotate.archive.dicom_header._view_position).
FREE_TEXT_KEYWORD = re.compile(r"(Description|Comments?|History|Reason\w*|SerialNumber|ProtocolName|Location)$")
_KEEP_DATES_UNSHIFTED = frozenset({"PatientBirthDate"})  # blanked instead (age is kept as PatientAge)


@dataclass(frozen=True)
class Identity:
    """What the received data set said about whom it shows and where it came from, before it was
    de-identified: for the keyed pseudonyms of the rows and for the encrypted link to the PACS.
    Never stored or logged as it is."""

    patient_id: str = field(repr=False)
    accession_number: str = field(repr=False)
    study_instance_uid: str = field(repr=False)
    series_instance_uid: str = field(repr=False)
    sop_instance_uid: str = field(repr=False)


@dataclass(frozen=True)
class Policy:
    """``key``: the pseudonym key (settings ``PSEUDONYM_KEY``); ``shift_dates``: settings
    ``DICOM_DATE_SHIFT == "shift"``."""

    key: bytes = field(repr=False)
    shift_dates: bool = False


def pseudonymous_uid(uid: str, key: bytes) -> str:
    """The keyed pseudonym of a UID: ``2.25.<UUID>`` (PS3.5 B.2), its 122 free bits taken from
    HMAC-SHA256(key, uid). The same UID and key always give the same pseudonym."""
    digest = hmac.new(key, f"uid:{uid.strip()}".encode(), hashlib.sha256).digest()
    return f"2.25.{uuid.UUID(bytes=digest[:16], version=4).int}"


def date_shift_days(patient_id: str, key: bytes) -> int:
    """Days (negative: into the past) by which the dates of this patient move when dates are
    shifted: keyed per patient, so the intervals between one patient's studies stay true."""
    digest = hmac.new(key, f"date-shift:{patient_id.strip()}".encode(), hashlib.sha256).digest()
    span = DATE_SHIFT_MAX_DAYS - DATE_SHIFT_MIN_DAYS + 1
    return -(DATE_SHIFT_MIN_DAYS + int.from_bytes(digest[:8], "big") % span)


class _PlatformSteps(ElementAnonymizer):
    """The platform's element rules, asked before dicognito's: keyed UIDs, dates, free text,
    AE titles. An element it handles is left alone by dicognito."""

    def __init__(self, policy: Policy, shift: datetime.timedelta | None) -> None:
        self.policy = policy
        self.shift = shift

    def __call__(self, dataset: Dataset, data_element: DataElement) -> bool:
        vr, keyword = data_element.VR, keyword_for_tag(data_element.tag)
        if vr == "UI":  # class and transfer syntax UIDs name kinds of object, not instances: kept
            if data_element.value and not (keyword.endswith("ClassUID") or keyword == "TransferSyntaxUID"):
                data_element.value = _map(data_element.value, lambda uid: pseudonymous_uid(uid, self.policy.key))
            return True
        if vr in ("DA", "DT"):
            if keyword in _KEEP_DATES_UNSHIFTED:
                data_element.value = ""
            elif self.shift is not None and data_element.value:
                data_element.value = _map(data_element.value, lambda text: _shift(text, self.shift, vr))
            return True  # kept or shifted here: dicognito's single global offset does not apply
        if keyword == "PatientBirthTime" or vr == "AE" or vr in FREE_TEXT_VRS:
            data_element.value = ""
            return True
        if vr in ("LO", "SH") and keyword != "ManufacturerModelName" and FREE_TEXT_KEYWORD.search(keyword):
            data_element.value = ""
            return True
        return False

    def describe_actions(self):
        yield "Replace UIDs with keyed HMAC-SHA256 pseudonyms (2.25.<UUID>)"
        yield "Keep or shift DA/DT values by a keyed per-patient number of days; blank PatientBirthDate/Time"
        yield "Blank free text (LT, ST, UT, UC; descriptions, comments, histories, reasons) and AE titles"


def _map(value: object, change):
    if isinstance(value, (MultiValue, list, tuple)):
        return [change(str(item)) for item in value]
    return change(str(value))


def _shift(text: str, shift: datetime.timedelta, vr: str) -> str:
    """A DA (YYYYMMDD) or the date part of a DT moved by ``shift``; an unreadable one is blanked."""
    clean = text.strip().replace(".", "").replace("-", "") if vr == "DA" else text.strip()
    try:
        moved = datetime.date(int(clean[:4]), int(clean[4:6]), int(clean[6:8])) + shift
    except ValueError:
        return ""
    return moved.strftime("%Y%m%d") + (clean[8:] if vr == "DT" else "")


def deidentify(ds: Dataset, policy: Policy) -> Identity:
    """De-identify ``ds`` in place (see the module's docstring) and return what it said before.

    The result depends only on the data set and the policy: the same file de-identified twice,
    in any process, gives the same bytes, so a re-import finds the stored copy."""
    identity = Identity(
        patient_id=_text(ds, "PatientID"),
        accession_number=_text(ds, "AccessionNumber"),
        study_instance_uid=_text(ds, "StudyInstanceUID"),
        series_instance_uid=_text(ds, "SeriesInstanceUID"),
        sop_instance_uid=_text(ds, "SOPInstanceUID"),
    )
    _keep_age(ds)
    _keep_view(ds)
    ds.remove_private_tags()
    shift = datetime.timedelta(days=date_shift_days(identity.patient_id, policy.key)) if policy.shift_dates else None
    # dicognito's replacement names and IDs are drawn from its seed: a keyed seed makes them
    # stable across runs and unguessable without the key.
    seed = hmac.new(policy.key, b"dicognito-seed", hashlib.sha256).hexdigest()
    anonymizer = Anonymizer(seed=seed)
    anonymizer.add_element_handler(_PlatformSteps(policy, shift))
    anonymizer.anonymize(ds)
    ds.LongitudinalTemporalInformationModified = "MODIFIED" if shift is not None else "UNMODIFIED"
    ds.PatientIdentityRemoved = "YES"  # PS3.3 C.7.1.1: with DeidentificationMethod, below
    ds.DeidentificationMethod = [
        f"PS3.15 Basic Application Level Confidentiality Profile (dicognito {version('dicognito')})",
        "keyed UIDs; private tags removed; free text blanked; dates " + ("shifted" if shift is not None else "kept"),
    ]
    return identity


def _text(ds: Dataset, keyword: str) -> str:
    try:
        value = ds.get(keyword)
    except Exception:  # noqa: BLE001 - an unreadable value counts as none
        return ""
    if isinstance(value, (MultiValue, list, tuple)):
        value = value[0] if len(value) else None
    return "" if value is None else str(value).strip()


def _keep_view(ds: Dataset) -> None:
    """ViewPosition from the descriptions, where only they say it (a frog-leg film often has
    none): the canonical token alone (FROG, XTABLE, ...), read before the free text is blanked."""
    if not _text(ds, "ViewPosition") and (token := _view_position(ds)):
        ds.ViewPosition = token


def _keep_age(ds: Dataset) -> None:
    """PatientAge from the birth date, where only the birth date says it: the birth date is
    blanked, the age (what the science uses) stays."""
    if _AGE.match(_text(ds, "PatientAge")):
        return
    dates = (_date(_text(ds, kw)) for kw in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"))
    age = _age_years(ds, next((d for d in dates if d is not None), None))
    if age is not None:
        ds.PatientAge = f"{min(age, 999):03d}Y"
