"""The proximal femur and each hip class for the synthetic pelvis radiographs: the femur's geometry,
a hip's class parameters (:func:`sample_hip_spec`) and drawing a normal, fractured, fixed or
replaced hip onto a :class:`~devtools.phantom_shapes.Canvas`. No Django import.
Design: docs/architecture/design-dicom.md
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from devtools.phantom_shapes import (
    MU_CEMENT,
    MU_COCR,
    MU_STEEL,
    MU_TI,
    Blob,
    Canvas,
    Cut,
    Fragment,
    Line,
    Pt,
    Shell,
    Tube,
    Xf,
    _at,
    _ellipse,
    _rel,
    _rotv,
    _unit,
    draw_fragment,
    draw_metal,
    draw_plate,
)
from ml.core.vocab import CLASSES

# --- femur ----------------------------------------------------------------------


@dataclass(frozen=True)
class Femur:
    """Proximal femur projected into the image (mm). ``neck`` points head -> base,
    ``shaft`` distally, ``lat`` laterally (perpendicular to the shaft)."""

    head: Pt
    r: float
    base: Pt
    neck: Pt
    shaft: Pt
    lat: Pt
    parts: tuple  # head, neck (2), metaphysis, shaft, greater and lesser trochanter

    @property
    def gt(self) -> Blob:
        return self.parts[5]

    @property
    def lt(self) -> Blob:
        return self.parts[6]

    def radius_at(self, k: float) -> float:
        """Outer radius k mm down the shaft axis from the neck base."""
        return self.r * (1.0 - 0.4 * min(max((k + 0.2 * self.r) / (2.1 * self.r), 0.0), 1.0))

    def along(self, k: float, off: float = 0.0) -> Pt:
        return _at(self.base, (self.shaft, k), (self.lat, off))

    def exit_t(self, o: Pt, d: Pt) -> float:
        """Distance along d from o to where the line leaves the lateral cortex."""
        for t in np.arange(0.0, 8 * self.r, 0.5):
            p = _at(o, (d, t))
            if _rel(p, self.base, self.lat) > self.radius_at(_rel(p, self.base, self.shaft)):
                return float(t)
        return 8 * self.r

    def key_points(self, below_lt: float = 6.0) -> list[Pt]:
        """What a labeller's box encloses: head (first 4), trochanters, proximal shaft."""
        (hx, hy), r = self.head, self.r
        pts = [(hx - r, hy), (hx + r, hy), (hx, hy - r), (hx, hy + r)]
        pts += _ellipse(self.gt.c, self.gt.a, self.gt.b, self.gt.ang, 12) + _ellipse(self.lt.c, 1, self.lt.b, 0, 8)
        k = _rel(self.lt.c, self.base, self.shaft) + self.lt.b + below_lt
        return pts + [self.along(k, self.radius_at(k)), self.along(k, -self.radius_at(k))]


