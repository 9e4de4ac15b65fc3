"""The hip detector (ml.core.detector): configurations, the letterbox geometry, choosing one
box per side, keras-hub's NMS at IoU 0.3, checkpoints and bundles, the `paper` RetinaNet
(ResNet-50 FPN) training one step on the CPU, and a tiny one learning where hips are."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ml.core import detector as D
from ml.core import modelfile
from tests.ml_core.helpers import BOX, WINDOW, film, records

# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize("name", sorted(D.DETECTOR_CONFIGS))
def test_configs_round_trip(name):
    config = D.get_detector_config(name)
    assert config.name == name and config.kind == "detector" and config.nms_iou == 0.3
    assert D.DetectorConfig.from_dict(config.as_dict()) == config
    import json

    assert D.DetectorConfig.from_dict(json.loads(json.dumps(config.as_dict()))) == config
    assert D.DetectorConfig.from_dict({**config.as_dict(), "kind": "detector"}) == config
    assert config.replace(batch_size=3).batch_size == 3


def test_paper_config_is_resnet50_fpn():
    paper = D.get_detector_config("paper")
    assert (paper.backbone, paper.block_type, paper.blocks) == ("resnet50", "bottleneck_block", (3, 4, 6, 3))
    assert (paper.min_level, paper.max_level, paper.head_layers) == (3, 7, 4)


def test_bad_configs_are_refused():
    with pytest.raises(KeyError, match="unknown detector config 'nope'; known: "):
        D.get_detector_config("nope")
    with pytest.raises(ValueError, match="unknown detector config keys"):
        D.DetectorConfig.from_dict({"name": "x", "bogus": 1})
    with pytest.raises(ValueError, match="resnet50 has bottleneck"):
        D.DetectorConfig(name="x", blocks=(1, 1, 1, 1))
    with pytest.raises(ValueError, match="multiple of 128"):
        D.DetectorConfig(name="x", image_size=300)
    with pytest.raises(ValueError, match="nms_iou"):
        D.DetectorConfig(name="x", nms_iou=1.5)
    with pytest.raises(ValueError, match="64 filters"):
        D.DetectorConfig(name="x", backbone="resnet", block_type="basic_block", filters=(32, 32, 32, 32))


# --------------------------------------------------------------------------- geometry


def test_iou():
    assert D.iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert D.iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert D.iou((0, 0, 10, 10), (10, 0, 10, 10)) == 0.0
    assert D.iou((0, 0, 10, 10), (2, 2, 0, 5)) == 0.0


def test_letterbox_mapping_is_exact_for_known_boxes():
    lb = D.letterbox_for(240, 160, 128)
    assert (lb.new_w, lb.new_h) == (128, 85)  # aspect kept: 160 * 128 / 240 = 85.33 -> 85
    assert (lb.sx, lb.sy) == (128 / 240, 85 / 160)
    inside = D.box_to_input(BOX["right"], lb)
    assert inside == pytest.approx((20 * 128 / 240, 30 * 85 / 160, 90 * 128 / 240, 90 * 85 / 160))
    for box in [*BOX.values(), (0.0, 0.0, 240.0, 160.0), (13.25, 7.5, 1.0, 99.0)]:
        assert D.box_from_input(D.box_to_input(box, lb), lb) == pytest.approx(box, abs=1e-9)
    # A crop region (x0, y0) is subtracted before scaling and added back after.
    crop = D.letterbox_for(100, 200, 64, x0=-10, y0=25)
    assert (crop.new_w, crop.new_h) == (32, 64)
    assert D.box_to_input((40, 75, 50, 100), crop) == pytest.approx((16, 16, 16, 32))
    assert D.box_from_input((16, 16, 16, 32), crop) == pytest.approx((40, 75, 50, 100))
    assert D.coco_to_yxyx((1, 2, 3, 4)) == (2, 1, 6, 4) and D.yxyx_to_coco((2, 1, 6, 4)) == (1, 2, 3, 4)


def test_model_image_puts_the_film_where_the_mapping_says():
    pixels = np.zeros((160, 240), dtype=np.uint16)
    x, y, w, h = BOX["left"]
    pixels[int(y) : int(y + h), int(x) : int(x + w)] = 3000
    image, lb = D.model_image(pixels, WINDOW, 128)
    assert image.shape == (128, 128, 3) and image.dtype == np.float32
    gray = image[..., 0] * 0.229 + 0.485  # undo the ImageNet normalisation of channel 0
    bx, by, bw, bh = D.box_to_input(BOX["left"], lb)
    assert gray[math.ceil(by) + 1 : math.floor(by + bh) - 1, math.ceil(bx) + 1 : math.floor(bx + bw) - 1].min() > 0.99
    assert gray[: math.floor(by) - 1].max() < 0.01 and gray[:, : math.floor(bx) - 1].max() < 0.01
    assert np.all(gray[lb.new_h :] == 0.0)  # the padding is black
    assert np.allclose(image[..., 0] * 0.229 + 0.485, image[..., 2] * 0.225 + 0.406, atol=1e-5)  # 3 channels


def test_random_crops_keep_every_hip_and_boxes_follow():
    config = D.get_detector_config("tiny")
    record = records(1)[0]
    for seed in range(30):
        rng = np.random.default_rng(seed)
        region = D.random_crop(rng, (160, 240), list(BOX.values()), 0.5)
        x0, y0, w, h = region
        assert w / 240 == pytest.approx(h / 160) or w >= 200  # aspect kept unless grown to hold the hips
        for bx, by, bw, bh in BOX.values():
            assert x0 <= bx and bx + bw <= x0 + w and y0 <= by and by + bh <= y0 + h
        image, boxes, labels = D.training_example(record, config, np.random.default_rng(seed))
        assert image.shape == (128, 128, 3) and list(labels) == [0.0, 1.0]
        assert np.all(boxes >= -1e-4) and np.all(boxes <= 128 + 1e-4)
    # Without an rng the whole film is used, and the boxes are the exact mapping of the manual ones.
    _, boxes, _ = D.training_example(record, config, None)
    lb = D.letterbox_for(240, 160, 128)
    assert boxes[0] == pytest.approx(D.coco_to_yxyx(D.box_to_input(BOX["right"], lb)))
    # A radiograph with one hip is padded with -1.
    one = D.DetectorRecord(pixels=film(0), window=WINDOW, hips=(("left", BOX["left"]),))
    _, boxes, labels = D.training_example(one, config, None)
    assert list(labels) == [1.0, -1.0] and np.all(boxes[1] == -1)


def test_epoch_batches_are_reproducible_per_epoch():
    config = D.get_detector_config("tiny")
    train = records(6)
    a = [x for x, _ in D.epoch_batches(train, config, augment=True, seed=3, epoch=2)]
    b = [x for x, _ in D.epoch_batches(train, config, augment=True, seed=3, epoch=2)]
    c = [x for x, _ in D.epoch_batches(train, config, augment=True, seed=3, epoch=3)]
    assert len(a) == 2 and all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0])


# --------------------------------------------------------------------------- selecting and NMS


def test_select_detections_keeps_the_best_box_per_side_in_original_pixels():
    lb = D.letterbox_for(240, 160, 128)
    right = D.coco_to_yxyx(D.box_to_input(BOX["right"], lb))
    left = D.coco_to_yxyx(D.box_to_input(BOX["left"], lb))
    boxes = np.array([left, right, right, left, [0, 0, 0, 0]], dtype=np.float32)
    scores = np.array([0.6, 0.3, 0.9, 0.8, -1.0])
    labels = np.array([1, 0, 0, 1, -1])
    found = D.select_detections(boxes, scores, labels, lb, min_score=0.05)
    assert [d.side for d in found] == ["right", "left"]
    assert [d.score for d in found] == pytest.approx([0.9, 0.8])
    assert found[0].box == pytest.approx(BOX["right"], abs=1e-4)
    assert found[1].box == pytest.approx(BOX["left"], abs=1e-4)
    assert D.select_detections(boxes, scores, labels, lb, min_score=0.95) == []
    # Boxes reaching into the padding are clipped to the picture.
    wide = np.array([[-5, -5, 200, 200]], dtype=np.float32)
    (clipped,) = D.select_detections(wide, np.array([0.5]), np.array([0]), lb, min_score=0.05)
    assert clipped.box == pytest.approx((0, 0, 240, 160))
    # A box that is a sliver once clipped (under one original pixel across) is no hip at all:
    # it would make a proposal that lies outside the image.
    sliver = np.array([[84.8, 10, 90, 60]], dtype=np.float32)  # y from 84.8 to the picture's edge at 85
    assert D.select_detections(sliver, np.array([0.5]), np.array([0]), lb, min_score=0.05) == []


def test_the_decoder_is_keras_hubs_nms_at_iou_0_3():
    import keras_hub

    model = D.build_detector(D.get_detector_config("tiny"))
    decoder = model.prediction_decoder
    assert isinstance(decoder, keras_hub.layers.NonMaxSuppression) and decoder.iou_threshold == 0.3
    # Two boxes overlapping at IoU 0.5 leave one; at IoU 0.2 both stay.
    base = [0.0, 0.0, 10.0, 10.0]
    for other, kept in (([0.0, 0.0, 10.0, 5.0], 1), ([0.0, 0.0, 10.0, 2.0], 2)):
        boxes = np.array([[base, other]], dtype=np.float32)
        logits = np.array([[[4.0, -4.0], [3.0, -4.0]]], dtype=np.float32)
        out = decoder(boxes, logits)
        assert int(np.asarray(out["num_detections"])[0]) == kept


# --------------------------------------------------------------------------- the networks


def test_paper_configuration_builds_trains_one_step_and_predicts_on_the_cpu():
    import keras

    config = D.get_detector_config("paper")  # as is: ResNet-50 FPN P3-P7 at 512 x 512
    model = D.build_detector(config, steps_per_epoch=1, run_eagerly=True)  # eager: no minute-long tracing
    assert model.backbone.image_encoder.count_params() > 23_000_000  # ResNet-50 without its top
    assert model.input_shape == (None, 512, 512, 3)
    before = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights[:3]]
    history = model.fit(D.make_detector_dataset(records(2), config, seed=0), epochs=1, steps_per_epoch=1, verbose=0)
    assert all(math.isfinite(v[0]) for v in history.history.values())
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 1
    after = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights[:3]]
    assert any(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    image, _ = D.model_image(film(7), WINDOW, config.image_size)
    out = D.predict_batch(model, image[None])
    assert out["boxes"].shape == (1, config.max_detections, 4)
    found = D.detect(model, config, film(7), WINDOW)
    assert len(found) <= 2 and len({d.side for d in found}) == len(found)


def test_tiny_detector_learns_the_two_hips(trained_tiny):
    model, config = trained_tiny
    test = records(4, start=100)
    found = list(D.detect_many(model, config, ((r.pixels, r.window) for r in test), batch_size=3))
    assert len(found) == 4
    for detections in found:
        assert len(detections) <= 2 and [d.side for d in detections] == sorted(
            (d.side for d in detections), key=D.SIDES.index
        )
        for d in detections:  # original pixels: inside the 240 x 160 film
            x, y, w, h = d.box
            assert 0 <= x and x + w <= 240 + 1e-3 and 0 <= y and y + h <= 160 + 1e-3 and 0 <= d.score <= 1
    mean, values = D.mean_iou(found, [r.hips for r in test])
    assert len(values) == 8
    assert mean > 0.5, values
    # detect is detect_many of one.
    assert D.detect(model, config, test[0].pixels, WINDOW) == found[0]


def test_an_untrained_detector_may_find_nothing():
    config = D.get_detector_config("tiny").replace(min_score=0.99)
    model = D.build_detector(config)
    assert D.detect(model, config, film(1), WINDOW) == []  # the initial foreground probability is 0.01


def test_checkpoint_restores_weights_and_optimizer_state(trained_tiny, tmp_path):
    import keras

    model, config = trained_tiny
    D.save_checkpoint(model, tmp_path)
    restored = D.load_checkpoint(tmp_path, config, steps_per_epoch=3)
    assert int(keras.ops.convert_to_numpy(restored.optimizer.iterations)) == 18 * 3
    for a, b in zip(model.optimizer.variables, restored.optimizer.variables, strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    assert D.detect(restored, config, film(5), WINDOW) == D.detect(model, config, film(5), WINDOW)


def test_detector_bundle_round_trip(trained_tiny, tmp_path):
    model, config = trained_tiny
    path = tmp_path / "d.hipmodel"
    written = modelfile.write_bundle(
        path, model=model, config=config, dataset_hash="abc", kind="detector", metrics={"best_val_mean_iou": 0.6}
    )
    assert written.classes == D.SIDES and written.kind == "detector"
    assert modelfile.read_manifest(path) == written
    loaded, loaded_config, manifest = modelfile.load_bundle(path)
    assert isinstance(loaded_config, D.DetectorConfig) and loaded_config == config
    assert manifest.identity == modelfile.bundle_identity(config, "abc") == written.identity
    assert D.detect(loaded, loaded_config, film(3), WINDOW) == D.detect(model, config, film(3), WINDOW)
    # A detector config is never taken for a classifier's, nor the other way round.
    with pytest.raises(TypeError, match="a classifier's config must be a NetConfig"):
        modelfile.write_bundle(tmp_path / "x.hipmodel", model=model, config=config, dataset_hash="abc")
    from ml.core.configs import get_config

    assert modelfile.bundle_identity(config, "abc") != modelfile.bundle_identity(get_config("tiny"), "abc")
    with pytest.raises(TypeError, match="a detector's config must be a DetectorConfig"):
        modelfile.write_bundle(
            tmp_path / "y.hipmodel", model=model, config=get_config("tiny"), dataset_hash="abc", kind="detector"
        )
