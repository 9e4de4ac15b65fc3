"""Anatomy and attenuation maps for the synthetic pelvis radiographs: the per-patient anatomy,
the pelvis and soft tissue, and whole views (:func:`render_attenuation`). Shapes are in
:mod:`devtools.phantom_shapes`, femur and hips in :mod:`devtools.phantom_hips`; ``devtools.phantoms``
turns the maps into a detector image and DICOM. No Django import: tests and benchmarks use it.
Design: docs/architecture/design-dicom.md
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from devtools.phantom_hips import HipSpec, build_femur, draw_hip, sample_hip_spec
from devtools.phantom_shapes import (
    F32,
    MU_GAS,
    MU_SOFT,
    MU_STEEL,
    MU_TRAB,
    Blob,
    Canvas,
    Fragment,
    Pt,
    Tube,
    _at,
    _chaikin,
    _ellipse,
    _rotv,
    _unit,
    draw_fragment,
    draw_plate,
)
from ml.core.vocab import CLASSES

__all__ = ["CLASSES", "Anatomy", "HipSpec", "render_attenuation", "sample_anatomy", "sample_hip_spec"]

# --- pelvis, soft tissue, whole views --------------------------------------------------

# fmt: off
# Right hemipelvis outline (image left), standard size, origin midway between
# the hip centres, hip centre at (-90, 0), y down. Mirrored for the left.
_HEMI = [(-42, -112), (-55, -128), (-75, -140), (-100, -143), (-122, -136), (-140, -120), (-150, -100), (-152, -82),
         (-146, -70), (-140, -62), (-136, -46), (-128, -34), (-118, -24), (-114, -14), (-108, -2), (-102, 10),
         (-95, 26), (-87, 44), (-79, 62), (-71, 78), (-61, 88), (-48, 86), (-33, 78), (-19, 70), (-8, 63), (-3, 60),
         (-3, 22), (-12, 16), (-30, 12), (-46, 8), (-58, 2), (-63, -15), (-65, -35), (-62, -55), (-55, -78),
         (-48, -96)]
# Smooth thickening (centre, sigma, mm): acetabular roof, posterior column, crest, pubic body, posterior ilium.
_HEMI_BUMPS = [((-86, -36), 22, 16), ((-76, 40), 12, 14), ((-128, -120), 14, 8), ((-16, 40), 11, 10),
               ((-58, -98), 16, 10), ((-96, -70), 22, 5)]
_SACRUM = [(0, -131), (-22, -129), (-40, -125), (-56, -116), (-44, -108), (-40, -90), (-35, -68), (-28, -48),
           (-20, -30), (-12, -14), (-6, 0), (0, 6)]
_FORAMINA = [(19, -103, 4.5), (17, -83, 4.0), (15, -64, 3.5), (12, -46, 3.0)]
# (points, radius, cortex): rami, pelvic brim, ilioischial line and teardrop seen edge-on.
_STRUTS = [([(-6, 28), (-30, 21), (-54, 14)], 4.5, 1.0), ([(-8, 62), (-24, 72), (-42, 80), (-56, 84)], 3.5, 0.9),
           ([(-58, 4), (-63, -15), (-65, -35), (-62, -55), (-55, -78), (-48, -96), (-42, -112)], 3.0, 1.4),
           ([(-66, -30), (-68, 10), (-76, 45)], 2.2, 1.1),
           ([(-60, -2), (-61, 16), (-66, 24), (-71, 12), (-70, -2)], 2.0, 0.9),
           ([(-114, -16), (-112, -3), (-107, 8), (-99, 17), (-84, 26)], 1.5, 0.8),  # posterior acetabular wall
           ([(-100, -24), (-88, -16), (-79, -6), (-74, 6), (-72, 22)], 1.5, 0.8)]  # anterior acetabular wall
# fmt: on


@dataclass(frozen=True)
class Anatomy:
    """Per-patient anatomy: the same in every radiograph of the patient."""

    sex: str
    age: int
    scale: float  # pelvis size relative to a standard adult
    head_r: float  # femoral head radius, mm
    nsa: tuple[float, float]  # neck-shaft angle (right, left), degrees
    antev: tuple[float, float]
    tilt: float  # femoral shaft obliquity, degrees
    density: float  # trabecular density (osteoporosis < 1)
    cortex: float  # cortical thickness factor
    body_a: float  # half-width of the soft-tissue envelope, mm
    body_d: float  # AP depth at the hips, mm
    obturator: float
    shape_seed: int


def sample_anatomy(rng: np.random.Generator) -> Anatomy:
    sex = "F" if rng.uniform() < 0.7 else "M"
    age = int(np.clip(rng.normal(80, 10), 22, 101)) if rng.uniform() < 0.88 else int(rng.integers(20, 65))
    scale = float(rng.normal(0.95 if sex == "F" else 1.03, 0.04))
    head_r = float(scale * rng.normal(23.5 if sex == "F" else 25.5, 1.0))
    nsa = float(rng.uniform(120, 140))
    nsa2 = (nsa + float(rng.normal(0, 2)), nsa + float(rng.normal(0, 2)))
    antev, tilt = (float(rng.uniform(6, 20)), float(rng.uniform(6, 20))), float(rng.uniform(5, 9))
    frail = float(np.clip((age - 50) / 45, 0, 1))  # older: less trabecular bone, thinner cortex
    density = float(np.clip(1.1 - 0.45 * frail + rng.normal(0, 0.08), 0.45, 1.2))
    cortex = float(np.clip(1.1 - 0.35 * frail + rng.normal(0, 0.07), 0.55, 1.2))
    body = (float(scale * rng.uniform(165, 230)), float(scale * rng.uniform(170, 290)))
    return Anatomy(sex, age, scale, head_r, nsa2, antev, tilt, density, cortex, *body, float(rng.uniform(0.85, 1.15)),
                   int(rng.integers(2**31)))  # fmt: skip


def _draw_pelvis(cv: Canvas, anat: Anatomy, pose) -> None:
    s, dens = anat.scale, anat.density
    jit = np.random.default_rng(anat.shape_seed).normal(0, 1.6, (2, len(_HEMI), 2))  # the patient's own shape
    for k, m in enumerate((1, -1)):  # right (image left), then the left mirrored

        def tr(q, m=m):
            return pose((m * q[0], q[1]))

        hemi = _chaikin([tr((x + jit[k, i, 0], y + jit[k, i, 1])) for i, (x, y) in enumerate(_HEMI)])
        obturator = [tr(q) for q in _ellipse((-44, 44), 17 * anat.obturator, 23 * anat.obturator, -0.3)]
        # Joint space: a crescent between femoral head and acetabular roof, a hole
        # with a cortical rim on both sides (sourcil above, subchondral bone below).
        rc, ri, angs = (anat.head_r + 3.5) / s, (anat.head_r - 0.5) / s, np.radians(np.linspace(165, 375, 30))
        joint = [
            tr((-90 + rad * math.cos(a), rad * math.sin(a))) for rad, aa in ((rc, angs), (ri, angs[::-1])) for a in aa
        ]
        bumps = [(tr(c), sig * s, amp * dens) for c, sig, amp in _HEMI_BUMPS]
        draw_plate(cv, cv.bone, hemi, [obturator, joint], thick=4 * dens, rim=6.0 * anat.cortex, rim_w=1.4, bumps=bumps)
        for pts, rad, cor in _STRUTS:
            tubes = [
                Tube(tr(a), tr(b), rad * s, rad * s, cor * anat.cortex, cor * anat.cortex)
                for a, b in zip(pts, pts[1:], strict=False)
            ]
            draw_fragment(cv, Fragment(tuple(tubes), mu_t=0.3 * MU_TRAB * dens))
        draw_fragment(
            cv, Fragment((Blob(tr((-62, 80)), 13 * s, 8 * s, 0.0, 0.8 * anat.cortex),), mu_t=0.5 * MU_TRAB * dens)
        )
    sacrum = _chaikin([pose(q) for q in _SACRUM + [(-x, y) for x, y in reversed(_SACRUM[1:-1])]])
    foramina = [(pose((m * x, y)), r * s, -9 * dens) for x, y, r in _FORAMINA for m in (1, -1)]
    draw_plate(cv, cv.bone, sacrum, thick=14 * dens, ramp=5.0, rim=3.5 * anat.cortex, bumps=foramina)
    for cy in (-162, -204):  # L5 and L4: body, pedicles, transverse and spinous processes
        body = _chaikin([pose(q) for q in ((-25, cy - 15), (25, cy - 15), (28, cy + 15), (-28, cy + 15))], 3)
        draw_plate(cv, cv.bone, body, thick=24 * dens, ramp=5.0, rim=7.0 * anat.cortex)
        parts: list[Blob | Tube] = [Blob(pose((0, cy + 4)), 5 * s, 10 * s, 0.0, 1.5)]
        for m in (1, -1):
            parts.append(Tube(pose((m * 20, cy - 8)), pose((m * 48, cy - 14)), 5 * s, 3.5 * s, 1.5, 1.5))
            parts.append(Blob(pose((m * 15, cy - 6)), 5 * s, 7 * s, 0.0, 1.6))
        for part in parts:
            draw_fragment(cv, Fragment((part,), mu_t=0.6 * MU_TRAB * dens))


def _draw_soft(cv: Canvas, anat: Anatomy, center: Pt, hip_y: float, thighs, rng: np.random.Generator) -> None:
    """Silhouette of trunk and thighs (along the femora), thickness rising with depth from the skin."""
    s, k, rt = anat.scale, 4, anat.body_a * 0.5  # the envelope is smooth: a 4x coarser grid is enough
    crotch = (center[0], hip_y + rng.uniform(60, 85) * s)
    outline = [(center[0] - anat.body_a * 0.86, -100.0)]
    sides = []
    for (a, d), m in zip(thighs, (-1, 1), strict=True):
        lat = (d[1], -d[0]) if d[1] * m > 0 else (-d[1], d[0])  # perpendicular, outwards
        down = _unit((d[0] if d[0] * m > 0 else 0.0, d[1]))  # the medial thigh edge never crosses the midline
        thigh = [
            _at(a, (lat, rt), (d, 60)),
            _at(a, (lat, rt), (d, 700)),
            _at(crotch, (down, 700), ((m, 0), rng.uniform(0, 25))),
        ]
        sides.append([(center[0] + m * anat.body_a, hip_y - 40 * s), *thigh, crotch])
    outline += sides[0] + sides[1][::-1][1:] + [(center[0] + anat.body_a * 0.86, -100.0)]
    rows, cols = -(-cv.rows // k), -(-cv.cols // k)
    img = Image.new("L", (cols, rows), 0)
    ImageDraw.Draw(img).polygon([(x / (cv.px * k) - 0.5, y / (cv.px * k) - 0.5) for x, y in outline], fill=1)
    depth = ndimage.distance_transform_edt(np.asarray(img)).astype(F32) * F32(cv.px * k)
    u = np.minimum(ndimage.gaussian_filter(depth, 3.0) / (0.5 * anat.body_a), 1.0)  # no staircase from the polygon
    body = Image.fromarray(anat.body_d * np.sqrt(u * (2 - u)), mode="F").resize(
        (cols * k, rows * k), Image.Resampling.BICUBIC
    )
    cv.soft += MU_SOFT * np.asarray(body)[: cv.rows, : cv.cols]
    if rng.uniform() < 0.35:  # a skin fold: a long soft edge across the hips that mimics a fracture line
        c, ang = (center[0] + rng.uniform(-150, 150) * s, hip_y + rng.uniform(-20, 90) * s), rng.uniform(0, math.pi)
        (sr, sc), xs, ys = cv.window((0, 0, cv.cols * cv.px, cv.rows * cv.px))
        d = (xs - c[0]) * math.sin(ang) - (ys - c[1]) * math.cos(ang) + rng.uniform(-3e-3, 3e-3) * (xs - c[0]) ** 2
        cv.soft[sr, sc] += rng.uniform(0.02, 0.06) * np.exp(-((d / rng.uniform(0.8, 2.5)) ** 2)) * (d > -6)
    for _ in range(int(rng.integers(1, 6))):  # bowel gas: short irregular loops above the pelvic floor
        c = (center[0] + rng.uniform(-90, 90) * s, hip_y + rng.uniform(-170, -50) * s)
        ang, gas = rng.uniform(0, 2 * math.pi), rng.uniform(0.12, 0.35) * MU_GAS
        for _ in range(int(rng.integers(1, 5))):
            ang += rng.normal(0, 0.8)
            nxt = _at(c, (_rotv((1.0, 0.0), ang), rng.uniform(6, 18)))
            tube = Tube(c, nxt, rng.uniform(3, 11), rng.uniform(3, 11), 0, 0)
            if (win := cv.window(tube.box())) is not None:
                (gr, gc), gx, gy = win
                cv.soft[gr, gc] += gas * tube.paths(gx, gy)[0]
            c = nxt


def _draw_marker(cv: Canvas, text: str, at: Pt) -> None:
    """Lead side marker, as radiographers tape to the cassette."""
    size = max(int(14 / cv.px), 8)
    img = Image.new("L", (size * 2, size * 2), 0)
    ImageDraw.Draw(img).text((size // 3, size // 4), text, fill=255, font=ImageFont.load_default(size=size))
    r0, c0 = int(at[1] / cv.px), int(at[0] / cv.px)
    r1, c1 = min(r0 + 2 * size, cv.rows), min(c0 + 2 * size, cv.cols)
    if r1 > r0 >= 0 and c1 > c0 >= 0:
        cv.metal[r0:r1, c0:c1] += MU_STEEL * 3.0 / 255 * np.asarray(img, dtype=F32)[: r1 - r0, : c1 - c0]


def render_attenuation(rng: np.random.Generator, anat: Anatomy, hips: dict[str, HipSpec], view: str, rows: int,
                       cols: int, px: float, xt_side: str | None = None) -> tuple[Canvas, dict, str]:  # fmt: skip
    """Attenuation maps of one view ("ap", "frog_leg", "cross_table_lateral") on a rows x cols
    grid of px mm, each hip's box (x0, y0, x1, y1) in mm, and the side a cross-table
    lateral shows ("" otherwise). All random draws come first and never depend on
    the hip classes: the same rng state gives the same pose whatever the classes."""
    width, height = cols * px, rows * px
    # fmt: off
    v: dict[str, Any] = {"cx": rng.normal(0, 12), "hy": rng.uniform(0.48, 0.56), "rot": rng.normal(0, 0.035),
         "ext": rng.uniform(-5, 10, 2), "abd": rng.uniform(35, 55, 2), "fext": rng.uniform(35, 60, 2),
         "margin": rng.uniform(1.5, 5, 4), "marker": rng.uniform(0.05, 0.2, 2), "xt": rng.uniform(-0.35, -0.1),
         "xt_side": rng.uniform(), "xt_pos": rng.uniform(0.25, 0.4, 2)}
    # fmt: on
    cv = Canvas(rows, cols, px, rng)
    mu_t, r, s = MU_TRAB * anat.density, anat.head_r, anat.scale
    if view == "cross_table_lateral":  # one hip from the side: femur along the table, thick soft tissue
        side = xt_side or ("right" if v["xt_side"] < 0.5 else "left")
        sign, i = (1, 0) if side == "right" else (-1, 1)
        hip = (width * (v["xt_pos"][0] if sign > 0 else 1 - v["xt_pos"][0]), height * (0.3 + v["xt_pos"][1]))
        (sr, sc), xs, ys = cv.window((0, 0, width, height))
        band = np.clip(1 - ((ys - hip[1]) / (0.75 * height)) ** 2, 0, None) ** 0.4
        cv.soft[sr, sc] += (
            MU_SOFT * anat.body_d * 1.4 * band * (0.85 + 0.15 * np.clip(sign * (xs - hip[0]) / width + 0.5, 0, 1))
        )
        outline = [
            (-sign * x * r, y * r)
            for x, y in ((-1.6, -1.5), (0.6, -1.4), (1.4, -0.2), (1.2, 2.4), (-0.4, 3.2), (-1.9, 1.2))
        ]
        acetabulum = _ellipse(hip, r + 3, r + 3, 0, 24)
        draw_plate(cv, cv.bone, _chaikin([_at(hip, ((1, 0), x), ((0, 1), y)) for x, y in outline]), [acetabulum],
                   thick=12 * anat.density, rim=5.0)  # fmt: skip
        kw = {"hip": hip, "lat_sign": sign, "r": r, "nsa": anat.nsa[i], "tilt": anat.tilt, "antev": anat.antev[i],
              "ext_rot": 0.0, "rot": sign * v["xt"], "cf": anat.cortex, "proj": "xt"}  # fmt: skip
        plain = {"scar": 0.0, "f": 0.4, "tilt": 0.0, "jag": 0.5, "phase": 0.0, "y1": 0.2, "y2": 1.0}
        draw_hip(cv, hips.get(side) or HipSpec(side, "normal", p=plain), kw, mu_t)
        _draw_marker(cv, side[0].upper(), (width * 0.85, height * v["marker"][1]))
        return cv, {}, side
    center, rot, frog = (width / 2 + v["cx"], height * v["hy"]), v["rot"], view == "frog_leg"

    def pose(q: Pt) -> Pt:
        x, y = _rotv((s * q[0], s * q[1]), rot)
        return (center[0] + x, center[1] + y)

    thighs, kws = [], {}
    for i, (side, lat_sign) in enumerate((("right", -1), ("left", 1))):
        abd = math.radians(v["abd"][i]) if frog else 0.0  # frog-leg: femora abducted and turned out
        kws[side] = {"hip": pose((lat_sign * 90.0, 0.0)), "lat_sign": lat_sign, "r": r, "nsa": anat.nsa[i],
                     "tilt": anat.tilt, "antev": anat.antev[i], "ext_rot": v["fext" if frog else "ext"][i],
                     "rot": rot - lat_sign * abd, "cf": anat.cortex}  # fmt: skip
        fem = build_femur(**kws[side])
        thighs.append((_at(kws[side]["hip"], (fem.lat, 12 * s)), fem.shaft))
        c, rad = kws[side]["hip"], 3.2 * r
        if (win := cv.window((c[0] - rad, c[1] - rad, c[0] + rad, c[1] + rad))) is not None:
            (sr, sc), xs, ys = win
            cv.ref[sr, sc] &= (xs - c[0]) ** 2 + (ys - c[1]) ** 2 > rad * rad
    _draw_soft(cv, anat, center, center[1], thighs, rng)
    _draw_pelvis(cv, anat, pose)
    boxes = {}
    for side in ("right", "left"):
        pts = np.array(draw_hip(cv, hips[side], kws[side], mu_t))
        (x0, y0), (x1, y1) = pts.min(0) - v["margin"][:2], pts.max(0) + v["margin"][2:]
        w, h = x1 - x0, y1 - y0
        if w < 0.9 * h:  # labellers draw roughly square boxes
            x0, x1 = x0 - (0.9 * h - w) / 2, x1 + (0.9 * h - w) / 2
        elif h < 0.9 * w:
            y0, y1 = y0 - (0.9 * w - h) / 2, y1 + (0.9 * w - h) / 2
        boxes[side] = (max(float(x0), 0.0), max(float(y0), 0.0), min(float(x1), width), min(float(y1), height))
    _draw_marker(cv, "R", (width * v["marker"][0], height * 0.06))
    return cv, boxes, ""
