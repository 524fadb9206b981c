"""Landmarks for naming roots: spinal canal centre line, root exits (foramina) per side and level, and
the manual landmarks file.

* Canal: cerebrospinal fluid is the brightest large structure on T2 fat-sat / STIR and the only one bright
  at every level. On a coarse RAS grid smoothed at the scale of the dural sac, the z-averaged maximum
  locates the column; per level the centroid of the bright sac near it, fitted by a robust quadratic in z,
  gives the centre line.
* Foramina: just lateral to the canal each root is a bright tube leaving inferolaterally. The tubularity
  maximum in a band beside the canal, as a function of z, peaks once per level; peaks are named C5..T1
  along a regular ladder of levels (one vertebral height apart) after matching left and right into common
  levels; a level missed on one side is searched again near its predicted height.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy import ndimage, signal

from nervemuscle.anatomy import ROOTS, SIDES
from nervemuscle.errors import BadInputError, NotAssessableError
from nervemuscle.nerve.sampling import resample_to_ras_grid, world_box
from nervemuscle.volume import Volume


def _robust_quadratic(z: np.ndarray, values: np.ndarray, iterations: int = 3) -> np.ndarray:
    keep = np.isfinite(values)
    coef = np.zeros(3)
    for _ in range(iterations):
        if keep.sum() < 3:
            break
        coef = np.polyfit(z[keep], values[keep], 2 if keep.sum() >= 6 else 0)
        resid = np.abs(values - np.polyval(coef, z))
        scale = 1.4826 * np.nanmedian(resid[keep]) + 0.5
        keep = np.isfinite(values) & (resid <= 3 * scale)
    return coef


def detect_canal(fluid: Volume, *, step_mm: float = 2.0, sac_sigma_mm: float = 3.0,
                 search_radius_mm: float = 25.0) -> dict:
    """Spinal canal centre line on a fluid-sensitive image.

    The CSF column is bright in nearly every axial level, unlike discs or focal fluid, so its position is
    the maximum of the z-averaged smoothed image; each level then takes the centroid of the bright sac
    within ``search_radius_mm`` of it. Works when the field of view holds one side only.

    Returns
    -------
    dict
        ``{"z_mm": [...], "centre_mm": [[x, y, z], ...], "coef_x": [...], "coef_y": [...]}`` where the
        centre at height z is ``(polyval(coef_x, z), polyval(coef_y, z), z)``.

    Raises
    ------
    NotAssessableError
        No bright column is found.
    """
    lo, hi = world_box(fluid)
    coarse = resample_to_ras_grid(fluid, lo, hi, step_mm)
    data = coarse.data
    smooth = ndimage.gaussian_filter(data, sac_sigma_mm / step_mm)
    xs = coarse.affine[0, 3] + step_mm * np.arange(data.shape[0])
    ys = coarse.affine[1, 3] + step_mm * np.arange(data.shape[1])
    zs = coarse.affine[2, 3] + step_mm * np.arange(data.shape[2])
    nz = data.shape[2]
    column = smooth.mean(axis=2)
    i0, j0 = np.unravel_index(column.argmax(), column.shape)
    near = (xs[:, None] - xs[i0]) ** 2 + (ys[None, :] - ys[j0]) ** 2 <= search_radius_mm**2
    band = np.nonzero(near.any(axis=1))[0]
    sub = np.where(near[..., None], smooth, 0.0)[band]
    xs_band = xs[band]
    peak = sub.reshape(-1, nz).max(axis=0)
    strong = peak > np.percentile(smooth, 99) * 0.5
    if strong.sum() < 3 or not peak.max() > 2.0 * np.median(smooth):
        raise NotAssessableError("spinal canal (bright CSF column) not found on the fluid series")
    # centroid of the bright sac around each slice's maximum (the cord inside it is darker)
    bright = sub >= 0.5 * peak[None, None, :]
    cx = np.full(nz, np.nan)
    cy = np.full(nz, np.nan)
    for k in np.nonzero(strong)[0]:  # one slice at a time; each slice is an array operation
        lab, _ = ndimage.label(bright[..., k])
        i, j = np.unravel_index(sub[..., k].argmax(), sub.shape[:2])
        sac = lab == lab[i, j]
        w = sub[..., k] * sac
        cx[k] = (w.sum(axis=1) * xs_band).sum() / w.sum()
        cy[k] = (w.sum(axis=0) * ys).sum() / w.sum()
    coef_x = _robust_quadratic(zs, cx)
    coef_y = _robust_quadratic(zs, cy)
    centre = np.stack([np.polyval(coef_x, zs), np.polyval(coef_y, zs), zs], axis=1)
    return {"z_mm": zs.tolist(), "centre_mm": centre.round(2).tolist(),
            "coef_x": np.atleast_1d(coef_x).tolist(), "coef_y": np.atleast_1d(coef_y).tolist()}


#: Box beside the canal (mm from the canal axis: lateral, anterior) where roots leave their foramina.
EXIT_LATERAL_MM = (14.0, 26.0)
EXIT_AP_MM = (0.0, 25.0)
#: Root levels are one vertebral height apart (adult cervicothoracic vertebral body + disc: about 15-21 mm);
#: an exit belongs to a level when within LEVEL_TOLERANCE_MM of its height.
LEVEL_SPACING_MM = (12.0, 25.0)
LEVEL_TOLERANCE_MM = 4.5
#: Exits deeper or shallower than the median exit by more than this (mm) are searched again.
EXIT_DEPTH_TOLERANCE_MM = 6.0
#: Ladders explaining at least this fraction of the best one's candidate strength count as equally good.
LADDER_NEAR_BEST = 0.9


def canal_centre(canal: dict, z: np.ndarray | float) -> np.ndarray:
    """Canal centre (x, y, z) at height(s) ``z`` (world mm)."""
    z = np.asarray(z, float)
    return np.stack([np.polyval(canal["coef_x"], z) * np.ones_like(z),
                     np.polyval(canal["coef_y"], z) * np.ones_like(z), z], axis=-1)


def side_sign(side: str) -> float:
    """+1 for the patient's right (+x in RAS), -1 for the left."""
    return 1.0 if side == "right" else -1.0


