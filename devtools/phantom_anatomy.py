"""Anatomy and attenuation maps for the synthetic pelvis radiographs.

Everything here works in millimetres on a coarse grid (about 0.45 mm per
pixel); ``devtools.phantoms`` turns the maps into a detector image and DICOM.
Bones are unions of analytic tubes and ellipsoids: the projected path length
through a hollow cylinder is what gives real bone its bright cortical rim.
The pelvis is a polygon whose depth from its edge (distance transform) gives
plate thickness and cortex. No Django import: tests and benchmarks use it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from ml.core.vocab import CLASSES, Box

F32 = np.float32
Pt = tuple[float, float]

# Linear attenuation (1/mm) at ~70 keV. Bone, gas and metal are the excess over
# the soft tissue they displace, so the layers simply add up.
MU_SOFT, MU_CORTEX, MU_TRAB, MU_GAS = 0.020, 0.030, 0.011, -0.018
MU_STEEL, MU_TI, MU_COCR, MU_CEMENT = 0.25, 0.14, 0.35, 0.026


def _unit(v: Pt) -> Pt:
    n = math.hypot(v[0], v[1]) or 1.0
    return (v[0] / n, v[1] / n)


def _at(p: Pt, *terms: tuple[Pt, float]) -> Pt:
    """p + sum(k * v): points along a bone's own axes."""
    x, y = p
    for v, k in terms:
        x, y = x + k * v[0], y + k * v[1]
    return (x, y)


def _rel(a: Pt, b: Pt, d: Pt) -> float:
    """Component of a - b along d."""
    return (a[0] - b[0]) * d[0] + (a[1] - b[1]) * d[1]


def _rotv(v: Pt, ang: float) -> Pt:
    c, s = math.cos(ang), math.sin(ang)
    return (c * v[0] - s * v[1], s * v[0] + c * v[1])


@dataclass(frozen=True)
class Xf:
    """Rigid motion: rotate by ``angle`` (rad) about ``pivot``, then shift."""

    angle: float = 0.0
    pivot: Pt = (0.0, 0.0)
    shift: Pt = (0.0, 0.0)

    def __call__(self, p: Pt) -> Pt:
        q = _rotv((p[0] - self.pivot[0], p[1] - self.pivot[1]), self.angle)
        return (q[0] + self.pivot[0] + self.shift[0], q[1] + self.pivot[1] + self.shift[1])


