"""Helpers shared by the browser tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from django.contrib.auth.models import Group
from django.db import connection, transaction
from playwright.sync_api import expect

from annotate import services
from annotate.labelling import services as labelling
from annotate.models import Radiograph
from tests.accounts.factories import UserFactory

# What the dicom_bytes fixture writes into every file; none of it may reach a page or the API.
IDENTIFIERS = ["TESTPERSON", "VERYSPECIFIC", "MRN0012345", "ACC99887766", "Saint Specific Hospital", "19410203"]


def assert_no_identifiers(text: str, where: str) -> None:
    leaked = [value for value in IDENTIFIERS if value.lower() in text.lower()]
    assert not leaked, f"{where} shows patient identifiers {leaked}"


def hips(seed: int) -> np.ndarray:
    """A 12-bit picture that reads as a radiograph in a screenshot: two bright
    round 'femoral heads' on a darker, noisy field."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:256, 0:240]
    image = 600 + 250 * np.sin(x / 38.0 + seed) + rng.normal(0, 60, (256, 240))
    for cx in (70, 170):
        image += 2400 * (((x - cx) ** 2 + (y - 120 - 4 * seed) ** 2) < 30**2)
    return np.clip(image, 0, 4095).astype(np.uint16)


def wait_for_images(page: Any, selector: str, count: int) -> None:
    """Wait until ``count`` images match ``selector`` and every one has loaded a picture."""
    images = page.locator(selector)
    expect(images).to_have_count(count)
    for index in range(count):
        images.nth(index).scroll_into_view_if_needed()  # thumbnails load lazily
    page.wait_for_function(
        "([sel, n]) => { const imgs = [...document.querySelectorAll(sel)];"
        " return imgs.length === n && imgs.every((img) => img.complete && img.naturalWidth > 0); }",
        arg=[selector, count],
    )


@contextmanager
def table_locked(model: Any) -> Iterator[None]:
    """Hold an exclusive lock on ``model``'s table (PostgreSQL) until the block
    ends: whoever reads or writes it (the live server, the worker) waits.
    The lock lives in a transaction of the test's own connection."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {connection.ops.quote_name(model._meta.db_table)} IN ACCESS EXCLUSIVE MODE")
        yield


def ingest_hips(dicom_bytes: Any, seed: int) -> Radiograph:
    """The radiograph of ``hips(seed)``, ingested, with its two labelling slots."""
    data = dicom_bytes(pixels=hips(seed), seed=seed, patient_id=f"MRN00{seed}", accession=f"ACC{seed}")
    outcome = services.radiograph_ingest(data=data, name=f"hips{seed}.dcm", source="cli")
    assert outcome.status == "imported", outcome
    radiograph = Radiograph.objects.get(id=outcome.radiograph_id)
    labelling.assignments_create(radiographs=[radiograph])  # idempotent: ingest makes the slots already
    return radiograph


def labeler(username: str) -> Any:
    user = UserFactory(username=username)
    user.groups.add(Group.objects.get(name="labeler"))
    return user


def wait_for_viewer(page: Any, app: str = "labelPage") -> None:
    """The image is painted at full resolution and the saved state is in."""
    page.wait_for_function(f"window.{app} && window.{app}.viewer.painted")
    page.wait_for_function(f"!window.{app}.tool.disabled")


def client_point(page: Any, x: float, y: float, app: str = "labelPage") -> tuple[float, float]:
    """Where the image pixel (x, y) is on the page, whatever the zoom."""
    point = page.evaluate(f"([x, y]) => window.{app}.viewer.imageToClient(x, y)", [x, y])
    return point["x"], point["y"]


def drag(page: Any, start: tuple[float, float], end: tuple[float, float], app: str = "labelPage") -> None:
    page.mouse.move(*client_point(page, *start, app=app))
    page.mouse.down()
    page.mouse.move(*client_point(page, *end, app=app), steps=6)
    page.mouse.up()
