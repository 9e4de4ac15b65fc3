"""Services of blind double reading: the queue, saving, submitting, agreement
and adjudication into ground truth."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from annotate.labelling import agreement, provenance
from annotate.labels import (
    CLASSES,
    Adjudication,
    Assignment,
    Exclusion,
    GroundTruthHip,
    HipLabel,
    HipProposal,
    Side,
    TruthSource,
)
from annotate.models import Radiograph
from ml.core.vocab import FRACTURE_CLASSES

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HipInput:
    """A hip as the page or an import sends it."""

    side: str
    hip_class: str
    x: float
    y: float
    width: float
    height: float
    id: int | None = None  # an existing HipLabel being edited
    source: str = HipLabel.Source.MANUAL

    @property
    def box(self) -> agreement.Box:
        return (self.x, self.y, self.width, self.height)


# Where a labeller's hip came from. The page may say "manual" (drawn by hand)
# or "model" (an accepted, perhaps adjusted, proposal); "import" is for
# annotation files only. Which class the proposal showed, and so the hip's
# provenance, the server decides (``_accepted_class``), never the page.
LABELLER_SOURCES = (HipLabel.Source.MANUAL, HipLabel.Source.MODEL)


def validate_hips(hips: Sequence[HipInput], *, radiograph: Radiograph, excluded: str) -> None:
    """Refuse a labelling that cannot be right, with a message that says why."""
    if excluded and excluded not in Exclusion.values:
        raise ValidationError(f"unknown exclusion reason {excluded!r}")
    if excluded and hips:
        raise ValidationError("an excluded radiograph has no hips; remove the boxes or the exclusion")
    sides = [hip.side for hip in hips]
    if len(sides) != len(set(sides)):
        raise ValidationError("each side can have only one hip")
    for hip in hips:
        if hip.side not in Side.values:
            raise ValidationError(f"unknown side {hip.side!r}")
        if hip.hip_class not in CLASSES:
            raise ValidationError(f"unknown class {hip.hip_class!r}")
        if hip.width < 1 or hip.height < 1:
            raise ValidationError("a box must be at least one pixel wide and high")
        if (
            hip.x < 0
            or hip.y < 0
            or hip.x + hip.width > radiograph.columns + 0.5
            or (hip.y + hip.height > radiograph.rows + 0.5)
        ):
            raise ValidationError(f"the {hip.side} hip's box reaches outside the image")


# --- Slots and the queue -----------------------------------------------------------


def assignments_create(*, radiographs: Iterable[Radiograph]) -> int:
    """Give each radiograph its labelling slots (idempotent)."""
    slots = settings.LABELS_PER_RADIOGRAPH
    rows = [Assignment(radiograph=radiograph, slot=slot) for radiograph in radiographs for slot in range(1, slots + 1)]
    created = Assignment.objects.bulk_create(rows, ignore_conflicts=True)
    return len(created)


def assignments_release_expired(*, now: Any = None) -> int:
    """Put assignments left unfinished too long back in the pool. The draft
    stays in the history but is removed, so the next labeller starts blind."""
    now = now or timezone.now()
    deadline = now - timedelta(minutes=settings.ASSIGNMENT_TIMEOUT_MINUTES)
    released = 0
    with transaction.atomic():
        expired = Assignment.objects.select_for_update(skip_locked=True).filter(
            status=Assignment.Status.IN_PROGRESS, taken_at__lt=deadline
        )
        for assignment in expired:
            # A labeller who is still saving keeps their image.
            if assignment.last_saved_at and assignment.last_saved_at >= deadline:
                continue
            for hip in assignment.hips.filter(removed_at__isnull=True):
                hip.removed_at = now
                hip.save(update_fields=["removed_at"])
            assignment.status = Assignment.Status.OPEN
            assignment.labeler = None
            assignment.taken_at = assignment.last_saved_at = None
            assignment.excluded = assignment.note = ""
            assignment.active_seconds = 0
            assignment.save()
            released += 1
    if released:
        logger.info("released %d expired assignments", released)
    return released


def assignment_next(*, user: User) -> Assignment | None:
    """The labeller's current image, or the next one from the pool.

    A labeller holds one image at a time. Their requests take a row lock on
    their own user row first (``SELECT ... FOR UPDATE``, held to the end of the
    transaction), so the "one in progress?" check and the take below run for
    one labeller at a time: eight tabs asking at once get the same image. Other
    labellers are not held up; they lock other rows. Slots are taken with
    ``SELECT ... FOR UPDATE SKIP LOCKED``: two labellers asking at the same
    moment get different slots, and a labeller never gets two slots of one
    radiograph (a unique constraint).
    """
    with transaction.atomic():
        get_user_model().objects.select_for_update().filter(pk=user.pk).values_list("pk").first()
        current = Assignment.objects.filter(labeler=user, status=Assignment.Status.IN_PROGRESS).first()
        if current is not None:
            return current
        assignments_release_expired()
        for _ in range(5):  # a lost race on the unique constraint: take another
            try:
                with transaction.atomic():
                    mine = Assignment.objects.filter(labeler=user).values("radiograph_id")
                    slot = (
                        Assignment.objects.select_for_update(skip_locked=True)
                        .filter(status=Assignment.Status.OPEN, labeler__isnull=True)
                        .exclude(radiograph_id__in=mine)
                        .order_by("radiograph_id", "slot")
                        .first()
                    )
                    if slot is None:
                        return None
                    slot.labeler = user
                    slot.status = Assignment.Status.IN_PROGRESS
                    slot.taken_at = timezone.now()
                    slot.save(update_fields=["labeler", "status", "taken_at"])
                    return slot
            except IntegrityError:
                continue
    return None


def _own_open_assignment(assignment_id: int, user: User) -> Assignment:
    assignment = Assignment.objects.select_for_update().select_related("radiograph").get(id=assignment_id)
    if assignment.labeler_id != user.id:
        raise PermissionDenied("this image is not assigned to you")
    return assignment


def _accepted_class(radiograph_id: int, side: str) -> str:
    """The class the labelling page showed with the radiograph's proposal of
    ``side``: the stored proposal's class where PROPOSALS_SHOW_CLASS is on (as
    the API sends it), else "" (boxes only). A hip accepted from a proposal that
    a newer model reading has since removed counts as a box."""
    if not settings.PROPOSALS_SHOW_CLASS:
        return ""
    proposal = HipProposal.objects.filter(radiograph_id=radiograph_id, side=side).only("hip_class").first()
    return proposal.hip_class if proposal is not None else ""


def _replace_hips(assignment: Assignment, hips: Sequence[HipInput], now: Any) -> None:
    """Make the assignment's live hips equal ``hips``: edit, add, mark removed.
    A hip's source says how it began and is kept through later edits: an
    accepted proposal stays "model" however much the labeller adjusts it. The
    class its proposal showed is taken from the server's proposal when the hip
    is first saved, and its provenance follows from that and its class now."""
    live = {hip.id: hip for hip in assignment.hips.filter(removed_at__isnull=True)}
    kept: set[int] = set()
    for hip in hips:
        row = live.get(hip.id) if hip.id is not None else None
        if row is None:
            row = HipLabel(
                assignment=assignment, side=hip.side, hip_class=hip.hip_class, x=hip.x, y=hip.y,
                width=hip.width, height=hip.height, source=hip.source,
            )  # fmt: skip
            if row.source == HipLabel.Source.MODEL:
                row.proposal_class = _accepted_class(assignment.radiograph_id, hip.side)
            row.provenance = row.provenance_of()
            row.save()
            continue
        kept.add(row.id)
        changed = (row.side, row.hip_class, row.x, row.y, row.width, row.height) != (
            hip.side, hip.hip_class, hip.x, hip.y, hip.width, hip.height
        )  # fmt: skip
        if changed:
            row.side, row.hip_class = hip.side, hip.hip_class
            row.x, row.y, row.width, row.height = hip.x, hip.y, hip.width, hip.height
            row.provenance = row.provenance_of()
            row.save()
    for row_id, row in live.items():
        if row_id not in kept:
            row.removed_at = now
            row.save(update_fields=["removed_at"])


def assignment_save(
    *,
    assignment_id: int,
    user: User,
    hips: Sequence[HipInput],
    excluded: str = "",
    note: str = "",
    active_seconds: float | None = None,
) -> Assignment:
    """Save the labeller's work as it is now (autosave). Saving the same
    state twice changes nothing."""
    with transaction.atomic():
        assignment = _own_open_assignment(assignment_id, user)
        if assignment.status != Assignment.Status.IN_PROGRESS:
            raise ValidationError("this image was already submitted; it can no longer change")
        validate_hips(hips, radiograph=assignment.radiograph, excluded=excluded)
        for hip in hips:
            if hip.source not in HipLabel.Source.values:
                raise ValidationError(f"unknown source {hip.source!r} of the {hip.side} hip")
        now = timezone.now()
        _replace_hips(assignment, hips, now)
        assignment.excluded = excluded
        assignment.note = note
        if active_seconds is not None:
            assignment.active_seconds = max(assignment.active_seconds, float(active_seconds))
        assignment.last_saved_at = now
        assignment.save(update_fields=["excluded", "note", "active_seconds", "last_saved_at"])
    return assignment


def assignment_submit(
    *,
    assignment_id: int,
    user: User,
    hips: Sequence[HipInput],
    excluded: str = "",
    note: str = "",
    active_seconds: float | None = None,
) -> Assignment:
    """Save and submit. A second submit of the same image (a double click)
    returns the first one's result and stores nothing more."""
    with transaction.atomic():
        assignment = _own_open_assignment(assignment_id, user)
        if assignment.status == Assignment.Status.SUBMITTED:
            return assignment
        if not excluded and not hips:
            raise ValidationError("label at least one hip, or exclude the image with a reason")
        assignment_save(
            assignment_id=assignment_id, user=user, hips=hips, excluded=excluded, note=note,
            active_seconds=active_seconds,
        )  # fmt: skip
        assignment.refresh_from_db()
        assignment.status = Assignment.Status.SUBMITTED
        assignment.submitted_at = timezone.now()
        assignment.save(update_fields=["status", "submitted_at"])
        adjudication_check(radiograph_id=assignment.radiograph_id)
    return assignment


