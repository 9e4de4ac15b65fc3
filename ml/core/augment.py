"""Training-time augmentation of hip crops, after Krogue et al. 2020 ("Data Processing and Augmentation").

Contrast-changing cutout, Gaussian-mixture masking and bounding-box wiggling, on two zooms:
the paper's fixed set (``paper_augmentations``) or a random draw per hip and epoch
(``augment_hip``); the magnitudes are in ``AugmentConfig``. Pure NumPy; no Django.
Design: docs/architecture/design-models.md
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal, overload

import numpy as np

from ml.core.crops import CropSpec, _check_box, hip_crop
from ml.core.vocab import Box

KINDS = ("cutout", "masking", "wiggle")


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and magnitudes of the augmentations (the paper gives none).

    Defaults: each kind applied with probability 0.5 by ``augment_hip``;
    cutout patches of 20-50 % of the crop side with a contrast factor from
    0.25 (nearly mean-filled, close to DeVries's cutout) to 2.0; 1-4
    Gaussians of width (sigma) 8-25 % of the crop side and amplitude
    0.15-0.45 (darkening or brightening by up to ~45 % at a blob centre);
    box wiggle of up to 8 % of the box size; zoom levels 1.0 and 1.5 (the
    paper's "differing sizes of bounding boxes")."""

    zooms: tuple[float, ...] = (1.0, 1.5)
    p_wiggle: float = 0.5
    p_cutout: float = 0.5
    p_masking: float = 0.5
    wiggle_fraction: float = 0.08
    cutout_size: tuple[float, float] = (0.2, 0.5)  # patch side, fraction of the crop side
    cutout_factor: tuple[float, float] = (0.25, 2.0)  # contrast factor, drawn log-uniformly
    cutout_square: bool = False  # True: one side drawn, a square patch as in DeVries & Taylor
    mask_components: tuple[int, int] = (1, 4)  # number of Gaussians, inclusive
    mask_sigma: tuple[float, float] = (0.08, 0.25)  # fraction of the crop side
    mask_amplitude: tuple[float, float] = (0.15, 0.45)  # |a_k|; the sign is random

    def __post_init__(self) -> None:
        if not self.zooms or not all(z > 0 and math.isfinite(z) for z in self.zooms):
            raise ValueError(f"zooms must be positive, got {self.zooms!r}")
        for name in ("p_wiggle", "p_cutout", "p_masking"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        if not 0.0 <= self.wiggle_fraction < 1.0:
            raise ValueError(f"wiggle_fraction must be in [0, 1), got {self.wiggle_fraction!r}")
        _check_range("cutout_size", self.cutout_size, 0.0, 1.0, open_low=True)
        _check_range("cutout_factor", self.cutout_factor, 0.0, math.inf, open_low=True)
        _check_range("mask_sigma", self.mask_sigma, 0.0, math.inf, open_low=True)
        _check_range("mask_amplitude", self.mask_amplitude, 0.0, 1.0)
        lo, hi = self.mask_components
        if int(lo) != lo or int(hi) != hi or not 1 <= lo <= hi:
            raise ValueError(f"mask_components must be integers 1 <= low <= high, got {self.mask_components!r}")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: tuples become lists."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def _check_range(name: str, pair: Sequence[float], low: float, high: float, *, open_low: bool = False) -> None:
    lo, hi = pair
    ok_low = lo > low if open_low else lo >= low
    if not (ok_low and lo <= hi <= high):
        raise ValueError(f"{name} must satisfy {low} {'<' if open_low else '<='} low <= high <= {high}, got {pair!r}")


def _check_crop(crop: np.ndarray) -> np.ndarray:
    crop = np.asarray(crop, dtype=np.float32)
    if crop.ndim != 2 or crop.size == 0:
        raise ValueError(f"crop must be a non-empty 2-D array, got shape {crop.shape}")
    return crop


def cutout_rect(
    shape: tuple[int, int],
    rng: np.random.Generator,
    *,
    config: AugmentConfig = AugmentConfig(),  # noqa: B008 - frozen dataclass
) -> tuple[int, int, int, int]:
    """The patch (r0, c0, r1, c1), rows r0:r1 and columns c0:c1, clipped to the
    crop: centre uniform over the crop, sides a fraction of the crop side."""
    rows, cols = shape
    lo, hi = config.cutout_size
    fh = rng.uniform(lo, hi)
    fw = fh if config.cutout_square else rng.uniform(lo, hi)
    side = min(rows, cols)
    ph, pw = max(1, round(fh * side)), max(1, round(fw * side))
    cr, cc = rng.uniform(0, rows), rng.uniform(0, cols)
    r0, c0 = round(cr - ph / 2), round(cc - pw / 2)
    r0c, c0c = max(r0, 0), max(c0, 0)
    r1, c1 = min(r0 + ph, rows), min(c0 + pw, cols)
    if r1 <= r0c:  # keep at least one pixel inside
        r0c, r1 = (rows - 1, rows) if r0c >= rows else (0, 1)
    if c1 <= c0c:
        c0c, c1 = (cols - 1, cols) if c0c >= cols else (0, 1)
    return r0c, c0c, r1, c1


@overload
def contrast_cutout(
    crop: np.ndarray, rng: np.random.Generator, *, config: AugmentConfig = ..., return_rect: Literal[False] = ...
) -> np.ndarray: ...
@overload
def contrast_cutout(
    crop: np.ndarray, rng: np.random.Generator, *, config: AugmentConfig = ..., return_rect: Literal[True]
) -> tuple[np.ndarray, tuple[int, int, int, int]]: ...
def contrast_cutout(
    crop: np.ndarray,
    rng: np.random.Generator,
    *,
    config: AugmentConfig = AugmentConfig(),  # noqa: B008 - frozen dataclass
    return_rect: bool = False,
) -> np.ndarray | tuple[np.ndarray, tuple[int, int, int, int]]:
    """Contrast-changing cutout: one random patch's pixels scaled about the
    patch mean by a log-uniform factor from ``config.cutout_factor``, clipped
    to [0, 1]. Pixels outside the patch are unchanged. A new float32 array
    (and the patch (r0, c0, r1, c1) with ``return_rect=True``)."""
    crop = _check_crop(crop)
    r0, c0, r1, c1 = cutout_rect(crop.shape, rng, config=config)
    lo, hi = config.cutout_factor
    factor = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    out = crop.copy()
    patch = out[r0:r1, c0:c1]
    mean = np.float32(patch.mean())
    out[r0:r1, c0:c1] = np.clip(mean + np.float32(factor) * (patch - mean), 0.0, 1.0)
    return (out, (r0, c0, r1, c1)) if return_rect else out


def gaussian_mixture_mask(
    shape: tuple[int, int],
    rng: np.random.Generator,
    *,
    config: AugmentConfig = AugmentConfig(),  # noqa: B008 - frozen dataclass
) -> np.ndarray:
    """The multiplicative mask 1 + sum_k a_k exp(-|p - mu_k|^2 / (2 sigma_k^2)),
    clipped to [0, 2], float32 of ``shape``: k = 1..K Gaussians (K uniform in
    ``config.mask_components``), centres uniform over the crop, sigma a
    fraction of the crop side, |a_k| from ``config.mask_amplitude`` with a
    random sign."""
    rows, cols = shape
    side = min(rows, cols)
    k_lo, k_hi = config.mask_components
    n = int(rng.integers(k_lo, k_hi + 1))
    yy = np.arange(rows, dtype=np.float64)[:, None] + 0.5
    xx = np.arange(cols, dtype=np.float64)[None, :] + 0.5
    mask = np.ones((rows, cols), dtype=np.float64)
    for _ in range(n):
        my, mx = rng.uniform(0, rows), rng.uniform(0, cols)
        sigma = rng.uniform(*config.mask_sigma) * side
        amp = rng.uniform(*config.mask_amplitude) * (1.0 if rng.uniform() < 0.5 else -1.0)
        # separable: exp(-(dy^2 + dx^2) / 2s^2) = exp(-dy^2 / 2s^2) * exp(-dx^2 / 2s^2)
        gy = np.exp(-((yy - my) ** 2) / (2 * sigma**2))
        gx = np.exp(-((xx - mx) ** 2) / (2 * sigma**2))
        mask += amp * (gy * gx)
    return np.clip(mask, 0.0, 2.0).astype(np.float32)


def gaussian_mixture_masking(
    crop: np.ndarray,
    rng: np.random.Generator,
    *,
    config: AugmentConfig = AugmentConfig(),  # noqa: B008 - frozen dataclass
) -> np.ndarray:
    """Gaussian-mixture masking: the crop times ``gaussian_mixture_mask``,
    clipped to [0, 1]; soft darker/brighter blobs, no edges. New float32 array."""
    crop = _check_crop(crop)
    mask = gaussian_mixture_mask(crop.shape, rng, config=config)
    masked: np.ndarray = np.clip(crop * mask, 0.0, 1.0).astype(np.float32)
    return masked


def wiggle_box(box: Sequence[float], rng: np.random.Generator, *, fraction: float = 0.08) -> Box:
    """Bounding-box wiggling: the box (x, y, w, h) with its centre moved by
    up to +-fraction * (w, h) and its width and height each scaled by a factor
    in [1 - fraction, 1 + fraction] (uniform). Use before ``crops.hip_crop``."""
    x, y, w, h = _check_box(box)
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction!r}")
    dx, dy, sw, sh = rng.uniform(-fraction, fraction, size=4)
    cx, cy = x + w / 2 + dx * w, y + h / 2 + dy * h
    nw, nh = w * (1 + sw), h * (1 + sh)
    return (float(cx - nw / 2), float(cy - nh / 2), float(nw), float(nh))


