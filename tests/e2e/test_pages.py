"""The real pages in headless Chromium: logging in and out, each role's home
page, pages a role may not open, and the radiograph archive after an import."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from annotate import services
from annotate.models import Radiograph
from tests.accounts.factories import PASSWORD
from tests.e2e.helpers import assert_no_identifiers, hips, wait_for_images

pytestmark = pytest.mark.e2e

HOME = {
    # role: (card shown, its heading, whether the archive is in the header)
    "researcher": ("researcher", "Research", True),
    "labeler": ("labeler", "Labelling", False),
    "reader": ("reader", "Reader studies", False),
}


@pytest.mark.parametrize("role", list(HOME))
def test_login_shows_the_roles_home_page_and_logout_returns_to_login(page, login, shot, role):
    login(page, role)
    card, heading, archive = HOME[role]
    expect(page.locator(f'section.card[data-role="{card}"]').get_by_role("heading")).to_have_text(heading)
    expect(page.locator("section.card")).to_have_count(1)
    nav = page.locator("header nav")
    expect(nav.get_by_role("link", name="Radiographs")).to_have_count(1 if archive else 0)
    expect(nav.get_by_role("link", name="Imports")).to_have_count(1 if archive else 0)
    if role == "researcher":
        expect(page.get_by_role("link", name="Import DICOM")).to_have_attribute("href", "/imports/")
        shot(page, "home")

    with page.expect_navigation():
        page.locator("header").get_by_role("button", name="Log out").click()
    assert page.url.endswith("/accounts/login/")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    page.goto("/")  # logged out for real: home sends back to the login form
    assert "/accounts/login/?next=/" in page.url


def test_wrong_password_shows_the_error(page, users):
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD + "-wrong")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator(".errors")).to_contain_text("Please enter a correct username and password")
    assert page.url.endswith("/accounts/login/")
    page.goto("/")
    assert "/accounts/login/" in page.url


@pytest.mark.parametrize("role", ["labeler", "reader"])
def test_typing_a_forbidden_url_shows_not_allowed(page, login, role):
    login(page, role)
    for path in ["/radiographs/", "/imports/"]:
        response = page.goto(path)
        assert response.status == 403, path
        expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed")
        expect(page.locator("main")).to_contain_text("This page needs the role")


@pytest.fixture
def imported(dicom_bytes, role_groups) -> list[Radiograph]:
    """Three radiographs of one study, ingested as the command line does."""
    ids = []
    for seed in range(3):
        data = dicom_bytes(seed=seed, pixels=hips(seed), ViewPosition=["AP", "AP", "LL"][seed])
        outcome = services.radiograph_ingest(data=data, name=f"{seed}.dcm", source="cli")
        assert outcome.status == "imported", outcome
        ids.append(outcome.radiograph_id)
    return list(Radiograph.objects.filter(id__in=ids).order_by("id"))


def test_radiographs_show_thumbnails_and_pseudonymised_metadata(page, login, shot, imported):
    login(page, "researcher")
    page.get_by_role("navigation").get_by_role("link", name="Radiographs").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Radiographs 3")
    wait_for_images(page, "ul.thumbs img", 3)
    captions = page.locator("ul.thumbs span").all_inner_texts()
    assert all(re.fullmatch(r"P-[0-9a-f]{10} · CR (AP|LL)", c) for c in captions), captions
    assert_no_identifiers(page.content(), "the radiograph list")
    shot(page, "radiographs")

    first = imported[0]
    page.locator(f'ul.thumbs a[href="/radiographs/{first.id}/"]').click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Radiograph {first.id}")
    wait_for_images(page, "figure.preview img", 1)
    meta = page.locator("dl.meta")
    expect(meta.locator("dt:text-is('Patient') + dd")).to_have_text(re.compile(r"^P-[0-9a-f]{10} \(F, 78 y\)$"))
    expect(meta.locator("dt:text-is('Study') + dd")).to_have_text(re.compile(r"^A-[0-9a-f]{10}, "))
    expect(meta.locator("dt:text-is('SOP Instance UID') + dd")).to_have_text(first.sop_instance_uid)
    wait_for_images(page, "ul.thumbs.small img", 2)  # the two other views of the same study
    assert_no_identifiers(page.content(), "the radiograph page")
    shot(page, "radiograph")

    for url in ["/api/radiographs/", f"/api/radiographs/{first.id}/"]:
        response = page.request.get(url)  # the browser's session
        assert response.ok, url
        assert_no_identifiers(response.text(), url)
    listing = page.request.get("/api/radiographs/").json()
    assert {r["patient"] for r in listing["results"]} == {first.study.patient.code}