# --- Model proposals ------------------------------------------------------------------


@dataclass(frozen=True)
class ProposalInput:
    """A hip a model proposes: side, box (x, y, w, h in original pixels), the
    detector's score and, when a classifier read the box, its top class."""

    side: str
    x: float
    y: float
    width: float
    height: float
    score: float
    hip_class: str = ""


def proposals_replace(*, radiograph_id: int, proposals: Sequence[ProposalInput], model_label: str) -> list[HipProposal]:
    """Make ``proposals`` the radiograph's proposals, one per side at most.

    The set is one model's answer for the radiograph: the newest call replaces
    every older proposal of the radiograph, so a side the new model did not
    find keeps no stale box from an older one. Boxes are clipped to the image
    (detectors may reach a little past its edge). The labellers' hips are not
    touched: proposals are only ever shown, and become hips when accepted."""
    model_label = (model_label or "").strip()
    if not model_label:
        raise ValidationError("say which model made the proposals (model_label)")
    if len(model_label) > 100:
        raise ValidationError("model_label is longer than 100 characters")
    sides = [p.side for p in proposals]
    if len(sides) != len(set(sides)):
        raise ValidationError("one proposal per side at most")
    with transaction.atomic():
        # Locking the radiograph orders two writers of the same radiograph.
        radiograph = Radiograph.objects.select_for_update().get(id=radiograph_id)
        rows = [_proposal_row(radiograph, p, model_label) for p in proposals]
        HipProposal.objects.filter(radiograph=radiograph).delete()
        HipProposal.objects.bulk_create(rows)
    return sorted(rows, key=lambda row: row.side != Side.RIGHT)


