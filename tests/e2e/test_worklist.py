"""The triage worklist in headless Chromium: it lists the scored radiographs, a radiograph
scored while the page is open appears at the top without a reload (and only when it passes
the filters), the CT/MRI flag filter, and a click on a hip opening the heatmap panel."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import assert_no_identifiers, hips, wait_for_images
from tests.ml.helpers import FRACTURE, NORMAL, empty_dataset, ingest, make_classifier, predict, probabilities

pytestmark = pytest.mark.e2e

FLAGGED = probabilities(normal=0.55, fn_nondisplaced=0.4)  # top class normal, above the 0.3 threshold


@pytest.fixture
def films(dicom_bytes, role_groups):
    return [ingest(dicom_bytes, i, pixels=hips(i)) for i in range(5)]


@pytest.fixture
def classifier(role_groups):
    return make_classifier(empty_dataset())


def rows(page):
    return page.locator("#worklist tbody tr.worklist-row")


def test_newly_scored_radiographs_appear_without_a_reload(page, login, shot, films, classifier):
    for film, probs in zip(films[:2], [NORMAL, FRACTURE], strict=True):
        predict(classifier, film, "right", probs)
        predict(classifier, film, "left", NORMAL)
    login(page, "researcher")
    page.goto("/models/worklist/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Triage worklist")
    expect(rows(page)).to_have_count(2)
    expect(rows(page).first).to_have_attribute("data-radiograph", str(films[1].pk))  # newest first
    expect(page.locator("#worklist-count")).to_have_text("2")
    expect(page.locator("#flag-rule")).to_contain_text("0.300")
    assert_no_identifiers(page.content(), "the worklist")
    page.evaluate("window.__notReloaded = true")

    predict(classifier, films[2], "right", FLAGGED, box_source="detector")
    predict(classifier, films[2], "left", NORMAL, box_source="detector")
    expect(rows(page)).to_have_count(3)
    first = rows(page).first
    expect(first).to_have_attribute("data-radiograph", str(films[2].pk))
    expect(first).to_have_class("worklist-row flagged new")
    expect(first.locator(".flag-cell")).to_have_text("CT/MRI")
    # The rows the server drew name the classes in words too, and so does the flag rule.
    expect(rows(page).nth(1).locator(".hip-class").first).to_have_text("Displaced femoral neck fracture")
    expect(page.locator("#flag-rule")).to_contain_text("P(nondisplaced femoral neck fracture)")
    assert "fn_displaced" not in page.locator("#worklist tbody").inner_text()
    right = first.locator('button.hip[data-side="right"]')
    # Classes in words, as on the labelling page; the key stays in the data.
    expect(right.locator(".hip-class")).to_have_text("Normal")
    expect(right.locator(".hip-class")).to_have_attribute("data-class", "normal")
    expect(right.locator(".hip-top2")).to_have_text("Normal 0.55 · Nondisplaced femoral neck fracture 0.40")
    expect(right).not_to_contain_text("fn_nondisplaced")
    expect(right.locator(".hip-source")).to_have_text("box: detector")
    expect(page.locator("#worklist-count")).to_have_text("3")
    shot(page, "worklist-live")
    assert page.evaluate("window.__notReloaded") is True
    expect(first).not_to_have_class("worklist-row flagged new")  # the highlight fades
    expect(rows(page)).to_have_count(3)  # seen twice (the cursor overlaps), shown once


def test_the_flag_filter_keeps_flagged_radiographs_also_live(page, login, films, classifier):
    predict(classifier, films[0], "right", FLAGGED)
    predict(classifier, films[1], "right", FRACTURE)
    predict(classifier, films[2], "right", NORMAL)
    login(page, "researcher")
    page.goto("/models/worklist/")
    expect(rows(page)).to_have_count(3)
    page.get_by_label("Flagged for CT/MRI only").check()
    with page.expect_navigation():
        page.get_by_role("button", name="Apply").click()
    assert "flagged=1" in page.url
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_have_attribute("data-radiograph", str(films[0].pk))
    expect(page.get_by_label("Flagged for CT/MRI only")).to_be_checked()

    # Scored after the page opened: the unflagged one first, then the flagged one; once the
    # flagged one shows, a poll has seen both, and the unflagged one stayed out.
    predict(classifier, films[3], "right", FRACTURE)
    predict(classifier, films[4], "right", FLAGGED)
    expect(rows(page)).to_have_count(2)
    expect(rows(page).first).to_have_attribute("data-radiograph", str(films[4].pk))
    expect(page.locator(f'tr[data-radiograph="{films[3].pk}"]')).to_have_count(0)

    page.get_by_label("Flagged for CT/MRI only").uncheck()
    page.get_by_label("Order").select_option("probability")
    with page.expect_navigation():
        page.get_by_role("button", name="Apply").click()
    expect(rows(page)).to_have_count(5)
    # Highest P(fracture) first; of two equal ones, the one scored later.
    expect(rows(page).nth(0)).to_have_attribute("data-radiograph", str(films[3].pk))
    expect(rows(page).nth(1)).to_have_attribute("data-radiograph", str(films[1].pk))
    expect(rows(page).nth(2)).to_have_attribute("data-radiograph", str(films[4].pk))


def test_clicking_a_hip_shows_its_heatmap_and_probabilities(page, login, shot, films, classifier):
    film = films[0]
    right = predict(classifier, film, "right", FLAGGED)
    predict(classifier, film, "left", FRACTURE)
    login(page, "researcher")
    page.goto("/models/worklist/")
    panel = page.locator("#worklist-panel")
    expect(panel).to_be_hidden()
    rows(page).first.locator('button.hip[data-side="right"]').click()
    expect(panel).to_be_visible()
    expect(panel.get_by_role("heading", level=2)).to_have_text(f"Radiograph {film.pk}")
    wait_for_images(page, "#panel-figure img", 3)  # the preview and two heatmaps
    selected = panel.locator("section.prediction-hip.selected")
    expect(selected).to_have_attribute("data-side", "right")
    expect(selected.locator(".fracture-probability")).to_have_text(f"{right.fracture_probability:.3f}")
    expect(selected.locator("tbody tr")).to_have_count(6)
    expect(selected.locator("tbody tr.predicted td").first).to_have_text("Normal")
    words = ["Normal", "Nondisplaced femoral neck fracture", "Displaced femoral neck fracture",
             "Intertrochanteric fracture", "Previous internal fixation (ORIF)", "Previous arthroplasty"]  # fmt: skip
    expect(selected.locator("tbody td[data-class]")).to_have_text(words)
    expect(selected).to_contain_text("CT/MRI")
    expect(panel.locator("section.prediction-hip")).to_have_count(2)
    # The heatmap lies over its rectangle of the radiograph, scaled with the preview.
    preview = page.locator("#panel-figure .prediction-preview").bounding_box()
    heat = page.locator('#panel-figure .prediction-heatmap[data-side="right"]').bounding_box()
    scale = preview["width"] / film.columns
    assert heat["x"] - preview["x"] == pytest.approx(right.heatmap_rect[0] * scale, abs=1.5)
    assert heat["width"] == pytest.approx((right.heatmap_rect[2] - right.heatmap_rect[0]) * scale, abs=1.5)
    expect(rows(page).first).to_have_class("worklist-row flagged selected")
    shot(page, "worklist-panel")
    panel.get_by_label("Show heatmaps").uncheck()
    expect(page.locator("#panel-figure .prediction-heatmap").first).to_be_hidden()
    panel.get_by_role("button", name="Close").click()
    expect(panel).to_be_hidden()
    # A click elsewhere on the row opens the panel too, with neither hip marked.
    rows(page).first.locator("td").nth(4).click()
    expect(panel).to_be_visible()
    expect(panel.locator("section.prediction-hip.selected")).to_have_count(0)
    assert page.url.endswith("/models/worklist/")


def test_other_roles_are_refused(page, login, classifier):
    login(page, "labeler")
    assert page.goto("/models/worklist/").status == 403