def _exit_search(response: Volume, image: Volume, canal: dict, side: str, min_signal: float,
                 lateral_mm: tuple[float, float], ap_mm: tuple[float, float]) -> tuple[np.ndarray, tuple]:
    """Tubularity restricted to the exit box beside the canal and to voxels brighter than ``min_signal``;
    returns it with the grid's world coordinates ``(xs, ys, zs)``."""
    aff = response.affine
    step = aff[0, 0]
    shape = response.shape
    xs = aff[0, 3] + step * np.arange(shape[0])
    ys = aff[1, 3] + step * np.arange(shape[1])
    zs = aff[2, 3] + step * np.arange(shape[2])
    centre = canal_centre(canal, zs)  # (nz, 3)
    lateral = side_sign(side) * (xs[:, None] - centre[None, :, 0])  # (nx, nz)
    anterior = ys[:, None] - centre[None, :, 1]  # (ny, nz)
    in_x = (lateral >= lateral_mm[0]) & (lateral <= lateral_mm[1])
    in_y = (anterior >= ap_mm[0]) & (anterior <= ap_mm[1])
    box = in_x[:, None, :] & in_y[None, :, :]
    bright = ndimage.maximum_filter(image.data, size=3) >= min_signal
    return np.where(box & bright, response.data, 0.0), (xs, ys, zs)


def _exit_at(masked: np.ndarray, coords: tuple, k: int) -> dict:
    i, j = np.unravel_index(masked[..., k].argmax(), masked.shape[:2])
    return {"point_mm": [float(coords[0][i]), float(coords[1][j]), float(coords[2][k])],
            "response": float(masked[i, j, k])}


