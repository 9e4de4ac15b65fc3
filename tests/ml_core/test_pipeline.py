"""Tests of ml.core.pipeline: the tf.data training/eval input pipeline."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from ml.core.augment import AugmentConfig  # noqa: E402
from ml.core.configs import get_config  # noqa: E402
from ml.core.crops import CropSpec, hip_crop, to_model_input  # noqa: E402
from ml.core.pipeline import HipRecord, PixelCache, eval_zoom_datasets, make_dataset  # noqa: E402

TINY = get_config("tiny")


def _radiograph(seed: int, radii: tuple[int, int]) -> np.ndarray:
    """512 x 512 uint16: noise plus a bright disc per hip, its radius set by the class."""
    rng = np.random.default_rng(seed)
    img = rng.integers(500, 1500, size=(512, 512)).astype(np.uint16)
    yy, xx = np.mgrid[0:512, 0:512]
    for cx, r in zip((128, 384), radii, strict=True):
        img[(yy - 256) ** 2 + (xx - cx) ** 2 < r**2] = 3500
    return img


def _records(n_films: int = 8) -> list[HipRecord]:
    out = []
    for f in range(n_films):
        labels = (f % 6, (f + 3) % 6)
        pixels = _radiograph(f, tuple(10 + 12 * c for c in labels))
        load = lambda a=pixels: a  # noqa: E731 - one callable per film, shared by its two hips
        for k, side in enumerate(("right", "left")):
            # image-right half holds the patient's left hip
            out.append(
                HipRecord(
                    pixels=load,
                    window=(2000.0, 4000.0),
                    box=(128 + 256 * k - 90, 166.0, 180.0, 180.0),
                    side=side,
                    label=labels[k],
                    patient=f"p{f}",
                )
            )
    return out


RECORDS = _records()


def _first(ds):
    x, y = next(iter(ds))
    return x.numpy(), y.numpy()


def test_shapes_dtypes_labels():
    ds = make_dataset(RECORDS, config=TINY, augment=AugmentConfig(), seed=0, shuffle=True, batch_size=5)
    seen = []
    for x, y in ds:
        assert x.dtype.name == "float32" and y.dtype.name == "int32"
        assert x.shape[1:] == (64, 64, 3) and x.shape[0] == y.shape[0] <= 5
        assert np.isfinite(x.numpy()).all()
        seen += list(y.numpy())
    assert sorted(seen) == sorted(r.label for r in RECORDS)
    assert len(ds) == 4  # ceil(16 / 5)
    assert ds.pixel_cache.loads == 8  # two hips a film, one load each


def test_same_seed_same_batches_and_epochs_differ():
    a = make_dataset(RECORDS, config=TINY, augment=AugmentConfig(), seed=7, shuffle=True)
    b = make_dataset(RECORDS, config=TINY, augment=AugmentConfig(), seed=7, shuffle=True)
    xa, ya = _first(a)
    xb, yb = _first(b)
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(ya, yb)
    # the second epoch of each matches, and differs from the first
    xa2, _ = _first(a)
    xb2, _ = _first(b)
    np.testing.assert_array_equal(xa2, xb2)
    assert not np.array_equal(xa, xa2)


def test_different_seed_differs():
    xa, ya = _first(make_dataset(RECORDS, config=TINY, augment=AugmentConfig(), seed=1, shuffle=False))
    xb, yb = _first(make_dataset(RECORDS, config=TINY, augment=AugmentConfig(), seed=2, shuffle=False))
    np.testing.assert_array_equal(ya, yb)  # unshuffled: record order
    assert not np.array_equal(xa, xb)


def test_no_augmentation_equals_plain_crop():
    ds = make_dataset(RECORDS, config=TINY, augment=None, seed=0, shuffle=False, batch_size=16)
    x, y = _first(ds)
    for i, r in enumerate(RECORDS):
        want = to_model_input(hip_crop(r.pixels(), r.box, r.side, window=r.window, spec=CropSpec(size=64)))
        np.testing.assert_array_equal(x[i], want)
        assert y[i] == r.label
    zoomed = eval_zoom_datasets(RECORDS[:3], config=TINY, batch_size=3)
    assert sorted(zoomed) == [1.0, 1.5]
    x15, _ = _first(zoomed[1.5])
    r = RECORDS[2]
    want = hip_crop(r.pixels(), r.box, r.side, window=r.window, spec=CropSpec(size=64, zoom=1.5))
    np.testing.assert_array_equal(x15[2], to_model_input(want))


def test_augment_without_randomness_equals_plain_crop():
    cfg = AugmentConfig(zooms=(1.0,), p_wiggle=0.0, p_cutout=0.0, p_masking=0.0)
    xa, _ = _first(make_dataset(RECORDS, config=TINY, augment=cfg, seed=3, shuffle=False, batch_size=16))
    xb, _ = _first(make_dataset(RECORDS, config=TINY, augment=None, seed=3, shuffle=False, batch_size=16))
    np.testing.assert_array_equal(xa, xb)


def test_npy_path_and_cache_bound(tmp_path):
    img = _radiograph(0, (20, 30))
    path = tmp_path / "film.npy"
    np.save(path, img)
    recs = [
        HipRecord(pixels=path, window=(2000, 4000), box=(40, 170, 180, 180), side="right", label=0),
        HipRecord(pixels=str(path), window=(2000, 4000), box=(300, 170, 180, 180), side="left", label=1),
    ]
    assert recs[0].cache_key == recs[1].cache_key
    ds = make_dataset(recs, config=TINY, augment=None, seed=0, shuffle=False)
    x, _ = _first(ds)
    want = to_model_input(hip_crop(img, recs[1].box, "left", window=(2000, 4000), spec=CropSpec(size=64)))
    np.testing.assert_array_equal(x[1], want)
    assert ds.pixel_cache.loads == 1
    cache = PixelCache(max_bytes=img.nbytes)  # room for one film
    other = HipRecord(pixels=lambda: img, window=(2000, 4000), box=(0, 0, 9, 9), side="right", label=0, radiograph="b")
    cache.get(recs[0])
    cache.get(other)
    assert len(cache) == 1 and cache.nbytes == img.nbytes
    cache.get(recs[0])
    assert cache.loads == 3


def test_bad_records():
    with pytest.raises(ValueError):
        HipRecord(pixels=lambda: np.zeros((4, 4)), window=(1, 2), box=(0, 0, 1, 1), side="up", label=0)
    bad = HipRecord(pixels=lambda: np.zeros((4, 4)), window=(1, 2), box=(0, 0, 1, 1), side="right", label=6)
    with pytest.raises(ValueError):
        make_dataset([bad], config=TINY, augment=None, seed=0, shuffle=False)
    with pytest.raises(ValueError):
        make_dataset([], config=TINY, augment=None, seed=0, shuffle=False)


def test_tiny_model_fits_one_epoch():
    from ml.core import nets

    model = nets.compile_model(nets.build_model(TINY), TINY, steps_per_epoch=2)
    train = make_dataset(RECORDS, config=TINY, augment=AugmentConfig(), seed=0, shuffle=True)
    val = make_dataset(RECORDS[:8], config=TINY, augment=None, seed=0, shuffle=False)
    hist = model.fit(train, validation_data=val, epochs=1, shuffle=False, verbose=0)
    assert np.isfinite(hist.history["loss"][0])
    assert "val_accuracy" in hist.history


def test_paper_fixed_regime_gives_each_hip_its_eight_images_each_epoch():
    from ml.core.augment import paper_variant, paper_variants
    from ml.core.pipeline import element_rng, images_per_hip

    records = RECORDS[:3]
    config = AugmentConfig()
    variants = paper_variants(config.zooms)
    assert variants == [(z, k) for z in (1.0, 1.5) for k in ("plain", "cutout", "masking", "wiggle")]
    assert images_per_hip("paper-fixed", config.zooms) == 8 and images_per_hip("online-random", config.zooms) == 1

    def epoch(ds):
        xs, ys = zip(*((x.numpy(), y.numpy()) for x, y in ds), strict=True)
        return np.concatenate(xs), np.concatenate(ys)

    ds = make_dataset(records, config=TINY, augment=config, seed=5, shuffle=True, batch_size=5, regime="paper-fixed")
    assert len(ds) == 5  # ceil(3 hips x 8 / 5)
    x, y = epoch(ds)
    assert x.shape == (24, 64, 64, 3)
    assert sorted(y) == sorted(r.label for r in records for _ in range(8))
    # Element (hip h, variant v) is paper_variant of hip h drawn with the element's own generator;
    # the epoch's order is a shuffle of all 24.
    expected = {}
    for h, r in enumerate(records):
        for v, (zoom, kind) in enumerate(variants):
            crop = paper_variant(
                r.pixels(), r.box, r.side, zoom=zoom, kind=kind, window=r.window, rng=element_rng(5, 0, 8 * h + v),
                config=config, spec=CropSpec(size=64),
            )  # fmt: skip
            expected[(h, v)] = to_model_input(crop)
    found = []
    for image in x:
        match = [key for key, want in expected.items() if np.array_equal(image, want)]
        assert len(match) == 1
        found.append(match[0])
    assert sorted(found) == sorted(expected)  # each of the 8 x 3 exactly once
    assert found != sorted(found)  # shuffled, not hip by hip
    plain = to_model_input(hip_crop(records[0].pixels(), records[0].box, records[0].side, window=records[0].window,
                                     spec=CropSpec(size=64)))  # fmt: skip
    np.testing.assert_array_equal(expected[(0, 0)], plain)  # the plain zoom-1.0 crop is among them

    # Redrawn each epoch, reproducibly from the seed: a second dataset gives the same epochs.
    x2, _ = epoch(ds)
    assert not np.array_equal(np.sort(x.reshape(24, -1), axis=0), np.sort(x2.reshape(24, -1), axis=0))
    again = make_dataset(records, config=TINY, augment=config, seed=5, shuffle=True, batch_size=5, regime="paper-fixed")
    np.testing.assert_array_equal(epoch(again)[0], x)
    np.testing.assert_array_equal(epoch(again)[0], x2)
    with pytest.raises(ValueError, match="regime"):
        make_dataset(records, config=TINY, augment=config, seed=0, shuffle=True, regime="nope")


def test_online_random_regime_gives_one_image_per_hip():
    ds = make_dataset(RECORDS, config=TINY, augment=AugmentConfig(), seed=0, shuffle=True, batch_size=16,
                      regime="online-random")  # fmt: skip
    assert len(ds) == 1 and sum(int(y.shape[0]) for _, y in ds) == len(RECORDS)
