"""The serving path (ml.core.serving): the test-time protocols (``single``: the zoom-1.0 crop
alone; ``zoom-average``: the mean over the zooms), scoring crops already made, batching across
radiographs, the naive baseline, class activation maps and where heatmaps land on the image.

A freshly built ``tiny`` model (random weights) on synthetic radiographs: every expected value
is recomputed here independently from ``crops`` / ``nets``, so the tests need no trained model.
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from PIL import Image  # noqa: E402

from ml.core import nets  # noqa: E402
from ml.core.configs import get_config  # noqa: E402
from ml.core.crops import CropSpec, hip_crop, to_model_input  # noqa: E402
from ml.core.modelfile import write_bundle  # noqa: E402
from ml.core.serving import (  # noqa: E402
    Hip,
    HipPrediction,
    Predictor,
    heatmap_png,
    heatmap_to_image,
    naive_predict,
    protocol_name,
    protocol_zooms,
)
from ml.core.stats import CLASS_KEYS, FRACTURE_INDICES  # noqa: E402

# keras' TF backend calls np.array on tensors; numpy 2 warns about the copy keyword.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

WINDOW = (2000.0, 3000.0)
SHAPE = (600, 800)
RIGHT = Hip("right", (100.0, 150.0, 250.0, 250.0))  # patient's right hip: image's left half
LEFT = Hip("left", (450.0, 140.0, 240.0, 260.0))


def radiograph(seed: int = 0) -> np.ndarray:
    """600 x 800 uint16: noisy background, a bright blob in the lateral part of each box."""
    rng = np.random.default_rng(seed)
    px = rng.normal(1000, 150, SHAPE).clip(0, 4095)
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    for cx, cy, r in ((150 + 7 * seed, 240, 35), (640 - 5 * seed, 300, 45)):
        px += 2500 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r**2))
    px[450:520, 300:500] += 1500  # something below the boxes
    return px.clip(0, 4095).astype(np.uint16)


@pytest.fixture(scope="module")
def config():
    return get_config("tiny")


@pytest.fixture(scope="module")
def model(config):
    keras.utils.set_random_seed(0)
    return nets.build_model(config)


@pytest.fixture(scope="module")
def average_config(config):
    return config.replace(test_time="zoom-average")


@pytest.fixture(scope="module")
def predictor(model, average_config):
    """Zoom-averaging (two crops per hip): most tests below exercise the general path with it."""
    return Predictor(model, average_config)


@pytest.fixture(scope="module")
def predictor_single(model, config):
    return Predictor(model, config)


@pytest.fixture(scope="module")
def predictor_z1(model, config):
    return Predictor(model, config, zooms=(1.0,))


def model_input(pixels, hip: Hip, zoom: float, size: int) -> np.ndarray:
    return to_model_input(hip_crop(pixels, hip.box, hip.side, window=WINDOW, spec=CropSpec(size=size, zoom=zoom)))


def test_protocol_zooms_follow_the_config():
    tiny = get_config("tiny")
    assert tiny.test_time == "single" and get_config("paper").test_time == "single"
    assert protocol_zooms(tiny) == (1.0,)
    assert protocol_zooms(tiny.replace(test_time="zoom-average")) == (1.0, 1.5)
    assert protocol_zooms(tiny.replace(test_time="zoom-average", zooms=(1.0, 1.25, 1.5))) == (1.0, 1.25, 1.5)
    assert protocol_name((1.0,)) == "single" and protocol_name((1.0, 1.5)) == "zoom-average"
    assert protocol_name([1.5]) == "zoom-1.5"
    # a stored config from before the field existed was served zoom-averaged, and still is
    legacy = {k: v for k, v in tiny.as_dict().items() if k != "test_time"}
    assert protocol_zooms(type(tiny).from_dict(legacy)) == (1.0, 1.5)


def test_single_protocol_scores_the_zoom_one_crop_alone(predictor_single, predictor_z1, model, config):
    """The paper's protocol (the default): the probabilities are the model's softmax on the
    zoom-1.0 crop and nothing else; the heatmap is that crop's CAM."""
    assert predictor_single.test_time == "single" and predictor_single.zooms == (1.0,)
    px = radiograph()
    preds = predictor_single.predict_hips(px, WINDOW, [RIGHT, LEFT])
    reference = predictor_z1.predict_hips(px, WINDOW, [RIGHT, LEFT])
    for pred, ref, hip in zip(preds, reference, [RIGHT, LEFT], strict=True):
        alone = np.asarray(model(model_input(px, hip, 1.0, config.input_size)[None], training=False))[0]
        np.testing.assert_allclose(pred.probabilities, alone, atol=2e-6)
        wider = np.asarray(model(model_input(px, hip, 1.5, config.input_size)[None], training=False))[0]
        assert not np.allclose(pred.probabilities, (alone + wider) / 2, atol=1e-5)  # the zoom 1.5 crop is left out
        order = np.argsort(-alone, kind="stable")
        assert pred.top2 == [CLASS_KEYS[order[0]], CLASS_KEYS[order[1]]] and pred.predicted_class == pred.top2[0]
        np.testing.assert_allclose(pred.heatmap, ref.heatmap, atol=1e-5)
        np.testing.assert_allclose(pred.cam, ref.cam, atol=1e-5)
    # naive_predict follows the same protocol by default
    naive = naive_predict(model, config, px, WINDOW, [RIGHT, LEFT])
    for n, pred in zip(naive, preds, strict=True):
        np.testing.assert_allclose(n, pred.probabilities, atol=2e-6)


