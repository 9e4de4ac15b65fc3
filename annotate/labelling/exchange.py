"""Import and export of hip labels through the formats of ``annotate.labelling.formats``.

Exports hold pseudonyms only and name each image by its pseudonymous SOP Instance UID; imports
load a file as one labeller's submitted work, radiograph by radiograph, as if labelled in the
browser, so agreement and adjudication run as usual.
Design: docs/architecture/design-site.md
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from annotate.archive.pseudonyms import uid_pseudonym
from annotate.labelling import formats
from annotate.labelling import services as labelling
from annotate.labelling.formats import FormatError, coco, tabular, via
from annotate.labelling.services import HipInput
from annotate.labels import Adjudication, Assignment, HipLabel
from annotate.models import Radiograph
from common.roles import LABELER, has_role

EXPORT_FORMATS = ("coco", "via", "csv")
IMPORT_FORMATS = ("coco", "via")
_PARSERS = {"coco": coco.parse, "via": via.parse}
_CONTENT_TYPES = {"coco": coco.CONTENT_TYPE, "via": via.CONTENT_TYPE, "csv": tabular.CONTENT_TYPE}
_SUFFIXES = {"coco": coco.SUFFIX, "via": via.SUFFIX, "csv": tabular.SUFFIX}

__all__ = [
    "EXPORT_FORMATS", "IMPORT_FORMATS", "ExportFile", "FormatError", "ImportReport",
    "annotations_export", "annotations_import",
]  # fmt: skip


# --- Export ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportFile:
    data: bytes
    content_type: str
    filename: str  # suggested download name, e.g. hip-labels-ground-truth-20250101.coco.json
    images: int
    hips: int


def _image(radiograph: Radiograph, **fields: Any) -> formats.Image:
    return formats.Image(
        sop_instance_uid=radiograph.sop_instance_uid,
        # Originals are stored under their hash; the UID names the image for people and tools.
        file_name=f"{radiograph.sop_instance_uid}.dcm",
        width=radiograph.columns,
        height=radiograph.rows,
        file_size=radiograph.file_size,
        radiograph_id=radiograph.id,
        patient=radiograph.study.patient.code,
        accession=radiograph.study.accession_code,
        **fields,
    )


def _hip(row: Any, labeler: str) -> formats.Hip:
    return formats.Hip(
        row.side, row.hip_class, row.x, row.y, row.width, row.height, labeler=labeler, provenance=row.provenance
    )


def _ground_truth_images() -> list[formats.Image]:
    """Radiographs whose truth is decided (agreed or resolved), with their truth hips."""
    decided = (
        Adjudication.objects.filter(status__in=[Adjudication.Status.AGREED, Adjudication.Status.RESOLVED])
        .select_related("radiograph__study__patient")
        .order_by("radiograph_id")
    )
    hips: dict[int, list[formats.Hip]] = defaultdict(list)
    for row in labelling.ground_truth_hips().filter(adjudication__in=decided).order_by("radiograph_id", "side"):
        hips[row.radiograph_id].append(_hip(row, formats.GROUND_TRUTH))
    return [
        _image(
            adjudication.radiograph,
            exclude=adjudication.excluded,
            truth_source=adjudication.truth_source,
            hips=tuple(hips[adjudication.radiograph_id]),
        )
        for adjudication in decided
    ]


def _labeller_images() -> list[formats.Image]:
    """Radiographs with at least one submitted labelling: every labeller's live hips and exclusions."""
    submitted = (
        Assignment.objects.filter(status=Assignment.Status.SUBMITTED)
        .select_related("labeler", "radiograph__study__patient")
        .order_by("radiograph_id", "slot")
    )
    hips: dict[int, list[formats.Hip]] = defaultdict(list)
    rows = (
        HipLabel.objects.filter(assignment__status=Assignment.Status.SUBMITTED, removed_at__isnull=True)
        .select_related("assignment__labeler")
        .order_by("assignment__radiograph_id", "assignment__slot", "side")
    )
    for row in rows:
        labeler = row.assignment.labeler
        assert labeler is not None  # a submitted labelling has its labeller
        hips[row.assignment.radiograph_id].append(_hip(row, labeler.username))
    radiographs: dict[int, Radiograph] = {}
    excluded_by: dict[int, dict[str, str]] = defaultdict(dict)
    for assignment in submitted:
        radiographs.setdefault(assignment.radiograph_id, assignment.radiograph)
        if assignment.excluded:
            assert assignment.labeler is not None  # a submitted labelling has its labeller
            excluded_by[assignment.radiograph_id][assignment.labeler.username] = assignment.excluded
    return [
        _image(radiograph, excluded_by=excluded_by[radiograph_id], hips=tuple(hips[radiograph_id]))
        for radiograph_id, radiograph in radiographs.items()
    ]