def build_femur(hip: Pt, lat_sign: int, r: float, nsa: float, tilt: float, antev: float, ext_rot: float, rot: float,
                cf: float, proj: str = "ap") -> Femur:  # fmt: skip
    """Femur from a small 3-D model (units of head radius; axes lateral, distal,
    anterior; origin at the neck base), rotated externally by ``ext_rot`` about
    the shaft and projected AP (``proj="ap"``) or cross-table lateral ("xt")."""
    th, av, e = math.radians(tilt), math.radians(antev), math.radians(ext_rot)
    phi = math.pi / 2 + th + math.radians(nsa)
    nup = (math.cos(phi) * math.cos(av), math.sin(phi) * math.cos(av), math.sin(av))
    ds = (-math.sin(th), math.cos(th), 0.0)
    scaled = {"head": (nup, 2.4), "mid": (nup, 1.08), "mtop": (ds, -0.35), "mbot": (ds, 1.9), "end": (ds, 18)}
    key = {k: tuple(f * c for c in v) for k, (v, f) in scaled.items()}
    key |= {"base": (0.0, 0.0, 0.0), "gt": (0.55, -0.5, -0.3), "lt": (-0.82, 0.9, -0.45)}
    ce, se, cr, sr = math.cos(e), math.sin(e), math.cos(rot), math.sin(rot)

    def uv(v) -> Pt:
        x, y, z = v[0] * ce + v[2] * se, v[1], -v[0] * se + v[2] * ce
        return (x, y) if proj == "ap" else (y, -z)

    h0 = uv(key["head"])
    pt = {}
    for name, v in key.items():
        u, w = uv(v)
        u, w = (u - h0[0]) * r * lat_sign, (w - h0[1]) * r
        pt[name] = (hip[0] + cr * u - sr * w, hip[1] + sr * u + cr * w)

    def semi(a_lat: float, a_down: float, a_ant: float) -> Pt:
        lat_e, ant_e = math.hypot(a_lat * ce, a_ant * se), math.hypot(a_lat * se, a_ant * ce)
        return (lat_e * r, a_down * r) if proj == "ap" else (a_down * r, ant_e * r)

    shaft = _unit((pt["end"][0] - pt["base"][0], pt["end"][1] - pt["base"][1]))
    lat = (-shaft[1], shaft[0]) if _rel(pt["gt"], pt["base"], (-shaft[1], shaft[0])) > 0 else (shaft[1], -shaft[0])
    lta, ltb = semi(0.32, 0.62, 0.3)
    parts = (
        Tube(pt["head"], pt["head"], r, r, 1.1 * cf, 1.1 * cf),
        Tube(pt["head"], pt["mid"], 0.64 * r, 0.7 * r, 1.6 * cf, 2.0 * cf),
        Tube(pt["mid"], pt["base"], 0.7 * r, 0.98 * r, 2.0 * cf, 2.2 * cf),
        Tube(pt["mtop"], pt["mbot"], 1.05 * r, 0.6 * r, 1.8 * cf, 4.2 * cf),
        Tube(pt["mbot"], pt["end"], 0.6 * r, 0.55 * r, 4.2 * cf, 6.0 * cf),
        Blob(pt["gt"], *semi(0.62, 1.05, 0.7), rot, 1.3 * cf),
        Blob(pt["lt"], lta, ltb, rot, 0.6 * lta),  # nearly solid: a bump, not a ring
    )
    neck = _unit((pt["base"][0] - pt["head"][0], pt["base"][1] - pt["head"][1]))
    return Femur(pt["head"], r, pt["base"], neck, shaft, lat, parts)


# --- hips by class ----------------------------------------------------------------


@dataclass(frozen=True)
class HipSpec:
    """One hip's class and its class parameters, drawn once per study."""

    side: str  # patient side: "right" | "left"
    cls: str
    subtype: str = ""
    p: dict = field(default_factory=dict)


def sample_hip_spec(rng: np.random.Generator, side: str, cls: str) -> HipSpec:
    """Class parameters: fracture position and displacement, hardware kind."""
    if cls not in CLASSES:
        raise ValueError(f"unknown hip class {cls!r}")
    u, sign, sub = rng.uniform, float(rng.choice([-1.0, 1.0])), ""
    # fmt: off
    p = {"scar": float(u() < 0.5), "scar_depth": u(-0.045, -0.015), "f": u(0.25, 0.6), "tilt": u(-20, 20),
         "jag": u(0.2, 1.2), "phase": u(0, 6.28), "ext": u(15, 45), "y1": u(0.0, 0.35), "y2": u(0.8, 1.2)}
    if cls == "fn_displaced":
        p |= {"gap": u(0.0, 2.5), "head_tilt": sign * u(5, 30), "up": u(4, 16), "lat": u(-2, 6)}
    elif cls == "fn_nondisplaced":  # subtle: thin, low contrast, sometimes partial or sclerotic (impacted)
        sub = "impacted" if u() < 0.3 else "lucent"
        p |= {"width": u(0.6, 1.0) if sub == "impacted" else u(0.25, 0.5), "partial": float(u() < 0.5),
              "depth": -u(0.05, 0.15) if sub == "impacted" else u(0.08, 0.3), "frac": u(0.3, 0.8),
              "from_top": float(u() < 0.5), "head_tilt": sign * u(0, 2.5)}
    elif cls == "intertrochanteric":
        p |= {"gap": u(0.8, 2.5), "displaced": float(u() < 0.6), "varus": u(0, 12), "up": u(2, 10), "med": u(0, 6),
              "ltfrag": float(u() < 0.3), "ext": u(10, 35)}
    elif cls == "orif":
        sub = str(rng.choice(["cannulated_screws", "sliding_hip_screw", "cephalomedullary_nail"], p=[0.4, 0.35, 0.25]))
        p |= {"n": float(rng.choice([2, 3], p=[0.3, 0.7])), "residual": float(u() < 0.4), "tip": u(5, 12),
              "plate_holes": float(rng.integers(2, 7)), "nail_len": u(150, 380), "off": u(-0.15, 0.0)}
    elif cls == "arthroplasty":
        sub = str(rng.choice(["total_hip", "hemiarthroplasty"]))
        p |= {"cemented": float(u() < 0.4), "ball": float(rng.choice([14.0, 16.0, 18.0])), "incl": u(35, 52),
              "stem": u(110, 160), "ball_dx": u(-2, 2), "ball_dy": u(-2, 2)}
    # fmt: on
    return HipSpec(side, cls, sub, p)


