"""A reader takes a study in headless Chromium, with the keyboard: phase 1 on the model's crops,
the washout refusing phase 2 (on the page and in the API), phase 2 in the viewer with the hip
outlined, phase 3 on exactly the cases where her phase-2 answer and the model's differ (heatmap
overlay, its toggle and opacity, her own answer, the model's top two), a double press that
stores one answer, a reload that resumes where she was, and the export holding exactly her
answers (the agreeing cases carried over into the aided condition)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from typing import Any

import pytest
from django.db.models import F
from playwright.sync_api import expect

from readerstudy import services
from readerstudy.models import Case, Phase, Response
from tests.readerstudy.helpers import study_with_model

pytestmark = pytest.mark.e2e

CLASS_KEYS = ["normal", "fn_displaced", "fn_nondisplaced", "intertrochanteric", "orif", "arthroplasty"]
CASES = 4
WASHOUT = dt.timedelta(hours=1)


def key_of(hip_class: str) -> str:
    return str(CLASS_KEYS.index(hip_class) + 1)


def other_than(hip_class: str, shift: int = 1) -> str:
    return CLASS_KEYS[(CLASS_KEYS.index(hip_class) + shift) % len(CLASS_KEYS)]


def wait_ready(page: Any) -> dict[str, Any]:
    """The case's image is on screen and the buttons take an answer; returns the page's state."""
    page.wait_for_function("() => window.readingPage && window.readingPage.ready()")
    return page.evaluate("() => window.readingPage.state()")


def wait_past(page: Any, state: dict[str, Any]) -> dict[str, Any]:
    """Wait until the page has moved on from ``state``'s case; returns the new state."""
    page.wait_for_function(
        """([id, condition]) => {
            const s = window.readingPage.state();
            return !window.readingPage.busy() && (!s.case || s.case.id !== id || s.case.condition !== condition);
        }""",
        arg=[state["case"]["id"], state["case"]["condition"]],
    )
    return page.evaluate("() => window.readingPage.state()")


def answer_with_key(page: Any, key: str) -> tuple[dict[str, Any], dict[str, Any]]:
    state = wait_ready(page)
    step, case = state["step"], state["case"]
    expect(page.locator("#case-count")).to_have_text(f"Case {case['position']} of {step['total']}")
    assert page.evaluate("() => document.getElementById('progress').value") == step["answered"]
    page.keyboard.press(key)
    return state, wait_past(page, state)


def box_pixel(page: Any) -> list[int]:
    """The canvas colour at the middle of the hip box's left edge."""
    return page.evaluate(
        """() => {
            const v = window.readingPage.viewer();
            const [x, y, w, h] = window.readingPage.state().case.box;
            const a = v.imageToScreen(x, y + h / 2);
            const dpr = v.dpr;
            const ctx = v.canvas.getContext("2d");
            const px = ctx.getImageData(Math.round(Math.round(a.x) * dpr), Math.round(a.y * dpr), 1, 1).data;
            return [px[0], px[1], px[2]];
        }"""
    )