def _proposal_row(radiograph: Radiograph, proposal: ProposalInput, model_label: str) -> HipProposal:
    if proposal.side not in Side.values:
        raise ValidationError(f"unknown side {proposal.side!r} of a proposal")
    if proposal.hip_class and proposal.hip_class not in CLASSES:
        raise ValidationError(f"unknown class {proposal.hip_class!r} of the {proposal.side} proposal")
    try:
        x, y, width, height, score = (
            float(v) for v in (proposal.x, proposal.y, proposal.width, proposal.height, proposal.score)
        )
    except (TypeError, ValueError):
        raise ValidationError(f"the {proposal.side} proposal needs numbers for its box and score") from None
    if not all(math.isfinite(v) for v in (x, y, width, height, score)):
        raise ValidationError(f"the {proposal.side} proposal needs finite numbers for its box and score")
    if not 0 <= score <= 1:
        raise ValidationError(f"the {proposal.side} proposal's score {score} is not between 0 and 1")
    x0, y0 = max(0.0, x), max(0.0, y)
    x1, y1 = min(float(radiograph.columns), x + width), min(float(radiograph.rows), y + height)
    if x1 - x0 < 1 or y1 - y0 < 1:
        raise ValidationError(f"the {proposal.side} proposal's box lies outside the image")
    return HipProposal(
        radiograph=radiograph, side=proposal.side, x=x0, y=y0, width=x1 - x0, height=y1 - y0,
        score=score, hip_class=proposal.hip_class or "", model=model_label,
    )  # fmt: skip


