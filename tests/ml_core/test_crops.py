"""Hip crops (ml.core.crops): geometry, flip, zoom, padding, windowing, normalisation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ml.core.crops import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CropSpec,
    apply_window,
    crop_box,
    crop_rect,
    crop_to_image_coords,
    hip_crop,
    hip_crops,
    image_to_crop_coords,
    to_model_input,
)

ROWS, COLS = 1000, 800
BG, MARK = 1500, 3800
WINDOW = (2000.0, 2000.0)  # 1000..3000: background ~0.25, marker saturates to 1
BOX = (200.0, 100.0, 300.0, 300.0)  # x, y, w, h


def _image(marker=(100, 130, 200, 230)) -> np.ndarray:
    """Background with a bright square in the box's top-left corner (10% of the box)."""
    img = np.full((ROWS, COLS), BG, dtype=np.uint16)
    r0, r1, c0, c1 = marker
    img[r0:r1, c0:c1] = MARK
    return img


def _bg_value() -> float:
    return float(apply_window(np.array([BG]), *WINDOW)[0])


def test_right_hip_marker_top_left_and_left_hip_flipped():
    img = _image()
    right = hip_crop(img, BOX, "right", window=WINDOW)
    left = hip_crop(img, BOX, "left", window=WINDOW)
    bg = _bg_value()
    assert right.shape == left.shape == (224, 224)
    assert right.dtype == left.dtype == np.float32
    assert right[5, 5] == pytest.approx(1.0, abs=1e-4)  # marker: top-left
    assert right[5, 218] == pytest.approx(bg, abs=1e-3)
    assert right[218, 5] == pytest.approx(bg, abs=1e-3)
    assert left[5, 218] == pytest.approx(1.0, abs=1e-4)  # mirrored: top-right
    assert left[5, 5] == pytest.approx(bg, abs=1e-3)
    np.testing.assert_array_equal(left, right[:, ::-1])
    # The marker covers 30/300 of the box: 22.4 crop pixels.
    assert 20 <= (right[5] > 0.6).sum() <= 24


def test_zoom_grows_box_about_its_centre():
    img = _image()
    z1, z15 = hip_crops(img, BOX, "right", window=WINDOW, zooms=(1.0, 1.5))
    assert z15.shape == (224, 224) and z15.dtype == np.float32
    # Zoomed-out rect: x 125..575, y 25..475; marker (200..230, 100..130) sits at crop 37.3..52.3.
    assert z15[45, 45] == pytest.approx(1.0, abs=1e-4)
    assert z15[5, 5] == pytest.approx(_bg_value(), abs=1e-3)
    area1, area15 = (z1 > 0.6).sum(), (z15 > 0.6).sum()
    assert area15 / area1 == pytest.approx(1 / 1.5**2, rel=0.15)
    rows, cols = np.nonzero(z15 > 0.6)
    assert rows.min() > 30 and cols.min() > 30  # moved toward the centre


def test_box_at_image_edge_is_padded():
    img = _image()
    box = (700.0, 900.0, 200.0, 200.0)  # half outside to the right and below
    crop = hip_crop(img, box, "right", window=WINDOW)
    assert crop.shape == (224, 224) and crop.dtype == np.float32
    assert crop[:100, :100] == pytest.approx(_bg_value(), abs=1e-3)
    assert np.all(crop[:, 120:] == 0) and np.all(crop[120:, :] == 0)  # black outside the image
    left = hip_crop(img, box, "left", window=WINDOW, spec=CropSpec(zoom=1.5))
    assert left.shape == (224, 224)
    raw = crop_box(img, box)
    assert raw.shape == (200, 200) and raw.dtype == np.float32
    assert np.all(raw[:100, :100] == BG) and np.all(raw[:, 100:] == img.min())
    assert np.all(crop_box(img, box, fill=-1)[100:, :] == -1)
    # A box entirely outside the image still gives a (black) crop of the right size.
    assert np.all(hip_crop(img, (2000, 2000, 50, 50), "left", window=WINDOW) == 0)


def test_crop_box_region_and_zoom():
    img = np.arange(ROWS * COLS, dtype=np.uint16).reshape(ROWS, COLS) % 4096
    raw = crop_box(img, BOX)
    np.testing.assert_array_equal(raw, img[100:400, 200:500].astype(np.float32))
    assert crop_box(img, BOX, zoom=1.5).shape == (450, 450)
    assert crop_box(img, (10.5, 20.2, 5.0, 5.0)).shape == (6, 6)  # floor/ceil of a sub-pixel box


def test_configurable_size_and_square_aspect():
    img = _image()
    crop = hip_crop(img, BOX, "left", window=WINDOW, spec=CropSpec(size=64))
    assert crop.shape == (64, 64) and crop.dtype == np.float32
    assert crop_rect((0, 0, 300, 150), aspect="square") == (0.0, -75.0, 300.0, 225.0)
    assert crop_rect((0, 0, 300, 150)) == (0.0, 0.0, 300.0, 150.0)
    sq = hip_crop(img, (200, 100, 300, 150), "right", window=WINDOW, spec=CropSpec(aspect="square"))
    assert sq.shape == (224, 224)


