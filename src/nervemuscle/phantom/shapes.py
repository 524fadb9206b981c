"""Analytic solids evaluated on axis-aligned world grids (mm, RAS+).

Every shape has ``bbox`` (``(lo, hi)`` world corners, mm) and ``inside(x, y, z)`` where ``x``, ``y``,
``z`` are *open-mesh* coordinate arrays of shapes ``(nx, 1, 1)``, ``(1, ny, 1)`` and ``(1, 1, nz)``,
ascending, *already restricted to the shape's bounding box* (use :func:`paint` or
:func:`evaluate`). ``inside`` returns a boolean ``(nx, ny, nz)`` array. Solids may be clipped by an
axis-aligned box (``clip``), which only narrows their bounding box.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

_AXES = {"x": 0, "y": 1, "z": 2}
#: Spacing (mm) of the centerline samples used to find each point's nearest stretch of a tube.
COARSE_STEP_MM = 1.0


def _interp(t: np.ndarray, knots: np.ndarray, values: np.ndarray) -> np.ndarray:
    return np.interp(t.ravel(), knots, values).reshape(t.shape).astype(t.dtype, copy=False)


@dataclass
class Extrusion:
    """Elliptic cross-sections swept along a world axis, parameters piecewise linear along it.

    Parameters
    ----------
    axis : {"x", "y", "z"}
        Sweep axis; the cross-section lives in the other two axes ``(u, v)`` in x, y, z order.
    knots : (K,) array
        Positions along ``axis`` (mm, ascending); the solid spans ``knots[0]..knots[-1]``.
    cu, cv, au, av : (K,) arrays
        Centre and semi-axes of the ellipse at each knot (mm).
    shrink : float
        Offset subtracted from both semi-axes (mm); used to peel layers (skin, fat).
    clip : ((3,), (3,)) or None
        Axis-aligned world box the solid is cut to (e.g. one side of the midline).
    angle : float
        Rotation of the ellipse axes in the (u, v) plane (radians, counter-clockwise from u).
    power : float
        Superellipse exponent (2 = ellipse; larger = squarer, e.g. a chest cross-section).
    """

    axis: str
    knots: np.ndarray
    cu: np.ndarray
    cv: np.ndarray
    au: np.ndarray
    av: np.ndarray
    shrink: float = 0.0
    clip: tuple | None = None
    angle: float = 0.0
    power: float = 2.0

    def __post_init__(self) -> None:
        n = len(self.knots)
        self.knots = np.asarray(self.knots, float)
        self.cu, self.cv, self.au, self.av = (
            np.broadcast_to(np.asarray(v, float), (n,)).copy() for v in (self.cu, self.cv, self.au, self.av)
        )

    def peeled(self, t: float) -> "Extrusion":
        """The same solid shrunk by ``t`` mm (semi-axes minus ``t``)."""
        return Extrusion(
            self.axis, self.knots, self.cu, self.cv, self.au, self.av, self.shrink + t, self.clip, self.angle,
            self.power,
        )

    @cached_property
    def bbox(self) -> tuple[np.ndarray, np.ndarray]:
        a = _AXES[self.axis]
        u, v = [i for i in range(3) if i != a]
        lo, hi = np.zeros(3), np.zeros(3)
        lo[a], hi[a] = self.knots[0], self.knots[-1]
        ru, rv = (self.au, self.av) if self.angle == 0 else (np.maximum(self.au, self.av),) * 2
        lo[u], hi[u] = (self.cu - ru).min(), (self.cu + ru).max()
        lo[v], hi[v] = (self.cv - rv).min(), (self.cv + rv).max()
        return _clip_box(lo, hi, self.clip)

    def inside(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        coords = (x, y, z)
        a = _AXES[self.axis]
        u, v = [coords[i] for i in range(3) if i != a]
        t = coords[a]
        au = np.maximum(_interp(t, self.knots, self.au) - self.shrink, 1e-6)
        av = np.maximum(_interp(t, self.knots, self.av) - self.shrink, 1e-6)
        du = u - _interp(t, self.knots, self.cu)
        dv = v - _interp(t, self.knots, self.cv)
        if self.angle:
            c, s = np.cos(self.angle), np.sin(self.angle)
            du, dv = c * du + s * dv, -s * du + c * dv
        if self.power == 2.0:
            return (du / au) ** 2 + (dv / av) ** 2 <= 1.0
        return np.abs(du / au) ** self.power + np.abs(dv / av) ** self.power <= 1.0


def _clip_box(lo, hi, clip):
    if clip is None:
        return lo, hi
    return np.maximum(lo, clip[0]), np.minimum(hi, clip[1])


def box(x=(-np.inf, np.inf), y=(-np.inf, np.inf), z=(-np.inf, np.inf)) -> tuple[np.ndarray, np.ndarray]:
    """An axis-aligned clip box from per-axis (lo, hi) ranges (mm)."""
    return np.array([x[0], y[0], z[0]], float), np.array([x[1], y[1], z[1]], float)


def _box_slices(shape, x, y, z):
    lo, hi = shape.bbox
    return tuple(slice(*np.searchsorted(c.ravel(), [l, h])) for c, l, h in zip((x, y, z), lo, hi))


def paint(out: np.ndarray, value, shape, x, y, z, *, mode: str = "set") -> None:
    """Evaluate ``shape`` inside its bounding box on the open-mesh grid and write into ``out``.

    ``mode`` "set" writes ``value`` where inside, "or" ORs the mask, "andnot" clears inside points.
    """
    sl = _box_slices(shape, x, y, z)
    if any(s.stop <= s.start for s in sl):
        return
    mask = shape.inside(x[sl[0], :, :], y[:, sl[1], :], z[:, :, sl[2]])
    view = out[sl]
    if mode == "set":
        np.copyto(view, value, where=mask)
    elif mode == "or":
        view |= mask
    else:
        view &= ~mask


def evaluate(shape, x, y, z) -> np.ndarray:
    """Boolean mask of ``shape`` on a whole open-mesh grid."""
    out = np.zeros(np.broadcast_shapes(x.shape, y.shape, z.shape), bool)
    paint(out, True, shape, x, y, z, mode="or")
    return out


@dataclass
class Ellipsoid:
    """Axis-aligned ellipsoid, optionally cut by half-spaces."""

    center: np.ndarray
    semi: np.ndarray
    shrink: float = 0.0
    clip: tuple | None = None

    def peeled(self, t: float) -> "Ellipsoid":
        return Ellipsoid(self.center, self.semi, self.shrink + t, self.clip)

    @cached_property
    def bbox(self) -> tuple[np.ndarray, np.ndarray]:
        c, s = np.asarray(self.center, float), np.asarray(self.semi, float) - self.shrink
        return _clip_box(c - s, c + s, self.clip)

    def inside(self, x, y, z):
        s = np.maximum(np.asarray(self.semi, float) - self.shrink, 1e-6)
        c = self.center
        return ((x - c[0]) / s[0]) ** 2 + ((y - c[1]) / s[1]) ** 2 + ((z - c[2]) / s[2]) ** 2 <= 1.0


@dataclass
class Union:
    parts: list

    def peeled(self, t: float) -> "Union":
        return Union([p.peeled(t) for p in self.parts])

    @cached_property
    def bbox(self):
        boxes = [p.bbox for p in self.parts]
        return np.min([b[0] for b in boxes], axis=0), np.max([b[1] for b in boxes], axis=0)

    def inside(self, x, y, z):
        out = np.zeros(np.broadcast_shapes(x.shape, y.shape, z.shape), bool)
        for p in self.parts:
            paint(out, True, p, x, y, z, mode="or")
        return out


@dataclass
class Difference:
    """Points in ``keep`` and not in ``cut`` (bounding box of ``keep``)."""

    keep: object
    cut: object

    @cached_property
    def bbox(self):
        return self.keep.bbox

    def inside(self, x, y, z):
        out = self.keep.inside(x, y, z)
        paint(out, False, self.cut, x, y, z, mode="andnot")
        return out


def resample_curve(points: np.ndarray, step: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """A smooth curve through control points (centripetal Catmull-Rom), resampled every ``step`` mm.

    Returns
    -------
    curve : (N, 3) ndarray
        Points along the curve, world mm.
    s : (N,) ndarray
        Arc length from the first point, mm.
    """
    p = np.asarray(points, float)
    ext = np.vstack([2 * p[0] - p[1], p, 2 * p[-1] - p[-2]])
    dense = []
    for i in range(1, len(ext) - 2):
        p0, p1, p2, p3 = ext[i - 1 : i + 3]
        t = np.linspace(0.0, 1.0, 64, endpoint=False)[:, None]
        seg = 0.5 * (
            2 * p1 + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2 + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3
        )
        dense.append(seg)
    dense.append(p[-1:])
    dense = np.vstack(dense)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(dense, axis=0), axis=1))])
    s = np.arange(0.0, arc[-1], step)
    s = np.append(s, arc[-1]) if arc[-1] - s[-1] > 1e-9 else s
    curve = np.column_stack([np.interp(s, arc, dense[:, k]) for k in range(3)])
    return curve, s


@dataclass
class Tube:
    """A tube of varying radius around a sampled centerline: points within ``r(s)`` of the curve.

    ``s`` is the arc length of the nearest centerline point; ``r(s)`` is linear between samples.
    The cross-section perpendicular to the centerline is a disc of area ``pi r(s)^2`` (for a radius
    of curvature much larger than ``r``). ``s_range`` keeps only part of the tube (e.g. the root
    segment proximal to the trunk).
    """

    curve: np.ndarray
    s: np.ndarray
    radius: np.ndarray
    s_range: tuple[float, float] | None = None

    @cached_property
    def bbox(self):
        r = float(np.max(self.radius)) + 0.5
        sel = self._selection()
        return self.curve[sel].min(axis=0) - r, self.curve[sel].max(axis=0) + r

    def _selection(self) -> np.ndarray:
        if self.s_range is None:
            return np.ones(len(self.s), bool)
        lo, hi = self.s_range
        return (self.s >= lo - 1.0) & (self.s <= hi + 1.0)

    def radius_at(self, s: np.ndarray) -> np.ndarray:
        return np.interp(s, self.s, self.radius)

    def project(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distance to the centerline and arc length of the foot point for (N, 3) points."""
        pts = np.asarray(pts, float)
        d2 = ((pts[:, None, :] - self.curve[None, ::4, :]) ** 2).sum(axis=2)
        near = np.argmin(d2, axis=1) * 4
        return self._refine(pts, near, 4)

    def inside(self, x, y, z):
        shape = np.broadcast_shapes(x.shape, y.shape, z.shape)
        xs, ys, zs = x.ravel(), y.ravel(), z.ravel()
        ds = max(float(self.s[1] - self.s[0]), 1e-6)
        k_step = max(1, int(round(COARSE_STEP_MM / ds)))
        sel = np.flatnonzero(self._selection())
        coarse = np.unique(np.append(sel[::k_step], sel[-1]))
        reach = float(np.max(self.radius)) + COARSE_STEP_MM
        best = np.full(shape, np.inf, np.float32)
        nearest = np.zeros(shape, np.int32)
        pts_c = self.curve[coarse]
        lo = [np.searchsorted(a, pts_c[:, i] - reach) for i, a in enumerate((xs, ys, zs))]
        hi = [np.searchsorted(a, pts_c[:, i] + reach) for i, a in enumerate((xs, ys, zs))]
        for n, k in enumerate(coarse.tolist()):
            sl = tuple(slice(int(lo[i][n]), int(hi[i][n])) for i in range(3))
            if any(q.stop <= q.start for q in sl):
                continue
            c = self.curve[k]
            d2 = ((xs[sl[0]] - c[0]) ** 2)[:, None, None] + ((ys[sl[1]] - c[1]) ** 2)[None, :, None]
            d2 = d2 + ((zs[sl[2]] - c[2]) ** 2)[None, None, :]
            view, arg = best[sl], nearest[sl]
            closer = d2 < view
            np.copyto(view, d2, where=closer)
            np.copyto(arg, k, where=closer)
        # The nearest coarse sample is at most half a coarse step (along the curve) farther than the
        # curve itself, so points beyond sqrt(r_max^2 + (step/2)^2) are outside and points within r_min
        # of a coarse sample are inside (away from the ends of s_range); only the shell between is refined.
        radii = self.radius[sel]
        half = 0.5 * k_step * ds
        out = best <= float(np.min(radii)) ** 2
        if self.s_range is not None:
            margin = half + float(np.max(radii)) + ds
            s_near = self.s[nearest]
            out &= (s_near >= self.s_range[0] + margin) & (s_near <= self.s_range[1] - margin)
        shell = (best <= (float(np.max(radii)) + 0.05) ** 2 + (1.1 * half) ** 2) & ~out
        cand = np.nonzero(shell)
        if cand[0].size == 0:
            return out
        pts = np.column_stack([xs[cand[0]], ys[cand[1]], zs[cand[2]]]).astype(np.float64)
        d, s = self._refine(pts, nearest[cand], k_step)
        hit = d <= self.radius_at(s)
        if self.s_range is not None:
            hit &= (s >= self.s_range[0]) & (s <= self.s_range[1])
        out[tuple(c[hit] for c in cand)] = True
        return out

    def _refine(self, pts: np.ndarray, near: np.ndarray, k_step: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact distance to the fine polyline and arc length of the foot, searching near a coarse sample."""
        best_d = np.full(len(pts), np.inf)
        best_s = np.zeros(len(pts))
        last = len(self.s) - 2
        for off in range(-k_step - 1, k_step + 1):
            i0 = np.clip(near + off, 0, last)
            a, b = self.curve[i0], self.curve[i0 + 1]
            ab = b - a
            t = np.clip(np.einsum("ij,ij->i", pts - a, ab) / np.einsum("ij,ij->i", ab, ab), 0.0, 1.0)
            d = np.linalg.norm(pts - a - t[:, None] * ab, axis=1)
            better = d < best_d
            best_d[better] = d[better]
            best_s[better] = (self.s[i0] + t * (self.s[i0 + 1] - self.s[i0]))[better]
        return best_d, best_s