def find_exit_peaks(response: Volume, image: Volume, canal: dict, side: str, *, min_signal: float,
                    lateral_mm: tuple[float, float] = EXIT_LATERAL_MM, ap_mm: tuple[float, float] = EXIT_AP_MM,
                    min_separation_mm: float = 9.0) -> list[dict]:
    """Candidate root exits on one side: peaks along z of the tubularity maximum in a box beside the canal.

    ``response`` and ``image`` share a RAS-aligned grid. Only voxels brighter than ``min_signal`` count
    (a root is brighter than muscle; tissue between dark bones also looks tubular but is not).
    Returns ``[{"point_mm": [x, y, z], "response": r}, ...]``.
    """
    masked, coords = _exit_search(response, image, canal, side, min_signal, lateral_mm, ap_mm)
    profile = masked.reshape(-1, masked.shape[2]).max(axis=0)
    if not profile.any():
        return []
    step = response.affine[0, 0]
    peaks, _ = signal.find_peaks(profile, distance=max(int(min_separation_mm / step), 1),
                                 height=0.25 * profile.max(), prominence=0.1 * profile.max())
    return [_exit_at(masked, coords, k) for k in peaks]


def find_exit_near(response: Volume, image: Volume, canal: dict, side: str, z_mm: float, *, min_signal: float,
                   min_response: float, window_mm: float = LEVEL_TOLERANCE_MM,
                   lateral_mm: tuple[float, float] = EXIT_LATERAL_MM,
                   ap_mm: tuple[float, float] = EXIT_AP_MM) -> dict | None:
    """The strongest exit candidate within ``window_mm`` of height ``z_mm`` on one side, without the peak
    tests of :func:`find_exit_peaks` (a level predicted from its neighbours); None when nothing in the box
    reaches ``min_response``."""
    masked, coords = _exit_search(response, image, canal, side, min_signal, lateral_mm, ap_mm)
    rows = np.nonzero(np.abs(coords[2] - z_mm) <= window_mm)[0]
    if len(rows) == 0:
        return None
    profile = masked[..., rows].reshape(-1, len(rows)).max(axis=0)
    k = rows[int(profile.argmax())]
    found = _exit_at(masked, coords, k)
    return found if found["response"] >= min_response else None


def _levels(exits: dict[str, list[dict]], match_mm: float) -> list[list[tuple[str, dict]]]:
    """Cluster exit candidates of both sides into levels (heights within ``match_mm``, one per side)."""
    items = sorted(((side, c) for side in exits for c in exits[side]), key=lambda sc: -sc[1]["point_mm"][2])
    levels: list[list[tuple[str, dict]]] = []
    for side, cand in items:
        z = cand["point_mm"][2]
        for level in levels:
            zl = np.mean([c["point_mm"][2] for _, c in level])
            if abs(zl - z) <= match_mm and side not in {s for s, _ in level}:
                level.append((side, cand))
                break
        else:
            levels.append([(side, cand)])
    return levels


