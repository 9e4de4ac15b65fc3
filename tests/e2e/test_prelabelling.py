"""Pre-labelling in headless Chromium: the detector's proposals, written by the
ml service, drawn dashed on the labelling page; one key accepts one, and the
hip is stored with source "model" while hand-drawn hips stay "manual". By
default the page shows boxes only (no model class anywhere) and the server
records each hip's provenance; a site that turns PROPOSALS_SHOW_CLASS on shows
the class, and a class kept or changed is recorded as such."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import expect

from annotate.labelling import services as labelling
from annotate.labelling.services import HipInput
from annotate.labels import Adjudication, Assignment, GroundTruthHip, HipLabel
from ml.proposals import proposals_store
from tests.e2e.helpers import drag, ingest_hips, labeler, wait_for_viewer

pytestmark = pytest.mark.e2e

RIGHT_BOX = (30.0, 60.0, 80.0, 90.0)
LEFT_BOX = (135.0, 65.0, 80.0, 90.0)

# Every rectangle stroked with a dash pattern, and every label written, on any canvas.
RECORD_CANVAS = """
window.__dashed = [];
window.__texts = [];
const proto = CanvasRenderingContext2D.prototype;
const strokeRect = proto.strokeRect;
const fillText = proto.fillText;
proto.strokeRect = function (...args) {
  if (this.getLineDash().length) window.__dashed.push(args);
  return strokeRect.apply(this, args);
};
proto.fillText = function (...args) {
  window.__texts.push(args[0]);
  return fillText.apply(this, args);
};
"""


@dataclass
class Detection:
    """What the detector pipeline hands to ``proposals_store``."""

    side: str
    box: tuple[float, float, float, float]
    score: float


def drawn(page: Any) -> tuple[list[str], int]:
    """The labels and the number of dashed boxes of a fresh frame of the viewer."""
    page.evaluate("() => { window.__dashed = []; window.__texts = []; window.labelPage.viewer.requestRender(); }")
    page.wait_for_function("window.__texts.length > 0")
    return page.evaluate("() => [window.__texts.slice(), window.__dashed.length]")


def test_labeller_accepts_a_proposal_with_one_key_and_it_is_stored_as_a_model_proposal(
    page, login, users, dicom_bytes, shot
):
    """The default: proposals are boxes; the classifier's class never reaches the page."""
    radiograph = ingest_hips(dicom_bytes, 5)
    # Another labeller has already read the image by hand: agreement still makes the truth.
    olga = labeler("olga")
    theirs = labelling.assignment_next(user=olga)
    labelling.assignment_submit(
        assignment_id=theirs.id,
        user=olga,
        hips=[HipInput("right", "normal", *RIGHT_BOX), HipInput("left", "fn_nondisplaced", *LEFT_BOX)],
    )
    proposals_store(
        radiograph_id=radiograph.id,
        detections=[Detection("right", RIGHT_BOX, 0.96), Detection("left", LEFT_BOX, 0.91)],
        model_version="detector v3",
        classifications={"right": "normal"},
    )

    page.add_init_script(RECORD_CANVAS)
    lena = login(page, "labeler")
    page.goto("/label/")
    page.wait_for_url(re.compile(r"/label/\d+/$"))
    mine = Assignment.objects.get(labeler=lena, status=Assignment.Status.IN_PROGRESS)
    assert mine.radiograph_id == radiograph.id
    wait_for_viewer(page)

    # The proposals are drawn dashed, marked as proposals, and listed; they are not hips.
    # The right one has a class on the server ("normal"), which the page never shows.
    proposals = page.locator("#proposal-list li")
    expect(proposals).to_have_count(2)
    expect(page.locator("#hip-list li")).to_have_count(0)
    texts, dashed = drawn(page)
    assert "proposal · R · 0.96" in texts and "proposal · L · 0.91" in texts, texts
    assert not any("Normal" in text for text in texts), texts
    assert dashed >= 4, dashed  # each box: a dark halo and its colour, both dashed
    expect(proposals.first).not_to_contain_text("Normal")
    expect(page.locator("#proposals-hint")).to_contain_text("The model's class is not shown")
    state = page.evaluate("() => window.labelPage.tool.proposals.map((p) => p.hip_class)")
    assert state == ["", ""], state  # nothing of the class reached the browser
    expect(page.locator("#help-keys")).to_contain_text("accept the next model proposal")
    shot(page, "prelabel-proposals")

    # One key: the right proposal becomes a hip (selected, waiting for its class).
    page.keyboard.press("p")
    right = page.locator('#hip-list li[data-side="right"]')
    expect(right).to_have_attribute("data-source", "model")
    expect(proposals).to_have_count(1)
    expect(page.locator('#proposal-list li[data-side="left"]')).to_have_count(1)
    texts, _ = drawn(page)
    assert not any(text.startswith("proposal · R") for text in texts), texts  # its side is labelled: hidden
    page.keyboard.press("1")
    expect(right).to_have_attribute("data-class", "normal")
    expect(page.locator("#save-status")).to_have_attribute("data-state", "saved")
    hip = HipLabel.objects.get(assignment=mine, removed_at__isnull=True)
    assert (hip.side, hip.hip_class, hip.source, hip.provenance) == ("right", "normal", "model", "proposal_box")
    assert hip.box == pytest.approx(RIGHT_BOX)

    # The left hip drawn by hand over its proposal: the proposal goes, the hip is manual.
    drag(page, (136, 66), (214, 154))
    page.keyboard.press("3")
    expect(page.locator('#hip-list li[data-side="left"]')).to_have_attribute("data-source", "manual")
    expect(page.locator("#proposals")).to_be_hidden()
    shot(page, "prelabel-accepted")

    # Enter submits: the hips keep their sources, and agreement works as ever.
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/label/$"))  # no image left: the "nothing to label" page
    mine.refresh_from_db()
    assert mine.status == Assignment.Status.SUBMITTED
    live = {h.side: h for h in HipLabel.objects.filter(assignment=mine, removed_at__isnull=True)}
    assert {side: (h.hip_class, h.source, h.provenance) for side, h in live.items()} == {
        "right": ("normal", "model", "proposal_box"),
        "left": ("fn_nondisplaced", "manual", "drawn"),
    }
    adjudication = Adjudication.objects.get(radiograph=radiograph)
    assert adjudication.status == Adjudication.Status.AGREED
    # The truth carries it on: the right hip's label began as a proposal's box.
    truth = {h.side: (h.hip_class, h.provenance) for h in GroundTruthHip.objects.filter(radiograph=radiograph)}
    assert truth == {"right": ("normal", "proposal_box"), "left": ("fn_nondisplaced", "drawn")}