def _neck_cut(fem: Femur, frac: float, tilt: float, gap: float, jag: float, phase: float) -> Cut:
    """Cut across the neck at ``frac`` of the head-base distance; keeps the head side."""
    n = _rotv((-fem.neck[0], -fem.neck[1]), math.radians(tilt))
    return Cut(_at(fem.head, (fem.neck, math.dist(fem.head, fem.base) * frac)), n, gap, jag, phase)


def _it_cut(fem: Femur, p: dict) -> tuple[Cut, Pt]:
    """Intertrochanteric line: below the greater trochanter to above the lesser; keeps the head side."""
    a = fem.along((p["y1"] - 0.45) * fem.r, 1.05 * fem.r)
    b = fem.along(_rel(fem.lt.c, fem.base, fem.shaft) * p["y2"] + 0.1 * fem.r, -0.75 * fem.r)
    n = _unit((a[1] - b[1], b[0] - a[0]))
    n = n if _rel(fem.head, a, n) > 0 else (-n[0], -n[1])
    return Cut(((a[0] + b[0]) / 2, (a[1] + b[1]) / 2), n, p.get("gap", 0.0), p["jag"], p["phase"]), b


def draw_hip(cv: Canvas, spec: HipSpec, fem_kw: dict, mu_t: float) -> list[Pt]:
    """Draw one hip of class ``spec.cls``; return the points its box must enclose."""
    p, cls, fem = spec.p, spec.cls, build_femur(**fem_kw)
    parts, keypts, frags, lines = fem.parts, fem.key_points(), [], []
    if p["scar"] and cls != "arthroplasty":  # physeal scar: a normal look-alike of a fracture line
        lines.append(Line(_neck_cut(fem, 0.38, 0, 0, 0.3, p["phase"]), 1.3, p["scar_depth"], -0.7 * fem.r, 0.6 * fem.r))
    if cls in ("normal", "orif"):
        if cls == "orif" and p["residual"]:  # the healed fracture, faintly
            c = _neck_cut(fem, p["f"], p["tilt"], 0, p["jag"], p["phase"])
            lines.append(Line(c if spec.subtype == "cannulated_screws" else _it_cut(fem, p)[0], 0.6, 0.25, -80, 80))
        frags.append(Fragment(parts, (), tuple(lines), mu_t))
    elif cls == "fn_nondisplaced":
        cut = _neck_cut(fem, p["f"], p["tilt"], 0.0, p["jag"] * 0.5, p["phase"])
        t0, t1, span = -0.72 * fem.r, 0.72 * fem.r, 1.44 * fem.r * p["frac"]
        if p["partial"]:
            t0, t1 = (t1 - span, t1) if p["from_top"] else (t0, t0 + span)
        lines.append(Line(cut, p["width"], p["depth"], t0, t1))
        # Both fragments hold every part, so that without tilt they add up to the intact femur.
        head = Fragment(parts, (cut,), tuple(lines), mu_t).moved(Xf(math.radians(p["head_tilt"]), cut.p))
        frags += [head, Fragment(parts, (cut.flipped(),), tuple(lines), mu_t)]
    elif cls == "fn_displaced":  # head stays in the acetabulum, tilted; the shaft rides up, turned out
        cut = _neck_cut(fem, p["f"], p["tilt"], p["gap"], p["jag"], p["phase"])
        frags.append(Fragment(parts[:3], (cut,), tuple(lines), mu_t).moved(Xf(math.radians(p["head_tilt"]), fem.head)))
        dist = build_femur(**(fem_kw | {"ext_rot": fem_kw["ext_rot"] + p["ext"]}))
        dcut = _neck_cut(dist, p["f"], p["tilt"], p["gap"], p["jag"], p["phase"]).flipped()
        move = Xf(shift=_at((0.0, 0.0), (dist.lat, p["lat"]), ((0.0, -1.0), p["up"])))
        frags.append(Fragment(dist.parts, (dcut,), (), mu_t).moved(move))
        keypts = keypts[:4] + [move(q) for q in dist.key_points()[4:]]
    elif cls == "intertrochanteric":
        frags.append(Fragment(parts, (_it_cut(fem, p)[0],), tuple(lines), mu_t))
        dist, move = fem, Xf()
        if p["displaced"]:  # varus about the medial end, shaft up and in, turned out
            dist = build_femur(**(fem_kw | {"ext_rot": fem_kw["ext_rot"] + p["ext"]}))
            shift = _at((0.0, 0.0), (dist.lat, -p["med"]), ((0.0, -1.0), p["up"]))
            move = Xf(fem_kw["lat_sign"] * math.radians(p["varus"]), _it_cut(dist, p)[1], shift)
            keypts = keypts[:4] + [move(q) for q in dist.key_points()[4:]]
        dparts = dist.parts[:6] if p["ltfrag"] else dist.parts
        frags.append(Fragment(dparts, (_it_cut(dist, p)[0].flipped(),), (), mu_t).moved(move))
        if p["ltfrag"]:  # lesser trochanter pulled off medially
            frags.append(Fragment((dist.lt.moved(Xf(0.3, dist.lt.c, _at((0, 0), (dist.lat, -6.0)))),), (), (), mu_t))
    elif cls == "arthroplasty":  # neck osteotomy that spares the greater trochanter
        osteotomy = _at(fem.base, (fem.neck, -0.2 * math.dist(fem.head, fem.base)))
        frags.append(Fragment(parts[2:], (Cut(osteotomy, fem.neck, 0.0, 0.4, p["phase"], 1.15 * fem.r),), (), mu_t))
    for frag in frags:
        draw_fragment(cv, frag)
    if cls == "orif":
        _draw_fixation(cv, fem, spec)
    elif cls == "arthroplasty":
        keypts += _draw_arthroplasty(cv, fem, spec, fem_kw["lat_sign"])
    return keypts


