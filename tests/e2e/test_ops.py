"""The operations page in headless Chromium: it shows the figures it was rendered with, and a
radiograph read end to end while the page is open appears in its figures and its recent
readings without a reload (the page polls /api/ops/)."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from tests.ml.factories import RadiographReadingFactory
from tests.ml.helpers import ingest

pytestmark = pytest.mark.e2e


def test_a_new_reading_appears_without_a_reload(page, login, shot, dicom_bytes, role_groups, settings):
    settings.OPS_POLL_SECONDS = 1
    first, second = ingest(dicom_bytes, 1), ingest(dicom_bytes, 2)
    now = timezone.now()
    RadiographReadingFactory(radiograph=first, scored_at=now, seconds=4.0)
    login(page, "researcher")
    page.goto("/ops/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Operations")
    expect(page.locator("#ops-scored")).to_have_text("1")
    expect(page.locator("#ops-median")).to_have_text("4.0")
    expect(page.locator("#ops-recent tbody tr")).to_have_count(1)
    # The chart: a point per scored radiograph, its seconds from arrival to score.
    points = page.locator("#ops-chart svg circle.point")
    expect(points).to_have_count(1)
    expect(points.first).to_have_attribute("data-key", str(first.pk))
    expect(points.first).to_have_attribute("data-y", "4")

    RadiographReadingFactory(radiograph=second, scored_at=now + datetime.timedelta(seconds=1), seconds=10.0)
    expect(page.locator("#ops-scored")).to_have_text("2")  # the next poll, no reload
    expect(page.locator("#ops-median")).to_have_text("7.0")
    expect(page.locator("#ops-recent tbody tr")).to_have_count(2)
    expect(page.locator("#ops-recent tbody tr").first).to_contain_text(f"Radiograph {second.pk}")
    expect(page.locator("#ops-sources tbody tr")).to_contain_text("Command line")
    expect(points).to_have_count(2)  # the chart follows, without a reload
    expect(page.locator(f'#ops-chart circle.point[data-key="{second.pk}"]')).to_have_attribute("data-y", "10")
    shot(page, "ops")