def proposals_of(*, radiograph_id: int) -> QuerySet[HipProposal]:
    """The radiograph's proposals, the patient's right first."""
    return HipProposal.objects.filter(radiograph_id=radiograph_id).order_by("-side")


# --- Agreement and adjudication ------------------------------------------------------


def labelling_of(assignment: Assignment) -> agreement.Labelling:
    hips = tuple(
        agreement.Hip(hip.side, hip.hip_class, hip.box) for hip in assignment.hips.filter(removed_at__isnull=True)
    )
    return agreement.Labelling(assignment.excluded, hips)


def adjudication_check(*, radiograph_id: int) -> Adjudication | None:
    """Once every slot of a radiograph is submitted, compare the labellings:
    agreement becomes ground truth by itself, anything else waits for an
    adjudicator."""
    assignments = list(Assignment.objects.filter(radiograph_id=radiograph_id).order_by("slot"))
    if not assignments or any(a.status != Assignment.Status.SUBMITTED for a in assignments):
        return None
    if Adjudication.objects.filter(radiograph_id=radiograph_id).exists():
        return Adjudication.objects.get(radiograph_id=radiograph_id)
    labellings = [labelling_of(a) for a in assignments]
    reasons = agreement.all_disagreements(labellings, iou_threshold=settings.AGREEMENT_IOU)
    if reasons:
        return Adjudication.objects.create(
            radiograph_id=radiograph_id, status=Adjudication.Status.PENDING, disagreements=reasons
        )
    truth = agreement.consensus(labellings)
    adjudication = Adjudication.objects.create(
        radiograph_id=radiograph_id,
        status=Adjudication.Status.AGREED,
        excluded=truth.excluded,
        truth_source=TruthSource.AGREEMENT,
        decided_at=timezone.now(),
    )
    _write_truth(adjudication, [HipInput(h.side, h.hip_class, *h.box) for h in truth.hips])
    return adjudication


def _write_truth(adjudication: Adjudication, hips: Sequence[HipInput]) -> None:
    now = timezone.now()
    for row in GroundTruthHip.objects.filter(adjudication=adjudication, removed_at__isnull=True):
        row.removed_at = now
        row.save(update_fields=["removed_at"])
    for hip in hips:
        origin = provenance.truth_provenance(
            radiograph_id=adjudication.radiograph_id, side=hip.side, hip_class=hip.hip_class
        )
        GroundTruthHip.objects.create(
            radiograph_id=adjudication.radiograph_id, adjudication=adjudication, side=hip.side,
            hip_class=hip.hip_class, x=hip.x, y=hip.y, width=hip.width, height=hip.height, provenance=origin,
        )  # fmt: skip