def augment_hip(
    pixels: np.ndarray,
    box: Sequence[float],
    side: str,
    *,
    window: tuple[float, float] | None,
    rng: np.random.Generator,
    config: AugmentConfig = AugmentConfig(),  # noqa: B008 - frozen dataclass
    spec: CropSpec = CropSpec(),  # noqa: B008 - frozen dataclass
    invert: bool = False,
) -> np.ndarray:
    """One randomly augmented hip crop, (spec.size, spec.size) float32 in
    [0, 1]: a zoom level drawn from ``config.zooms`` (replaces spec.zoom), the
    box wiggled with probability p_wiggle, ``crops.hip_crop``, then
    contrast-changing cutout with probability p_cutout and Gaussian-mixture
    masking with probability p_masking. With all probabilities 0 and one zoom
    it equals ``hip_crop`` at that zoom."""
    zoom = float(config.zooms[int(rng.integers(len(config.zooms)))])
    if rng.uniform() < config.p_wiggle:
        box = wiggle_box(box, rng, fraction=config.wiggle_fraction)
    crop = hip_crop(pixels, box, side, window=window, spec=replace(spec, zoom=zoom), invert=invert)
    if rng.uniform() < config.p_cutout:
        crop = contrast_cutout(crop, rng, config=config)
    if rng.uniform() < config.p_masking:
        crop = gaussian_mixture_masking(crop, rng, config=config)
    return crop


