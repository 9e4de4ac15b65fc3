"""Hip-label file formats: COCO JSON, VGG Image Annotator 2 projects, CSV.

Pure Python, no Django: each format turns a list of :class:`Image` (a radiograph and its hips) into
text, and COCO and VIA parse text back, raising :class:`FormatError` naming the key or line at
fault; ``annotate.labelling.exchange`` does the checks that need the database.
Design: docs/architecture/design-site.md
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# The vocabulary of the formats (re-exported for their users).
from ml.core.vocab import CLASS_NAMES as CLASS_NAMES
from ml.core.vocab import CLASSES as CLASSES
from ml.core.vocab import SIDES as SIDES

EXCLUSIONS = ("cross_table_lateral", "no_hip", "not_diagnostic")
# The labeller name that ground-truth rows carry.
GROUND_TRUTH = "ground_truth"

# A DICOM UID: digits in dot-separated components, at most 64 characters.
_UID = re.compile(r"^[0-9]+(\.[0-9]+)+$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class FormatError(ValueError):
    """A file that cannot be imported; the message names the key or line at fault."""


@dataclass(frozen=True)
class Hip:
    side: str
    hip_class: str
    x: float
    y: float
    width: float
    height: float
    labeler: str = ""  # username or GROUND_TRUTH; "" when the file does not say
    where: str = ""  # where the hip is in a parsed file, for messages
    # drawn / proposal_box / proposal_class_kept / proposal_class_changed (the CSV
    # export writes it); never read from a file: an import is its own provenance.
    provenance: str = ""

    @property
    def box(self) -> tuple[float, float, float, float]:
        return (self.x, self.y, self.width, self.height)


@dataclass(frozen=True)
class Image:
    sop_instance_uid: str = ""
    file_name: str = ""
    width: int | None = None
    height: int | None = None
    file_size: int = -1  # bytes of the file called file_name; VIA keys images by name + size
    radiograph_id: int | None = None
    patient: str = ""  # pseudonym code (P-...) on export; whatever the file says on import
    accession: str = ""  # pseudonym code (A-...)
    exclude: str = ""  # the exclusion of this image's single labelling (or of the ground truth)
    excluded_by: Mapping[str, str] = field(default_factory=dict)  # labeller -> reason, every-labeller exports
    truth_source: str = ""
    hips: tuple[Hip, ...] = ()
    where: str = ""

    def matching_keys(self) -> tuple[str, str]:
        """(SOP Instance UID, SHA-256) this entry can be matched by, "" when unknown.

        The explicit ``sop_instance_uid`` wins; otherwise the file name's stem
        (last path part, extension dropped) when it is a DICOM UID, or the
        SHA-256 the platform names stored originals by.
        """
        if self.sop_instance_uid:
            return self.sop_instance_uid, ""
        stem = self.file_name.replace("\\", "/").rsplit("/", 1)[-1]
        for suffix in (".dcm", ".dicom", ".png", ".jpg", ".jpeg", ".tif", ".tiff"):
            if stem.lower().endswith(suffix):
                stem = stem[: -len(suffix)]
                break
        if _UID.match(stem) and len(stem) <= 64:
            return stem, ""
        if _SHA256.match(stem.lower()):
            return "", stem.lower()
        return "", ""

    def label(self) -> str:
        """How a report names this entry."""
        return self.file_name or self.sop_instance_uid or self.where


# --- Helpers shared by the parsers ---------------------------------------------------------


def load_json(data: bytes | str) -> Any:
    """Parse JSON; a syntax error names its line and column."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise FormatError(f"not UTF-8 text (byte {exc.start})")
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        raise FormatError(f"JSON syntax error at line {exc.lineno}, column {exc.colno}: {exc.msg}")
    except RecursionError:
        raise FormatError("JSON nested too deeply")


def describe(value: Any) -> str:
    """A short description of a wrong value for messages (never a whole document)."""
    text = json.dumps(value) if not isinstance(value, (dict, list)) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def expect_object(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise FormatError(f"{where}: expected an object, got {describe(value)}")
    return value


def expect_list(value: Any, where: str) -> list:
    if not isinstance(value, list):
        raise FormatError(f"{where}: expected a list, got {describe(value)}")
    return value


def expect_number(value: Any, where: str) -> float:
    # bool is an int in Python; true/false in a box is a mistake.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise FormatError(f"{where}: expected a number, got {describe(value)}")
    return float(value)


def expect_str(value: Any, where: str, *, allow_empty: bool = True) -> str:
    if not isinstance(value, str) or (not allow_empty and not value):
        raise FormatError(f"{where}: expected {'a' if allow_empty else 'a non-empty'} string, got {describe(value)}")
    return value


def expect_choice(value: Any, where: str, choices: tuple[str, ...], *, allow_empty: bool = False) -> str:
    if value is None and allow_empty:
        return ""
    if isinstance(value, dict):
        # A VIA checkbox attribute: {"option": true, ...}; exactly one may be ticked.
        ticked = [key for key, on in value.items() if on]
        if len(ticked) > 1:
            raise FormatError(f"{where}: more than one ticked ({', '.join(map(str, ticked))})")
        value = ticked[0] if ticked else ""
    if value == "" and allow_empty:
        return ""
    if value not in choices:
        raise FormatError(f"{where}: expected one of {', '.join(choices)}, got {describe(value)}")
    return value


def expect_size(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < 1:
        raise FormatError(f"{where}: expected a positive whole number, got {describe(value)}")
    return int(value)


def expect_excluded_by(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    result = {}
    for name, reason in expect_object(value, where).items():
        result[name] = expect_choice(reason, f"{where}.{name}", EXCLUSIONS, allow_empty=True)
    return {name: reason for name, reason in result.items() if reason}


def dumps(document: Any) -> str:
    # repr-exact floats (json uses float.__repr__): a box survives a round trip bit for bit.
    return json.dumps(document, indent=1, ensure_ascii=False, allow_nan=False) + "\n"
