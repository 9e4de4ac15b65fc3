"""What a result reports: a radiograph's latest reading (one classifier's hip predictions), the
original UIDs the PACS sent (opened from the encrypted PACS link), and the results' own UIDs,
deterministic per reading under ``RESULTS_UID_ROOT`` so that a resend is the same instance."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from annotate.archive.pseudonyms import pacs_link_open
from annotate.models import Radiograph
from ml.core.vocab import SIDES
from ml.models import HipPrediction, ModelVersion
from ml.scoring import active_model, test_time
from triage.worklist import flag_threshold, hip_flagged

_UID_ROOT = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
DISCLAIMER = "Not for diagnostic use; research software"


class NoResults(LookupError):
    """The radiograph has no stored prediction (or no link to its PACS originals)."""


@dataclass(frozen=True)
class Original:
    """The UIDs of the image as the PACS sent it: all a result names of the original study."""

    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str


@dataclass
class Reading:
    radiograph: Radiograph
    version: ModelVersion
    hips: list[HipPrediction]
    original: Original
    flags: dict[str, bool]

    @property
    def protocol(self) -> dict[str, Any]:
        return test_time(self.version)

    def uid(self, kind: str) -> str:
        """The UID of ``kind`` (``sr``, ``sr-series``, ``overlay``, ...) of this reading: the same
        for the same predictions, a new one when the radiograph is read again."""
        parts = [kind, self.original.sop_instance_uid, str(self.version.pk), self.version.bundle_sha256]
        parts += [f"{hip.side}:{hip.pk}:{hip.created_at.isoformat()}" for hip in self.hips]
        return result_uid("|".join(parts))


def result_uid(key: str) -> str:
    """A UID under ``RESULTS_UID_ROOT`` made from the SHA-256 of ``key`` (at most 64 characters)."""
    root = str(settings.RESULTS_UID_ROOT).strip().rstrip(".")
    if not _UID_ROOT.match(root) or len(root) > 40:
        raise ImproperlyConfigured(f"RESULTS_UID_ROOT={root!r} is not a UID root of at most 40 characters")
    digest = hashlib.sha256(key.encode()).hexdigest()
    # 2.25 is followed by a 128-bit integer (a UUID's); other roots by as many digits as fit.
    number = str(int(digest[:32], 16)) if root == "2.25" else str(int(digest, 16))[: 64 - len(root) - 1]
    return f"{root}.{number.lstrip('0') or '0'}"


def original_of(radiograph: Radiograph) -> Original:
    if not radiograph.pacs_link:
        raise NoResults(f"radiograph {radiograph.pk} has no link to its PACS originals")
    link = pacs_link_open(radiograph.pacs_link)
    return Original(
        study_instance_uid=link["study_instance_uid"],
        series_instance_uid=link["series_instance_uid"],
        sop_instance_uid=link["sop_instance_uid"],
        sop_class_uid=radiograph.sop_class_uid,
    )


def latest_reading(*, radiograph: Radiograph, version: ModelVersion | None = None) -> Reading:
    """The hips of ``version`` (default: the active classifier if it read the radiograph, else
    the classifier that read it last); ``NoResults`` when there is none."""
    rows = HipPrediction.objects.filter(radiograph=radiograph).select_related("model_version")
    if version is None:
        active = active_model()
        if active is not None and rows.filter(model_version=active).exists():
            version = active
        else:
            newest = rows.order_by("-created_at", "-id").first()
            if newest is None:
                raise NoResults(f"radiograph {radiograph.pk} has no stored prediction")
            version = newest.model_version
    hips = sorted(rows.filter(model_version=version), key=lambda h: SIDES.index(h.side) if h.side in SIDES else 9)
    if not hips:
        raise NoResults(f"model version {version.pk} has not read radiograph {radiograph.pk}")
    threshold = flag_threshold(version)
    flags = {
        hip.side: hip_flagged(probabilities=hip.probabilities, predicted_class=hip.predicted_class, threshold=threshold)
        for hip in hips
    }
    return Reading(radiograph=radiograph, version=version, hips=hips, original=original_of(radiograph), flags=flags)
