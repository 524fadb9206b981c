"""Oriented implicit solids of the adult anatomy family (:mod:`nervemuscle.phantom.adult`).

A second shape construction, independent of :mod:`nervemuscle.phantom.shapes`: solids are implicit
functions of world points, posed with a rotation (not swept along a world axis), and combined with
half-space cuts. Every solid has ``bbox`` (``(lo, hi)`` world corners, mm) and ``inside(x, y, z)`` on an
open-mesh grid already restricted to that box, the interface that :func:`nervemuscle.phantom.shapes.paint`
and :func:`nervemuscle.phantom.acquisition.render_labels` use.

* :class:`Superquadric` - an oriented superellipsoid (bone blocks, heads, domes, glands);
* :class:`SweptOval` - an oval cross-section of varying semi-axes swept along a 3-D curve with a
  rotation-minimising frame (roots, trunks, vessels, bones' shafts, muscle bellies); the section is the
  set of points whose nearest centerline sample is at arc length ``s``;
* :class:`StarBody` - star-shaped cross-sections stacked along z, radius a Fourier series of the polar
  angle (trunk and neck; a layer ``depth`` mm under the surface for skin, fat and flat muscles);
* :class:`Cut` / :class:`Minus` / :class:`Within` / :class:`Group` - half-space cuts, differences,
  intersections and unions.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np


def _mask_in_box(shape, x, y, z) -> tuple[tuple[slice, ...], bool]:
    """Slices of an open-mesh grid inside ``shape.bbox``; False when empty."""
    lo, hi = shape.bbox
    sl = tuple(slice(*np.searchsorted(c.ravel(), [l, h])) for c, l, h in zip((x, y, z), lo, hi))
    return sl, all(s.stop > s.start for s in sl)


def rotation(yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0) -> np.ndarray:
    """Rows = local axes (u, v, w) in world coordinates: rotations about z (yaw), then x (pitch), then y (roll),
    angles in degrees."""
    a, b, c = np.deg2rad([yaw, pitch, roll])
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    ry = np.array([[np.cos(c), 0, np.sin(c)], [0, 1, 0], [-np.sin(c), 0, np.cos(c)]])
    return (rz @ rx @ ry).T


@dataclass
class Superquadric:
    """Oriented superellipsoid ``(|u/a|^p + |v/b|^p)^(q/p) + |w/c|^q <= 1``.

    Parameters
    ----------
    center : (3,) world mm
    semi : (3,) semi-axes (a, b, c) along the local axes, mm
    axes : (3, 3) rows = local u, v, w in world coordinates (default: world axes)
    p, q : float
        Exponents in the (u, v) plane and along w (2 = ellipsoid; large = box-like).
    """

    center: np.ndarray
    semi: np.ndarray
    axes: np.ndarray = field(default_factory=lambda: np.eye(3))
    p: float = 2.0
    q: float = 2.0

    def __post_init__(self) -> None:
        self.center = np.asarray(self.center, float)
        self.semi = np.maximum(np.asarray(self.semi, float), 1e-3)
        self.axes = np.asarray(self.axes, float)

    def scaled(self, factor) -> "Superquadric":
        """The same solid with semi-axes multiplied by ``factor`` (scalar or (3,))."""
        return Superquadric(self.center, self.semi * np.asarray(factor, float), self.axes, self.p, self.q)

    def grown(self, mm: float) -> "Superquadric":
        """The same solid with every semi-axis changed by ``mm`` (negative = inner layer)."""
        return Superquadric(self.center, self.semi + mm, self.axes, self.p, self.q)

    @cached_property
    def bbox(self):
        half = np.abs(self.axes).T @ self.semi
        return self.center - half, self.center + half

    def inside(self, x, y, z):
        d = (x - np.float32(self.center[0]), y - np.float32(self.center[1]), z - np.float32(self.center[2]))
        a, b, c = self.semi
        if self.p == 2.0 and self.q == 2.0 and np.array_equal(self.axes, np.eye(3)):   # separable: 1-D terms
            return (d[0] / np.float32(a)) ** 2 + (d[1] / np.float32(b)) ** 2 + (d[2] / np.float32(c)) ** 2 <= 1.0
        u, v, w = (sum(np.float32(self.axes[k, i]) * d[i] for i in range(3) if self.axes[k, i] != 0.0) for k in range(3))
        if self.p == 2.0 and self.q == 2.0:
            return (u / a) ** 2 + (v / b) ** 2 + (w / c) ** 2 <= 1.0
        uv = (np.abs(u / a) ** self.p + np.abs(v / b) ** self.p) ** (self.q / self.p)
        return uv + np.abs(w / c) ** self.q <= 1.0


def smooth_curve(points, step: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """A C1 curve through control points (cubic Hermite with finite-difference tangents), resampled every
    ``step`` mm along its length.

    Returns
    -------
    curve : (N, 3) ndarray
    s : (N,) arc length from the first point, mm
    """
    p = np.asarray(points, float)
    chord = np.linalg.norm(np.diff(p, axis=0), axis=1)
    t = np.concatenate([[0.0], np.cumsum(chord)])
    tang = np.gradient(p, t, axis=0)
    dense = []
    for i in range(len(p) - 1):
        h = t[i + 1] - t[i]
        u = np.linspace(0.0, 1.0, 48, endpoint=False)[:, None]
        h00, h10, h01, h11 = 2 * u**3 - 3 * u**2 + 1, u**3 - 2 * u**2 + u, -2 * u**3 + 3 * u**2, u**3 - u**2
        dense.append(h00 * p[i] + h10 * h * tang[i] + h01 * p[i + 1] + h11 * h * tang[i + 1])
    dense.append(p[-1:])
    dense = np.vstack(dense)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(dense, axis=0), axis=1))])
    s = np.arange(0.0, arc[-1], step)
    if arc[-1] - s[-1] > 1e-9:
        s = np.append(s, arc[-1])
    return np.column_stack([np.interp(s, arc, dense[:, k]) for k in range(3)]), s


def _frames(curve: np.ndarray, up: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tangent, normal and binormal per sample; the normal starts as ``up`` made perpendicular, then is
    carried along by parallel transport (no twist)."""
    t = np.gradient(curve, axis=0)
    t /= np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
    n = np.empty_like(t)
    ref = np.asarray(up, float)
    ref = ref - ref @ t[0] * t[0]
    if np.linalg.norm(ref) < 1e-6:
        ref = np.cross(t[0], [1.0, 0.0, 0.0] if abs(t[0][0]) < 0.9 else [0.0, 1.0, 0.0])
    n[0] = ref / np.linalg.norm(ref)
    for i in range(1, len(t)):
        v = n[i - 1] - (n[i - 1] @ t[i]) * t[i]
        n[i] = v / max(np.linalg.norm(v), 1e-12)
    return t, n, np.cross(t, n)


