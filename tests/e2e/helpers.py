"""Helpers shared by the browser tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from django.db import connection, transaction
from playwright.sync_api import expect

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