def _lag(fem: Femur, off: float, tip: float) -> tuple[Pt, Pt]:
    """Entry just outside the lateral cortex and tip in the head, for a screw along the neck."""
    up = (-fem.neck[0], -fem.neck[1])
    o = _at(fem.head, ((-up[1], up[0]), off * fem.r))
    reach = math.sqrt(max(fem.r**2 - (off * fem.r) ** 2, 1.0)) - tip
    return _at(o, (fem.neck, fem.exit_t(o, fem.neck) - 1)), _at(o, (up, reach))


def _draw_fixation(cv: Canvas, fem: Femur, spec: HipSpec) -> None:
    p, r, shapes = spec.p, fem.r, []
    if spec.subtype == "cannulated_screws":  # 2-3 parallel 7.3 mm screws, washers outside the cortex
        for off in [-0.42, 0.30, 0.37] if p["n"] == 3 else [-0.38, 0.34]:
            a, b = _lag(fem, off, p["tip"])
            shapes += [
                Tube(a, b, 2.4, 2.4, thread=3.65, thread_len=16, cannula=1.3),
                Tube(a, _at(a, (fem.neck, 2.5)), 5.5, 5.5),
            ]
    elif spec.subtype == "sliding_hip_screw":  # lag screw in a barrel, side plate with cortical screws
        a, b = _lag(fem, p["off"], p["tip"])
        up = (-fem.neck[0], -fem.neck[1])
        shapes += [Tube(a, b, 4.0, 4.0, thread=6.3, thread_len=26), Tube(_at(a, (up, 1)), _at(a, (up, 38)), 9.5, 9.5)]
        k_top = _rel(a, fem.base, fem.shaft) - 6
        k_end = k_top + 30 + 16 * p["plate_holes"]
        off = fem.radius_at(k_end) + 3.5
        shapes.append(Tube(fem.along(k_top, off), fem.along(k_end, off), 3.2, 3.2))
        for k in k_top + 26 + 16 * np.arange(int(p["plate_holes"])):
            rk = fem.radius_at(k)
            shapes.append(Tube(fem.along(k, off + 2), fem.along(k, -rk - 3), 1.6, 1.6, thread=2.25, thread_len=2 * rk))
            shapes.append(Tube(fem.along(k, off + 1), fem.along(k, off + 4), 4.2, 4.2))
    else:  # cephalomedullary nail from the trochanter tip, lag screw through it, distal locking screw
        entry = _at(fem.gt.c, (fem.shaft, -fem.gt.b - 8), (fem.lat, -0.15 * r))
        q, k = fem.along(2.6 * r), 2.6 * r + p["nail_len"]
        shapes += [Tube(entry, q, 8.2, 8.2), Tube(q, fem.along(k), 5.8, 5.0)]
        a, b = _lag(fem, p["off"], p["tip"])
        rk = fem.radius_at(k - 25)
        shapes.append(Tube(a, b, 5.3, 5.3, thread=5.3, thread_len=30))
        shapes.append(
            Tube(fem.along(k - 25, rk + 4), fem.along(k - 25, -rk - 3), 2.1, 2.1, thread=2.5, thread_len=2 * rk)
        )
    draw_metal(cv, shapes, MU_STEEL)


