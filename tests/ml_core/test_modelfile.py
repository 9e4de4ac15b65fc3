"""Model bundles (ml.core.modelfile): versioned, checksummed, atomically written model files."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from ml.core import modelfile, nets  # noqa: E402
from ml.core.configs import get_config  # noqa: E402
from ml.core.modelfile import ModelFileError  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DATASET_HASH = "sha256:" + "ab" * 32

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture(scope="module")
def tiny():
    config = get_config("tiny")
    keras.utils.set_random_seed(0)
    model = nets.build_model(config)
    x = np.random.default_rng(1).standard_normal((2, 64, 64, 3)).astype(np.float32)
    return model, config, x


@pytest.fixture(scope="module")
def bundle(tiny, tmp_path_factory):
    model, config, _ = tiny
    path = tmp_path_factory.mktemp("bundle") / "tiny.hipmodel"
    manifest = modelfile.write_bundle(path, model=model, config=config, dataset_hash=DATASET_HASH, metrics={"auc": 0.9})
    return path, manifest


def _rewrite(src: Path, dst: Path, *, manifest=None, model_bytes=None, drop=()) -> Path:
    """Copy a bundle, replacing the manifest dict / model bytes, or dropping members."""
    with zipfile.ZipFile(src) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    if manifest is not None:
        members["manifest.json"] = json.dumps(manifest).encode()
    if model_bytes is not None:
        members["model.keras"] = model_bytes
    with zipfile.ZipFile(dst, "w") as archive:
        for name, data in members.items():
            if name not in drop:
                archive.writestr(name, data)
    return dst


def _manifest_dict(path: Path) -> dict:
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("manifest.json"))


def test_round_trip_predictions_equal(tiny, bundle):
    model, config, x = tiny
    path, written = bundle
    loaded, loaded_config, manifest = modelfile.load_bundle(path)
    assert loaded_config == config
    assert manifest == written
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6, atol=1e-6)
    assert loaded.get_layer(nets.DENSE_LAYER).get_weights()[0].shape[-1] == 6


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer:UserWarning")  # never fitted
def test_compiled_model_round_trip(tiny, tmp_path):
    model, config, x = tiny
    compiled = nets.compile_model(keras.models.clone_model(model), config, class_weights=[1, 2, 3, 1, 1, 1])
    compiled.set_weights(model.get_weights())
    path = tmp_path / "c.hipmodel"
    modelfile.write_bundle(path, model=compiled, config=config, dataset_hash=DATASET_HASH)
    loaded, _, _ = modelfile.load_bundle(path, compile=True)
    assert isinstance(loaded.loss, nets.WeightedSparseCategoricalCrossentropy)
    assert loaded.loss.class_weights == [1, 2, 3, 1, 1, 1]
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6, atol=1e-6)


def test_manifest_fields(tiny, bundle):
    _, config, _ = tiny
    path, written = bundle
    data = _manifest_dict(path)
    assert data["format_version"] == modelfile.FORMAT_VERSION == 1
    assert data["kind"] == "classifier"
    assert data["config"] == config.as_dict()
    assert data["classes"] == ["normal", "fn_displaced", "fn_nondisplaced", "intertrochanteric", "orif", "arthroplasty"]
    assert data["dataset_hash"] == DATASET_HASH
    assert data["identity"] == modelfile.bundle_identity(config, DATASET_HASH)
    assert datetime.fromisoformat(data["created_at"]).tzinfo is not None
    assert data["metrics"] == {"auc": 0.9}
    assert data["keras_version"] == keras.__version__
    assert data["backend"] == keras.backend.backend()
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["manifest.json", "model.keras"]
        assert data["model_sha256"] == hashlib.sha256(archive.read("model.keras")).hexdigest()
    assert modelfile.read_manifest(path) == written
    assert modelfile.read_manifest(path).as_dict() == data
    assert modelfile.verify_bundle(path) == written


def test_classes_match_annotate_labels():
    from annotate.labels import CLASSES

    assert modelfile.CLASSES == tuple(CLASSES)


def test_read_manifest_without_keras(bundle, monkeypatch):
    path, written = bundle
    monkeypatch.setattr(nets, "build_model", lambda *a, **k: pytest.fail("read_manifest built a model"))
    assert modelfile.read_manifest(path).model_sha256 == written.model_sha256
    # A fresh interpreter: reading (and verifying) a manifest imports neither Keras, TensorFlow nor Django.
    code = (
        "import sys; from ml.core import modelfile; "
        f"m = modelfile.verify_bundle({str(path)!r}); "
        "bad = [x for x in ('keras', 'tensorflow', 'django') if x in sys.modules]; "
        "assert not bad, bad; print(m.kind)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "classifier"


def test_truncated_file(bundle, tmp_path):
    path, _ = bundle
    data = path.read_bytes()
    for n in (0, 10, len(data) // 2, len(data) - 5):
        bad = tmp_path / f"trunc{n}.hipmodel"
        bad.write_bytes(data[:n])
        with pytest.raises(ModelFileError, match="truncated or not a model bundle") as info:
            modelfile.read_manifest(bad)
        assert info.value.path == str(bad)
        with pytest.raises(ModelFileError):
            modelfile.load_bundle(bad)


def test_wrong_checksum(bundle, tmp_path):
    path, _ = bundle
    with zipfile.ZipFile(path) as archive:
        model_bytes = bytearray(archive.read("model.keras"))
    model_bytes[len(model_bytes) // 2] ^= 0xFF
    bad = _rewrite(path, tmp_path / "bad.hipmodel", model_bytes=bytes(model_bytes))
    modelfile.read_manifest(bad)  # the manifest alone is fine
    for load in (modelfile.load_bundle, modelfile.verify_bundle):
        with pytest.raises(ModelFileError, match="^model file is corrupt: checksum mismatch$"):
            load(bad)
    # Wrong checksum in the manifest, model intact.
    manifest = {**_manifest_dict(path), "model_sha256": "0" * 64}
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        modelfile.load_bundle(_rewrite(path, tmp_path / "bad2.hipmodel", manifest=manifest))


def test_bytes_flipped_in_place(bundle, tmp_path):
    path, _ = bundle
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside model.keras: zip CRC or our sha256 catches it
    bad = tmp_path / "flipped.hipmodel"
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="^model file is corrupt"):
        modelfile.load_bundle(bad)


@pytest.mark.parametrize(
    ("version", "message"),
    [
        (2, r"^model file format 2 is newer than this software \(1\); upgrade$"),
        (99, r"^model file format 99 is newer than this software \(1\); upgrade$"),
        (0, "model file format version 0 is not known"),
        ("1", "model file format version '1' is not known"),
        (None, "model file format version None is not known"),
        (True, "model file format version True is not known"),
    ],
)
def test_unknown_format_version(bundle, tmp_path, version, message):
    path, _ = bundle
    manifest = _manifest_dict(path)
    if version is None:
        del manifest["format_version"]
    else:
        manifest["format_version"] = version
    bad = _rewrite(path, tmp_path / "v.hipmodel", manifest=manifest)
    for load in (modelfile.read_manifest, modelfile.load_bundle):
        with pytest.raises(ModelFileError, match=message):
            load(bad)


def test_missing_members(bundle, tmp_path):
    path, _ = bundle
    no_manifest = _rewrite(path, tmp_path / "a.hipmodel", drop=("manifest.json",))
    for load in (modelfile.read_manifest, modelfile.load_bundle):
        with pytest.raises(ModelFileError, match="^model file has no manifest.json$"):
            load(no_manifest)
    no_model = _rewrite(path, tmp_path / "b.hipmodel", drop=("model.keras",))
    with pytest.raises(ModelFileError, match="^model file has no model.keras$"):
        modelfile.load_bundle(no_model)
    with pytest.raises(FileNotFoundError):
        modelfile.read_manifest(tmp_path / "nope.hipmodel")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"classes": ["normal", "fn_nondisplaced", "fn_displaced", "intertrochanteric", "orif", "arthroplasty"]},
            "are not the classes",
        ),
        ({"classes": ["normal", "fracture"]}, "are not the classes"),
        ({"kind": "segmenter"}, "kind 'segmenter' is not one of"),
        ({"config": {"name": "x", "bogus": 1}}, "config is not valid"),
        ({"dataset_hash": None}, "dataset_hash is not a string"),
    ],
)
def test_bad_manifest_contents(bundle, tmp_path, change, message):
    path, _ = bundle
    bad = _rewrite(path, tmp_path / "m.hipmodel", manifest={**_manifest_dict(path), **change})
    with pytest.raises(ModelFileError, match=message):
        modelfile.load_bundle(bad)


def test_manifest_not_json(bundle, tmp_path):
    path, _ = bundle
    bad = tmp_path / "j.hipmodel"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(bad, "w") as dst:
        dst.writestr("manifest.json", b"{not json")
        dst.writestr("model.keras", src.read("model.keras"))
    with pytest.raises(ModelFileError, match="manifest is not valid JSON"):
        modelfile.read_manifest(bad)


def _listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A folder of the test's own (tmp_path also holds the site's data folder)."""
    path = tmp_path / "bundles"
    path.mkdir()
    return path