def level_heights(exits: dict[str, list[dict]], *, match_mm: float = 7.0, min_strength: float = 0.3,
                  spacing_mm: tuple[float, float] = LEVEL_SPACING_MM,
                  tolerance_mm: float = LEVEL_TOLERANCE_MM) -> np.ndarray:
    """Heights (z, mm, cranial first) of the root levels C5..T1 from exit candidates of both sides.

    Root levels are one vertebral height apart, so the levels lie on a ladder ``z_top - k * d``
    (``d`` within ``spacing_mm``). Every ladder through two candidate levels is scored by the summed
    tubularity of the candidates it explains (within ``tolerance_mm``) over five consecutive rungs; the best
    (the most cranial of those within 10% of the best) is refined by least squares. A level missed on both sides is thus
    predicted between its neighbours, and a spurious candidate between two rungs does not shift the names.
    With fewer than two candidate levels, their heights are returned as they are.
    """
    levels = _levels(exits, match_mm)
    if not levels:
        return np.empty(0)
    z = np.array([np.mean([c["point_mm"][2] for _, c in lv]) for lv in levels])
    weight = np.array([sum(c["response"] for _, c in lv) for lv in levels])
    keep = weight >= min_strength * weight.max()
    z, weight = z[keep], weight[keep]
    if len(z) < 2:
        return np.sort(z)[::-1][: len(ROOTS)]
    ladders = []
    for a in range(len(z)):
        for b in range(len(z)):
            if z[b] >= z[a]:
                continue
            for n in range(1, len(ROOTS)):
                d = (z[a] - z[b]) / n
                if not spacing_mm[0] <= d <= spacing_mm[1]:
                    continue
                rung = np.round((z[a] - z) / d).astype(int)  # rung index of each level (0 at z[a], down +)
                on = np.abs(z - (z[a] - rung * d)) <= tolerance_mm
                for top in range(rung[on].min(), rung[on].max() + 1):
                    inside = on & (rung >= top) & (rung < top + len(ROOTS))
                    if not (inside & (rung == top)).any():
                        continue  # the top rung (C5) must hold a candidate
                    ladders.append((weight[inside].sum(), z[a] - top * d, z[a], d, top, inside, rung))
    if not ladders:
        return np.sort(z)[::-1][: len(ROOTS)]
    strongest = max(lad[0] for lad in ladders)
    # the most cranial of the ladders explaining nearly as much as the best (the field of view starts near C4)
    _, _, z_a, d, top, inside, rung = max((lad for lad in ladders if lad[0] >= LADDER_NEAR_BEST * strongest),
                                          key=lambda lad: (lad[1], lad[0]))
    k = rung[inside] - top
    if len(np.unique(k)) >= 2:  # least-squares ladder through the explained levels
        slope, intercept = np.polyfit(k, z[inside], 1)
        if spacing_mm[0] <= -slope <= spacing_mm[1]:
            return intercept + slope * np.arange(len(ROOTS))
    return z_a - (top + np.arange(len(ROOTS))) * d


#: A candidate level on the ladder's extension (one rung above C5 or below T1) makes the names ambiguous when
#: its strength is at least this fraction of the median strength of the named levels.
EXTRA_LEVEL_STRENGTH = 0.5


def levels_beyond(exits: dict[str, list[dict]], heights: np.ndarray, *, match_mm: float = 7.0,
                  tolerance_mm: float = LEVEL_TOLERANCE_MM,
                  min_fraction: float = EXTRA_LEVEL_STRENGTH) -> list[float]:
    """Heights (mm) of candidate levels lying one rung above the first or below the last of ``heights``.

    Without a vertebra counted, five root levels are named C5..T1 only because they are the five found;
    a sixth level of comparable strength on the same ladder (a C4 or T2 root, both present in real anatomy)
    means the field of view holds more than five root levels and the names cannot be told from the roots
    alone. Returns the heights of such levels (strength: summed tubularity of both sides, at least
    ``min_fraction`` of the median of the named levels).
    """
    if len(heights) < len(ROOTS):
        return []
    levels = _levels(exits, match_mm)
    z = np.array([np.mean([c["point_mm"][2] for _, c in lv]) for lv in levels])
    weight = np.array([sum(c["response"] for _, c in lv) for lv in levels])
    named = [weight[np.abs(z - h) <= tolerance_mm].max() for h in heights if (np.abs(z - h) <= tolerance_mm).any()]
    if not named:
        return []
    d = (heights[0] - heights[-1]) / (len(heights) - 1)
    beyond = []
    for h in (heights[0] + d, heights[-1] - d):
        near = np.abs(z - h) <= tolerance_mm
        if near.any() and weight[near].max() >= min_fraction * float(np.median(named)):
            beyond.append(float(z[near][np.argmax(weight[near])]))
    return beyond


