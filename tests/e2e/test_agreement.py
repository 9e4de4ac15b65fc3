"""The agreement page in headless Chromium: its charts draw what its tables list, Cohen's κ
(six-class and binary) with the 95% bootstrap interval, and the histogram of the IoU of the
two labellers' boxes."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from annotate import services
from annotate.labelling import services as labelling
from annotate.labelling.services import HipInput
from tests.accounts.factories import UserFactory
from tests.e2e.helpers import hips

pytestmark = pytest.mark.e2e


def label(user, boxes):
    assignment = labelling.assignment_next(user=user)
    labelling.assignment_submit(assignment_id=assignment.id, user=user, hips=boxes)


@pytest.fixture
def double_read(dicom_bytes, users):
    for seed in range(4):
        data = dicom_bytes(pixels=hips(seed), seed=seed, patient_id=f"MRN00{seed}", accession=f"ACC{seed}")
        services.radiograph_ingest(data=data, name=f"{seed}.dcm", source="cli")
    lena = users["labeler"]
    luke = UserFactory(username="luke")
    luke.groups.add(Group.objects.get(name="labeler"))
    pairs = [  # (lena's right, luke's right, luke's box shift): classes and boxes that differ a little
        ("normal", "normal", 0),
        ("fn_displaced", "fn_displaced", 40),
        ("normal", "fn_nondisplaced", 0),
        ("intertrochanteric", "intertrochanteric", 80),
    ]
    for a, b, shift in pairs:
        label(lena, [HipInput("right", a, 10, 20, 100, 100), HipInput("left", "normal", 130, 20, 100, 100)])
        label(luke, [HipInput("right", b, 10 + shift, 20, 100, 100), HipInput("left", "normal", 130, 20, 100, 100)])
    return labelling.agreement_statistics()


def test_the_charts_show_kappa_with_its_interval_and_the_iou_histogram(page, login, shot, double_read):
    stats = double_read
    assert stats["hips_compared"] == 8
    low, high = stats["kappa_six_class_ci"]
    assert low <= stats["kappa_six_class"] <= high
    login(page, "researcher")
    page.goto("/labelling/agreement/")

    # κ: a dot, its value written beside it and its interval, one row per κ of the table.
    chart = page.locator("#kappa-chart svg")
    expect(chart).to_have_attribute("role", "img")
    six = chart.locator('g.interval[data-label="six_class"]')
    binary = chart.locator('g.interval[data-label="binary"]')
    expect(six.locator("text.value")).to_have_text(f"{stats['kappa_six_class']:.3f}")
    expect(binary.locator("text.value")).to_have_text(f"{stats['kappa_binary']:.3f}")
    expect(six.locator("line.ci")).to_have_count(1)
    expect(page.locator("#kappa-six")).to_have_text(f"{stats['kappa_six_class']:.3f}")  # the table under it
    expect(page.locator("#kappa-six-ci")).to_have_text(f"{low:.3f}–{high:.3f}")

    # The IoU histogram: a bar per bin, as tall as the table's count.
    bars = page.locator("#iou-chart svg rect.bar")
    expect(bars).to_have_count(10)
    counts = [b["count"] for b in stats["iou"]["histogram"]]
    assert sum(counts) == 8
    assert [int(bars.nth(i).get_attribute("data-value")) for i in range(10)] == counts
    expect(page.locator("#iou-table tbody tr")).to_have_count(10)
    shot(page, "agreement")
