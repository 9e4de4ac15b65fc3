"""Augmentations of hip crops (ml.core.augment): reproducible from a seed,
shape/dtype/range kept, cutout confined to one rectangle, masking smooth,
wiggle bounded, and augment_hip reducing to hip_crop with everything off."""

from __future__ import annotations

import numpy as np
import pytest

from ml.core import augment
from ml.core.augment import (
    AugmentConfig,
    augment_hip,
    contrast_cutout,
    gaussian_mixture_mask,
    gaussian_mixture_masking,
    paper_augmentations,
    wiggle_box,
)
from ml.core.crops import CropSpec, hip_crop

SIZE = 64


def make_crop(seed: int = 0) -> np.ndarray:
    """A textured crop in [0, 1]: a gradient, a disc and noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    disc = ((yy - 0.4) ** 2 + (xx - 0.6) ** 2 < 0.06).astype(np.float32)
    crop = 0.2 + 0.3 * xx + 0.3 * disc + 0.1 * rng.uniform(size=(SIZE, SIZE))
    return np.clip(crop, 0, 1).astype(np.float32)


def make_image(seed: int = 0) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:300, 0:400]
    pixels = 1000 + 5 * xx + 3 * yy + rng.integers(0, 200, size=(300, 400))
    return pixels.astype(np.uint16), (120.5, 80.2, 110.0, 95.5)


WINDOW = (2500.0, 3000.0)


def crop_fns():
    return {
        "cutout": lambda c, rng: contrast_cutout(c, rng),
        "masking": lambda c, rng: gaussian_mixture_masking(c, rng),
    }


@pytest.mark.parametrize("kind", ["cutout", "masking"])
def test_crop_augmentations_deterministic_and_seed_dependent(kind):
    fn = crop_fns()[kind]
    crop = make_crop()
    a = fn(crop, np.random.default_rng(5))
    b = fn(crop, np.random.default_rng(5))
    c = fn(crop, np.random.default_rng(6))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, crop)
    assert a.shape == crop.shape and a.dtype == np.float32
    assert a.min() >= 0.0 and a.max() <= 1.0
    np.testing.assert_array_equal(crop, make_crop())  # input untouched


@pytest.mark.parametrize("kind", ["cutout", "masking"])
def test_range_kept_on_extreme_crops(kind):
    fn = crop_fns()[kind]
    for crop in (np.zeros((SIZE, SIZE), np.float32), np.ones((SIZE, SIZE), np.float32), make_crop() ** 0.2):
        for seed in range(20):
            out = fn(crop, np.random.default_rng(seed))
            assert out.dtype == np.float32 and out.shape == crop.shape
            assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0


def test_cutout_changes_only_one_rectangle():
    crop = make_crop()
    for seed in range(50):
        out, (r0, c0, r1, c1) = contrast_cutout(crop, np.random.default_rng(seed), return_rect=True)
        assert 0 <= r0 < r1 <= SIZE and 0 <= c0 < c1 <= SIZE
        inside = np.zeros(crop.shape, bool)
        inside[r0:r1, c0:c1] = True
        np.testing.assert_array_equal(out[~inside], crop[~inside])
        changed = np.argwhere(out != crop)
        assert changed.size  # the textured patch's contrast changed
        # changed pixels lie in the rectangle and span most of it (not a scattered set)
        assert changed[:, 0].min() >= r0 and changed[:, 0].max() < r1
        assert changed[:, 1].min() >= c0 and changed[:, 1].max() < c1
        # contrast, not erasure: the patch keeps its mean (up to clipping) and is not zeroed
        patch, new = crop[r0:r1, c0:c1], out[r0:r1, c0:c1]
        assert new.std() > 0
        assert abs(new.mean() - patch.mean()) < 0.1


def test_cutout_contrast_factor_scales_about_mean():
    crop = make_crop()
    config = AugmentConfig(cutout_factor=(0.5, 0.5))
    out, (r0, c0, r1, c1) = contrast_cutout(crop, np.random.default_rng(1), config=config, return_rect=True)
    patch = crop[r0:r1, c0:c1]
    np.testing.assert_allclose(out[r0:r1, c0:c1], patch.mean() + 0.5 * (patch - patch.mean()), atol=1e-6)


def test_cutout_patch_size_follows_config():
    config = AugmentConfig(cutout_size=(0.25, 0.25), cutout_square=True)
    sizes = set()
    for seed in range(30):
        r0, c0, r1, c1 = augment.cutout_rect((SIZE, SIZE), np.random.default_rng(seed), config=config)
        assert r1 - r0 <= 16 and c1 - c0 <= 16
        sizes.add((r1 - r0, c1 - c0))
    assert (16, 16) in sizes  # whole patch when it lies inside


def test_masking_is_smooth_and_nontrivial():
    flat = np.full((224, 224), 0.5, np.float32)
    config = AugmentConfig()
    for seed in range(30):
        rng = np.random.default_rng(seed)
        mask = gaussian_mixture_mask((224, 224), rng, config=config)
        assert mask.dtype == np.float32 and mask.min() >= 0.0 and mask.max() <= 2.0
        # non-trivial: somewhere the intensity changes by at least the smallest amplitude / 2
        assert np.abs(mask - 1).max() > config.mask_amplitude[0] / 2
        # smooth: per-pixel gradient at most sum |a_k| / (sigma_k sqrt(e)) < K * a_max / (sigma_min sqrt(e))
        bound = config.mask_components[1] * config.mask_amplitude[1] / (config.mask_sigma[0] * 224 * np.sqrt(np.e))
        gy, gx = np.gradient(mask.astype(np.float64))
        assert np.hypot(gy, gx).max() <= bound
        out = gaussian_mixture_masking(flat, np.random.default_rng(seed), config=config)
        np.testing.assert_allclose(out, np.clip(0.5 * mask, 0, 1), atol=1e-6)  # same draws: the crop times the mask
        gy, gx = np.gradient(out.astype(np.float64))
        assert np.hypot(gy, gx).max() <= 0.5 * bound + 1e-6
        # no edge: the largest jump between neighbours is small everywhere
        assert np.abs(np.diff(out, axis=0)).max() < 0.02 and np.abs(np.diff(out, axis=1)).max() < 0.02


def test_masking_darkens_and_brightens():
    dark = bright = False
    for seed in range(40):
        mask = gaussian_mixture_mask((64, 64), np.random.default_rng(seed))
        dark |= bool(mask.min() < 0.9)
        bright |= bool(mask.max() > 1.1)
    assert dark and bright


@pytest.mark.parametrize("fraction", [0.05, 0.1])
def test_wiggle_bounded_deterministic(fraction):
    box = (100.0, 50.0, 80.0, 120.0)
    cx, cy = 140.0, 110.0
    seen = set()
    for seed in range(200):
        x, y, w, h = wiggle_box(box, np.random.default_rng(seed), fraction=fraction)
        assert w > 0 and h > 0
        assert abs(x + w / 2 - cx) <= fraction * 80 + 1e-9
        assert abs(y + h / 2 - cy) <= fraction * 120 + 1e-9
        assert (1 - fraction) * 80 - 1e-9 <= w <= (1 + fraction) * 80 + 1e-9
        assert (1 - fraction) * 120 - 1e-9 <= h <= (1 + fraction) * 120 + 1e-9
        seen.add((x, y, w, h))
    assert len(seen) == 200
    assert wiggle_box(box, np.random.default_rng(3), fraction=fraction) == wiggle_box(
        box, np.random.default_rng(3), fraction=fraction
    )
    assert wiggle_box(box, np.random.default_rng(3), fraction=0.0) == box


def test_wiggle_rejects_bad_input():
    with pytest.raises(ValueError):
        wiggle_box((0, 0, 10, 10), np.random.default_rng(0), fraction=1.0)
    with pytest.raises(ValueError):
        wiggle_box((0, 0, -1, 10), np.random.default_rng(0))


@pytest.mark.parametrize("zoom", [1.0, 1.5])
@pytest.mark.parametrize("side", ["right", "left"])
def test_augment_hip_off_equals_hip_crop(zoom, side):
    pixels, box = make_image()
    config = AugmentConfig(zooms=(zoom,), p_wiggle=0.0, p_cutout=0.0, p_masking=0.0)
    spec = CropSpec(size=SIZE)
    out = augment_hip(pixels, box, side, window=WINDOW, rng=np.random.default_rng(0), config=config, spec=spec)
    expected = hip_crop(pixels, box, side, window=WINDOW, spec=CropSpec(size=SIZE, zoom=zoom))
    np.testing.assert_array_equal(out, expected)


def test_augment_hip_deterministic_and_in_range():
    pixels, box = make_image()
    config = AugmentConfig(p_wiggle=1.0, p_cutout=1.0, p_masking=1.0)
    spec = CropSpec(size=SIZE)
    run = lambda seed: augment_hip(  # noqa: E731
        pixels, box, "left", window=WINDOW, rng=np.random.default_rng(seed), config=config, spec=spec
    )
    a, b, c = run(1), run(1), run(2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == (SIZE, SIZE) and a.dtype == np.float32 and 0.0 <= a.min() and a.max() <= 1.0
    plain = [hip_crop(pixels, box, "left", window=WINDOW, spec=CropSpec(size=SIZE, zoom=z)) for z in (1.0, 1.5)]
    assert all(not np.array_equal(a, p) for p in plain)


def test_augment_hip_uses_both_zooms():
    pixels, box = make_image()
    config = AugmentConfig(p_wiggle=0.0, p_cutout=0.0, p_masking=0.0)
    spec = CropSpec(size=32)
    plain = {z: hip_crop(pixels, box, "right", window=WINDOW, spec=CropSpec(size=32, zoom=z)) for z in (1.0, 1.5)}
    hits = set()
    for seed in range(20):
        out = augment_hip(
            pixels, box, "right", window=WINDOW, rng=np.random.default_rng(seed), config=config, spec=spec
        )
        hits |= {z for z, p in plain.items() if np.array_equal(out, p)}
    assert hits == {1.0, 1.5}


def test_paper_augmentations_set():
    pixels, box = make_image()
    spec = CropSpec(size=SIZE)
    items = paper_augmentations(pixels, box, "right", window=WINDOW, rng=np.random.default_rng(0), spec=spec)
    labels = [label for label, _ in items]
    assert labels == [f"zoom {z} {k}".strip() for z in ("1", "1.5") for k in ("", "cutout", "masking", "wiggle")]
    for label, crop in items:
        assert crop.shape == (SIZE, SIZE) and crop.dtype == np.float32, label
    np.testing.assert_array_equal(items[0][1], hip_crop(pixels, box, "right", window=WINDOW, spec=spec))
    assert len({items[i][1].tobytes() for i in range(8)}) == 8  # six additional images, all different


def test_config_validation_and_as_dict():
    config = AugmentConfig()
    d = config.as_dict()
    assert d["zooms"] == [1.0, 1.5] and d["wiggle_fraction"] == config.wiggle_fraction
    assert AugmentConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}) == config
    for bad in (
        {"zooms": ()},
        {"p_cutout": 1.5},
        {"wiggle_fraction": 1.0},
        {"cutout_size": (0.0, 0.5)},
        {"cutout_factor": (2.0, 1.0)},
        {"mask_components": (0, 2)},
        {"mask_amplitude": (0.1, 1.5)},
    ):
        with pytest.raises(ValueError):
            AugmentConfig(**bad)