def annotations_export(*, fmt: str, ground_truth: bool) -> ExportFile:
    """Every labeller's submitted labels, or the ground truth only, as a file of ``fmt``."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown format {fmt!r}: choose {', '.join(EXPORT_FORMATS)}")
    images = _ground_truth_images() if ground_truth else _labeller_images()
    what = "ground truth" if ground_truth else "every labeller's submitted labels"
    if fmt == "coco":
        text = coco.write(images, description=f"Hip labels: {what}")
    elif fmt == "via":
        text = via.write(images, name=f"hip-labels-{'ground-truth' if ground_truth else 'all'}")
    else:
        text = tabular.write(images, ground_truth=ground_truth)
    stamp = timezone.localdate().strftime("%Y%m%d")
    filename = f"hip-labels-{'ground-truth' if ground_truth else 'all'}-{stamp}{_SUFFIXES[fmt]}"
    return ExportFile(
        data=text.encode("utf-8"),
        content_type=_CONTENT_TYPES[fmt],
        filename=filename,
        images=len(images),
        hips=sum(len(image.hips) for image in images),
    )


# --- Import ---------------------------------------------------------------------------------


@dataclass
class ImportReport:
    images: int = 0  # image entries in the file
    matched: int = 0  # entries that found their radiograph
    submitted: int = 0  # radiographs submitted now as the user's work
    hips: int = 0  # hips in those submissions
    excluded: int = 0  # of those submissions, how many exclude the radiograph
    already_submitted: int = 0  # the user had submitted these before: left as they were
    without_labels: int = 0  # entries with no hip and no exclusion (for this labeller): nothing to submit
    agreed: int = 0  # radiographs that became ground truth by agreement with this import
    to_adjudicate: int = 0  # radiographs that went to the adjudication queue with this import
    no_free_slot: list[str] = field(default_factory=list)  # every slot taken by other labellers
    unmatched: list[str] = field(default_factory=list)  # entries that matched no radiograph

    def line(self) -> str:
        return (
            f"images: {self.images}, matched: {self.matched}, submitted: {self.submitted} "
            f"({self.hips} hips, {self.excluded} excluded), already submitted: {self.already_submitted}, "
            f"without labels: {self.without_labels}, no free slot: {len(self.no_free_slot)}, "
            f"unmatched: {len(self.unmatched)}; agreed: {self.agreed}, to adjudicate: {self.to_adjudicate}"
        )


@dataclass(frozen=True)
class _Planned:
    image: formats.Image
    radiograph: Radiograph
    hips: tuple[formats.Hip, ...]
    exclude: str


def _labelling_of(image: formats.Image, labeler: str | None) -> tuple[tuple[formats.Hip, ...], str]:
    """The hips and exclusion to import from one entry: all of them, or one labeller's."""
    if labeler is None:
        return image.hips, image.exclude
    hips = tuple(hip for hip in image.hips if hip.labeler == labeler)
    if labeler in image.excluded_by:
        return hips, image.excluded_by[labeler]
    # A file without per-labeller exclusions (ground truth, phantoms): the image's
    # exclusion is the labeller's only when every hip of the entry is theirs too.
    return hips, image.exclude if hips == image.hips else ""


def _match(images: Sequence[formats.Image]) -> dict[int, Radiograph]:
    """Entry index -> radiograph, by the rule in the module docstring."""
    keys = [image.matching_keys() for image in images]
    # A UID is the pseudonymous one (an export of this site) or the PACS's (a file made elsewhere).
    pseudonyms = {uid: uid_pseudonym(uid) for uid, _ in keys if uid}
    wanted = set(pseudonyms) | set(pseudonyms.values())
    by_uid = {r.sop_instance_uid: r for r in Radiograph.objects.filter(sop_instance_uid__in=wanted)}
    by_hash = {r.sha256: r for r in Radiograph.objects.filter(sha256__in={k[1] for k in keys if k[1]})}
    matched = {}
    for index, (uid, sha256) in enumerate(keys):
        radiograph = (by_uid.get(uid) or by_uid.get(pseudonyms[uid])) if uid else by_hash.get(sha256)
        if radiograph is not None:
            matched[index] = radiograph
    return matched


