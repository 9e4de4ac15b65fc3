"""Provenance of labels: whether a hip's label began as one of the detector's
proposals, and whether the model's class was shown with it (anchoring). The
labeller's hip decides its own (``HipLabel.provenance_of``); here, the ground
truth's, the shares a researcher weighs the anchoring risk by, and the facts
the deviations registry reads."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings

from annotate.labels import FROM_PROPOSAL, Adjudication, Assignment, GroundTruthHip, HipLabel, Provenance


def truth_provenance(*, radiograph_id: int, side: str, hip_class: str) -> str:
    """The provenance of a ground-truth hip of ``side`` and ``hip_class``, from
    the submitted labellers' hips of that side it was resolved from (agreement:
    both labellers' hips; adjudication: the labellings the adjudicator decided
    between, whichever they took or whatever they entered):

    - a class was shown with one of those hips' proposals: ``proposal_class_kept``
      when the truth's class is a class shown, else ``proposal_class_changed``;
    - else, one of them is an accepted proposal: ``proposal_box``;
    - else (all drawn by hand, or a hip only the adjudicator gave): ``drawn``."""
    labels = HipLabel.objects.filter(
        assignment__radiograph_id=radiograph_id, assignment__status=Assignment.Status.SUBMITTED,
        removed_at__isnull=True, side=side, source=HipLabel.Source.MODEL,
    ).values_list("proposal_class", flat=True)  # fmt: skip
    accepted = list(labels)
    shown = {cls for cls in accepted if cls}
    if shown:
        return Provenance.PROPOSAL_CLASS_KEPT if hip_class in shown else Provenance.PROPOSAL_CLASS_CHANGED
    return Provenance.PROPOSAL_BOX if accepted else Provenance.DRAWN


def provenance_summary(provenances: Iterable[str]) -> dict[str, Any]:
    """How many hips of each provenance, and the shares a researcher weighs
    the anchoring risk by: ``from_proposal`` (box or class; of all hips) and
    ``class_kept`` (the model's shown class kept). Shares are None for no hips."""
    counts = dict.fromkeys(Provenance.values, 0)
    for value in provenances:
        counts[value] = counts.get(value, 0) + 1
    hips = sum(counts.values())
    from_proposal = sum(counts[value] for value in FROM_PROPOSAL)
    kept = counts[Provenance.PROPOSAL_CLASS_KEPT]
    return {
        "hips": hips,
        "counts": counts,
        "from_proposal": from_proposal,
        "from_proposal_share": from_proposal / hips if hips else None,
        "class_kept": kept,
        "class_kept_share": kept / hips if hips else None,
        "class_shown": kept + counts[Provenance.PROPOSAL_CLASS_CHANGED],
        "from_proposal_percent": 100 * from_proposal / hips if hips else None,
        "class_kept_percent": 100 * kept / hips if hips else None,
    }


def ground_truth_provenance() -> dict[str, Any]:
    """``provenance_summary`` of the ground truth: the live hips of agreed or
    resolved radiographs that are not excluded."""
    hips = GroundTruthHip.objects.filter(
        removed_at__isnull=True,
        adjudication__excluded="",
        adjudication__status__in=[Adjudication.Status.AGREED, Adjudication.Status.RESOLVED],
    )
    return provenance_summary(hips.values_list("provenance", flat=True))


def truth_provenance_at(*, keys: Iterable[tuple[int, str]], at: Any) -> dict[tuple[int, str], str]:
    """The provenance of the ground-truth hip that was live at ``at`` for each
    (radiograph id, side) of ``keys``: for a frozen dataset version, the truth it
    copied, even if an adjudicator has replaced it since. Keys without one are left out."""
    wanted = set(keys)
    rows = GroundTruthHip.objects.filter(radiograph_id__in={rid for rid, _ in wanted}, created_at__lte=at).exclude(
        removed_at__lte=at
    )
    found: dict[tuple[int, str], str] = {}
    for row in rows.order_by("created_at", "id").only("radiograph_id", "side", "provenance"):
        if (row.radiograph_id, row.side) in wanted:
            found[(row.radiograph_id, row.side)] = row.provenance
    return found


def deviation_facts(summary: dict[str, Any], *, site_shows_class: bool = False) -> dict[str, Any]:
    """The facts the deviations registry's labelling entries read (``ml.core.deviations``) from a
    ``provenance_summary``: whether labellers are (``site_shows_class``) or were, for some of its
    hips, shown the model's class, and the share of its hips whose label came from a proposal."""
    return {
        "proposals_show_class": bool(site_shows_class or summary["class_shown"]),
        "proposal_share": summary["from_proposal_share"] or 0.0,
        "proposal_class_kept_share": summary["class_kept_share"] or 0.0,
        "ground_truth_hips": summary["hips"],
    }


def proposal_facts() -> dict[str, Any]:
    """``deviation_facts`` of the whole ground truth and this site's setting."""
    return deviation_facts(ground_truth_provenance(), site_shows_class=settings.PROPOSALS_SHOW_CLASS)