def test_interrupted_write_leaves_nothing(tiny, folder, monkeypatch):
    model, config, _ = tiny
    target = folder / "new.hipmodel"

    def save_then_crash(self, filepath, *args, **kwargs):
        Path(filepath).write_bytes(b"PK\x03\x04 half a model")
        raise RuntimeError("disk full midway")

    monkeypatch.setattr(keras.Model, "save", save_then_crash)
    with pytest.raises(RuntimeError, match="disk full midway"):
        modelfile.write_bundle(target, model=model, config=config, dataset_hash=DATASET_HASH)
    assert _listing(folder) == []


def test_interrupted_overwrite_keeps_old_file(tiny, bundle, folder, monkeypatch):
    model, config, _ = tiny
    src, written = bundle
    target = folder / "m.hipmodel"
    target.write_bytes(src.read_bytes())

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(modelfile.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        modelfile.write_bundle(target, model=model, config=config, dataset_hash="other")
    assert _listing(folder) == ["m.hipmodel"]
    assert modelfile.read_manifest(target) == written


def test_write_rejects_bad_arguments(tiny, folder):
    model, config, _ = tiny
    target = folder / "x.hipmodel"
    with pytest.raises(ValueError, match="kind"):
        modelfile.write_bundle(target, model=model, config=config, dataset_hash="h", kind="nope")
    with pytest.raises(ValueError, match="dataset_hash"):
        modelfile.write_bundle(target, model=model, config=config, dataset_hash="")
    with pytest.raises(ValueError, match="JSON"):
        modelfile.write_bundle(target, model=model, config=config, dataset_hash="h", metrics={"auc": float("nan")})
    assert _listing(folder) == []


def test_bundle_identity():
    tiny = get_config("tiny")
    a = modelfile.bundle_identity(tiny, DATASET_HASH)
    assert a == modelfile.bundle_identity(get_config("tiny"), DATASET_HASH)
    assert len(a) == 64 and int(a, 16) >= 0
    assert a != modelfile.bundle_identity(tiny, DATASET_HASH + "0")
    assert a != modelfile.bundle_identity(tiny.replace(learning_rate=1e-4), DATASET_HASH)
    assert a != modelfile.bundle_identity(get_config("cpu-small"), DATASET_HASH)
