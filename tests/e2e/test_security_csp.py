"""The Content-Security-Policy enforced, as in production, on the pages that carry inline
scripts, an import map, inline styles or the viewer: Chromium reports no violation, the
pages' scripts run, and the headers are there.

(With DEBUG on, as in the other browser tests, the policy is only reported: Playwright's
``wait_for_function`` evaluates strings, which the enforced policy rightly refuses. This test
therefore waits with locators only.)
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from annotate import services
from annotate.labels import Assignment
from annotate.models import Radiograph
from tests.e2e.helpers import hips

pytestmark = pytest.mark.e2e


@pytest.fixture
def enforced(settings: Any) -> None:
    settings.CSP_REPORT_ONLY = False


def watch(page: Any) -> list[str]:
    violations: list[str] = []
    page.on(
        "console",
        lambda message: violations.append(message.text) if "Content Security Policy" in message.text else None,
    )
    return violations


def test_pages_run_under_the_enforced_policy(enforced, page, login, users, dicom_bytes):
    data = dicom_bytes(pixels=hips(1), seed=1, patient_id="MRN001", accession="ACC1")
    radiograph = Radiograph.objects.get(
        id=services.radiograph_ingest(data=data, name="h.dcm", source="cli").radiograph_id
    )
    violations = watch(page)

    login(page, "researcher")
    response = page.goto("/imports/")
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "camera=()" in response.headers["permissions-policy"]
    for url in ("/", "/radiographs/", f"/radiographs/{radiograph.pk}/", "/labelling/exchange/", "/models/worklist/",
                f"/models/radiographs/{radiograph.pk}/predictions/", "/api/docs/", "/ops/",
                "/labelling/agreement/"):  # fmt: skip
        page.goto(url)
        page.wait_for_load_state("networkidle")
    # The charts (inline SVG drawn by the pages' modules) are there under the enforced policy.
    page.goto("/labelling/agreement/")
    expect(page.locator("#iou-chart svg rect.bar")).to_have_count(10)
    page.goto("/ops/")
    expect(page.locator("#ops-chart svg")).to_be_visible()
    # The API docs (Swagger UI from our static files) render.
    page.goto("/api/docs/")
    expect(page.locator(".swagger-ui .info")).to_be_visible()

    # A labeller's page: the viewer's import map and modules load and paint the image.
    page.goto("/")
    page.locator("header").get_by_role("button", name="Log out").click()
    page.wait_for_url("**/accounts/login/")
    login(page, "labeler")
    slot = Assignment.objects.filter(radiograph=radiograph).order_by("slot").first()
    Assignment.objects.filter(pk=slot.pk).update(labeler=users["labeler"], status=Assignment.Status.IN_PROGRESS)
    page.goto(f"/label/{slot.pk}/")
    page.wait_for_load_state("networkidle")
    expect(page.locator("canvas").first).to_be_visible()
    assert not violations, f"Content-Security-Policy violations: {violations}"
