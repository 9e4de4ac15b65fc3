"""Model bundles: one self-contained, versioned file per trained model.

A ``.hipmodel`` is an uncompressed zip of ``manifest.json`` (format version, kind, config, classes,
dataset hash, identity, sha256) and ``model.keras``; ``write_bundle`` writes one atomically,
``read_manifest`` and ``load_bundle`` refuse an unknown or damaged one (``ModelFileError``).
Design: docs/architecture/design-models.md
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common.atomicfile import atomic_write

from .configs import NetConfig
from .detector import DetectorConfig
from .vocab import CLASSES, SIDES

FORMAT_VERSION = 1
SUFFIX = ".hipmodel"
KINDS = ("classifier", "detector")
CLASSES_OF_KIND = {"classifier": CLASSES, "detector": SIDES}
AnyConfig = NetConfig | DetectorConfig

MANIFEST_NAME = "manifest.json"
MODEL_NAME = "model.keras"
_MAX_MANIFEST_BYTES = 1 << 20
_CHUNK = 1 << 20
_REQUIRED = (
    "kind",
    "config",
    "classes",
    "dataset_hash",
    "created_at",
    "keras_version",
    "backend",
    "model_sha256",
)


class ModelFileError(ValueError):
    """A model bundle that cannot be used: unknown format, corrupt, truncated, wrong classes."""

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else str(path)


@dataclass(frozen=True)
class Manifest:
    """The contents of ``manifest.json`` (see the module docstring)."""

    kind: str
    config: AnyConfig
    classes: tuple[str, ...]
    dataset_hash: str
    created_at: str
    keras_version: str
    backend: str
    model_sha256: str
    identity: str
    metrics: dict[str, Any] | None = None
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)  # keys this software does not know, kept as read

    def as_dict(self) -> dict[str, Any]:
        """The JSON-safe dict written as ``manifest.json``."""
        return {
            **self.extra,
            "format_version": self.format_version,
            "kind": self.kind,
            "config": self.config.as_dict(),
            "classes": list(self.classes),
            "dataset_hash": self.dataset_hash,
            "identity": self.identity,
            "created_at": self.created_at,
            "metrics": self.metrics,
            "keras_version": self.keras_version,
            "backend": self.backend,
            "model_sha256": self.model_sha256,
        }


# --------------------------------------------------------------------------- identity


def bundle_identity(config: AnyConfig, dataset_hash: str) -> str:
    """sha256 (hex) of the config dict and the dataset hash, canonically JSON-encoded.

    Equal for the same config (every field, ``name`` and ``weights_path`` included) and
    dataset hash, so a caller can refuse retraining on an unchanged dataset as a duplicate.
    A detector's payload also names its kind (a classifier's stays as it always was).
    """
    body: dict[str, Any] = {"config": config.as_dict(), "dataset_hash": str(dataset_hash)}
    if isinstance(config, DetectorConfig):
        body["kind"] = config.kind
    payload = json.dumps(
        body,
        sort_keys=True,
        separators=(",", ":"),
        allow_nan=False,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


# --------------------------------------------------------------------------- writing


def _fsync_directory(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows: directories cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_bundle(
    path: str | os.PathLike[str],
    *,
    model: Any,
    config: AnyConfig,
    dataset_hash: str,
    kind: str = "classifier",
    metrics: dict[str, Any] | None = None,
) -> Manifest:
    """Write ``model`` and its manifest to ``path`` atomically; returns the manifest written.

    The model is saved as it is (compiled or not: a compiled model's optimizer state is kept,
    see ``load_bundle(compile=True)``). ``path`` should end in ``SUFFIX``; an existing file
    is replaced only once the new one is complete. The directory must exist.
    """
    import keras  # lazy: read_manifest must not need it

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    expected = NetConfig if kind == "classifier" else DetectorConfig
    if not isinstance(config, expected):
        raise TypeError(f"a {kind}'s config must be a {expected.__name__}, got {type(config).__name__}")
    classes = CLASSES_OF_KIND[kind]
    if config.num_classes != len(classes):
        raise ValueError(f"config.num_classes is {config.num_classes}; a {kind} bundle holds {len(classes)} classes")
    if not isinstance(dataset_hash, str) or not dataset_hash:
        raise ValueError("dataset_hash must be a non-empty string")
    if metrics is not None:
        if not isinstance(metrics, dict):
            raise TypeError(f"metrics must be a dict or None, got {type(metrics).__name__}")
        try:
            metrics = json.loads(json.dumps(metrics, allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"metrics must be JSON-serialisable (finite numbers): {exc}") from None
    if kind == "classifier":
        out = tuple(model.output_shape)
        if out[-1] != len(CLASSES):
            raise ValueError(f"a classifier must output {len(CLASSES)} classes, model output shape is {out}")

    final = Path(path)
    directory = str(final.parent.resolve())
    with atomic_write(Path(directory) / final.name, mode=0o644) as handle:
        with tempfile.TemporaryDirectory(prefix="hipmodel-") as scratch:
            model_path = os.path.join(scratch, MODEL_NAME)
            model.save(model_path)
            manifest = Manifest(
                kind=kind,
                config=config,
                classes=classes,
                dataset_hash=dataset_hash,
                identity=bundle_identity(config, dataset_hash),
                created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                metrics=metrics,
                keras_version=keras.__version__,
                backend=keras.backend.backend(),
                model_sha256=sha256_file(model_path),
            )
            with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_STORED) as archive:
                archive.writestr(MANIFEST_NAME, json.dumps(manifest.as_dict(), indent=2, sort_keys=True))
                archive.write(model_path, MODEL_NAME)
    _fsync_directory(directory)
    return manifest


# --------------------------------------------------------------------------- reading


def _open_archive(path: Path) -> zipfile.ZipFile:
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {str(path)!r}")
    try:
        return zipfile.ZipFile(path, "r")
    except (zipfile.BadZipFile, OSError, EOFError):
        raise ModelFileError("model file is truncated or not a model bundle (not a readable zip archive)", path)


def _read_member(archive: zipfile.ZipFile, name: str, path: Path, limit: int | None = None) -> bytes:
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise ModelFileError(f"model file has no {name}", path)
    if limit is not None and info.file_size > limit:
        raise ModelFileError(f"model file's {name} is too large ({info.file_size} bytes)", path)
    try:
        return archive.read(info)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise ModelFileError(f"model file is corrupt: cannot read {name} ({exc})", path)


def _parse_manifest(data: dict[str, Any], path: Path) -> Manifest:
    version = data.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ModelFileError(f"model file format version {version!r} is not known", path)
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"model file format {version} is newer than this software ({FORMAT_VERSION}); upgrade", path
        )
    if version < 1:
        raise ModelFileError(f"model file format version {version!r} is not known", path)
    missing = [key for key in _REQUIRED if key not in data]
    if missing:
        raise ModelFileError(f"model file manifest lacks {', '.join(missing)}", path)
    kind = data["kind"]
    if kind not in KINDS:
        raise ModelFileError(f"model file kind {kind!r} is not one of {', '.join(KINDS)}", path)
    classes = data["classes"]
    expected = CLASSES_OF_KIND[kind]
    if not isinstance(classes, list) or tuple(classes) != expected:
        raise ModelFileError(f"model file classes {classes!r} are not the classes {list(expected)} in that order", path)
    try:
        if not isinstance(data["config"], dict):
            raise TypeError("not an object")
        config_cls = NetConfig if kind == "classifier" else DetectorConfig
        config: AnyConfig = config_cls.from_dict(data["config"])
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"model file config is not valid: {exc}", path)
    if config.num_classes != len(expected):
        raise ModelFileError(f"model file config has {config.num_classes} classes, not {len(expected)}", path)
    for key in ("dataset_hash", "created_at", "keras_version", "backend", "model_sha256"):
        if not isinstance(data[key], str):
            raise ModelFileError(f"model file manifest {key} is not a string", path)
    metrics = data.get("metrics")
    if metrics is not None and not isinstance(metrics, dict):
        raise ModelFileError("model file manifest metrics is not an object", path)
    known = {"format_version", "identity", "metrics", *_REQUIRED}
    return Manifest(
        kind=kind,
        config=config,
        classes=tuple(classes),
        dataset_hash=data["dataset_hash"],
        created_at=data["created_at"],
        keras_version=data["keras_version"],
        backend=data["backend"],
        model_sha256=data["model_sha256"],
        identity=str(data.get("identity") or bundle_identity(config, data["dataset_hash"])),
        metrics=metrics,
        format_version=version,
        extra={k: v for k, v in data.items() if k not in known},
    )


def _manifest_from_archive(archive: zipfile.ZipFile, path: Path) -> Manifest:
    raw = _read_member(archive, MANIFEST_NAME, path, limit=_MAX_MANIFEST_BYTES)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ModelFileError("model file manifest is not valid JSON", path)
    if not isinstance(data, dict):
        raise ModelFileError("model file manifest is not a JSON object", path)
    return _parse_manifest(data, path)


def read_manifest(path: str | os.PathLike[str]) -> Manifest:
    """The validated manifest of the bundle at ``path``, without Keras and without the weights.

    Checks the format version, the fields, the kind, the class list and the config; not the
    model checksum (``load_bundle`` does, or ``verify_bundle`` without loading the model).
    """
    path = Path(path)
    with _open_archive(path) as archive:
        return _manifest_from_archive(archive, path)


def _extract_checked(archive: zipfile.ZipFile, manifest: Manifest, path: Path, target: str | None) -> None:
    """Stream ``model.keras`` (to ``target`` if given), checking its sha256 against the manifest."""
    try:
        info = archive.getinfo(MODEL_NAME)
    except KeyError:
        raise ModelFileError(f"model file has no {MODEL_NAME}", path)
    digest = hashlib.sha256()
    try:
        with archive.open(info) as source, open(target or os.devnull, "wb") as sink:
            while chunk := source.read(_CHUNK):
                digest.update(chunk)
                sink.write(chunk)
    except (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError) as exc:
        raise ModelFileError(f"model file is corrupt: cannot read {MODEL_NAME} ({exc})", path)
    if digest.hexdigest() != manifest.model_sha256:
        raise ModelFileError("model file is corrupt: checksum mismatch", path)


def verify_bundle(path: str | os.PathLike[str]) -> Manifest:
    """``read_manifest`` plus the sha256 check of ``model.keras``, still without Keras."""
    path = Path(path)
    with _open_archive(path) as archive:
        manifest = _manifest_from_archive(archive, path)
        _extract_checked(archive, manifest, path, None)
    return manifest


def load_bundle(path: str | os.PathLike[str], *, compile: bool = False) -> tuple[Any, AnyConfig, Manifest]:
    """Load a bundle: ``(model, config, manifest)``, after all of ``verify_bundle``'s checks.

    ``compile=False`` (the default) returns the model uncompiled, ready for ``predict``;
    call ``nets.compile_model`` to train it further. ``compile=True`` restores the
    optimizer, loss and metrics it was saved with (if it was compiled then).
    A detector (``kind`` "detector") comes back with a ``DetectorConfig``; use
    ``detector.detect`` with it (``compile`` is ignored: ``detector.compile_detector`` to train).
    """
    import keras

    from . import nets  # noqa: F401  (registers the custom loss for compile=True)

    path = Path(path)
    with _open_archive(path) as archive:
        manifest = _manifest_from_archive(archive, path)
        with tempfile.TemporaryDirectory(prefix="hipmodel-") as scratch:
            model_path = os.path.join(scratch, MODEL_NAME)
            _extract_checked(archive, manifest, path, model_path)
            try:
                if manifest.kind == "detector":
                    import keras_hub  # noqa: F401  (registers RetinaNet's classes)

                    model = keras.saving.load_model(model_path, compile=False)
                else:
                    model = keras.saving.load_model(model_path, compile=compile)
            except Exception as exc:  # Keras raises many kinds on a bad archive
                raise ModelFileError(f"model file's {MODEL_NAME} cannot be loaded: {exc}", path) from exc
    if manifest.kind == "classifier" and tuple(model.output_shape)[-1] != len(manifest.classes):
        raise ModelFileError(
            f"model outputs {tuple(model.output_shape)[-1]} classes, the manifest lists {len(manifest.classes)}", path
        )
    return model, manifest.config, manifest