def test_a_reader_takes_all_three_phases_with_the_keyboard(
    page,
    login,
    users,
    transactional_db,
    dicom_bytes,
    tiny_bundle,  # noqa: F811
    data_dir,
    shot,
):
    study = study_with_model(dicom_bytes, tiny_bundle, data_dir, cases=CASES, washout=WASHOUT)
    rita = services.reader_add(study=study, user=users["reader"], group="expert", training="radiology_attending")
    predicted = dict(Case.objects.filter(study=study).values_list("pk", "predicted_class"))
    numbers = dict(Case.objects.filter(study=study).values_list("pk", "number"))
    top2 = {case.pk: case.top2 for case in Case.objects.filter(study=study)}
    current_url = f"/api/reader/studies/{study.pk}/current/"
    answers_url = f"/api/reader/studies/{study.pk}/answers/"

    api_bodies: list[tuple[str, str]] = []
    posts: list[str] = []

    def keep(response: Any) -> None:
        if "/api/" in response.url and "json" in response.headers.get("content-type", ""):
            try:
                api_bodies.append((response.url, response.text()))
            except Exception:  # a body the browser dropped (navigation)
                pass

    page.on("response", keep)
    page.on("request", lambda request: posts.append(request.url) if request.method == "POST" else None)

    login(page, "reader")
    card = page.locator('[data-role="reader"]')
    expect(card).to_contain_text(study.name)
    expect(card).to_contain_text("Phase 1 of 3 (model quality): 0 of 4 answered")
    with page.expect_navigation():
        card.get_by_role("link", name="Start phase 1").click()

    # ---- phase 1: the model's crops ------------------------------------------------------
    given: dict[tuple[str, int], str] = {}
    state = wait_ready(page)
    expect(page.locator("#phase-name")).to_have_text("Phase 1 of 3 · Model quality")
    expect(page.locator("#aided")).to_be_hidden()
    expect(page.locator("#crop")).to_be_visible()
    size = page.evaluate(
        "() => [document.getElementById('crop').naturalWidth, document.getElementById('crop').naturalHeight]"
    )
    assert size[0] > 0 and size[0] == size[1], size
    shot(page, "reader-phase1")

    # A double key press (two keydowns before any reply) sends one answer.
    posts.clear()
    page.evaluate(
        "() => { for (let i = 0; i < 2; i++) window.dispatchEvent(new KeyboardEvent('keydown', {key: '2'})); }"
    )
    state = wait_past(page, state)
    assert len(posts) == 1, posts
    first = Response.objects.get(reader=rita, condition="model_quality")
    given["model_quality", first.case_id] = "fn_displaced"
    assert first.answer == "fn_displaced"

    # A reload resumes at the next case.
    page.reload()
    state = wait_ready(page)
    expect(page.locator("#case-count")).to_have_text(f"Case 2 of {CASES}")
    assert state["step"]["answered"] == 1

    # A double click on a button sends one answer too.
    posts.clear()
    page.evaluate("() => { const b = document.querySelector('#answers [data-class=\"orif\"]'); b.click(); b.click(); }")
    given["model_quality", state["case"]["id"]] = "orif"
    state = wait_past(page, state)
    assert len(posts) == 1, posts

    while state["step"]["status"] == "open":
        answer = CLASS_KEYS[state["case"]["position"] % 6]
        before, state = answer_with_key(page, key_of(answer))
        given["model_quality", before["case"]["id"]] = answer

    # ---- the washout: phase 2 is refused -------------------------------------------------
    assert state["step"]["status"] == "washout"
    expect(page.locator("#message")).to_be_visible()
    expect(page.locator("#message-title")).to_contain_text("Phase 2 opens on")
    expect(page.locator("#message")).to_contain_text("You can close this page")
    expect(page.locator("#answers button").first).to_be_hidden()
    shot(page, "reader-washout")
    refused = page.request.get(current_url).json()
    assert refused["step"]["status"] == "washout" and refused["case"] is None
    assert refused["step"]["opens_at"]
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    some_case = next(iter(predicted))
    post = page.request.post(
        answers_url,
        data=json.dumps({"case": some_case, "condition": "full_quality", "answer": "normal"}),
        headers={"Content-Type": "application/json", "X-CSRFToken": csrf},
    )
    assert post.status == 409, post.text()
    assert "not started" in post.json()["detail"]
    page.reload()
    expect(page.locator("#message-title")).to_contain_text("Phase 2 opens on")
    assert not Phase.objects.filter(reader=rita, condition="full_quality").exists()

    # The washout passes.
    Phase.objects.filter(reader=rita, condition="model_quality").update(finished_at=F("finished_at") - WASHOUT)
    page.reload()

    # ---- phase 2: the radiograph in the viewer; half agree with the model, half differ ----
    state = wait_ready(page)
    expect(page.locator("#phase-name")).to_have_text("Phase 2 of 3 · Full quality")
    expect(page.locator("#aided")).to_be_hidden()
    expect(page.locator("#viewer")).to_be_visible()
    assert page.evaluate("() => window.readingPage.viewer().painted")
    assert not page.evaluate("() => window.readingPage.heatmapShown()")
    assert box_pixel(page) == [0x4F, 0xC3, 0xF7]  # the hip's box is outlined
    page.keyboard.press("b")  # the viewer's keys work: bone window
    page.wait_for_function("() => window.readingPage.viewer().activePreset === 'bone'")
    shot(page, "reader-phase2")

    # A refusal from the server shows its message, and the page carries on with the case on screen.
    Phase.objects.filter(reader=rita, condition="full_quality").update(current_case=None, displayed_at=None)
    page.keyboard.press("1")
    expect(page.locator("#error")).to_contain_text("answer the case on your screen")
    state = wait_ready(page)
    assert not Response.objects.filter(reader=rita, condition="full_quality").exists()
    assert Phase.objects.get(reader=rita, condition="full_quality").current_case_id == state["case"]["id"]
    disagree: set[int] = set()
    while state["step"]["status"] == "open" and state["step"]["condition"] == "full_quality":
        case_id = state["case"]["id"]
        if state["case"]["position"] % 2:
            answer = predicted[case_id]
        else:
            answer = other_than(predicted[case_id])
            disagree.add(case_id)
        given["full_quality", case_id] = answer
        _, state = answer_with_key(page, key_of(answer))
        expect(page.locator("#error")).to_be_hidden()
    assert len(disagree) == CASES // 2

    # ---- phase 3: exactly the disagreeing cases, with the model's reading ----------------
    seen: set[int] = set()
    first_aided = True
    while state["step"]["status"] == "open":
        state = wait_ready(page)
        case = state["case"]
        assert state["step"]["condition"] == "model_aided"
        assert state["step"]["total"] == len(disagree)
        seen.add(case["id"])
        expect(page.locator("#phase-name")).to_have_text("Phase 3 of 3 · Model aided")
        expect(page.locator("#aided")).to_be_visible()
        expect(page.locator("#own-answer")).to_have_attribute("data-class", given["full_quality", case["id"]])
        items = page.locator("#top2 li")
        expect(items).to_have_count(2)
        for index, item in enumerate(case["top2"]):
            assert item["class"] == top2[case["id"]][index]
            expect(items.nth(index)).to_have_attribute("data-class", item["class"])
            expect(items.nth(index).locator(".probability")).to_have_text(f"{item['probability'] * 100:.1f}%")
        page.wait_for_function("() => window.readingPage.heatmapShown()")
        if first_aided:
            first_aided = False
            shot(page, "reader-phase3")
            page.keyboard.press("h")
            page.wait_for_function("() => !window.readingPage.heatmapShown()")
            expect(page.locator("#heatmap-toggle")).not_to_be_checked()
            page.keyboard.press("h")
            page.wait_for_function("() => window.readingPage.heatmapShown()")
            page.locator("#heatmap-opacity").fill("30")
            page.wait_for_function("() => Math.abs(window.readingPage.heatmapOpacity() - 0.3) < 1e-9")
            page.locator("#heatmap-opacity").blur()
        final = predicted[case["id"]] if case["position"] % 2 else other_than(predicted[case["id"]], 2)
        given["model_aided", case["id"]] = final
        _, state = answer_with_key(page, key_of(final))
    assert seen == disagree

    # ---- the end ---------------------------------------------------------------------------
    assert state["step"]["status"] == "done"
    expect(page.locator("#message-title")).to_have_text("Thank you!")
    shot(page, "reader-done")
    page.goto("/")
    expect(page.locator('[data-role="reader"]')).to_contain_text("All phases done: thank you")

    # Nothing from the model reached the browser outside phase 3's cases.
    assert api_bodies
    for url, body in api_bodies:
        data = json.loads(body)
        shown = data.get("state", data).get("case") if isinstance(data, dict) else None
        if shown and shown.get("condition") == "model_aided":
            continue
        for word in ("heatmap", "top2", "probabilit", "predicted"):
            assert word not in body, f"{url} shows {word} outside phase 3"

    # The export holds exactly the answers given, the agreeing ones carried over.
    for case_id in predicted:
        if case_id not in disagree:
            given["model_aided", case_id] = given["full_quality", case_id]
    rows = list(csv.DictReader(io.StringIO(services.study_export(study=study)["responses.csv"].decode())))
    exported = {(row["condition"], int(row["case"])): row["answer"] for row in rows}
    assert len(rows) == 3 * CASES
    assert {row["reader"] for row in rows} == {rita.code}
    assert exported == {(condition, numbers[case_id]): answer for (condition, case_id), answer in given.items()}
    carried = set(
        Response.objects.filter(reader=rita, condition="model_aided", carried_over=True).values_list(
            "case_id", flat=True
        )
    )
    assert carried == set(predicted) - disagree
