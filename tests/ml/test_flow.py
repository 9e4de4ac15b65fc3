"""The participant flow diagram on real PostgreSQL: its counts against the records (rejections and
exclusions with their reasons, agreed and adjudicated truth, the split by patient), its drawing,
and the dataset page that shows it."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotate.labels import Adjudication
from annotate.models import ImportItem
from ml import services
from ml.core.flow import FlowCounts, flow_files, flow_lines
from ml.flow import DUPLICATE, dataset_flow
from ml.models import DatasetHip
from tests.annotate.factories import (
    AdjudicationFactory,
    GroundTruthHipFactory,
    ImportJobFactory,
    PatientFactory,
    RadiographFactory,
    StudyFactory,
)

pytestmark = pytest.mark.django_db

CLASSES = ("normal", "fn_displaced", "intertrochanteric", "arthroplasty")


def _truth(radiograph, index: int, **adjudication) -> None:
    adj = AdjudicationFactory(radiograph=radiograph, **adjudication)
    if adjudication.get("excluded"):
        return
    for side in ("right", "left"):
        GroundTruthHipFactory(adjudication=adj, side=side, hip_class=CLASSES[(index + (side == "left")) % 4])


@pytest.fixture
def archive():
    """20 stored radiographs of 14 patients: 14 agreed, 2 adjudicated (CT, MRI), 2 excluded, 1 in
    adjudication, 1 unlabelled; an import job with 3 files rejected and 1 already stored."""
    job = ImportJobFactory()
    reasons = ["not a DICOM file", "not a DICOM file", "colour image (RGB); only grayscale radiographs are accepted"]
    for ordinal, reason in enumerate(reasons):
        ImportItem.objects.create(job=job, ordinal=ordinal, status=ImportItem.Status.REJECTED, reason=reason)
    ImportItem.objects.create(job=job, ordinal=3, status=ImportItem.Status.PRESENT)
    patients = [PatientFactory() for _ in range(14)]
    radiographs = []
    for i in range(20):
        radiograph = RadiographFactory(study=StudyFactory(patient=patients[i % 14]))
        ImportItem.objects.create(job=job, ordinal=10 + i, status=ImportItem.Status.IMPORTED, radiograph=radiograph)
        radiographs.append(radiograph)
    for i in range(14):
        _truth(radiographs[i], i)
    _truth(radiographs[14], 14, status=Adjudication.Status.RESOLVED, truth_source="ct")
    _truth(radiographs[15], 15, status=Adjudication.Status.RESOLVED, truth_source="mri")
    _truth(radiographs[16], 16, excluded="cross_table_lateral")
    _truth(radiographs[17], 17, status=Adjudication.Status.RESOLVED, excluded="not_diagnostic", truth_source="")
    AdjudicationFactory(radiograph=radiographs[18], status=Adjudication.Status.PENDING, truth_source="")
    version, _ = services.dataset_freeze(seed=0)
    # After the freeze: neither counted in this version's flow.
    late = RadiographFactory()
    ImportItem.objects.create(job=job, ordinal=99, status=ImportItem.Status.REJECTED, reason="empty file")
    _truth(late, 0)
    return version


def test_the_flow_counts_match_the_records(archive):
    flow = dataset_flow(version=archive)
    assert flow.rejected == {"not a DICOM file": 2, "colour image (RGB); only grayscale radiographs are accepted": 1,
                             DUPLICATE: 1}  # fmt: skip
    assert (flow.stored, flow.received) == (20, 24)
    assert flow.excluded == {"Cross-table lateral": 1, "Not diagnostic": 1}
    assert (flow.labelled, flow.agreed, flow.adjudicated, flow.pending) == (16, 14, 2, 2)
    assert flow.truth_sources == {"CT": 1, "MRI": 1}
    assert flow.stored == flow.pending + flow.excluded_total + flow.labelled
    hips = list(DatasetHip.objects.filter(dataset=archive))
    for split, counts in flow.splits.items():
        part = [h for h in hips if h.split == split]
        assert counts.hips == len(part)
        assert counts.radiographs == len({h.radiograph_id for h in part})
        assert counts.patients == len({h.patient_id for h in part})
    assert sum(s.hips for s in flow.splits.values()) == 32
    assert sum(s.radiographs for s in flow.splits.values()) == flow.labelled
    assert flow.not_in_dataset == 0
    assert FlowCounts.from_dict(flow.as_dict()) == flow


def test_the_drawing_says_every_count(archive):
    flow = dataset_flow(version=archive)
    text = "\n".join(line for title, lines, side in flow_lines(flow) for line in (title, *lines, *side))
    assert "Radiographs received (n = 24)" in text
    assert "Rejected at ingest (n = 4)" in text and "not a DICOM file: 2" in text
    assert "Excluded at labelling (n = 2)" in text and "Cross-table lateral: 1" in text
    assert "Labelled (n = 16)" in text and "agreed: 14, adjudicated: 2" in text
    files = flow_files(flow)
    svg = files["flow.svg"].decode()
    assert svg.lstrip().startswith("<?xml") and "Rejected at ingest (n = 4)" in svg
    assert files["flow.png"].startswith(b"\x89PNG")


def test_the_dataset_page_shows_the_diagram(archive, client_as):
    client = client_as("researcher")
    page = client.get(reverse("dataset_detail", args=[archive.pk]))
    assert page.status_code == 200
    url = reverse("dataset_flow_svg", args=[archive.pk])
    assert f'src="{url}"'.encode() in page.content
    svg = client.get(url)
    assert svg.status_code == 200 and svg["Content-Type"] == "image/svg+xml"
    assert b"Labelled (n = 16)" in svg.content
    png = client.get(reverse("dataset_flow_png", args=[archive.pk]))
    assert png["Content-Type"] == "image/png" and png.content.startswith(b"\x89PNG")
    assert client_as("reader").get(url).status_code == 403
