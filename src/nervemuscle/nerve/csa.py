"""Cross-sectional area (CSA) and signal of a root along its centerline, corrected for blur.

Each centerline point gets a plane perpendicular to the local tangent, resampled from the image in
world mm (0.25 mm pixels). In the plane the root is the bright blob at the centre:

1. a first background guess (darkest fifth of the neighbourhood) gives a half-maximum blob; the local
   background ``b`` is then the median of a thin ring just outside the blob's blurred edge;
2. the half-maximum region between ``b`` and the peak (connected to the centre) has an equivalent radius
   ``r_hm``;
3. the image is the true disc (radius ``r``, contrast ``c``) blurred by the point spread function (PSF)
   of the grid: box voxel plus linear interpolation, ``sigma_a**2 = spacing_a**2 / 4`` per voxel axis,
   projected into the plane (``s**2`` = half its trace). For a disc blurred by an isotropic Gaussian the
   profile is ``1 - Q1(rho / s, r / s)`` (Marcum Q), so ``r_hm`` is a known increasing function of ``r``
   which is inverted from a table; the blurred peak is ``c (1 - exp(-r**2 / 2 s**2))``, which gives the
   unblurred signal ``b + c``.

Half-maximum contours depend only on the image near the root, so muscles or vessels a few mm away do not
bias the result (intensity moments, which are exact in theory, were too sensitive to them).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage, stats

from nervemuscle.nerve.sampling import perpendicular_basis, sample_world
from nervemuscle.volume import Volume


@dataclass
class CrossSections:
    """Per-point measurements along a centerline (arrays of length N, NaN where not measurable)."""

    points_mm: np.ndarray        # (N, 3) re-centred points, world mm
    tangents: np.ndarray         # (N, 3) unit tangents
    csa_mm2: np.ndarray          # blur-corrected CSA
    csa_half_max_mm2: np.ndarray  # area of the half-maximum region as seen (blurred)
    signal: np.ndarray           # unblurred root signal (background + contrast)
    background: np.ndarray


def psf_covariance(volume: Volume) -> np.ndarray:
    """World (3, 3) covariance (mm^2) of the effective point spread function of a linearly
    interpolated voxel grid: box voxel (``s**2 / 12``) plus linear interpolation (``s**2 / 6``)."""
    rot = volume.affine[:3, :3] / volume.spacing
    return rot @ np.diag(volume.spacing**2 / 4.0) @ rot.T


def blurred_disc_profile(rho: np.ndarray, radius: float) -> np.ndarray:
    """Unit disc of ``radius`` blurred by a unit isotropic 2-D Gaussian, at distances ``rho`` (units of sigma).

    The value is the probability that a 2-D normal variable centred at distance ``rho`` falls in the
    disc: a non-central chi-square (2 degrees of freedom) distribution function.
    """
    return stats.ncx2.cdf(radius**2, 2, np.asarray(rho, float) ** 2)


@lru_cache(maxsize=1)
def half_max_table() -> tuple[np.ndarray, np.ndarray]:
    """``(r_hm / s, r / s)``: half-maximum radius of a blurred disc against its true radius (units of the blur)."""
    radii = np.concatenate([np.linspace(0.05, 1.0, 40), np.linspace(1.02, 12.0, 200)])
    rho = np.linspace(0.0, 14.0, 1401)
    prof = blurred_disc_profile(rho[None, :], radii[:, None])
    half = 0.5 * prof[:, :1]
    k = (prof >= half).sum(axis=1)  # profiles decrease with rho: first index below half
    rows = np.arange(len(radii))
    p0, p1 = prof[rows, k - 1], prof[rows, k]
    r_hm = rho[k - 1] + (p0 - half[:, 0]) / (p0 - p1) * (rho[k] - rho[k - 1])
    return r_hm, radii


def deblur_radius(r_hm: float, blur: float) -> float:
    """True disc radius from the half-maximum radius ``r_hm`` under Gaussian blur ``blur`` (mm)."""
    table_hm, table_r = half_max_table()
    x = r_hm / blur
    if x <= table_hm[0]:
        return float(table_r[0] * blur)
    if x >= table_hm[-1]:
        return float(r_hm)
    return float(np.interp(x, table_hm, table_r) * blur)


def centerline_tangents(points: np.ndarray, smooth_mm: float = 3.0) -> np.ndarray:
    """Unit tangents of a polyline (N, 3), smoothed over about ``smooth_mm``."""
    pts = np.asarray(points, float)
    if len(pts) < 2:
        raise ValueError("a centerline needs at least 2 points")
    step = np.median(np.linalg.norm(np.diff(pts, axis=0), axis=1))
    sigma = max(smooth_mm / max(step, 1e-6), 0.5)
    smooth = ndimage.gaussian_filter1d(pts, sigma, axis=0, mode="nearest")
    t = np.gradient(smooth, axis=0)
    return t / np.linalg.norm(t, axis=1, keepdims=True)


def _elongation(blob: np.ndarray, uu: np.ndarray, vv: np.ndarray) -> float:
    """Ratio of the principal standard deviations of a binary region."""
    u, v = uu[blob], vv[blob]
    if len(u) < 3:
        return 1.0
    lam = np.linalg.eigvalsh(np.cov(np.stack([u, v])))
    return float(np.sqrt(lam[1] / max(lam[0], 1e-9)))


def _expected_elongation(radius: float, psf_plane: np.ndarray) -> float:
    """Elongation of a blurred disc: disc variance ``r**2 / 4`` plus the in-plane PSF covariance."""
    lam = np.linalg.eigvalsh(psf_plane)
    return float(np.sqrt((radius**2 / 4 + lam[1]) / (radius**2 / 4 + lam[0])))


def _centre_blob(filled: np.ndarray, level: float, core: np.ndarray) -> np.ndarray:
    lab, _ = ndimage.label(filled > level)
    ids = np.unique(lab[core])
    return np.isin(lab, ids[ids > 0])


def cross_sections(
    volume: Volume,
    points: np.ndarray,
    *,
    tangents: np.ndarray | None = None,
    radius_mm: float = 9.0,
    pixel_mm: float = 0.25,
    neighbourhood_mm: float = 7.0,
    ring_width_mm: float = 1.5,
    max_elongation: float = 1.4,
) -> CrossSections:
    """Measure CSA and signal on planes perpendicular to the centerline at each of ``points``.

    Parameters
    ----------
    volume : Volume
        The fluid-sensitive image (root bright).
    points : (N, 3) ndarray
        Centerline points in world mm.
    tangents : (N, 3) ndarray, optional
        Unit tangents; estimated from ``points`` when omitted.
    radius_mm, pixel_mm : float
        Half-width and pixel size of the sampled planes.
    neighbourhood_mm : float
        Radius used for the first background guess (its darkest fifth).
    ring_width_mm : float
        Width of the ring just outside the blurred root edge whose median is the local background.
    max_elongation : float
        A half-maximum region more elongated than this factor times that of a blurred disc touches a
        neighbour; the plane is left unmeasured (NaN).

    Returns
    -------
    CrossSections
    """
    pts = np.asarray(points, float)
    tangents = centerline_tangents(pts) if tangents is None else np.asarray(tangents, float)
    ticks = np.arange(-radius_mm, radius_mm + pixel_mm / 2, pixel_mm)
    uu, vv = np.meshgrid(ticks, ticks, indexing="ij")
    rr = np.hypot(uu, vv)
    bases = np.array([np.stack(perpendicular_basis(t)) for t in tangents])  # (N, 2, 3)
    grid = pts[:, None, None, :] + uu[None, ..., None] * bases[:, None, None, 0] + vv[None, ..., None] * bases[:, None, None, 1]
    planes = sample_world(volume, grid)  # (N, n, n)
    cov = psf_covariance(volume)
    n = len(pts)
    csa = np.full(n, np.nan)
    csa_hm = np.full(n, np.nan)
    signal = np.full(n, np.nan)
    background = np.full(n, np.nan)
    centres = pts.copy()
    core = rr <= 1.5
    near = rr <= neighbourhood_mm
    pix_area = pixel_mm**2
    for i in range(n):  # one plane at a time; each plane is processed with array operations
        plane = planes[i]
        if np.isnan(plane[core]).any() or np.isnan(plane[near]).mean() > 0.3:
            continue
        filled = np.nan_to_num(plane, nan=np.nanmedian(plane[near]))
        basis = bases[i]
        blur = np.sqrt(float(np.trace(basis @ cov @ basis.T)) / 2.0)
        b = np.percentile(filled[near], 20)
        peak = filled[core].max()
        if not peak > b:
            continue
        blob = _centre_blob(filled, b + 0.5 * (peak - b), core)
        w = (filled - b) * blob
        cu, cv = (w * uu).sum() / w.sum(), (w * vv).sum() / w.sum()
        dist = np.hypot(uu - cu, vv - cv)
        r_hm = np.sqrt(blob.sum() * pix_area / np.pi)
        ring = (dist >= r_hm + 2.0 * blur) & (dist <= r_hm + 2.0 * blur + ring_width_mm)
        b = float(np.median(filled[ring]))
        peak = float(np.percentile(filled[dist <= 0.75], 75))
        background[i] = b
        if not peak > b:
            continue
        blob = _centre_blob(filled, b + 0.5 * (peak - b), dist <= 0.75)
        csa_hm[i] = blob.sum() * pix_area
        r = deblur_radius(np.sqrt(csa_hm[i] / np.pi), blur)
        if _elongation(blob, uu, vv) > max_elongation * _expected_elongation(r, basis @ cov @ basis.T):
            continue  # the blob runs into a neighbour (another root, a vessel): not a clean cross-section
        csa[i] = np.pi * r**2
        signal[i] = b + (peak - b) / (1.0 - np.exp(-0.5 * (r / blur) ** 2))
        centres[i] = pts[i] + cu * basis[0] + cv * basis[1]
    return CrossSections(centres, tangents, csa, csa_hm, signal, background)