#: The variants of one hip in the paper's fixed set, per zoom: the plain crop, then each
#: augmentation kind alone. ``paper_variants(zooms)`` lists them in this order.
PAPER_KINDS = ("plain", *KINDS)


def paper_variants(zooms: Sequence[float]) -> list[tuple[float, str]]:
    """The (zoom, kind) pairs of the paper's fixed set, zoom by zoom: with the two default
    zooms 2 x (plain + cutout + masking + wiggle) = 8 variants."""
    return [(float(zoom), kind) for zoom in zooms for kind in PAPER_KINDS]


def paper_variant(
    pixels: np.ndarray,
    box: Sequence[float],
    side: str,
    *,
    zoom: float,
    kind: str,
    window: tuple[float, float] | None,
    rng: np.random.Generator,
    config: AugmentConfig = AugmentConfig(),  # noqa: B008 - frozen dataclass
    spec: CropSpec = CropSpec(),  # noqa: B008 - frozen dataclass
    invert: bool = False,
) -> np.ndarray:
    """One image of the paper's fixed set: the hip's crop at ``zoom``, plain (``kind`` "plain")
    or with one augmentation alone ("cutout", "masking", "wiggle"; magnitudes drawn from
    ``rng`` by ``config``; its probabilities are not used). (spec.size, spec.size) float32."""
    if kind not in PAPER_KINDS:
        raise ValueError(f"kind must be one of {PAPER_KINDS}, got {kind!r}")
    zspec = replace(spec, zoom=float(zoom))
    if kind == "wiggle":
        wiggled = wiggle_box(box, rng, fraction=config.wiggle_fraction)
        return hip_crop(pixels, wiggled, side, window=window, spec=zspec, invert=invert)
    plain = hip_crop(pixels, box, side, window=window, spec=zspec, invert=invert)
    if kind == "cutout":
        return contrast_cutout(plain, rng, config=config)
    if kind == "masking":
        return gaussian_mixture_masking(plain, rng, config=config)
    return plain


def paper_augmentations(
    pixels: np.ndarray,
    box: Sequence[float],
    side: str,
    *,
    window: tuple[float, float] | None,
    rng: np.random.Generator,
    config: AugmentConfig = AugmentConfig(),  # noqa: B008 - frozen dataclass
    spec: CropSpec = CropSpec(),  # noqa: B008 - frozen dataclass
    invert: bool = False,
) -> list[tuple[str, np.ndarray]]:
    """The paper's set for one hip: for each zoom level the plain crop and one
    crop per augmentation kind (cutout, masking, wiggle), each alone (``paper_variant`` for
    each of ``paper_variants(config.zooms)``, one ``rng`` drawn in turn); with the two
    default zooms 2 + 6 images. Returns (label, crop) pairs, e.g. ("zoom 1", ...),
    ("zoom 1 cutout", ...)."""
    return [
        (
            f"zoom {zoom:g}" if kind == "plain" else f"zoom {zoom:g} {kind}",
            paper_variant(
                pixels, box, side, zoom=zoom, kind=kind, window=window, rng=rng, config=config, spec=spec, invert=invert
            ),
        )  # fmt: skip
        for zoom, kind in paper_variants(config.zooms)
    ]