def adjudication_resolve(
    *,
    adjudication_id: int,
    user: User,
    hips: Sequence[HipInput],
    truth_source: str,
    note: str = "",
    excluded: str = "",
) -> Adjudication:
    """Record the adjudicator's decision as ground truth. Resolving again
    (a second click, or a correction) replaces the truth; history keeps both."""
    if truth_source not in TruthSource.values or truth_source == TruthSource.AGREEMENT:
        raise ValidationError("choose the source of truth: consensus, CT, MRI, post-operative imaging or operation")
    with transaction.atomic():
        adjudication = Adjudication.objects.select_for_update().select_related("radiograph").get(id=adjudication_id)
        if adjudication.status == Adjudication.Status.AGREED:
            raise ValidationError("the labellers agreed on this radiograph; there is nothing to adjudicate")
        validate_hips(hips, radiograph=adjudication.radiograph, excluded=excluded)
        if not excluded and not hips:
            raise ValidationError("give at least one hip, or exclude the radiograph with a reason")
        _write_truth(adjudication, hips)
        adjudication.status = Adjudication.Status.RESOLVED
        adjudication.truth_source = truth_source
        adjudication.note = note
        adjudication.excluded = excluded
        adjudication.decided_by = user
        adjudication.decided_at = timezone.now()
        adjudication.save()
    return adjudication


def ground_truth_hips() -> QuerySet[GroundTruthHip]:
    """The ground truth: live hips of agreed or resolved radiographs."""
    return GroundTruthHip.objects.filter(removed_at__isnull=True).select_related(
        "radiograph__study__patient", "adjudication"
    )


# --- Progress and agreement statistics -----------------------------------------------


def labelling_progress() -> dict[str, Any]:
    """Per labeller: submitted, in progress, and time per image."""
    from statistics import median

    rows = []
    assignments = Assignment.objects.filter(labeler__isnull=False).select_related("labeler")
    by_user: dict[str, list[Assignment]] = {}
    for assignment in assignments:
        assert assignment.labeler is not None  # labeler__isnull=False
        by_user.setdefault(assignment.labeler.get_username(), []).append(assignment)
    for username, items in sorted(by_user.items()):
        done = [a for a in items if a.status == Assignment.Status.SUBMITTED]
        seconds = [a.active_seconds for a in done if a.active_seconds]
        rows.append(
            {
                "labeler": username,
                "submitted": len(done),
                "in_progress": sum(a.status == Assignment.Status.IN_PROGRESS for a in items),
                "median_seconds_per_image": median(seconds) if seconds else None,
                "last_submitted_at": max((a.submitted_at for a in done if a.submitted_at is not None), default=None),
            }
        )
    totals = {
        "radiographs": Radiograph.objects.count(),
        "slots_open": Assignment.objects.filter(status=Assignment.Status.OPEN).count(),
        "slots_in_progress": Assignment.objects.filter(status=Assignment.Status.IN_PROGRESS).count(),
        "slots_submitted": Assignment.objects.filter(status=Assignment.Status.SUBMITTED).count(),
        "agreed": Adjudication.objects.filter(status=Adjudication.Status.AGREED).count(),
        "pending_adjudication": Adjudication.objects.filter(status=Adjudication.Status.PENDING).count(),
        "resolved": Adjudication.objects.filter(status=Adjudication.Status.RESOLVED).count(),
    }
    return {"labelers": rows, "totals": totals}


