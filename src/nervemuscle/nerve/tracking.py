"""Following a root from a seed along the ridge of the tubularity map (step-wise tracking).

Each step predicts ``p + step * d``, re-centres the prediction on the tubularity ridge within a small disc
perpendicular to ``d`` and accepts it if the turn stays below ``max_turn_deg`` (about 70 degrees per
2.5 mm at most in cadaver roots, Wade 2020). A refused step (faint response, sharp turn, wrong heading)
is bridged by coasting straight on; several in a row, or the edge of the image, end the track. The loop runs over steps (tens per root); every step works on arrays.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import ndimage
from skimage.graph import MCP_Geometric

from nervemuscle.nerve.sampling import perpendicular_basis, sample_world
from nervemuscle.volume import Volume


@lru_cache(maxsize=8)
def _disc_offsets(radius_mm: float, pixel_mm: float) -> np.ndarray:
    ticks = np.arange(-radius_mm, radius_mm + pixel_mm / 2, pixel_mm)
    uu, vv = np.meshgrid(ticks, ticks, indexing="ij")
    keep = np.hypot(uu, vv) <= radius_mm
    return np.stack([uu[keep], vv[keep]], axis=1)


def recentre(response: Volume, point: np.ndarray, direction: np.ndarray, *, radius_mm: float = 2.5,
             pixel_mm: float = 0.5) -> tuple[np.ndarray, float]:
    """Move ``point`` to the response-weighted centre of the ridge in the plane perpendicular to
    ``direction``; returns the new point and the response there."""
    offsets = _disc_offsets(radius_mm, pixel_mm)
    u, v = perpendicular_basis(direction)
    pts = point + offsets[:, :1] * u + offsets[:, 1:] * v
    vals = sample_world(response, pts, cval=0.0)
    top = vals.max()
    if top <= 0:
        return np.asarray(point, float), 0.0
    w = np.clip(vals - 0.5 * top, 0, None)
    new = (w[:, None] * pts).sum(axis=0) / w.sum()
    value = float(sample_world(response, new[None], cval=0.0)[0])
    return new, value


def track(
    response: Volume,
    start: np.ndarray,
    direction: np.ndarray,
    *,
    step_mm: float = 1.0,
    max_length_mm: float = 60.0,
    max_turn_deg: float = 70.0,
    min_response: float = 0.0,
    patience: int = 3,
    turn_rate: float = 0.3,
    search_mm: float = 2.0,
    keep_going=None,
) -> np.ndarray:
    """Track a ridge of ``response`` from ``start`` (world mm) in ``direction``.

    Parameters
    ----------
    response : Volume
        Tubularity map (bright ridge along the root).
    start, direction : (3,) ndarray
        Seed point (world mm) and initial direction.
    step_mm, max_length_mm : float
        Step and maximum tracked length.
    max_turn_deg : float
        Largest accepted turn per step.
    min_response : float
        Where the response is below this, the turn is sharper than ``max_turn_deg`` or ``keep_going``
        refuses, the track coasts straight on; after ``patience`` such steps in a row it ends (those steps
        are dropped).
    turn_rate : float
        Fraction of each step's new direction mixed into the running direction (momentum against
        neighbouring ridges).
    search_mm : float
        Radius of the re-centring disc.
    keep_going : callable, optional
        ``keep_going(point, direction) -> bool``; False refuses the step (e.g. back into the spinal canal).

    Returns
    -------
    (N, 3) ndarray
        Centerline points in world mm, starting at (the re-centred) ``start``.
    """
    d = np.asarray(direction, float)
    d /= np.linalg.norm(d)
    p, _ = recentre(response, np.asarray(start, float), d, radius_mm=search_mm)
    points = [p]
    weak = 0
    cos_limit = np.cos(np.deg2rad(max_turn_deg))
    for _ in range(int(max_length_mm / step_mm)):
        ahead = p + step_mm * d
        q, value = recentre(response, ahead, d, radius_mm=search_mm)
        move = q - p
        norm = max(float(np.linalg.norm(move)), 1e-9)
        new_d = move / norm
        accepted = (value >= min_response and new_d @ d >= cos_limit
                    and (keep_going is None or keep_going(q, new_d)))
        if not accepted:
            # a gap (the root between two thick slices) or a pull towards a neighbour: coast straight on
            weak += 1
            if weak >= patience:
                del points[-(patience - 1):]
                break
            p = ahead
            points.append(p)
            continue
        weak = 0
        # keep steps of about step_mm along the smoothed direction
        d = (1.0 - turn_rate) * d + turn_rate * new_d
        d /= np.linalg.norm(d)
        p = p + step_mm * new_d
        points.append(p)
    return np.array(points)


def minimal_path(response: Volume, start: np.ndarray, box_lo: np.ndarray, box_hi: np.ndarray,
                 is_end, *, floor_fraction: float = 0.05) -> np.ndarray | None:
    """Cheapest path (geodesic minimal path, Dijkstra on the voxel graph) from ``start`` to the end region.

    Used where step-wise tracking gives up (a root crossing thick slices fades and reappears): the cost
    of a voxel is ``1 / (response + floor)``, so the path prefers the ridge but can bridge faint parts.

    Parameters
    ----------
    response : Volume
        Tubularity map on a RAS-aligned grid.
    start : (3,) ndarray
        World mm.
    box_lo, box_hi : (3,) ndarray
        World box (mm) the path may use.
    is_end : callable
        ``is_end(points (N, 3) world mm) -> bool array``: the end region.
    floor_fraction : float
        ``floor`` as a fraction of the largest response in the box.

    Returns
    -------
    (N, 3) ndarray or None
        World points from ``start`` to the cheapest end, lightly smoothed; None when the box holds no end.
    """
    lo = np.clip(np.floor(response.world_to_voxel(np.minimum(box_lo, box_hi)[None])[0]), 0, None).astype(int)
    hi = np.minimum(np.ceil(response.world_to_voxel(np.maximum(box_lo, box_hi)[None])[0]).astype(int) + 1,
                    response.shape)
    if np.any(hi - lo < 2):
        return None
    sub = response.data[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    costs = 1.0 / (np.clip(sub, 0, None) + floor_fraction * max(float(sub.max()), 1e-6))
    idx = np.indices(sub.shape).reshape(3, -1).T
    world = response.voxel_to_world(idx + lo)
    ends = idx[is_end(world)]
    begin = np.clip(np.round(response.world_to_voxel(np.asarray(start, float)[None])[0]).astype(int) - lo,
                    0, np.array(sub.shape) - 1)
    if len(ends) == 0:
        return None
    mcp = MCP_Geometric(costs, sampling=tuple(np.abs(np.diag(response.affine)[:3])))
    cumulative, _ = mcp.find_costs([tuple(begin)])
    best = ends[np.argmin(cumulative[tuple(ends.T)])]
    path = np.array(mcp.traceback(tuple(best)), float) + lo
    points = response.voxel_to_world(path)
    if len(points) > 3:
        points = ndimage.gaussian_filter1d(points, 1.0, axis=0, mode="nearest")
    return points


def resample_polyline(points: np.ndarray, step_mm: float = 1.0) -> np.ndarray:
    """Points every ``step_mm`` along a polyline (N, 3), first and last kept."""
    pts = np.asarray(points, float)
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    if s[-1] == 0:
        return pts[:1]
    targets = np.arange(0.0, s[-1] + 1e-9, step_mm)
    return np.stack([np.interp(targets, s, pts[:, a]) for a in range(3)], axis=1)


def arc_length(points: np.ndarray) -> np.ndarray:
    """Cumulative length (mm) at each point of a polyline."""
    pts = np.asarray(points, float)
    return np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
