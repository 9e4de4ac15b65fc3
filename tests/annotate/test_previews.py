"""Previews rendered on first view (annotate.archive.previews): the ingest stores none; the first
view renders and caches it, later views are served from the cache, a corrupt or missing cache file
is rendered again, concurrent first views leave one whole file, and who may see one is unchanged."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from PIL import Image

from annotate import services
from annotate.archive import previews
from annotate.archive.dicom import decode_dicom
from annotate.archive.pixels import caches
from annotate.models import Radiograph

pytestmark = pytest.mark.django_db

URL = "/radiographs/{}/preview.jpg"


def cached(radiograph: Radiograph) -> Path:
    return Path(default_storage.path(str(radiograph.preview.name)))


def test_the_first_view_renders_the_preview_and_the_second_is_served_from_the_cache(client_as, dicom_bytes):
    data = dicom_bytes(rows=300, columns=200, bits_stored=12)
    outcome = services.radiograph_ingest(data=data, name="1", source=Radiograph.Source.CLI)
    radiograph = Radiograph.objects.get(pk=outcome.radiograph_id)
    assert not cached(radiograph).exists()  # the ingest rendered nothing

    first = client_as("researcher").get(URL.format(radiograph.pk))
    assert first.status_code == 200 and first["Content-Type"] == "image/jpeg"
    assert first["Cache-Control"] == "private, max-age=86400"
    image = Image.open(io.BytesIO(first.content))
    assert image.format == "JPEG" and image.mode == "L" and image.size == (200, 300)
    # The same JPEG the ingest used to store: the decoded pixels in the row's window.
    decoded = decode_dicom(data)
    assert first.content == previews.encode_preview(decoded.pixels, radiograph.window_center, radiograph.window_width)
    path = cached(radiograph)
    assert path.read_bytes() == first.content
    assert path.stat().st_mode & 0o777 == 0o640  # the stored files' mode: no world access
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]

    inode = path.stat().st_ino
    second = client_as("researcher").get(URL.format(radiograph.pk))
    assert second.content == first.content and path.stat().st_ino == inode  # served, not rendered again
    api = client_as("researcher").get(f"/api/radiographs/{radiograph.pk}/preview/")
    assert api.status_code == 200 and api.content == first.content and path.stat().st_ino == inode


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],  # cut short
        lambda data: b"",  # empty
        lambda data: b"\xff\xd8" + b"\0" * 100 + b"\xff\xd9",  # the markers, no JPEG between them
    ],
)
def test_a_corrupt_or_missing_cache_file_is_rendered_again(client_as, radiograph, damage):
    url = URL.format(radiograph.pk)
    good = client_as("researcher").get(url).content
    path = cached(radiograph)
    path.write_bytes(damage(good))
    assert client_as("researcher").get(url).content == good
    assert path.read_bytes() == good
    path.unlink()
    assert client_as("adjudicator").get(url).content == good and path.read_bytes() == good


def test_concurrent_first_views_leave_one_whole_file(radiograph):
    results: list[bytes] = []
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def view() -> None:
        try:
            start.wait()
            results.append(previews.preview_jpeg(radiograph))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=view) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(results) == 6 and len(set(results)) == 1
    path = cached(radiograph)
    assert path.read_bytes() == results[0]
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary file left


def test_who_may_see_a_preview_is_unchanged_and_a_refused_view_renders_nothing(client_as, radiograph):
    url = URL.format(radiograph.pk)
    for role in ("reader", "norole", "labeler"):  # lena holds no assignment of it yet
        assert client_as(role).get(url).status_code == 403
    assert client_as(None).get(url).status_code == 302  # to the login page
    assert client_as("labeler").get(f"/api/radiographs/{radiograph.pk}/preview/").status_code == 403
    assert not cached(radiograph).exists()
    client_as("labeler").post("/api/labelling/next/")  # now it is hers
    assert client_as("labeler").get(url).status_code == 200
    assert client_as("reader").get(url).status_code == 403


def test_a_radiograph_whose_stored_file_is_gone_is_a_404_not_a_500(client_as, radiograph):
    default_storage.delete(radiograph.original.name)
    caches()[0].clear()  # no decoded copy left in this process either
    assert client_as("researcher").get(URL.format(radiograph.pk)).status_code == 404
    assert client_as("researcher").get(f"/api/radiographs/{radiograph.pk}/preview/").status_code == 404


def test_warming_renders_the_missing_previews_once(radiographs):
    first = radiographs[0]
    previews.preview_jpeg(first)
    before = cached(first).stat().st_ino
    assert previews.previews_warm(radiograph_ids=[r.pk for r in radiographs]) == len(radiographs) - 1
    assert all(cached(r).is_file() for r in radiographs) and cached(first).stat().st_ino == before
    assert previews.previews_warm(radiograph_ids=[r.pk for r in radiographs]) == 0


@pytest.mark.django_db(transaction=True)
def test_an_import_batch_queues_the_warming_of_its_previews(celery_worker, dicom_bytes, tmp_path):
    from tests.support import wait_for

    folder = tmp_path / "in"
    folder.mkdir()
    for seed in range(3):
        (folder / f"{seed}.dcm").write_bytes(dicom_bytes(seed=seed))
    outcomes = list(services.ingest_sources(paths=[folder], source=Radiograph.Source.CLI))
    assert [o.status for o in outcomes] == ["imported"] * 3
    paths = [cached(r) for r in Radiograph.objects.all()]
    wait_for(lambda: all(p.is_file() for p in paths), what="the worker to render the previews", timeout=60,
             output=celery_worker.output)  # fmt: skip
    assert all(Image.open(p).format == "JPEG" for p in paths)
    assert all(os.stat(p).st_mode & 0o777 == 0o640 for p in paths)