def test_explicit_zooms_override_the_protocol(model, config, average_config):
    px = radiograph()
    both = Predictor(model, config, zooms=(1.0, 1.5))
    assert both.test_time == "zoom-average"
    only_one = Predictor(model, average_config, zooms=(1.0,))
    assert only_one.test_time == "single"
    x = np.stack([model_input(px, RIGHT, z, config.input_size) for z in (1.0, 1.5)])
    outputs = np.asarray(model(x, training=False))
    np.testing.assert_allclose(both.predict_hips(px, WINDOW, [RIGHT])[0].probabilities, outputs.mean(0), atol=2e-6)
    np.testing.assert_allclose(only_one.predict_hips(px, WINDOW, [RIGHT])[0].probabilities, outputs[0], atol=2e-6)
    naive = naive_predict(model, average_config, px, WINDOW, [RIGHT])
    np.testing.assert_allclose(naive[0], outputs.mean(0), atol=2e-6)


def test_predict_crops_reads_exactly_the_crop_it_is_given(predictor_single, predictor, model, config):
    """Scoring a crop already made (a reader study's 8-bit phase-1 PNG): the model's softmax on
    that very image, whatever the predictor's protocol; from the float crop it equals
    ``predict_hips`` under ``single``."""
    px = radiograph()
    size = config.input_size
    floats = np.stack([hip_crop(px, h.box, h.side, window=WINDOW, spec=CropSpec(size=size)) for h in (RIGHT, LEFT)])
    quantised = np.round(floats * 255).astype(np.uint8)
    for scorer in (predictor_single, predictor):
        got = scorer.predict_crops(quantised / 255.0, [RIGHT, LEFT])
        expected = np.asarray(model(to_model_input(quantised / 255.0), training=False))
        for pred, want, hip in zip(got, expected, [RIGHT, LEFT], strict=True):
            np.testing.assert_allclose(pred.probabilities, want, atol=2e-6)
            assert pred.side == hip.side and pred.box == hip.box
            x, y, w, h = hip.box
            assert pred.heatmap_rect == pytest.approx((x, y, x + w, y + h))
    from_floats = predictor_single.predict_crops(floats, [RIGHT, LEFT], batch_size=1)
    for a, b in zip(from_floats, predictor_single.predict_hips(px, WINDOW, [RIGHT, LEFT]), strict=True):
        np.testing.assert_allclose(a.probabilities, b.probabilities, atol=2e-6)
        np.testing.assert_allclose(a.heatmap, b.heatmap, atol=1e-5)
        assert a.top2 == b.top2
    assert predictor_single.predict_crops(np.zeros((0, size, size)), []) == []
    with pytest.raises(ValueError, match="crops must be"):
        predictor_single.predict_crops(floats[:, :-1], [RIGHT, LEFT])
    with pytest.raises(ValueError, match="2 crops for 1 hips"):
        predictor_single.predict_crops(floats, [RIGHT])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        predictor_single.predict_crops(quantised.astype(np.float32), [RIGHT, LEFT])