@dataclass
class SweptOval:
    """An oval section of semi-axes ``a(s)`` (along the frame normal) and ``b(s)`` (binormal) swept along a
    sampled centerline; ``s_range`` keeps only part of it.

    ``up`` sets the normal at the first sample (parallel-transported along the curve), so ``a`` is the
    semi-axis that lies nearest to ``up``. The section area is ``pi a b``. A point is inside when, for the
    centerline sample nearest along the local tangent (pieces of :data:`CHUNK_MM`, each measured in the
    frame of its middle sample), it lies in that sample's oval and within 3/4 of a sample step of it.
    """

    curve: np.ndarray
    s: np.ndarray
    a: np.ndarray
    b: np.ndarray
    up: tuple = (0.0, 0.0, 1.0)
    s_range: tuple | None = None

    def __post_init__(self) -> None:
        n = len(self.s)
        self.a = np.broadcast_to(np.asarray(self.a, float), (n,)).copy()
        self.b = np.broadcast_to(np.asarray(self.b, float), (n,)).copy()

    def scaled(self, factor: float) -> "SweptOval":
        """The same sweep with both semi-axes multiplied by ``factor``."""
        return SweptOval(self.curve, self.s, self.a * factor, self.b * factor, self.up, self.s_range)

    def grown(self, mm: float) -> "SweptOval":
        """The same sweep with both semi-axes changed by ``mm``."""
        return SweptOval(self.curve, self.s, np.maximum(self.a + mm, 1e-3), np.maximum(self.b + mm, 1e-3),
                         self.up, self.s_range)

    @cached_property
    def _sel(self) -> np.ndarray:
        if self.s_range is None:
            return np.arange(len(self.s))
        return np.flatnonzero((self.s >= self.s_range[0]) & (self.s <= self.s_range[1]))

    @cached_property
    def _frames(self):
        return _frames(self.curve, np.asarray(self.up, float))

    @cached_property
    def _extent(self) -> np.ndarray:
        """Per sample, half extent (x, y, z) of its oval disc."""
        t, n, b = self._frames
        step = self._step
        return np.sqrt((self.a[:, None] * n) ** 2 + (self.b[:, None] * b) ** 2) + step * np.abs(t) + 0.05

    @cached_property
    def _inv_a(self) -> np.ndarray:
        return (1.0 / self.a).astype(np.float32)

    @cached_property
    def _inv_b(self) -> np.ndarray:
        return (1.0 / self.b).astype(np.float32)

    @cached_property
    def _step(self) -> float:
        return float(np.max(np.diff(self.s))) if len(self.s) > 1 else 1.0

    @cached_property
    def bbox(self):
        sel = self._sel
        if sel.size == 0:       # nothing kept: an empty box that no grid intersects
            return np.full(3, np.inf), np.full(3, -np.inf)
        ext = self._extent[sel]
        pts = self.curve[sel]
        return (pts - ext).min(axis=0), (pts + ext).max(axis=0)

    def inside(self, x, y, z):
        shape = np.broadcast_shapes(x.shape, y.shape, z.shape)
        out = np.zeros(shape, bool)
        axes = (x.ravel(), y.ravel(), z.ravel())
        t, n, b = self._frames
        step = self._step
        sel = self._sel
        chunk = max(2, int(round(CHUNK_MM / step)))
        pieces = [sel[j0 : j0 + chunk + 1] for j0 in range(0, len(sel), chunk)]
        lows = np.array([(self.curve[i] - self._extent[i]).min(axis=0) for i in pieces])
        highs = np.array([(self.curve[i] + self._extent[i]).max(axis=0) for i in pieces])
        lo_i = np.column_stack([np.searchsorted(a, lows[:, d]) for d, a in enumerate(axes)])
        hi_i = np.column_stack([np.searchsorted(a, highs[:, d]) for d, a in enumerate(axes)])
        for idx, i0, i1 in zip(pieces, lo_i, hi_i):
            if np.any(i1 <= i0):
                continue
            sl = [slice(int(a), int(b)) for a, b in zip(i0, i1)]
            pts = self.curve[idx]
            mid = idx[len(idx) // 2]
            tm, nm, bm = t[mid], n[mid], b[mid]
            X = axes[0][sl[0]][:, None, None].astype(np.float32) - np.float32(pts[0][0])
            Y = axes[1][sl[1]][None, :, None].astype(np.float32) - np.float32(pts[0][1])
            Z = axes[2][sl[2]][None, None, :].astype(np.float32) - np.float32(pts[0][2])
            # coordinates in the frame of the piece's middle sample (it turns little over CHUNK_MM)
            rel = (pts - pts[0]).astype(np.float32)
            along = X * np.float32(tm[0]) + Y * np.float32(tm[1]) + Z * np.float32(tm[2])
            s_rel = (rel @ tm).astype(np.float32)
            if len(idx) == 1:
                k = np.zeros(along.shape, np.int64)
                gap = np.abs(along)
            else:
                k = np.clip(np.searchsorted(s_rel, along), 1, len(idx) - 1)
                left = along - s_rel[k - 1] < s_rel[k] - along
                k = k - left
                gap = np.abs(along - s_rel[k])
            du = X * np.float32(nm[0]) + Y * np.float32(nm[1]) + Z * np.float32(nm[2]) - (rel @ nm).astype(np.float32)[k]
            dv = X * np.float32(bm[0]) + Y * np.float32(bm[1]) + Z * np.float32(bm[2]) - (rel @ bm).astype(np.float32)[k]
            du *= self._inv_a[idx][k]
            dv *= self._inv_b[idx][k]
            hit = (du * du + dv * dv <= 1.0) & (gap <= np.float32(0.75 * step))
            out[sl[0], sl[1], sl[2]] |= hit
        return out


#: Length (mm) of the centerline pieces a :class:`SweptOval` is evaluated by (each in its own small box).
CHUNK_MM = 6.0


@dataclass
class StarBody:
    """Star-shaped cross-sections stacked along z around a fixed axis ``(cx, cy)``.

    At height ``z`` a point at polar angle ``theta`` (from +x, counter-clockwise toward +y = anterior) is
    inside when its distance from the axis is at most ``r(theta, z) - depth(theta)``, where
    ``r = c0 + sum_k (ck cos k theta + sk sin k theta)`` with coefficients linear between ``knots``.
    ``depth`` (mm, scalar or a callable of theta) peels a layer under the surface; ``theta_range``
    (degrees, may wrap) and ``z_range`` keep a sector. Sections are tabulated at :data:`STAR_ANGLES`
    angles per slice.
    """

    knots: np.ndarray
    cx: float
    cy: float
    cos: np.ndarray       # (K, H+1): c0, c1.. per knot
    sin: np.ndarray       # (K, H+1): unused s0, s1.. per knot
    depth: object = 0.0
    theta_range: tuple | None = None
    z_range: tuple | None = None

    def __post_init__(self) -> None:
        self.knots = np.asarray(self.knots, float)
        self.cos, self.sin = np.asarray(self.cos, float), np.asarray(self.sin, float)

    def peeled(self, depth, theta_range=None, z_range=None) -> "StarBody":
        """A layer boundary ``depth`` mm (scalar or callable of theta) under this surface."""
        return StarBody(self.knots, self.cx, self.cy, self.cos, self.sin, depth, theta_range, z_range)

    def radius(self, theta: np.ndarray, z: float) -> np.ndarray:
        """Surface radius at polar angles ``theta`` (rad) and one height ``z``."""
        r = np.full(np.shape(theta), float(np.interp(z, self.knots, self.cos[:, 0])))
        for h in range(1, self.cos.shape[1]):
            c, s = np.interp(z, self.knots, self.cos[:, h]), np.interp(z, self.knots, self.sin[:, h])
            r = r + c * np.cos(h * theta) + s * np.sin(h * theta)
        return r

    def _table(self, z: float) -> np.ndarray:
        cache = self.__dict__.setdefault("_tables", {})
        if z not in cache:
            if len(cache) > 4096:
                cache.clear()
            cache[z] = self._section(z)
        return cache[z]

    def _section(self, z: float) -> np.ndarray:
        th = _STAR_THETA
        r = self.radius(th, z) - (self.depth(th) if callable(self.depth) else self.depth)
        if self.theta_range is not None:
            lo, hi = np.deg2rad(self.theta_range)
            r = np.where(np.mod(th - lo, 2 * np.pi) <= np.mod(hi - lo, 2 * np.pi), r, -1.0)
        return r

    @cached_property
    def bbox(self):
        z0, z1 = self.knots[0], self.knots[-1]
        if self.z_range is not None:
            z0, z1 = max(z0, self.z_range[0]), min(z1, self.z_range[1])
        zs = np.concatenate([[z0, z1], self.knots[(self.knots > z0) & (self.knots < z1)]])
        th = _STAR_THETA
        if self.theta_range is not None:    # a sector: the wedge from the axis to its part of the outline
            lo, hi = np.deg2rad(self.theta_range)
            th = th[np.mod(th - lo, 2 * np.pi) <= np.mod(hi - lo, 2 * np.pi)]
        r = np.max([self.radius(th, zz) for zz in zs], axis=0) + 0.5
        xs = np.append(self.cx + r * np.cos(th), self.cx)
        ys = np.append(self.cy + r * np.sin(th), self.cy)
        return np.array([xs.min(), ys.min(), z0]), np.array([xs.max(), ys.max(), z1])

    def inside(self, x, y, z):
        shape = np.broadcast_shapes(x.shape, y.shape, z.shape)
        dx, dy = x[:, :, 0] - self.cx, y[:, :, 0] - self.cy
        theta = np.arctan2(dy, dx)
        rho = np.hypot(dx, dy)
        k = np.rint((theta + np.pi) / (2 * np.pi) * STAR_ANGLES).astype(np.int64) % STAR_ANGLES
        out = np.zeros(shape, bool)
        zs = z.ravel()
        keep = np.ones(len(zs), bool) if self.z_range is None else (zs >= self.z_range[0]) & (zs <= self.z_range[1])
        rho32 = rho.astype(np.float32)
        for j0 in range(0, len(zs), 8):
            js = [j for j in range(j0, min(j0 + 8, len(zs))) if keep[j]]
            if not js:
                continue
            tables = np.stack([self._table(float(zs[j])) for j in js]).astype(np.float32)    # (n, angles)
            out[:, :, js] = (rho32[None] <= tables[:, k]).transpose(1, 2, 0)
        return out


#: Angular samples of a :class:`StarBody` section table.
STAR_ANGLES = 2048
_STAR_THETA = np.arange(STAR_ANGLES) / STAR_ANGLES * 2 * np.pi - np.pi


@dataclass
class Cut:
    """Points of ``solid`` on the kept side of half-spaces: ``normal . p <= offset`` for every plane."""

    solid: object
    planes: list

    def grown(self, mm: float) -> "Cut":
        """The cut of the grown (or, negative, shrunk) solid by the same planes."""
        return Cut(self.solid.grown(mm), self.planes)

    @cached_property
    def bbox(self):
        lo, hi = (np.array(v, float) for v in self.solid.bbox)
        for nrm, off in self.planes:     # axis-aligned planes also narrow the box
            nrm = np.asarray(nrm, float)
            k = np.flatnonzero(np.abs(nrm) > 1e-12)
            if len(k) == 1:
                a = int(k[0])
                if nrm[a] > 0:
                    hi[a] = min(hi[a], off / nrm[a])
                else:
                    lo[a] = max(lo[a], off / nrm[a])
        return lo, hi

    def inside(self, x, y, z):
        out = self.solid.inside(x, y, z)
        for nrm, off in self.planes:
            out &= nrm[0] * x + nrm[1] * y + nrm[2] * z <= off
        return out


@dataclass
class Minus:
    """Points of ``solid`` outside every solid of ``holes``."""

    solid: object
    holes: list

    @cached_property
    def bbox(self):
        return self.solid.bbox

    def inside(self, x, y, z):
        out = self.solid.inside(x, y, z)
        for h in self.holes:
            sl, ok = _mask_in_box(h, x, y, z)
            if ok:
                out[sl] &= ~h.inside(x[sl[0], :, :], y[:, sl[1], :], z[:, :, sl[2]])
        return out


@dataclass
class Within:
    """Points of ``solid`` that also lie in ``container`` (bounding box of ``solid``)."""

    solid: object
    container: object

    @cached_property
    def bbox(self):
        return self.solid.bbox

    def inside(self, x, y, z):
        out = self.solid.inside(x, y, z)
        keep = np.zeros(out.shape, bool)
        sl, ok = _mask_in_box(self.container, x, y, z)
        if ok:
            sub = out[sl]
            if sub.any():
                keep[sl] = self.container.inside(x[sl[0], :, :], y[:, sl[1], :], z[:, :, sl[2]])
        return out & keep


@dataclass
class Group:
    """Union of solids."""

    parts: list

    @cached_property
    def bbox(self):
        boxes = [p.bbox for p in self.parts]
        return np.min([b[0] for b in boxes], axis=0), np.max([b[1] for b in boxes], axis=0)

    def inside(self, x, y, z):
        out = np.zeros(np.broadcast_shapes(x.shape, y.shape, z.shape), bool)
        for p in self.parts:
            sl, ok = _mask_in_box(p, x, y, z)
            if ok:
                out[sl] |= p.inside(x[sl[0], :, :], y[:, sl[1], :], z[:, :, sl[2]])
        return out