def _draw_arthroplasty(cv: Canvas, fem: Femur, spec: HipSpec, lat_sign: int) -> list[Pt]:
    p, r = spec.p, fem.r
    total = spec.subtype == "total_hip"
    ball = _at(fem.head, ((1.0, 0.0), p["ball_dx"]), ((0.0, 1.0), p["ball_dy"]))
    rb, length = (p["ball"] if total else r + p["ball_dx"] * 0.3), p["stem"]

    def stem(grow: float) -> list[Pt]:  # tapered wedge in the canal, flaring medially under the neck
        lateral = [fem.along(k, 0.4 * r - 0.25 * r * (k + 0.45 * r) / (length + 0.45 * r) + grow)
                   for k in np.linspace(-0.45 * r, length, 14)]  # fmt: skip
        medial = [fem.along(k, -(0.38 * r - 0.23 * r * (k + 0.75 * r) / (length + 0.75 * r) + grow
                                 + 0.55 * r * math.exp(-(k + 0.75 * r) / (0.8 * r))))
                  for k in np.linspace(length, -0.75 * r, 16)]  # fmt: skip
        return [*lateral, fem.along(length + 4 + grow, 0.0), *medial]

    if p["cemented"]:
        draw_plate(cv, cv.bone, stem(2.8), thick=12, ramp=1.0, mu_t=MU_CEMENT, textured=False)
    draw_plate(cv, cv.metal, stem(0.0), thick=12, ramp=1.2, mu_t=MU_TI if total else MU_COCR, textured=False)
    trunnion = _at(fem.base, (fem.neck, -0.35 * math.dist(fem.head, fem.base)))
    draw_metal(cv, [Tube(trunnion, ball, 6.0, 6.0), Tube(ball, ball, rb, rb)], MU_COCR)
    pts = [(ball[0] - rb, ball[1]), (ball[0] + rb, ball[1]), (ball[0], ball[1] - rb)]
    if total:  # metal-backed cup, opening inferolaterally at ``incl`` degrees
        ro, incl = r + 3.0, math.radians(p["incl"])
        draw_metal(cv, [Shell(fem.head, ro, ro - 3.0, (-lat_sign * math.sin(incl), -math.cos(incl)))], MU_TI)
        pts += [(fem.head[0] - ro, fem.head[1]), (fem.head[0] + ro, fem.head[1]), (fem.head[0], fem.head[1] - ro)]
    return pts