def test_zoom_average_protocol_is_the_mean_of_model_outputs(predictor, model, config):
    px = radiograph()
    assert predictor.test_time == "zoom-average" and predictor.zooms == (1.0, 1.5)
    preds = predictor.predict_hips(px, WINDOW, [RIGHT, LEFT])
    assert [p.side for p in preds] == ["right", "left"]
    assert config.zooms == (1.0, 1.5)
    for pred, hip in zip(preds, [RIGHT, LEFT], strict=True):
        x = np.stack([model_input(px, hip, z, config.input_size) for z in config.zooms])
        expected = np.asarray(model(x, training=False)).mean(axis=0)
        assert len(pred.probabilities) == 6
        assert sum(pred.probabilities) == pytest.approx(1.0, abs=1e-6)
        np.testing.assert_allclose(pred.probabilities, expected, atol=2e-6)
        order = np.argsort(-expected, kind="stable")
        assert pred.predicted_class == CLASS_KEYS[order[0]] == pred.top2[0]
        assert pred.top2 == [CLASS_KEYS[order[0]], CLASS_KEYS[order[1]]]
        assert pred.fracture_probability == pytest.approx(expected[list(FRACTURE_INDICES)].sum(), abs=2e-6)
        assert pred.box == hip.box
        x, y, w, h = hip.box
        assert pred.heatmap_rect == pytest.approx((x, y, x + w, y + h))
        assert pred.heatmap.shape == (config.input_size, config.input_size)
        assert pred.heatmap.dtype == np.float32
        assert pred.heatmap.min() >= 0 and pred.heatmap.max() == pytest.approx(1.0)


def test_predict_many_matches_predict_hips_one_by_one(predictor):
    items = [
        (radiograph(1), WINDOW, [RIGHT, LEFT], False),
        (radiograph(2), WINDOW, []),  # no hips: yields [] in its place
        (radiograph(3), (1800.0, 2500.0), [LEFT], True),
        (radiograph(4), WINDOW, [LEFT, RIGHT, Hip("right", (-50.0, 500.0, 200.0, 200.0))]),  # partly outside
    ]
    # batch_size 3 with 4 crops per hip: batches straddle hips and radiographs
    batched = list(predictor.predict_many(iter(items), batch_size=3))
    assert [len(b) for b in batched] == [2, 0, 1, 3]
    inline = list(predictor.predict_many(items, batch_size=5, prefetch=0))
    for a, b in zip(inline, batched, strict=True):
        np.testing.assert_allclose([p.probabilities for p in a], [p.probabilities for p in b], atol=1e-6)
    for item, got in zip(items, batched, strict=True):
        invert = item[3] if len(item) == 4 else False
        one = predictor.predict_hips(item[0], item[1], item[2], invert=invert)
        for a, b in zip(one, got, strict=True):
            assert (a.side, a.box, a.predicted_class, a.top2) == (b.side, b.box, b.predicted_class, b.top2)
            np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-6)
            np.testing.assert_allclose(a.heatmap, b.heatmap, atol=1e-4)
    # inversion changes the input, hence the output
    plain = predictor.predict_hips(items[2][0], items[2][1], items[2][2])
    assert not np.allclose(plain[0].probabilities, batched[2][0].probabilities, atol=1e-7)


def test_naive_predict_agrees_with_predictor_at_zoom_one(predictor_z1, model, config):
    px = radiograph()
    naive = naive_predict(model, config, px, WINDOW, [RIGHT, LEFT], zooms=(1.0,))
    preds = predictor_z1.predict_hips(px, WINDOW, [RIGHT, LEFT])
    assert len(naive) == 2
    for n, p in zip(naive, preds, strict=True):
        np.testing.assert_allclose(p.probabilities, n, atol=2e-6)
    assert naive_predict(model, config, px, WINDOW, []) == []


