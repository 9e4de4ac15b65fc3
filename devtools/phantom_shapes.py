"""Drawing primitives for the synthetic pelvis radiographs: attenuation layers on a coarse grid in
millimetres (about 0.45 mm per pixel), rigid motions, and bones as unions of analytic tubes and
ellipsoids (the projected path through a hollow cylinder gives bone its bright cortical rim); plates
are polygons whose depth from the edge gives thickness and cortex. No Django import.
Design: docs/architecture/design-dicom.md
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from ml.core.vocab import Box

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
        g = np.asarray(Image.fromarray(n, mode="F").resize((n.shape[1] * 2, n.shape[0] * 2), Image.Resampling.BICUBIC))
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
