"""The participant flow of a dataset version, counted from the records (``ml.core.flow`` draws it).

Radiographs received up to the version's freeze: the import items rejected or already present,
the stored radiographs, their exclusions at labelling with reasons, the agreed and adjudicated
ground truth with its sources, and the version's split by patient.
"""

from __future__ import annotations

from collections import Counter

from django.db.models import Count

from annotate.labels import Adjudication, Exclusion, TruthSource
from annotate.models import ImportItem, Radiograph
from ml.core.flow import FlowCounts, SplitCount
from ml.models import DatasetHip, DatasetVersion, Split

DUPLICATE = "already stored (same file)"


def dataset_flow(*, version: DatasetVersion) -> FlowCounts:
    """The flow of ``version``: everything received until it was frozen, down to its split."""
    at = version.created_at
    rejected: Counter[str] = Counter()
    items = ImportItem.objects.filter(
        created_at__lte=at, status__in=[ImportItem.Status.REJECTED, ImportItem.Status.PRESENT]
    )
    for row in items.values("status", "reason").annotate(n=Count("id")):
        reason = DUPLICATE if row["status"] == ImportItem.Status.PRESENT else (row["reason"] or "no reason recorded")
        rejected[reason] += row["n"]
    radiographs = Radiograph.objects.filter(received_at__lte=at)
    stored = radiographs.count()
    adjudications = Adjudication.objects.filter(
        radiograph__in=radiographs, status__in=[Adjudication.Status.AGREED, Adjudication.Status.RESOLVED]
    )
    excluded: Counter[str] = Counter()
    words = dict(Exclusion.choices)
    for reason, n in adjudications.exclude(excluded="").values_list("excluded").annotate(n=Count("id")):
        excluded[words.get(reason, reason)] += n
    done = adjudications.filter(excluded="")
    by_status = dict(done.values_list("status").annotate(n=Count("id")))
    sources = dict(TruthSource.choices)
    truth = {
        sources.get(source, source or "not recorded"): n
        for source, n in done.filter(status=Adjudication.Status.RESOLVED)
        .values_list("truth_source")
        .annotate(n=Count("id"))
    }
    labelled = sum(by_status.values())
    hips = DatasetHip.objects.filter(dataset=version)
    in_version = set(hips.values_list("radiograph_id", flat=True).distinct())
    labelled_ids = set(done.values_list("radiograph_id", flat=True))
    splits = {}
    for split in Split.values:
        part = hips.filter(split=split)
        splits[split] = SplitCount(
            patients=part.values("patient_id").distinct().count(),
            radiographs=part.values("radiograph_id").distinct().count(),
            hips=part.count(),
        )
    return FlowCounts(
        received=stored + sum(rejected.values()),
        rejected=dict(rejected),
        stored=stored,
        pending=stored - labelled - sum(excluded.values()),
        excluded=dict(excluded),
        labelled=labelled,
        agreed=by_status.get(Adjudication.Status.AGREED, 0),
        adjudicated=by_status.get(Adjudication.Status.RESOLVED, 0),
        truth_sources=truth,
        dataset=version.pk,
        not_in_dataset=len(labelled_ids - in_version),
        splits=splits,
    )