def name_levels(exits: dict[str, list[dict]], heights: np.ndarray, *,
                tolerance_mm: float = LEVEL_TOLERANCE_MM) -> dict[str, dict]:
    """Name exit candidates C5..T1: at each level height (from :func:`level_heights`) the strongest
    candidate of each side within ``tolerance_mm``.

    Returns ``{"C5_left": {"point_mm": ..., "response": ...}, ...}``; a level without a candidate on a
    side is absent for that side.
    """
    named = {}
    for segment, z in zip(ROOTS, heights):
        for side in exits:
            near = [c for c in exits[side] if abs(c["point_mm"][2] - z) <= tolerance_mm]
            if near:
                named[f"{segment}_{side}"] = max(near, key=lambda c: c["response"])
    return named


def align_exit_depths(named: dict[str, dict], response: Volume, image: Volume, canal: dict, *, min_signal: float,
                      tolerance_mm: float = EXIT_DEPTH_TOLERANCE_MM) -> dict[str, dict]:
    """Re-search exits lying far in front of or behind the others.

    The foramina of C5..T1 line up at about the same depth relative to the canal, so an exit whose
    anterior offset differs from the median of the exits (with at least 4 of them) by more than
    ``tolerance_mm`` has picked another tubular structure (a vessel, a facet joint); it is searched again at
    its level within ``tolerance_mm`` of that median depth, and kept as it was when nothing is found there.
    """
    if len(named) < 4:
        return named
    depth = {key: c["point_mm"][1] - canal_centre(canal, c["point_mm"][2])[1] for key, c in named.items()}
    usual = float(np.median(list(depth.values())))
    out = dict(named)
    for key, cand in named.items():
        if abs(depth[key] - usual) <= tolerance_mm:
            continue
        again = find_exit_near(response, image, canal, key.split("_")[1], cand["point_mm"][2], min_signal=min_signal,
                               min_response=0.0, window_mm=3.0,
                               ap_mm=(usual - tolerance_mm, usual + tolerance_mm))
        if again is not None and again["response"] > 0:
            out[key] = {**again, "predicted": cand.get("predicted", False)}
    return out


def load_landmarks(path: str | Path) -> dict:
    """Read a landmarks JSON file ``{"roots": {"C5_left": [[x, y, z], ...], ...}}`` (world RAS+ mm).

    One point seeds the automatic tracking of that root; two or more points are taken as its centerline
    (from the foramen outwards). Raises :class:`BadInputError` naming the file and the problem.
    """
    path = Path(path)
    try:
        content = json.loads(path.read_text())
    except FileNotFoundError:
        raise BadInputError("landmarks file not found", path) from None
    except (OSError, ValueError) as exc:
        raise BadInputError(f"unreadable landmarks JSON ({exc.__class__.__name__}: {exc})", path) from None
    return validate_landmarks(content, path)


def validate_landmarks(content: object, path: str | Path | None = None) -> dict:
    """Check the structure of landmarks (see :func:`load_landmarks`); returns ``{"roots": {...}}``."""
    if not isinstance(content, dict) or not isinstance(content.get("roots"), dict):
        raise BadInputError('landmarks must be an object with a "roots" mapping', path)
    valid = {f"{r}_{s}" for r in ROOTS for s in SIDES}
    roots = {}
    for key, points in content["roots"].items():
        if key not in valid:
            raise BadInputError(f"unknown root {key!r} in landmarks (expected e.g. 'C5_left')", path)
        try:
            arr = np.asarray(points, dtype=float)
        except (TypeError, ValueError):
            arr = np.empty(0)
        if arr.ndim != 2 or arr.shape[1] != 3 or len(arr) == 0 or not np.isfinite(arr).all():
            raise BadInputError(f"root {key}: expected a list of [x, y, z] points in mm", path)
        roots[key] = arr.tolist()
    return {"roots": roots}
