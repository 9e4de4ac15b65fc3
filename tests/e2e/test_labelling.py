"""Labelling and adjudication in headless Chromium: boxes drawn with the mouse,
classes from the keyboard, work that survives a reload, blind labelling, and an
adjudicator's decision landing in the ground-truth table."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from annotate.labelling import services as labelling
from annotate.labelling.services import HipInput
from annotate.labels import Adjudication, Assignment, GroundTruthHip, HipLabel
from tests.e2e.helpers import drag, ingest_hips, labeler, wait_for_viewer

pytestmark = pytest.mark.e2e

# Another labeller's work on the radiograph our labeller gets: none of it may reach her.
OTHER_NOTE = "OLGA-PRIVATE-NOTE-4711"
OTHER_HIPS = [
    HipInput("right", "orif", 13.25, 17.75, 61.5, 63.5),
    HipInput("left", "arthroplasty", 151.25, 19.75, 57.5, 59.5),
]


def test_labeller_draws_two_hips_reloads_submits_and_never_sees_another_labellers_work(
    page, login, users, dicom_bytes, shot
):
    first, second = ingest_hips(dicom_bytes, 1), ingest_hips(dicom_bytes, 2)
    olga = labeler("olga")
    theirs = labelling.assignment_next(user=olga)
    assert theirs.radiograph_id == first.id
    labelling.assignment_submit(assignment_id=theirs.id, user=olga, hips=OTHER_HIPS, note=OTHER_NOTE)

    bodies: list[tuple[str, str]] = []

    def keep(response: Any) -> None:
        kind = response.headers.get("content-type", "")
        if response.request.resource_type in ("document", "fetch", "xhr") and ("json" in kind or "html" in kind):
            try:
                bodies.append((response.url, response.text()))
            except Exception:  # noqa: BLE001 - a redirect has no body to read
                pass

    page.on("response", keep)
    lena = login(page, "labeler")
    page.goto("/label/")
    page.wait_for_url(re.compile(r"/label/\d+/$"))
    mine = Assignment.objects.get(labeler=lena, status=Assignment.Status.IN_PROGRESS)
    assert mine.radiograph_id == first.id, "the labeller gets the image another labeller already did"
    assert page.url.endswith(f"/label/{mine.id}/")
    wait_for_viewer(page)
    expect(page.locator("#class-legend li")).to_have_count(6)  # the six classes and their keys, always shown
    expect(page.locator("#save-status")).to_have_text("Saved")

    # The patient's right hip is on the image's left half: draw, then "1" = normal.
    drag(page, (30, 60), (110, 150))
    page.keyboard.press("1")
    right = page.locator('#hip-list li[data-side="right"]')
    expect(right).to_have_attribute("data-class", "normal")
    expect(page.locator("#save-status")).to_have_attribute("data-state", "saved")
    expect(page.locator("#save-status")).to_contain_text("Saved")

    # The left hip, "3" = nondisplaced femoral neck fracture; then reload at once.
    drag(page, (135, 65), (215, 155))
    page.keyboard.press("3")
    left = page.locator('#hip-list li[data-side="left"]')
    expect(left).to_have_attribute("data-class", "fn_nondisplaced")
    shot(page, "label-two-hips")
    page.reload()
    wait_for_viewer(page)
    expect(page.locator("#hip-list li")).to_have_count(2)
    expect(right).to_have_attribute("data-class", "normal")
    expect(left).to_have_attribute("data-class", "fn_nondisplaced")
    expect(page.locator("#save-status")).to_have_attribute("data-state", "saved")
    live = {h.side: h for h in HipLabel.objects.filter(assignment=mine, removed_at__isnull=True)}
    assert {side: h.hip_class for side, h in live.items()} == {"right": "normal", "left": "fn_nondisplaced"}
    assert live["right"].x == pytest.approx(30, abs=1.5) and live["right"].width == pytest.approx(80, abs=2)
    assert live["left"].y == pytest.approx(65, abs=1.5) and live["left"].height == pytest.approx(90, abs=2)

    # Delete and undo, from the keyboard.
    page.locator('#hip-list li[data-side="left"] .side').click()
    page.keyboard.press("Delete")
    expect(page.locator("#hip-list li")).to_have_count(1)
    page.keyboard.press("Control+z")
    expect(page.locator("#hip-list li")).to_have_count(2)

    # Enter submits and opens the next image.
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf"/label/(?!{mine.id}/)\d+/$"))
    wait_for_viewer(page)
    mine.refresh_from_db()
    assert mine.status == Assignment.Status.SUBMITTED and mine.active_seconds > 0
    assert sorted(mine.hips.filter(removed_at__isnull=True).values_list("side", "hip_class")) == [
        ("left", "fn_nondisplaced"),
        ("right", "normal"),
    ]
    following = Assignment.objects.get(labeler=lena, status=Assignment.Status.IN_PROGRESS)
    assert following.radiograph_id == second.id and page.url.endswith(f"/label/{following.id}/")
    expect(page.locator("#hip-list li")).to_have_count(0)

    # Blind: nothing the labeller's pages fetched holds the other labeller's work.
    api_bodies = [text for url, text in bodies if "/api/labelling/" in url]
    assert len(api_bodies) >= 4, [url for url, _ in bodies]
    for url, text in bodies:
        assert OTHER_NOTE not in text, f"{url} shows the other labeller's note"
        for hip in OTHER_HIPS:
            assert str(hip.x) not in text and str(hip.width) not in text, f"{url} shows the other labeller's box"
        assert "olga" not in text, f"{url} names the other labeller"


def test_adjudicator_takes_one_labellers_hip_and_resolves_with_ct(page, login, users, dicom_bytes, shot):
    radiograph = ingest_hips(dicom_bytes, 3)
    box_right, box_left = (20.0, 50.0, 90.0, 95.0), (132.0, 52.0, 88.0, 96.0)
    for username, left_class in (("ann", "fn_displaced"), ("ben", "intertrochanteric")):
        user = labeler(username)
        assignment = labelling.assignment_next(user=user)
        shift = 0 if username == "ann" else 3.0  # the same hips, boxes a little apart
        labelling.assignment_submit(
            assignment_id=assignment.id,
            user=user,
            hips=[
                HipInput("right", "normal", box_right[0] + shift, *box_right[1:]),
                HipInput("left", left_class, box_left[0] + shift, *box_left[1:]),
            ],
        )
    adjudication = Adjudication.objects.get(radiograph=radiograph)
    assert adjudication.status == Adjudication.Status.PENDING

    adam = login(page, "adjudicator")
    page.goto(f"/adjudicate/{adjudication.id}/")
    wait_for_viewer(page, "adjudicatePage")
    expect(page.locator("#disagreements li")).to_have_text(
        "left hip: Displaced femoral neck fracture / Intertrochanteric fracture"
    )
    expect(page.locator("#labellers")).to_contain_text("Slot 1 (ann)")
    expect(page.locator("#labellers")).to_contain_text("Slot 2 (ben)")

    # Slot 2's left hip (ben: intertrochanteric), slot 1's right hip (ann).
    page.locator('[data-take="2-left"]').click()
    page.locator('[data-take="1-right"]').click()
    expect(page.locator('#hip-list li[data-side="left"]')).to_have_attribute("data-class", "intertrochanteric")
    expect(page.locator('#hip-list li[data-side="right"]')).to_have_attribute("data-class", "normal")
    page.locator("#truth-source").select_option("ct")
    shot(page, "adjudicate")
    page.get_by_role("button", name="Resolve").click()
    page.wait_for_url(re.compile(r"/adjudicate/$"))

    adjudication.refresh_from_db()
    assert adjudication.status == Adjudication.Status.RESOLVED
    assert adjudication.truth_source == "ct" and adjudication.decided_by == adam
    truth = {h.side: h for h in GroundTruthHip.objects.filter(radiograph=radiograph, removed_at__isnull=True)}
    assert truth["left"].hip_class == "intertrochanteric"
    assert truth["left"].box == pytest.approx((box_left[0] + 3.0, *box_left[1:]))
    assert truth["right"].hip_class == "normal"
    assert truth["right"].box == pytest.approx(box_right)


def test_refused_and_failed_saves_keep_the_work_and_it_reaches_the_server_later(page, login, users, dicom_bytes):
    ingest_hips(dicom_bytes, 4)
    network = {"mode": "up"}

    def flaky(route: Any) -> None:
        if route.request.method != "PUT" or network["mode"] == "up":
            route.continue_()
        elif network["mode"] == "refuse":
            route.fulfill(status=400, json={"detail": "the right hip's box reaches outside the image"})
        else:
            route.abort("internetdisconnected")

    page.route(re.compile(r".*/api/labelling/assignments/\d+/$"), flaky)
    lena = login(page, "labeler")
    page.goto("/label/")
    page.wait_for_url(re.compile(r"/label/\d+/$"))
    wait_for_viewer(page)
    status = page.locator("#save-status")

    # The server refuses: its reason is shown, the box stays.
    network["mode"] = "refuse"
    drag(page, (20, 60), (100, 150))
    page.keyboard.press("2")
    expect(page.locator("#error")).to_contain_text("the right hip's box reaches outside the image")
    expect(status).to_have_text("Not saved — see the message below")
    expect(page.locator('#hip-list li[data-side="right"]')).to_have_attribute("data-class", "fn_displaced")

    # The network is down: the page says so and keeps retrying.
    network["mode"] = "down"
    page.keyboard.press("4")
    expect(status).to_have_text("Not saved — retrying")

    # Still down, the tab is reloaded: the work comes back from this computer...
    page.reload()
    wait_for_viewer(page)
    expect(page.locator('#hip-list li[data-side="right"]')).to_have_attribute("data-class", "intertrochanteric")

    # ... and reaches the server once it answers again.
    network["mode"] = "up"
    expect(status).to_have_attribute("data-state", "saved", timeout=15_000)
    assignment = Assignment.objects.get(labeler=lena, status=Assignment.Status.IN_PROGRESS)
    hip = HipLabel.objects.get(assignment=assignment, removed_at__isnull=True)
    assert (hip.side, hip.hip_class) == ("right", "intertrochanteric")
    assert hip.box == pytest.approx((20, 60, 80, 90), abs=2)