def agreement_statistics() -> dict[str, Any]:
    """Inter-labeller agreement over every radiograph both labellers submitted:
    Cohen's κ (binary fracture and six-class) on hips both labelled, the IoU
    distribution of their boxes, and how many went to adjudication and why."""
    import numpy as np
    from sklearn.metrics import cohen_kappa_score

    submitted = (
        Assignment.objects.filter(status=Assignment.Status.SUBMITTED)
        .prefetch_related("hips")
        .order_by("radiograph_id", "slot")
    )
    per_radiograph: dict[int, list[agreement.Labelling]] = {}
    for assignment in submitted:
        hips = tuple(agreement.Hip(h.side, h.hip_class, h.box) for h in assignment.hips.all() if h.removed_at is None)
        per_radiograph.setdefault(assignment.radiograph_id, []).append(agreement.Labelling(assignment.excluded, hips))
    pairs = [(ls[0], ls[1]) for ls in per_radiograph.values() if len(ls) >= 2]
    matched = agreement.matched_pairs(pairs)
    first = [a.hip_class for a, _ in matched]
    second = [b.hip_class for _, b in matched]
    ious = [agreement.iou(a.box, b.box) for a, b in matched]

    def kappa(a: list[Any], b: list[Any], labels: list[Any]) -> float | None:
        if len(a) < 2 or len(set(a) | set(b)) < 2:
            return None
        return float(cohen_kappa_score(a, b, labels=labels))

    fracture = [c in FRACTURE_CLASSES for c in first], [c in FRACTURE_CLASSES for c in second]
    kappa_six_ci = kappa_interval(first, second, list(CLASSES))
    kappa_binary_ci = kappa_interval(*fracture, [False, True])
    reasons: dict[str, int] = {}
    for adjudication in Adjudication.objects.exclude(status=Adjudication.Status.AGREED):
        for reason in adjudication.disagreements:
            kind = _reason_kind(reason)
            reasons[kind] = reasons.get(kind, 0) + 1
    histogram, edges = np.histogram(ious, bins=10, range=(0.0, 1.0)) if ious else (np.zeros(10), np.linspace(0, 1, 11))
    return {
        "radiographs_double_read": len(pairs),
        "hips_compared": len(matched),
        "kappa_six_class": kappa(first, second, list(CLASSES)),
        "kappa_binary": kappa(*fracture, [False, True]),
        # 95% percentile bootstrap intervals over the matched hips (the page's chart draws them).
        "kappa_six_class_ci": kappa_six_ci,
        "kappa_binary_ci": kappa_binary_ci,
        "iou": {
            "mean": float(np.mean(ious)) if ious else None,
            "median": float(np.median(ious)) if ious else None,
            "min": float(np.min(ious)) if ious else None,
            "histogram": [
                {"from": float(lo), "to": float(hi), "count": int(n)}
                for lo, hi, n in zip(edges[:-1], edges[1:], histogram, strict=True)
            ],  # fmt: skip
        },
        "agreed": Adjudication.objects.filter(status=Adjudication.Status.AGREED).count(),
        "adjudicated": Adjudication.objects.filter(status=Adjudication.Status.RESOLVED).count(),
        "pending": Adjudication.objects.filter(status=Adjudication.Status.PENDING).count(),
        "disagreement_reasons": dict(sorted(reasons.items(), key=lambda item: -item[1])),
        # The anchoring risk: how much of the ground truth began as a model's proposal.
        "provenance": provenance.ground_truth_provenance(),
        "proposals_show_class": settings.PROPOSALS_SHOW_CLASS,
    }


def kappa_interval(
    a: list[Any], b: list[Any], labels: list[Any], *, iterations: int = 1000, seed: int = 0
) -> list[float] | None:
    """The 95% percentile bootstrap interval of Cohen's κ between ``a`` and ``b`` (hips resampled
    with replacement; resamples where κ is undefined are left out). None with fewer than 2 hips."""
    import numpy as np

    if len(a) < 2 or len(set(a) | set(b)) < 2:
        return None
    index = {label: i for i, label in enumerate(labels)}
    x = np.array([index[v] for v in a])
    y = np.array([index[v] for v in b])
    k = len(labels)
    samples = np.random.default_rng(seed).integers(0, len(x), size=(iterations, len(x)))
    values = []
    for rows in samples:
        confusion = np.bincount(x[rows] * k + y[rows], minlength=k * k).reshape(k, k) / len(rows)
        expected = float(confusion.sum(axis=1) @ confusion.sum(axis=0))
        if expected < 1.0:
            values.append((float(np.trace(confusion)) - expected) / (1.0 - expected))
    if not values:
        return None
    low, high = np.percentile(values, [2.5, 97.5])
    return [float(low), float(high)]


def _reason_kind(reason: str) -> str:
    if "IoU" in reason:
        return "boxes do not overlap enough"
    if "one labeller only" in reason and "excluded" not in reason:
        return "hip labelled by one labeller only"
    if "excluded" in reason:
        return "exclusion differs"
    return "class differs"