def test_accept_all_adjust_and_undo(page, login, users, dicom_bytes):
    radiograph = ingest_hips(dicom_bytes, 6)
    proposals_store(
        radiograph_id=radiograph.id,
        detections=[Detection("right", RIGHT_BOX, 0.8), Detection("left", LEFT_BOX, 0.7)],
        model_version="detector v3",
    )
    lena = login(page, "labeler")
    page.goto("/label/")
    page.wait_for_url(re.compile(r"/label/\d+/$"))
    mine = Assignment.objects.get(labeler=lena, status=Assignment.Status.IN_PROGRESS)
    wait_for_viewer(page)
    proposals = page.locator("#proposal-list li")
    expect(proposals).to_have_count(2)

    # Shift+P takes both; Ctrl+Z gives them back as proposals.
    page.keyboard.press("Shift+P")
    expect(page.locator("#hip-list li")).to_have_count(2)
    expect(page.locator("#proposals")).to_be_hidden()
    page.keyboard.press("Control+z")
    expect(page.locator("#hip-list li")).to_have_count(0)
    expect(proposals).to_have_count(2)

    # The panel's button takes both too; each gets its class, one is moved.
    page.get_by_role("button", name="Accept proposals").click()
    expect(page.locator('#hip-list li[data-source="model"]')).to_have_count(2)
    page.keyboard.press("1")  # the first accepted (the right hip) is selected
    page.keyboard.press("Tab")
    page.keyboard.press("6")
    centre = (LEFT_BOX[0] + LEFT_BOX[2] / 2, LEFT_BOX[1] + LEFT_BOX[3] / 2)
    drag(page, centre, (centre[0] + 10, centre[1]))
    expect(page.locator('#hip-list li[data-side="left"]')).to_have_attribute("data-class", "arthroplasty")
    expect(page.locator("#save-status")).to_have_attribute("data-state", "saved")
    live = {h.side: h for h in HipLabel.objects.filter(assignment=mine, removed_at__isnull=True)}
    assert {side: (h.hip_class, h.source) for side, h in live.items()} == {
        "right": ("normal", "model"),
        "left": ("arthroplasty", "model"),
    }
    assert live["left"].x == pytest.approx(LEFT_BOX[0] + 10, abs=1.5)  # adjusted, still a model proposal


def test_a_site_that_shows_the_class_records_kept_and_changed(page, login, users, dicom_bytes, settings):
    settings.PROPOSALS_SHOW_CLASS = True
    radiograph = ingest_hips(dicom_bytes, 7)
    proposals_store(
        radiograph_id=radiograph.id,
        detections=[Detection("right", RIGHT_BOX, 0.96), Detection("left", LEFT_BOX, 0.91)],
        model_version="detector v3",
        classifications={"right": "normal", "left": "intertrochanteric"},
    )
    page.add_init_script(RECORD_CANVAS)
    lena = login(page, "labeler")
    page.goto("/label/")
    page.wait_for_url(re.compile(r"/label/\d+/$"))
    mine = Assignment.objects.get(labeler=lena, status=Assignment.Status.IN_PROGRESS)
    wait_for_viewer(page)
    expect(page.locator("#proposal-list li")).to_have_count(2)
    texts, _ = drawn(page)
    assert "proposal · R · 0.96 · Normal" in texts and "proposal · L · 0.91 · Intertrochanteric" in texts, texts
    expect(page.locator('#proposal-list li[data-side="right"]')).to_contain_text("Normal")
    expect(page.locator("#proposals-hint")).to_contain_text("The model's class is shown")

    # Both accepted: the right keeps the model's class (1: normal), the left gets another (6: arthroplasty).
    page.keyboard.press("Shift+P")
    page.keyboard.press("1")
    page.keyboard.press("Tab")
    page.keyboard.press("6")
    expect(page.locator('#hip-list li[data-side="left"]')).to_have_attribute("data-class", "arthroplasty")
    expect(page.locator("#save-status")).to_have_attribute("data-state", "saved")
    live = {h.side: h for h in HipLabel.objects.filter(assignment=mine, removed_at__isnull=True)}
    assert {side: (h.hip_class, h.proposal_class, h.provenance) for side, h in live.items()} == {
        "right": ("normal", "normal", "proposal_class_kept"),
        "left": ("arthroplasty", "intertrochanteric", "proposal_class_changed"),
    }
