"""The show_augmentations command: a PNG grid of augmented hip crops, from
synthetic phantoms when there is no dataset version."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from PIL import Image

from ml.management.commands import show_augmentations as cmd


def test_writes_grid_from_phantoms(db, tmp_path):
    out = tmp_path / "sub" / "grid.png"
    stdout = io.StringIO()
    call_command("show_augmentations", "--out", str(out), "--seed", "3", "--count", "2", stdout=stdout)
    lines = stdout.getvalue().strip().splitlines()
    assert lines[-1] == str(out)
    assert "phantoms" in stdout.getvalue() and "regime paper-fixed" in stdout.getvalue()
    with Image.open(out) as image:
        image.load()
        assert image.format == "PNG"
        columns, rows = 8, 2  # zoom 1 and 1.5: plain, cutout, masking, wiggle
        assert image.size == (
            cmd.GAP + columns * (cmd.TILE + cmd.GAP),
            cmd.HEADER + rows * (cmd.CAPTION + cmd.TILE + cmd.GAP) + cmd.GAP,
        )
        # the tiles are images, not blank
        tile = image.crop((cmd.GAP, cmd.HEADER + cmd.CAPTION, cmd.GAP + cmd.TILE, cmd.HEADER + cmd.CAPTION + cmd.TILE))
        low, high = tile.getextrema()
        assert high - low > 50


def test_the_online_random_regime_shows_random_draws(db, tmp_path):
    out = tmp_path / "online.png"
    stdout = io.StringIO()
    call_command("show_augmentations", "--out", str(out), "--count", "1", "--regime", "online-random", stdout=stdout)
    assert "1 hips x 8 crops, regime online-random" in stdout.getvalue()
    with Image.open(out) as image:
        image.load()
        tiles = [
            np.asarray(image.crop((x, cmd.HEADER + cmd.CAPTION, x + cmd.TILE, cmd.HEADER + cmd.CAPTION + cmd.TILE)))
            for x in (cmd.GAP + c * (cmd.TILE + cmd.GAP) for c in range(8))
        ]
    assert len({tile.tobytes() for tile in tiles}) > 1  # draws differ


def test_unknown_dataset_is_an_error(db, tmp_path):
    with pytest.raises(CommandError):
        call_command(
            "show_augmentations", "--out", str(tmp_path / "x.png"), "--dataset", "999999", stdout=io.StringIO()
        )


def test_uses_the_newest_dataset_version(db, tmp_path, dicom_bytes):
    from ml import services as ml_services
    from tests.ml.helpers import CLASS_CYCLE, N_PATIENTS, ingest, write_truth

    for i in range(N_PATIENTS + 3):
        radiograph = ingest(dicom_bytes, i)
        write_truth(radiograph, [("right", CLASS_CYCLE[(2 * i) % 7]), ("left", CLASS_CYCLE[(2 * i + 1) % 7])])
    version, _ = ml_services.dataset_freeze(seed=1)
    out = tmp_path / "grid.png"
    stdout = io.StringIO()
    call_command("show_augmentations", "--out", str(out), "--count", "3", stdout=stdout)
    text = stdout.getvalue()
    assert text.strip().splitlines()[-1] == str(out)
    assert "phantoms" not in text
    with Image.open(out) as image:
        assert image.size == (
            cmd.GAP + 8 * (cmd.TILE + cmd.GAP),
            cmd.HEADER + 3 * (cmd.CAPTION + cmd.TILE + cmd.GAP) + cmd.GAP,
        )
    hips = cmd.dataset_hips(version.pk, 3, np.random.default_rng(0))
    assert len(hips) == 3 and all(h["caption"].endswith(f"dataset {version.pk})") for h in hips)
    assert len({h["caption"].split(",")[0] for h in hips}) == 3  # several classes shown