def _check(image: formats.Image, radiograph: Radiograph, hips: Sequence[formats.Hip], exclude: str) -> None:
    """What the database can tell about an entry; FormatError naming the key at fault."""
    # Boxes drawn on a resized copy would land in the wrong place: refuse them.
    wrong_width = image.width is not None and image.width != radiograph.columns
    wrong_height = image.height is not None and image.height != radiograph.rows
    if wrong_width or wrong_height:
        raise FormatError(
            f"{image.where}: image is {image.width or '?'}x{image.height or '?'} but radiograph "
            f"{radiograph.sop_instance_uid} is {radiograph.columns}x{radiograph.rows}; boxes must be in the "
            "original's pixels"
        )
    if exclude and hips:
        raise FormatError(f"{hips[0].where}: the image is excluded ({exclude}); an excluded radiograph has no hips")
    seen: dict[str, formats.Hip] = {}
    for hip in hips:
        if hip.side in seen:
            several = len({h.labeler for h in image.hips}) > 1
            hint = " (the file holds several labellers' labels: import one with --labeler)" if several else ""
            raise FormatError(f"{hip.where}: a second {hip.side} hip (first at {seen[hip.side].where}){hint}")
        seen[hip.side] = hip
        try:
            labelling.validate_hips([_input(hip)], radiograph=radiograph, excluded="")
        except ValidationError as exc:
            raise FormatError(f"{hip.where}: {'; '.join(exc.messages)}")


def _input(hip: formats.Hip) -> HipInput:
    return HipInput(hip.side, hip.hip_class, hip.x, hip.y, hip.width, hip.height, source=HipLabel.Source.IMPORT)


def _user(username: str) -> Any:
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise ValueError(f"no user {username!r}")
    if not has_role(user, LABELER):
        raise ValueError(f"user {username!r} is not a labeller")
    return user


def annotations_import(*, fmt: str, data: bytes, username: str, labeler: str | None = None) -> ImportReport:
    """Load a COCO or VIA file as ``username``'s submitted labelling of each radiograph it names.

    ``labeler``: take only the hips (and exclusions) the file gives to that
    labeller, as in an every-labeller export. Raises FormatError (a
    ValueError) for a malformed file, with nothing written; ValueError for an
    unknown format or user. Importing the same file again changes nothing:
    those radiographs count as ``already_submitted``.
    """
    if fmt not in IMPORT_FORMATS:
        raise ValueError(f"cannot import {fmt!r}: choose {', '.join(IMPORT_FORMATS)}")
    user = _user(username)
    images = _PARSERS[fmt](data)
    report = ImportReport(images=len(images))

    # Check everything before writing anything.
    matched = _match(images)
    planned: list[_Planned] = []
    first_entry: dict[int, formats.Image] = {}
    for index, image in enumerate(images):
        radiograph = matched.get(index)
        if radiograph is None:
            report.unmatched.append(image.label())
            continue
        if radiograph.id in first_entry:
            raise FormatError(
                f"{image.where}: a second entry for radiograph {radiograph.sop_instance_uid} "
                f"(first at {first_entry[radiograph.id].where})"
            )
        first_entry[radiograph.id] = image
        hips, exclude = _labelling_of(image, labeler)
        _check(image, radiograph, hips, exclude)
        planned.append(_Planned(image, radiograph, hips, exclude))
    report.matched = len(planned)

    with transaction.atomic():
        for plan in planned:
            _submit(plan, user, report)
    return report


def _submit(plan: _Planned, user: User, report: ImportReport) -> None:
    radiograph = plan.radiograph
    mine = Assignment.objects.select_for_update().filter(radiograph=radiograph, labeler=user).first()
    if mine is not None and mine.status == Assignment.Status.SUBMITTED:
        report.already_submitted += 1
        return
    if not plan.hips and not plan.exclude:
        report.without_labels += 1
        return
    if mine is None:
        # The user's slot of this radiograph: a free one, as the queue would give it.
        if not Assignment.objects.filter(radiograph=radiograph).exists():
            labelling.assignments_create(radiographs=[radiograph])  # a radiograph from before slots existed
        mine = (
            Assignment.objects.select_for_update()
            .filter(radiograph=radiograph, status=Assignment.Status.OPEN, labeler__isnull=True)
            .order_by("slot")
            .first()
        )
        if mine is None:
            report.no_free_slot.append(plan.image.label())
            return
        mine.labeler = user
        mine.status = Assignment.Status.IN_PROGRESS
        mine.taken_at = timezone.now()
        mine.save(update_fields=["labeler", "status", "taken_at"])
    # An unsubmitted draft of the user's is replaced by the file's labelling.
    labelling.assignment_submit(
        assignment_id=mine.id, user=user, hips=[_input(hip) for hip in plan.hips], excluded=plan.exclude
    )
    report.submitted += 1
    report.hips += len(plan.hips)
    report.excluded += bool(plan.exclude)
    adjudication = Adjudication.objects.filter(radiograph=radiograph).only("status").first()
    if adjudication is not None:
        if adjudication.status == Adjudication.Status.AGREED:
            report.agreed += 1
        elif adjudication.status == Adjudication.Status.PENDING:
            report.to_adjudicate += 1