class Canvas:
    """Attenuation layers (line integrals of mu) on a coarse grid, mm coordinates."""

    def __init__(self, rows: int, cols: int, px: float, rng: np.random.Generator) -> None:
        self.rows, self.cols, self.px = rows, cols, px
        self.soft, self.bone, self.metal = (np.zeros((rows, cols), F32) for _ in range(3))
        # Where the display statistics come from: not near the hips, so that a
        # hip's class does not change the grey levels elsewhere in the image.
        self.ref = np.ones((rows, cols), bool)
        # Smooth noise fixed to the image (~1 mm grain) stands in for trabecular texture.
        n = rng.standard_normal((rows // 2 + 2, cols // 2 + 2), dtype=F32)
        g = np.asarray(Image.fromarray(n, mode="F").resize((n.shape[1] * 2, n.shape[0] * 2), Image.BICUBIC))
        self.tex = np.clip(1.0 + 0.15 * g[:rows, :cols], 0.3, 1.7).astype(F32)

    def window(self, box: Box):
        """Slices and broadcastable pixel-centre coordinates (mm) covering ``box``."""
        c0, c1 = max(int(box[0] / self.px) - 1, 0), min(int(box[2] / self.px) + 2, self.cols)
        r0, r1 = max(int(box[1] / self.px) - 1, 0), min(int(box[3] / self.px) + 2, self.rows)
        if c0 >= c1 or r0 >= r1:
            return None
        xs = ((np.arange(c0, c1, dtype=F32) + 0.5) * self.px)[None, :]
        ys = ((np.arange(r0, r1, dtype=F32) + 0.5) * self.px)[:, None]
        return (slice(r0, r1), slice(c0, c1)), xs, ys


@dataclass(frozen=True)
class Tube:
    """Tapered hollow cylinder with round caps (a sphere when p0 == p1). With
    ``thread`` it is a screw: threads over the last ``thread_len`` mm, hollow by ``cannula``."""

    p0: Pt
    p1: Pt
    r0: float
    r1: float
    c0: float = 2.0  # cortex thickness at p0 and p1
    c1: float = 2.0
    thread: float = 0.0
    thread_len: float = 0.0
    cannula: float = 0.0

    def box(self) -> Box:
        r = max(self.r0, self.r1, self.thread)
        x0, x1 = sorted((self.p0[0], self.p1[0]))
        y0, y1 = sorted((self.p0[1], self.p1[1]))
        return (x0 - r, y0 - r, x1 + r, y1 + r)

    def moved(self, xf: Xf) -> Tube:
        return replace(self, p0=xf(self.p0), p1=xf(self.p1))

    def paths(self, xs, ys):
        """Projected path length through the whole tube and through its medulla (or cannula)."""
        dx, dy = self.p1[0] - self.p0[0], self.p1[1] - self.p0[1]
        px, py = xs - self.p0[0], ys - self.p0[1]
        length2 = dx * dx + dy * dy
        t = np.clip((px * dx + py * dy) / length2, 0.0, 1.0) if length2 > 1e-6 else np.zeros(1, F32)
        qx, qy = px - t * dx, py - t * dy
        r2 = qx * qx + qy * qy
        rad = self.r0 + (self.r1 - self.r0) * t
        inner = np.maximum(rad - (self.c0 + (self.c1 - self.c0) * t), 0.0)
        if self.thread:
            s = t * math.sqrt(length2)
            saw = np.abs(np.mod(s / 2.5, 1.0) - 0.5) * 2
            rad = np.where(s > math.sqrt(length2) - self.thread_len, self.thread * (0.8 + 0.2 * saw), rad)
            inner = self.cannula
        return 2 * np.sqrt(np.maximum(rad * rad - r2, 0.0)), 2 * np.sqrt(np.maximum(inner * inner - r2, 0.0))

    def path(self, xs, ys):
        """Metal path: solid, less the cannula of a cannulated screw."""
        out, inner = self.paths(xs, ys)
        return out - inner if self.cannula else out


@dataclass(frozen=True)
class Blob:
    """Hollow ellipsoid with semi-axes a, b in the image, rotated by ``ang``."""

    c: Pt
    a: float
    b: float
    ang: float = 0.0
    cortex: float = 1.5

    def box(self) -> Box:
        r = max(self.a, self.b)
        return (self.c[0] - r, self.c[1] - r, self.c[0] + r, self.c[1] + r)

    def moved(self, xf: Xf) -> Blob:
        return replace(self, c=xf(self.c), ang=self.ang + xf.angle)

    def paths(self, xs, ys):
        ca, sa = math.cos(self.ang), math.sin(self.ang)
        dx, dy = xs - self.c[0], ys - self.c[1]
        u, v = dx * ca + dy * sa, dy * ca - dx * sa
        d = min(self.a, self.b)
        out = 2 * d * np.sqrt(np.maximum(1 - (u / self.a) ** 2 - (v / self.b) ** 2, 0.0))
        ai, bi, di = (max(x - self.cortex, 0.5) for x in (self.a, self.b, d))
        return out, 2 * di * np.sqrt(np.maximum(1 - (u / ai) ** 2 - (v / bi) ** 2, 0.0))


@dataclass(frozen=True)
class Cut:
    """Keeps the side of a jagged fracture line where dot(p - point, n) > gap/2
    (within ``span`` mm of the point along the line, if span > 0)."""

    p: Pt
    n: Pt
    gap: float = 0.0
    jag: float = 0.0
    phase: float = 0.0
    span: float = 0.0

    def moved(self, xf: Xf) -> Cut:
        return replace(self, p=xf(self.p), n=_rotv(self.n, xf.angle))

    def flipped(self) -> Cut:
        # The same jagged surface seen from the other fragment.
        return replace(self, n=(-self.n[0], -self.n[1]), phase=-self.phase)

    def signed(self, xs, ys):
        dx, dy = xs - self.p[0], ys - self.p[1]
        s, t = dx * self.n[0] + dy * self.n[1], dy * self.n[0] - dx * self.n[1]
        if self.jag:
            s = s + self.jag * (np.sin(t * 0.3 + self.phase) + 0.4 * np.sin(t * 0.8 + 2 * self.phase))
        return s, t

    def weight(self, xs, ys):
        s, t = self.signed(xs, ys)
        w = np.clip((s - self.gap / 2) / 0.6 + 0.5, 0.0, 1.0)
        return np.maximum(w, np.clip((np.abs(t) - self.span) / 2.0, 0.0, 1.0)) if self.span else w


@dataclass(frozen=True)
class Line:
    """Thin lucent (depth > 0) or sclerotic (depth < 0) band over [t0, t1] along a cut line."""

    cut: Cut
    width: float
    depth: float
    t0: float
    t1: float

    def factor(self, xs, ys):
        s, t = self.cut.signed(xs, ys)
        along = np.clip((t - self.t0) / 2 + 0.5, 0, 1) * np.clip((self.t1 - t) / 2 + 0.5, 0, 1)
        return 1.0 - self.depth * np.exp(-((s / self.width) ** 2)) * along


@dataclass(frozen=True)
class Fragment:
    """One piece of bone: union of parts, trimmed by cuts, marked by lines."""

    parts: tuple
    cuts: tuple = ()
    lines: tuple = ()
    mu_t: float = MU_TRAB

    def moved(self, xf: Xf) -> Fragment:
        lines = tuple(replace(ln, cut=ln.cut.moved(xf)) for ln in self.lines)
        return Fragment(tuple(p.moved(xf) for p in self.parts), tuple(c.moved(xf) for c in self.cuts), lines, self.mu_t)


def _union(boxes) -> Box:
    b = list(boxes)
    return (min(x[0] for x in b), min(x[1] for x in b), max(x[2] for x in b), max(x[3] for x in b))


def draw_fragment(cv: Canvas, frag: Fragment) -> None:
    if (win := cv.window(_union(p.box() for p in frag.parts))) is None:
        return
    (sr, sc), xs, ys = win
    outer = np.zeros((sr.stop - sr.start, sc.stop - sc.start), F32)
    inner = np.zeros_like(outer)
    for part in frag.parts:  # each part only over its own box
        if (pw := cv.window(part.box())) is None:
            continue
        (pr, pc), pxs, pys = pw
        o, i = part.paths(pxs, pys)
        sub = (slice(pr.start - sr.start, pr.stop - sr.start), slice(pc.start - sc.start, pc.stop - sc.start))
        np.maximum(outer[sub], o, out=outer[sub])
        np.maximum(inner[sub], i, out=inner[sub])
    dens = MU_CORTEX * (outer - inner) + frag.mu_t * inner * cv.tex[sr, sc]
    for cut in frag.cuts:
        dens *= cut.weight(xs, ys)
    for line in frag.lines:
        dens *= line.factor(xs, ys)
    cv.bone[sr, sc] += dens


def draw_metal(cv: Canvas, shapes, mu: float) -> None:
    for shape in shapes:
        if (win := cv.window(shape.box())) is not None:
            (sr, sc), xs, ys = win
            cv.metal[sr, sc] += mu * shape.path(xs, ys)


@dataclass(frozen=True)
class Shell:
    """Hemispherical acetabular cup, dome towards ``dome``."""

    c: Pt
    ro: float
    ri: float
    dome: Pt

    def box(self) -> Box:
        return Tube(self.c, self.c, self.ro, self.ro).box()

    def path(self, xs, ys):
        o = Tube(self.c, self.c, self.ro, self.ro).paths(xs, ys)[0]
        i = Tube(self.c, self.c, self.ri, self.ri).paths(xs, ys)[0]
        return (o - i) * np.clip(_rel((xs, ys), self.c, self.dome) / 0.5 + 0.5, 0, 1)


def draw_plate(cv: Canvas, layer: np.ndarray, poly, holes=(), *, thick: float, rim: float = 0.0, **kw) -> None:
    """Flat bone (or metal) outlined by a polygon: thickness grows with depth from
    the edge (``ramp`` mm), a cortex ``rim`` follows the edge, ``bumps`` (centre,
    sigma, extra thickness) thicken it smoothly."""
    ramp, rim_w, mu_t, bumps = kw.get("ramp", 3.0), kw.get("rim_w", 1.5), kw.get("mu_t", MU_TRAB), kw.get("bumps", ())
    if (win := cv.window(_union([(*np.min(poly, 0), *np.max(poly, 0))]))) is None:
        return
    (sr, sc), xs, ys = win
    img = Image.new("L", (sc.stop - sc.start, sr.stop - sr.start), 0)
    draw = ImageDraw.Draw(img)
    for k, shape in enumerate([poly, *holes]):
        draw.polygon([(x / cv.px - sc.start - 0.5, y / cv.px - sr.start - 0.5) for x, y in shape], fill=int(k == 0))
    depth = ndimage.distance_transform_edt(np.asarray(img)).astype(F32) * F32(cv.px)
    tmap = np.full(depth.shape, thick, F32)
    for c, sig, amp in bumps:
        tmap += amp * np.exp(-((xs - c[0]) ** 2 + (ys - c[1]) ** 2) / (2 * sig * sig))
    dens = mu_t * tmap * (1 - np.exp(-depth / ramp)) * (cv.tex[sr, sc] if kw.get("textured", True) else 1.0)
    if rim:
        dens += MU_CORTEX * rim * np.exp(-(((depth - rim_w) / rim_w) ** 2)) * (depth > 0)
    layer[sr, sc] += ndimage.gaussian_filter(dens, 0.45 / cv.px)


def _chaikin(pts, n: int = 2):
    """Corner cutting of a closed outline: smooth shapes from a few landmarks."""
    for _ in range(n):
        pairs = zip(pts, pts[1:] + pts[:1], strict=True)
        pts = [q for a, b in pairs for q in ((0.75 * a[0] + 0.25 * b[0], 0.75 * a[1] + 0.25 * b[1]),
                                             (0.25 * a[0] + 0.75 * b[0], 0.25 * a[1] + 0.75 * b[1]))]  # fmt: skip
    return pts


def _ellipse(c: Pt, a: float, b: float, ang: float = 0.0, n: int = 28) -> list[Pt]:
    ts = np.linspace(0, 2 * math.pi, n, endpoint=False)
    return [_at(c, (_rotv((1, 0), ang), a * math.cos(t)), (_rotv((0, 1), ang), b * math.sin(t))) for t in ts]


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
        c = _at(fem.base, (fem.neck, -0.2 * math.dist(fem.head, fem.base)))
        frags.append(Fragment(parts[2:], (Cut(c, fem.neck, 0.0, 0.4, p["phase"], 1.15 * fem.r),), (), mu_t))
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
        parts = [Blob(pose((0, cy + 4)), 5 * s, 10 * s, 0.0, 1.5)]
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
    body = Image.fromarray(anat.body_d * np.sqrt(u * (2 - u)), mode="F").resize((cols * k, rows * k), Image.BICUBIC)
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
    v = {"cx": rng.normal(0, 12), "hy": rng.uniform(0.48, 0.56), "rot": rng.normal(0, 0.035),
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