def test_cam_mean_plus_bias_is_the_logit_of_the_predicted_class(predictor_z1, model, config):
    px = radiograph()
    preds = predictor_z1.predict_hips(px, WINDOW, [RIGHT, LEFT])
    kernel, bias = nets.dense_kernel(model)
    cam_net = nets.cam_model(model)
    for pred, hip in zip(preds, [RIGHT, LEFT], strict=True):
        features, probs = cam_net([model_input(px, hip, 1.0, config.input_size)[None]], training=False)
        features = np.asarray(features)[0]
        logits = features.mean(axis=(0, 1)) @ kernel + bias
        lse = logits.max() + np.log(np.exp(logits - logits.max()).sum())
        log_softmax = logits - lse
        np.testing.assert_allclose(np.exp(log_softmax), np.asarray(probs)[0], atol=1e-6)
        k = pred.class_index
        assert pred.cam.shape == features.shape[:2]
        np.testing.assert_allclose(pred.cam, nets.class_activation_maps(features, kernel, k), atol=1e-5)
        # log p_k from the CAM alone (spatial mean + bias) and the other logits
        assert pred.cam.mean() + bias[k] == pytest.approx(logits[k], abs=1e-4)
        assert np.log(pred.probabilities[k]) == pytest.approx(pred.cam.mean() + bias[k] - lse, abs=1e-4)
        # the heatmap is the ReLU'd CAM scaled to max 1 (upsampled): its argmax cell is the CAM's
        relu = np.maximum(pred.cam, 0)
        if relu.max() > 0:
            h, w = relu.shape
            cell = np.unravel_index(np.argmax(relu), relu.shape)
            s = config.input_size
            block = pred.heatmap[cell[0] * s // h : (cell[0] + 1) * s // h, cell[1] * s // w : (cell[1] + 1) * s // w]
            assert block.max() == pytest.approx(1.0)


def test_left_hip_on_mirrored_image_gives_mirrored_heatmap(predictor, config):
    """Mirror the film left-right and call the right hip a left hip: the crop the model sees is
    the same, so the probabilities are equal and the heatmap, put back on the image, must be
    the mirror image of the right hip's. The heat is asymmetric within the box, so an
    un-flip missing (or done twice) would fail."""
    px = radiograph()
    width = SHAPE[1]
    mirrored = np.ascontiguousarray(px[:, ::-1])
    x, y, w, h = RIGHT.box
    as_left = Hip("left", (width - x - w, y, w, h))
    right = predictor.predict_hips(px, WINDOW, [RIGHT])[0]
    left = predictor.predict_hips(mirrored, WINDOW, [as_left])[0]
    np.testing.assert_allclose(left.probabilities, right.probabilities, atol=1e-6)
    np.testing.assert_allclose(left.heatmap, right.heatmap, atol=1e-4)  # same crop orientation
    assert left.heatmap_rect == pytest.approx((width - x - w, y, width - x, y + h))

    img_right = heatmap_to_image(right, SHAPE)
    img_left = heatmap_to_image(left, SHAPE)
    np.testing.assert_allclose(img_left, img_right[:, ::-1], atol=1e-4)
    # zero outside the rectangle, and the heat is really asymmetric inside it
    assert img_right[:, : int(x)].max() == 0 and img_right[:, int(x + w) + 1 :].max() == 0
    assert img_right[: int(y)].max() == 0 and img_right[int(y + h) + 1 :].max() == 0
    inside = img_right[int(y) : int(y + h), int(x) : int(x + w)]
    assert np.abs(inside - inside[:, ::-1]).max() > 0.05
    cols = np.arange(SHAPE[1]) + 0.5
    centroid_right = (img_right.sum(axis=0) * cols).sum() / img_right.sum()
    centroid_left = (img_left.sum(axis=0) * cols).sum() / img_left.sum()
    assert abs(centroid_right - (x + w / 2)) > 2  # off-centre
    assert centroid_left == pytest.approx(width - centroid_right, abs=0.1)


@pytest.mark.parametrize("side", ["right", "left"])
def test_heatmap_to_image_puts_crop_content_back_where_it_came_from(predictor, config, side):
    """A heatmap equal to the crop itself, mapped to the image, reproduces the windowed image
    in the box: the blob lands on the blob, for both sides (left crops are mirrored)."""
    px = radiograph()
    hip = RIGHT if side == "right" else LEFT
    pred = predictor.predict_hips(px, WINDOW, [hip])[0]
    crop = hip_crop(px, hip.box, side, window=WINDOW, spec=CropSpec(size=config.input_size))
    fake = dataclasses.replace(pred, heatmap=crop)
    img = heatmap_to_image(fake, SHAPE)
    x, y, w, h = (int(v) for v in hip.box)
    windowed = np.clip((px.astype(np.float64) - (WINDOW[0] - 0.5)) / (WINDOW[1] - 1) + 0.5, 0, 1)
    got, want = img[y + 4 : y + h - 4, x + 4 : x + w - 4], windowed[y + 4 : y + h - 4, x + 4 : x + w - 4]
    # a 64 px crop of a 250 px box: compare smoothed versions
    assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > 0.9
    assert np.corrcoef(got.ravel(), want[:, ::-1].ravel())[0, 1] < 0.5


def test_heatmap_png_is_rgba_and_unmirrored(predictor, config):
    preds = predictor.predict_hips(radiograph(), WINDOW, [RIGHT, LEFT])
    for pred in preds:
        img = Image.open(io.BytesIO(heatmap_png(pred)))
        assert img.mode == "RGBA" and img.size == (config.input_size, config.input_size)
        alpha = np.asarray(img)[..., 3].astype(float)
        heat = pred.heatmap[:, ::-1] if pred.side == "left" else pred.heatmap
        np.testing.assert_allclose(alpha, np.rint(heat * 255 * 0.75), atol=1)
        big = Image.open(io.BytesIO(heatmap_png(pred, size=224, colormap="jet")))
        assert big.mode == "RGBA" and big.size == (224, 224)
    with pytest.raises(ValueError, match="colormap"):
        heatmap_png(preds[0], colormap="viridis")


def test_all_zero_cam_gives_zero_heatmap(predictor):
    from ml.core.serving import _heatmap

    assert not _heatmap(np.full((2, 2), -3.0, np.float32), 16).any()
    heat = _heatmap(np.array([[0.0, 2.0], [-1.0, 1.0]], np.float32), 16)
    assert heat.max() == pytest.approx(1.0) and heat.min() == 0.0


def test_zooms_without_one_still_give_a_zoom_one_heatmap(model, config):
    px = radiograph()
    only = Predictor(model, config, zooms=(1.5,)).predict_hips(px, WINDOW, [RIGHT])[0]
    expected = np.asarray(model(model_input(px, RIGHT, 1.5, config.input_size)[None], training=False))[0]
    np.testing.assert_allclose(only.probabilities, expected, atol=2e-6)
    assert only.heatmap.shape == (config.input_size, config.input_size)
    assert only.heatmap_rect == pytest.approx((100.0, 150.0, 350.0, 400.0))


def test_from_bundle_round_trip(tmp_path, model, config, average_config, predictor):
    single = tmp_path / "single.hipmodel"
    write_bundle(single, model=model, config=config, dataset_hash="abc")
    assert Predictor.from_bundle(single).test_time == "single" and Predictor.from_bundle(single).zooms == (1.0,)
    path = tmp_path / "m.hipmodel"
    write_bundle(path, model=model, config=average_config, dataset_hash="abc")
    loaded = Predictor.from_bundle(path)
    assert loaded.config == average_config and loaded.zooms == config.zooms and loaded.test_time == "zoom-average"
    px = radiograph()
    a = loaded.predict_hips(px, WINDOW, [RIGHT, LEFT])
    b = predictor.predict_hips(px, WINDOW, [RIGHT, LEFT])
    for p, q in zip(a, b, strict=True):
        np.testing.assert_allclose(p.probabilities, q.probabilities, atol=1e-6)
        np.testing.assert_allclose(p.heatmap, q.heatmap, atol=1e-5)


def test_validation(predictor):
    px = radiograph()
    assert predictor.predict_hips(px, WINDOW, []) == []
    assert list(predictor.predict_many([])) == []
    with pytest.raises(ValueError, match="side"):
        Hip("middle", (0, 0, 10, 10))
    with pytest.raises(ValueError, match="box"):
        Hip("right", (0, 0, 0, 10))
    with pytest.raises(ValueError, match="box"):
        Hip("right", (0, 0, 10))
    with pytest.raises(ValueError, match="side"):
        predictor.predict_hips(px, WINDOW, [("up", (0, 0, 10, 10))])
    with pytest.raises(ValueError, match="hip"):
        predictor.predict_hips(px, WINDOW, ["right"])
    with pytest.raises(ValueError, match="pixels"):
        predictor.predict_hips(px[0], WINDOW, [RIGHT])
    with pytest.raises(ValueError, match="window"):
        predictor.predict_hips(px, (2000.0, 0.0), [RIGHT])
    with pytest.raises(ValueError, match="batch_size"):
        list(predictor.predict_many([(px, WINDOW, [RIGHT])], batch_size=0))
    with pytest.raises(ValueError, match="pixels"):  # raised on the crop worker thread, re-raised here
        list(predictor.predict_many([(px, WINDOW, [RIGHT]), (px[0], WINDOW, [RIGHT])], prefetch=2))
    with pytest.raises(ValueError, match="prefetch"):
        list(predictor.predict_many([(px, WINDOW, [RIGHT])], prefetch=-1))
    with pytest.raises(ValueError, match="item"):
        list(predictor.predict_many([(px, WINDOW)]))
    with pytest.raises(ValueError, match="zooms"):
        Predictor(predictor.model, predictor.config, zooms=())
    # (side, box) pairs are accepted; a box entirely outside the image still works (crops pad)
    out = predictor.predict_hips(px, WINDOW, [("left", (5000, 5000, 100, 100))])
    assert isinstance(out[0], HipPrediction) and sum(out[0].probabilities) == pytest.approx(1.0)
    assert not heatmap_to_image(out[0], SHAPE).any()