def test_model_input_normalisation_matches_densenet_torch_mode():
    crop = np.full((224, 224), 0.5, dtype=np.float32)
    x = to_model_input(crop)
    assert x.shape == (224, 224, 3) and x.dtype == np.float32
    rgb255 = 0.5 * 255.0  # keras: x / 255, minus mean, over std, per channel
    expected = [(rgb255 / 255.0 - m) / s for m, s in zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), strict=True)]
    np.testing.assert_allclose(x[100, 100], expected, rtol=1e-6)
    np.testing.assert_allclose(IMAGENET_MEAN, [0.485, 0.456, 0.406])
    np.testing.assert_allclose(IMAGENET_STD, [0.229, 0.224, 0.225])
    assert to_model_input(np.zeros((2, 8, 8))).shape == (2, 8, 8, 3)  # batches too


def test_windowing_below_and_above_window():
    c, w = WINDOW
    lo = np.full((ROWS, COLS), 500, dtype=np.uint16)
    hi = np.full((ROWS, COLS), 3500, dtype=np.uint16)
    assert np.all(hip_crop(lo, BOX, "right", window=WINDOW) == 0)
    assert np.all(hip_crop(hi, BOX, "left", window=WINDOW) == 1)
    # DICOM PS3.3 C.11.2.1.2.1 linear function.
    vals = apply_window(np.array([c - 0.5 - (w - 1) / 2, c - 0.5, c - 0.5 + (w - 1) / 2 + 1e-3, 65535]), c, w)
    np.testing.assert_allclose(vals, [0.0, 0.5, 1.0, 1.0], atol=1e-6)
    assert hip_crop(hi, BOX, "right", window=WINDOW, invert=True).max() == 0  # MONOCHROME1
    with pytest.raises(ValueError):
        apply_window(vals, c, 0.5)


def test_percentile_windowing_stretches_the_crop():
    ramp = np.tile(np.linspace(1000, 1200, COLS, dtype=np.float32), (ROWS, 1)).astype(np.uint16)
    crop = hip_crop(ramp, BOX, "right", spec=CropSpec(windowing="percentile"))
    assert crop.min() == pytest.approx(0.0, abs=0.02) and crop.max() == pytest.approx(1.0, abs=0.02)
    assert crop[100, 10] < crop[100, 200]  # ramp direction kept
    flat = np.full((ROWS, COLS), 7, dtype=np.uint16)
    assert np.all(hip_crop(flat, BOX, "right", spec=CropSpec(windowing="percentile")) == 0)


@pytest.mark.parametrize("spec", [CropSpec(), CropSpec(zoom=1.5), CropSpec(size=100, aspect="square", zoom=1.2)])
def test_crop_to_image_coords_corners_and_inverse(spec):
    x, y, w, h = 200.0, 100.0, 300.0, 240.0
    box = (x, y, w, h)
    x0, y0, x1, y1 = crop_rect(box, zoom=spec.zoom, aspect=spec.aspect)
    s = spec.size
    u = np.array([0, s, 0, s])
    v = np.array([0, 0, s, s])
    xr, yr = crop_to_image_coords(u, v, box, "right", spec=spec)
    np.testing.assert_allclose(xr, [x0, x1, x0, x1])
    np.testing.assert_allclose(yr, [y0, y0, y1, y1])
    xl, yl = crop_to_image_coords(u, v, box, "left", spec=spec)
    np.testing.assert_allclose(xl, [x1, x0, x1, x0])  # flip undone
    np.testing.assert_allclose(yl, [y0, y0, y1, y1])
    if spec.zoom == 1.0 and spec.aspect == "squash":
        np.testing.assert_allclose((x0, y0, x1, y1), (x, y, x + w, y + h))
    for side in ("right", "left"):
        uu, vv = image_to_crop_coords(*crop_to_image_coords(u, v, box, side, spec=spec), box, side, spec=spec)
        np.testing.assert_allclose(uu, u, atol=1e-9)
        np.testing.assert_allclose(vv, v, atol=1e-9)


@pytest.mark.parametrize("side", ["right", "left"])
def test_crop_pixel_maps_back_onto_the_marker(side):
    img = _image(marker=(300, 310, 420, 430))  # a small square inside the box, off-centre
    spec = CropSpec(zoom=1.5)
    crop = hip_crop(img, BOX, side, window=WINDOW, spec=spec)
    r, c = np.unravel_index(np.argmax(crop), crop.shape)
    xs, ys = crop_to_image_coords(c + 0.5, r + 0.5, BOX, side, spec=spec)
    assert 418 <= xs <= 432 and 298 <= ys <= 312


def test_bad_arguments():
    img = _image()
    with pytest.raises(ValueError):
        hip_crop(img, BOX, "middle", window=WINDOW)
    with pytest.raises(ValueError):
        hip_crop(img, BOX, "right")  # window windowing without a window
    with pytest.raises(ValueError):
        hip_crop(img, (0, 0, 0, 10), "right", window=WINDOW)
    with pytest.raises(ValueError):
        CropSpec(windowing="auto")
    with pytest.raises(ValueError):
        CropSpec(zoom=0)
    with pytest.raises(ValueError):
        hip_crop(img[None], BOX, "right", window=WINDOW)


def test_no_django_import():
    root = Path(__file__).resolve().parents[2]
    code = "import sys, ml.core.crops; assert not any(m.startswith('django') for m in sys.modules)"
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True)
