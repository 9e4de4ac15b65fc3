"""The hip classifier network (ml.core.nets) and its configurations (ml.core.configs)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from ml.core import nets  # noqa: E402
from ml.core.configs import CONFIGS, NetConfig, get_config  # noqa: E402

ML_CORE = Path(nets.__file__).parent

# keras' TF backend calls np.array on tensors; numpy 2 warns about the copy keyword.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture(scope="module")
def paper_model():
    keras.utils.set_random_seed(0)
    return nets.build_model(get_config("paper"))


@pytest.fixture(scope="module")
def tiny_model():
    keras.utils.set_random_seed(0)
    return nets.build_model(get_config("tiny"))


def test_paper_model_architecture(paper_model):
    m = paper_model
    assert m.input_shape == (None, 224, 224, 3)
    assert m.output_shape == (None, 6)
    # DenseNet-169 body: the block counts 6/12/32/32 name its layers conv2..conv5.
    assert m.get_layer("conv5_block32_concat").output.shape[-1] == 1664
    assert "conv5_block33_concat" not in {layer.name for layer in m.layers}
    # SE block on the final feature maps, ratio 16.
    for name in nets.SE_LAYERS:
        m.get_layer(name)
    assert m.get_layer("se_reduce").units == 1664 // 16
    assert m.get_layer("se_expand").units == 1664
    assert m.get_layer(nets.FEATURES_LAYER).output.shape[1:] == (7, 7, 1664)
    assert m.get_layer(nets.DENSE_LAYER).get_weights()[0].shape == (1664, 6)
    assert m.count_params() == 13_000_750


def test_paper_model_one_training_step_and_prediction(paper_model):
    m = paper_model
    config = get_config("paper")
    # Eager: a traced DenseNet-169 step costs ~90 s of graph building on 2 CPU cores.
    nets.compile_model(m, config, class_weights=[1.0, 2.0, 2.0, 1.5, 1.0, 1.0], steps_per_epoch=10, run_eagerly=True)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 224, 224, 3)).astype(np.float32)
    y = np.array([0, 3])
    before = [w.copy() for w in m.get_layer(nets.DENSE_LAYER).get_weights()]
    loss = m.train_on_batch(x, y)
    loss = loss[0] if isinstance(loss, list) else loss
    assert np.isfinite(loss)
    after = m.get_layer(nets.DENSE_LAYER).get_weights()
    assert not np.allclose(before[0], after[0])
    probs = np.asarray(m(x, training=False))
    assert probs.shape == (2, 6)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_tiny_model_learns_brightness():
    keras.utils.set_random_seed(1)
    config = get_config("tiny")
    m = nets.build_model(config)
    rng = np.random.default_rng(1)
    n = 192
    y = rng.integers(0, 3, size=n)
    brightness = (y - 1.0) * 1.5
    x = (brightness[:, None, None, None] + 0.3 * rng.standard_normal((n, 64, 64, 3))).astype(np.float32)
    nets.compile_model(m, config, steps_per_epoch=n // 16)
    hist = m.fit(x, y, batch_size=16, epochs=config.epochs, verbose=0, shuffle=True)
    losses = hist.history["loss"]
    assert len(losses) == 2
    assert losses[1] < losses[0]
    assert hist.history["accuracy"][1] > 0.5  # chance is 1/3
    probs = m.predict(x[:8], verbose=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    # Per-epoch decay of the learning rate: 0.9 ** epochs after two epochs.
    lr = float(keras.ops.convert_to_numpy(m.optimizer.learning_rate))
    assert lr == pytest.approx(config.learning_rate * 0.9**2, rel=1e-5)


def test_class_activation_maps(tiny_model):
    m = tiny_model
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 64, 64, 3)).astype(np.float32)
    features, probs = nets.cam_model(m).predict(x, verbose=0)
    assert features.shape == (3, 2, 2, 68)
    assert probs.shape == (3, 6)
    kernel, bias = nets.dense_kernel(m)
    assert kernel.shape == (68, 6)
    for k in range(6):
        cam = nets.class_activation_maps(features, kernel, k)
        assert cam.shape == (3, 2, 2)
        by_hand = np.einsum("nhwc,c->nhw", features, kernel[:, k])
        np.testing.assert_allclose(cam, by_hand, rtol=1e-5, atol=1e-6)
        assert nets.class_activation_maps(features[0], kernel, k).shape == (2, 2)
    # GAP -> Dense: the mean of the CAM plus the bias is the logit.
    logits = np.stack([nets.class_activation_maps(features, kernel, k).mean(axis=(1, 2)) for k in range(6)], 1) + bias
    softmax = np.exp(logits - logits.max(1, keepdims=True))
    softmax /= softmax.sum(1, keepdims=True)
    np.testing.assert_allclose(softmax, probs, rtol=1e-4, atol=1e-6)
    with pytest.raises(IndexError):
        nets.class_activation_maps(features, kernel, 6)
    with pytest.raises(ValueError):
        nets.class_activation_maps(features, kernel[:10], 0)


def test_weighted_loss_matches_hand_computation():
    w = [1.0, 2.0, 3.0, 1.0, 1.0, 0.5]
    loss = nets.WeightedSparseCategoricalCrossentropy(w)
    p = np.full((3, 6), 0.1, np.float32)
    p[0, 0], p[1, 2], p[2, 5] = 0.5, 0.5, 0.5
    y = np.array([0, 2, 1])
    expected = np.mean([-np.log(0.5) * 1.0, -np.log(0.5) * 3.0, -np.log(0.1) * 2.0])
    assert float(keras.ops.convert_to_numpy(loss(y, p))) == pytest.approx(expected, rel=1e-5)
    clone = nets.WeightedSparseCategoricalCrossentropy.from_config(loss.get_config())
    assert clone.class_weights == w
    assert nets.balanced_class_weights([0, 0, 0, 1], 3) == pytest.approx([4 / 9, 4 / 3, 1.0])
    assert nets.balanced_class_weights([0, 0, 0, 1], 3, power=0.5) == pytest.approx([2 / 3, (4 / 3) ** 0.5, 1.0])
    labels = [0] * 6 + [1] * 2 + [2] * 4 + [3, 4, 5, 5]
    assert nets.class_weights_for(get_config("tiny"), labels) == pytest.approx(
        [(16 / 36) ** 0.5, (16 / 12) ** 0.5, (16 / 24) ** 0.5, (16 / 6) ** 0.5, (16 / 6) ** 0.5, (16 / 12) ** 0.5]
    )
    balanced = get_config("tiny", class_weighting="balanced")
    expected = [16 / 36, 16 / 12, 16 / 24, 16 / 6, 16 / 6, 16 / 12]
    assert nets.class_weights_for(balanced, labels) == pytest.approx(expected)
    with pytest.raises(ValueError, match="class_weighting"):
        get_config("tiny", class_weighting="inverse")


def test_small_backbone_matches_keras_densenet():
    ref_mod = pytest.importorskip("keras.src.applications.densenet")
    ref = ref_mod.DenseNet([1, 1, 1, 1], include_top=False, weights=None, input_shape=(64, 64, 3))
    inp = keras.Input((64, 64, 3))
    own = keras.Model(inp, nets.densenet_backbone(inp, (1, 1, 1, 1)))
    assert own.count_params() == ref.count_params()
    skip = ("input", "zero_padding")
    names = [[layer.name for layer in mm.layers if not layer.name.startswith(skip)] for mm in (own, ref)]
    assert names[0] == names[1]


def test_weights_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="no_such_weights.h5"):
        nets.build_model(get_config("tiny", weights_path=str(tmp_path / "no_such_weights.h5")))
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        nets.build_model(get_config("paper", weights_path=str(tmp_path / "missing_notop.h5")))
    # A local backbone weights file is loaded.
    keras.utils.set_random_seed(3)
    src = nets.build_model(get_config("tiny"))
    inp = src.input
    backbone = keras.Model(inp, src.get_layer("relu").output)
    path = tmp_path / "tiny_backbone.weights.h5"
    backbone.save_weights(path)
    keras.utils.set_random_seed(4)
    loaded = nets.build_model(get_config("tiny", weights_path=str(path)))
    np.testing.assert_array_equal(
        loaded.get_layer("conv1_conv").get_weights()[0], src.get_layer("conv1_conv").get_weights()[0]
    )


def test_save_and_load_carries_config(tmp_path):
    keras.utils.set_random_seed(5)
    config = get_config("tiny")
    m = nets.compile_model(
        nets.build_model(config), config, class_weights=[1, 2, 3, 4, 5, 6], steps_per_epoch=4, run_eagerly=True
    )
    x = np.random.default_rng(5).standard_normal((2, 64, 64, 3)).astype(np.float32)
    m.train_on_batch(x, np.array([1, 2]))
    path = nets.save_model(m, config, tmp_path / "tiny.keras")
    loaded, loaded_config = nets.load_model(path)
    assert loaded_config == config
    np.testing.assert_allclose(loaded.predict(x, verbose=0), m.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    assert loaded.loss.class_weights == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    with pytest.raises(ValueError):
        nets.save_model(m, config, tmp_path / "tiny.h5")


def test_configs_round_trip():
    for name, config in CONFIGS.items():
        assert get_config(name) is config
        d = json.loads(json.dumps(config.as_dict()))
        assert NetConfig.from_dict(d) == config
    paper = get_config("paper")
    assert (paper.backbone, paper.blocks, paper.input_shape) == ("densenet169", (6, 12, 32, 32), (224, 224, 3))
    assert (paper.learning_rate, paper.batch_size, paper.lr_decay, paper.patience) == (1e-5, 25, 0.9, 10)
    assert (paper.se_ratio, paper.num_classes, paper.zooms, paper.weights_path) == (16, 6, (1.0, 1.5), None)
    small = get_config("cpu-small")
    assert small.backbone == "densenet" and small.learning_rate == 1e-3 and small.batch_size == 32
    with pytest.raises(KeyError):
        get_config("nope")
    with pytest.raises(ValueError):
        NetConfig.from_dict({**paper.as_dict(), "bogus": 1})
    with pytest.raises(ValueError):
        get_config("paper", blocks=(1, 1, 1, 1))
    with pytest.raises(AttributeError):
        paper.learning_rate = 1.0  # frozen
    cb = nets.training_callbacks(paper)
    assert cb[0].monitor == "val_accuracy" and cb[0].patience == 10


def test_no_django_import_in_ml_core_nets():
    for fname in ("nets.py", "configs.py"):
        tree = ast.parse((ML_CORE / fname).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                mods = [node.module or ""]
            else:
                continue
            assert not any(mod.split(".")[0] == "django" for mod in mods), (fname, mods)


def test_recalibrate_batch_norm_sets_the_average_batch_statistics():
    config = get_config("tiny")
    model = nets.build_model(config)
    rng = np.random.default_rng(0)
    batches = [rng.normal(0.5, 2.0, size=(4, *config.input_shape)).astype("float32") for _ in range(3)]
    bn = model.get_layer("conv1_bn")
    bn.moving_mean.assign(np.full(bn.moving_mean.shape, 123.0))  # as far off as drifting training leaves them
    bn.moving_variance.assign(np.full(bn.moving_variance.shape, 1e-3))
    trainable = [np.array(w) for w in model.trainable_weights]
    conv = keras.Model(model.inputs, model.get_layer("conv1_conv").output)

    assert nets.recalibrate_batch_norm(model, iter([])) == 0
    assert float(bn.moving_mean.numpy()[0]) == 123.0  # no batch, no change

    assert nets.recalibrate_batch_norm(model, [(b, np.zeros(4)) for b in batches]) == 3
    feats = [np.asarray(conv(b)) for b in batches]
    expected_mean = np.mean([f.mean(axis=(0, 1, 2)) for f in feats], axis=0)
    expected_var = np.mean([f.var(axis=(0, 1, 2)) for f in feats], axis=0)
    np.testing.assert_allclose(bn.moving_mean.numpy(), expected_mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), expected_var, rtol=1e-3, atol=1e-5)
    assert bn.momentum == 0.99  # put back
    # Only moving statistics changed: every trainable weight is as it was.
    for before, weight in zip(trainable, model.trainable_weights, strict=True):
        np.testing.assert_array_equal(before, np.array(weight))


def test_learning_rate_schedules_per_epoch_and_keras2_inverse_time():
    per_epoch = get_config("tiny", learning_rate=1e-3, lr_decay=0.9)
    assert per_epoch.lr_schedule == "per_epoch"
    schedule = nets.learning_rate_schedule(per_epoch, steps_per_epoch=10)
    value = lambda s, step: float(keras.ops.convert_to_numpy(s(step)))  # noqa: E731
    # x 0.9 once per epoch of 10 steps, constant within an epoch (staircase).
    for step, want in ((0, 1e-3), (9, 1e-3), (10, 9e-4), (25, 1e-3 * 0.81), (100, 1e-3 * 0.9**10)):
        assert value(schedule, step) == pytest.approx(want, rel=1e-5), step
    assert nets.learning_rate_schedule(per_epoch, steps_per_epoch=None) == 1e-3

    keras2 = per_epoch.replace(lr_schedule="keras2_inverse_time")
    schedule = nets.learning_rate_schedule(keras2, steps_per_epoch=10)
    # Keras 2.2's Adam(decay=0.9): lr / (1 + 0.9 x iterations), per optimizer step, whatever the epoch.
    for step in (0, 1, 2, 9, 10, 100, 1000):
        assert value(schedule, step) == pytest.approx(1e-3 / (1 + 0.9 * step), rel=1e-5), step
    assert value(nets.learning_rate_schedule(keras2, steps_per_epoch=None), 10) == pytest.approx(1e-3 / 10, rel=1e-5)

    # What Adam uses after k real updates of a compiled model.
    model = nets.compile_model(nets.build_model(keras2), keras2, steps_per_epoch=3)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, *keras2.input_shape)).astype(np.float32)
    for _ in range(3):
        model.train_on_batch(x, np.array([0, 1, 2, 3]))
    lr = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    assert lr == pytest.approx(1e-3 / (1 + 0.9 * 3), rel=1e-5)


def test_evaluate_protocol_single_and_zoom_average():
    config = get_config("tiny")
    keras.utils.set_random_seed(3)
    model = nets.compile_model(nets.build_model(config), config, class_weights=[1.0, 2.0, 1.0, 1.0, 0.5, 1.0])
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 6, size=10)
    import tensorflow as tf

    zoom1 = rng.standard_normal((10, *config.input_shape)).astype(np.float32)
    zoom15 = rng.standard_normal((10, *config.input_shape)).astype(np.float32)
    ds1 = tf.data.Dataset.from_tensor_slices((zoom1, labels)).batch(4)
    ds15 = tf.data.Dataset.from_tensor_slices((zoom15, labels)).batch(4)
    # single: one dataset, what model.evaluate says (the weighted loss included).
    single = nets.evaluate_protocol(model, [ds1], labels)
    evaluated = model.evaluate(ds1, verbose=0, return_dict=True)
    assert single["val_accuracy"] == pytest.approx(evaluated["accuracy"], abs=1e-6)
    assert single["val_loss"] == pytest.approx(evaluated["loss"], rel=1e-4)
    # zoom-average: the mean softmax over the zooms, then argmax and the weighted loss.
    averaged = nets.evaluate_protocol(model, [ds1, ds15], labels)
    p = (model.predict(zoom1, verbose=0) + model.predict(zoom15, verbose=0)) / 2
    assert averaged["val_accuracy"] == pytest.approx(np.mean(p.argmax(1) == labels))
    weights = np.array([1.0, 2.0, 1.0, 1.0, 0.5, 1.0])[labels]
    by_hand = np.mean(-np.log(np.clip(p[np.arange(10), labels], 1e-7, 1)) * weights)
    assert averaged["val_loss"] == pytest.approx(by_hand, rel=1e-4)
    with pytest.raises(ValueError):
        nets.evaluate_protocol(model, [ds1], labels[:5])


def test_regimes_of_the_configurations_and_with_regime():
    from ml.core.configs import with_regime

    assert get_config("paper").regime == "paper-fixed" and get_config("tiny").regime == "online-random"
    paper = get_config("paper")
    online = with_regime(paper, "online-random")  # as many images seen: 8x the epochs and the patience
    assert (online.regime, online.epochs, online.patience) == ("online-random", 800, 80)
    assert with_regime(paper, "paper-fixed") is paper
    small = with_regime(get_config("cpu-small").replace(regime="online-random"), "paper-fixed")
    assert (small.regime, small.epochs, small.patience) == ("paper-fixed", 5, 2)
    assert with_regime(small, "online-random").epochs == 40
    with pytest.raises(ValueError):
        with_regime(paper, "nope")
