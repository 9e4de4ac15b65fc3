"""Durability per batch (annotate.archive.staging): a batch's files are written, then made durable
in one pass (one fdatasync each, renamed into place, folders fsynced) before any of its rows is
committed; no row ever names a file that is not whole under its final name."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.db.models.signals import post_save

from annotate import services
from annotate.archive import staging
from annotate.models import Radiograph
from common.storage import Buffers

pytestmark = pytest.mark.django_db


def test_a_staged_file_has_no_final_name_until_it_is_made_durable(settings):
    staged = staging.stage("originals/ab/one.dcm", Buffers(b"DICM", memoryview(b"-pixels-")))
    assert staged is not None
    final = Path(default_storage.path("originals/ab/one.dcm"))
    assert not final.exists() and Path(staged.temporary).read_bytes() == b"DICM-pixels-"
    staging.make_durable([staged])
    assert final.read_bytes() == b"DICM-pixels-" and final.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in final.parent.iterdir()) == ["one.dcm"]  # no temporary file left
    assert staging.stage("originals/ab/one.dcm", Buffers(b"x")) is None  # in place already

    dropped = staging.stage("originals/ab/two.dcm", Buffers(b"two"))
    assert dropped is not None
    staging.discard([dropped])
    assert sorted(p.name for p in final.parent.iterdir()) == ["one.dcm"]


def test_a_batch_is_made_durable_before_its_first_row_and_every_row_names_a_whole_file(dicom_bytes, tmp_path,
                                                                                       monkeypatch):  # fmt: skip
    folder = tmp_path / "in"
    folder.mkdir()
    for seed in range(6):
        (folder / f"{seed}.dcm").write_bytes(dicom_bytes(seed=seed))
    events: list[tuple[str, object]] = []
    real_fdatasync = os.fdatasync

    def fdatasync(fd: int) -> None:  # the real call, recorded
        real_fdatasync(fd)
        events.append(("fdatasync", fd))

    def row_saved(sender: object, instance: Radiograph, created: bool, **kwargs: object) -> None:
        path = Path(default_storage.path(instance.original.name))
        whole = path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == instance.sha256
        events.append(("row", whole))

    monkeypatch.setattr(staging.os, "fdatasync", fdatasync)
    post_save.connect(row_saved, sender=Radiograph, dispatch_uid="test-durability")
    try:
        outcomes = list(services.ingest_sources(paths=[folder], source=Radiograph.Source.CLI))
    finally:
        post_save.disconnect(dispatch_uid="test-durability", sender=Radiograph)
    assert [o.status for o in outcomes] == ["imported"] * 6
    assert [e for e in events if e[0] == "row"] == [("row", True)] * 6  # each row: its file whole, in place
    assert sum(1 for e in events if e[0] == "fdatasync") == 6  # one per file, no more
    # Durable per batch: each row comes after the fdatasync of its own file, and batches of
    # several files are synced before the first of their rows (not one sync, one row, ...).
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "fdatasync" and kinds.index("row") >= 1
    assert any(kinds[i] == kinds[i + 1] == "fdatasync" for i in range(len(kinds) - 1))
    synced = rows = 0
    for kind in kinds:
        synced, rows = synced + (kind == "fdatasync"), rows + (kind == "row")
        assert rows <= synced
    media = Path(default_storage.location)
    assert not [p for p in media.rglob("*") if p.name.endswith(".tmp")]


def test_a_failure_to_make_a_batch_durable_leaves_no_file_and_no_row(dicom_bytes, tmp_path, monkeypatch):
    folder = tmp_path / "in"
    folder.mkdir()
    for seed in range(3):
        (folder / f"{seed}.dcm").write_bytes(dicom_bytes(seed=seed))

    def fdatasync(fd: int) -> None:
        raise OSError(5, "Input/output error")  # the disk refused: nothing may look stored

    monkeypatch.setattr(staging.os, "fdatasync", fdatasync)
    with pytest.raises(OSError):
        list(services.ingest_sources(paths=[folder], source=Radiograph.Source.CLI))
    assert Radiograph.objects.count() == 0
    media = Path(default_storage.location)
    assert [p for p in media.rglob("*") if p.is_file()] == []  # no final name, no temporary file


def test_a_full_disk_at_sync_time_rejects_the_batch_with_the_disk_reason(dicom_bytes, monkeypatch):
    def fdatasync(fd: int) -> None:
        raise OSError(28, "No space left on device")  # delayed allocation reports ENOSPC here

    monkeypatch.setattr(staging.os, "fdatasync", fdatasync)
    outcome = services.radiograph_ingest(data=dicom_bytes(seed=3), name="1", source=Radiograph.Source.CLI)
    assert outcome.status == "rejected" and "disk of the data folder is full" in outcome.reason
    media = Path(default_storage.location)
    assert Radiograph.objects.count() == 0 and [p for p in media.rglob("*") if p.is_file()] == []
