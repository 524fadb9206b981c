"""Cross-sectional area (CSA) and signal of a root along its centerline, corrected for blur.

Each centerline point gets a plane perpendicular to the local tangent, resampled from the image in
world mm (0.3 mm pixels). In the plane the root is the bright blob at the centre:

1. a first background guess (darkest fifth of the neighbourhood) gives a half-maximum blob; the local
   background ``b`` is then the median of a thin ring just outside the blob's blurred edge;
2. the half-maximum region between ``b`` and the peak (connected to the centre) has an equivalent radius
   ``r_hm``;
3. the image is the true disc (radius ``r``, contrast ``c``) blurred by the point spread function (PSF)
   of the grid: voxel plus linear interpolation, ``sigma_a**2 = spacing_a**2 / PSF_VARIANCE_DIVISOR``,
   projected into the plane (an ellipse: thick slices blur one in-plane direction much more). A table of
   blurred discs (half-maximum area and peak against radius and PSF aspect ratio; profiles computed by
   1-D integrals of the Gaussian over disc chords) is inverted for ``r``; the blurred peak fraction then
   gives the unblurred signal ``b + c``.

Half-maximum contours depend only on the image near the root, so muscles or vessels a few mm away do not
bias the result (intensity moments, which are exact in theory, were too sensitive to them).

Thick slices: when the in-plane PSF is strongly anisotropic (a 2D series with slices much thicker than its
pixels; PSF aspect >= ``ANISOTROPIC_ASPECT``), the half-maximum extent along the blurred direction depends on
where the root lies between slices and the half-maximum area is unreliable. The radius is then taken from the
well-resolved direction: the profile along the fine PSF axis through the central chord (background: the
darker of its two flanks just beyond the blurred root) has a half-maximum half-width that is inverted for
``r`` with the same blurred-disc model (a table of the fine-axis half-width against radius and PSF aspect; it
depends only mildly on the blur across it). The root is taken as round (CSA ``pi r**2``). The blur actually
present across the slices is measured in the plane (half-width of the profile across the root) and gives the
peak fraction that restores the root's contrast.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage, special

from nervemuscle.nerve.sampling import perpendicular_basis, sample_world
from nervemuscle.volume import Volume


#: PSF variance per voxel axis is ``spacing**2 / PSF_VARIANCE_DIVISOR``. Theory for a box voxel plus linear
#: interpolation gives 4; 5 is calibrated on the phantom (slice profile thinner than the slice spacing,
#: 2-3 point partial-volume sampling) and brought the T2 fat-sat CSA bias from -10% to -2%. Real scanners
#: have other PSFs: recalibrate on a phantom scan of the site's protocol.
PSF_VARIANCE_DIVISOR = 5.0


@dataclass
class CrossSections:
    """Per-point measurements along a centerline (arrays of length N, NaN where not measurable)."""

    points_mm: np.ndarray        # (N, 3) re-centred points, world mm
    tangents: np.ndarray         # (N, 3) unit tangents
    csa_mm2: np.ndarray          # blur-corrected CSA
    csa_half_max_mm2: np.ndarray  # area of the half-maximum region as seen (blurred)
    signal: np.ndarray           # unblurred root signal (background + contrast)
    background: np.ndarray
    peak_fraction: np.ndarray    # blurred peak / true contrast (1 = no blur loss; small = ill-conditioned)


def psf_covariance(volume: Volume) -> np.ndarray:
    """World (3, 3) covariance (mm^2) of the effective point spread function of a linearly
    interpolated voxel grid, ``s**2 / PSF_VARIANCE_DIVISOR`` along each voxel axis."""
    rot = volume.affine[:3, :3] / volume.spacing
    return rot @ np.diag(volume.spacing**2 / PSF_VARIANCE_DIVISOR) @ rot.T


def blurred_disc_profile(x: np.ndarray, radius: float, along: float, across: float) -> np.ndarray:
    """Unit disc of ``radius`` blurred by a 2-D Gaussian with widths ``along`` (the axis of ``x``) and
    ``across``, evaluated on that axis at distances ``x`` from the centre."""
    t = np.linspace(-radius, radius, 81)
    half_chord = np.sqrt(np.clip(radius**2 - t**2, 0, None))
    weight = np.exp(-0.5 * (t / across) ** 2) / (np.sqrt(2 * np.pi) * across)
    x = np.asarray(x, float)[:, None]
    inside = special.ndtr((x + half_chord) / along) - special.ndtr((x - half_chord) / along)
    return np.trapezoid(weight * inside, t, axis=1)


#: Aspect ratios (major / minor PSF width) and disc radii (units of the minor width) of the lookup table.
TABLE_ASPECTS = np.array([1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.5])
TABLE_RADII = np.concatenate([np.linspace(0.1, 1.0, 10), np.linspace(1.2, 4.0, 15), np.linspace(4.5, 16.0, 14)])


#: PSF aspect ratio (major / minor width in the measuring plane) from which the radius is measured along the
#: fine direction only (see the module docstring).
ANISOTROPIC_ASPECT = 2.0
#: Fine-axis profile through the centre: half-width (mm) of the band across it that is averaged, and width (mm)
#: of the flanks beside the blurred root whose median is its background.
CENTRE_BAND_MM = 0.6
FLANK_MM = 1.5
FLANK_GAP_SIGMAS = 2.5


def _half_width(profile: np.ndarray, x: np.ndarray) -> float:
    half = 0.5 * profile[0]
    k = int((profile >= half).sum())
    return float(x[k - 1] + (profile[k - 1] - half) / (profile[k - 1] - profile[k]) * (x[k] - x[k - 1]))


@lru_cache(maxsize=1)
def half_max_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Half-maximum area, peak fraction and fine-axis half-width of blurred discs.

    Returns ``(area, peak, fine_half_width)``, each ``(len(TABLE_ASPECTS), len(TABLE_RADII))``: the area
    (units of the minor PSF width squared) of the half-maximum region, approximated by the ellipse through
    the half-maximum points of the two principal axes (exact for isotropic blur), the blurred value at the
    centre, and the half-maximum half-width along the minor (fine) PSF axis through the centre.
    """
    area = np.empty((len(TABLE_ASPECTS), len(TABLE_RADII)))
    peak = np.empty_like(area)
    fine = np.empty_like(area)
    for i, q in enumerate(TABLE_ASPECTS):
        for j, r in enumerate(TABLE_RADII):
            xa = np.linspace(0.0, r + 5 * q, 160)
            xb = np.linspace(0.0, r + 5.0, 160)
            pa = blurred_disc_profile(xa, r, q, 1.0)
            pb = blurred_disc_profile(xb, r, 1.0, q)
            fine[i, j] = _half_width(pb, xb)
            area[i, j] = np.pi * _half_width(pa, xa) * fine[i, j]
            peak[i, j] = pa[0]
    return area, peak, fine


def _aspect(psf_plane: np.ndarray) -> float:
    """Ratio of the major to the minor PSF width in the plane."""
    lam = np.linalg.eigvalsh(psf_plane)
    return float(np.sqrt(lam[1] / max(lam[0], 1e-12)))


def _table_rows(psf_plane: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """Minor PSF width (mm) and the table rows (half-maximum area, peak, fine half-width) interpolated at
    the PSF aspect."""
    minor = float(np.sqrt(max(np.linalg.eigvalsh(psf_plane)[0], 1e-6)))
    aspect = float(np.clip(_aspect(psf_plane), TABLE_ASPECTS[0], TABLE_ASPECTS[-1]))
    i = int(np.clip(np.searchsorted(TABLE_ASPECTS, aspect) - 1, 0, len(TABLE_ASPECTS) - 2))
    f = (aspect - TABLE_ASPECTS[i]) / (TABLE_ASPECTS[i + 1] - TABLE_ASPECTS[i])
    return (minor, *((1 - f) * table[i] + f * table[i + 1] for table in half_max_table()))


def deblur(area_hm: float, psf_plane: np.ndarray) -> tuple[float, float]:
    """True disc radius (mm) and blurred peak fraction from the half-maximum area ``area_hm`` (mm^2)
    under the in-plane PSF covariance ``psf_plane`` (2, 2)."""
    minor, area_row, peak_row, _ = _table_rows(psf_plane)
    x = area_hm / minor**2
    r = float(np.interp(x, area_row, TABLE_RADII))
    if x > area_row[-1]:  # far larger than the blur: the half-maximum area is the disc
        r = float(np.sqrt(area_hm / np.pi) / minor)
    return r * minor, float(np.interp(r, TABLE_RADII, peak_row))


def blurred_peak_fraction(radius: float, psf_plane: np.ndarray) -> float:
    """Centre value of a unit disc of ``radius`` (mm) blurred by the in-plane PSF covariance ``psf_plane``."""
    minor, _, peak_row, _ = _table_rows(psf_plane)
    return float(np.interp(radius / minor, TABLE_RADII, peak_row))


def _profile(values: np.ndarray, position: np.ndarray, mask: np.ndarray, pixel_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``values[mask]`` in bins of ``pixel_mm`` along ``position``: ``(bin centres, means)``."""
    bins = np.round(position[mask] / pixel_mm).astype(int)
    first = bins.min()
    counts = np.bincount(bins - first)
    sums = np.bincount(bins - first, weights=values[mask])
    seen = counts > 0
    return (np.arange(len(counts))[seen] + first) * pixel_mm, sums[seen] / counts[seen]


def half_max_half_width(profile: np.ndarray, x: np.ndarray) -> tuple[float, float]:
    """Peak near ``x = 0`` and the half-width of the profile at half that peak (linear interpolation of
    both crossings); ``(peak, nan)`` when it does not fall to half on both sides."""
    centre = int(np.argmin(np.abs(x)))
    peak = float(np.max(profile[max(centre - 2, 0): centre + 3]))
    below = profile < 0.5 * peak
    right = np.nonzero(below[centre:])[0]
    left = np.nonzero(below[: centre + 1][::-1])[0]
    if not peak > 0 or len(right) == 0 or len(left) == 0:
        return peak, float("nan")

    def crossing(k_in: int, k_out: int) -> float:
        f = (profile[k_in] - 0.5 * peak) / (profile[k_in] - profile[k_out])
        return float(x[k_in] + f * (x[k_out] - x[k_in]))

    hi = crossing(centre + right[0] - 1, centre + right[0])
    lo = crossing(centre - left[0] + 1, centre - left[0])
    return peak, 0.5 * (hi - lo)


@lru_cache(maxsize=1)
def projected_disc_table() -> tuple[np.ndarray, np.ndarray]:
    """Half-maximum half-width of a disc projected onto a line (``2 sqrt(r**2 - x**2)``) and blurred by a
    unit Gaussian, against the radius: ``(radii, half_widths)`` in units of the Gaussian width. Radii stop
    at 4 widths, where the half-width relative to the radius stops falling (0.82; 0.87 without blur)."""
    radii = np.concatenate([np.linspace(0.1, 2.0, 20), np.linspace(2.25, 4.0, 8)])
    x = np.linspace(-45.0, 45.0, 9001)
    kernel = np.exp(-0.5 * x[np.abs(x) <= 6.0] ** 2)
    widths = []
    for r in radii:
        chord = np.convolve(2.0 * np.sqrt(np.clip(r**2 - x**2, 0, None)), kernel / kernel.sum(), mode="same")
        widths.append(half_max_half_width(chord, x)[1])
    return radii, np.array(widths)


def _thick_slice_measurement(filled: np.ndarray, du: np.ndarray, dv: np.ndarray, r: float, psf_plane: np.ndarray,
                             pixel_mm: float) -> tuple[float, float, float, float] | None:
    """Radius, peak fraction, background and contrast of a root in a plane with strongly anisotropic blur.

    ``du, dv``: plane coordinates (mm) relative to the blob centre; ``r``: first radius guess. The radius
    comes from the profile along the fine PSF axis through the central chord (background: the darker of
    its two flanks); the blur actually present across it (which depends on where the root lies between
    slices) from the half-width of the profile across, summed over the root's width; the contrast is the
    central peak above background divided by the peak fraction of a disc under that blur.
    """
    lam, vec = np.linalg.eigh(psf_plane)
    fine, coarse = float(np.sqrt(lam[0])), float(np.sqrt(lam[1]))
    a = du * vec[0, 0] + dv * vec[1, 0]  # along the fine direction
    c = du * vec[0, 1] + dv * vec[1, 1]  # along the blurred direction
    # the central chord is where the signal summed along the fine direction peaks across it (the blob
    # centroid is off-centre across the blur when the root lies between slices)
    across, summed = _profile(filled, c, (np.abs(a) <= r + fine) & (np.abs(c) <= r + 3.0 * coarse), pixel_mm)
    c_best = float(across[np.argmax(ndimage.uniform_filter1d(summed, 3))])
    reach = r + FLANK_GAP_SIGMAS * fine  # the blurred root along the fine direction; beyond it, the flanks
    band = (np.abs(c - c_best) <= CENTRE_BAND_MM) & (np.abs(a) <= reach + FLANK_MM)
    along, profile = _profile(filled, a, band, pixel_mm)
    left, right = along < -reach, along > reach
    if left.sum() < 2 or right.sum() < 2:
        return None
    # local background: the darker flank (the other may hold a neighbouring muscle or vessel)
    b = float(min(np.median(profile[left]), np.median(profile[right])))
    peak, half = half_max_half_width(profile - b, along)
    if not np.isfinite(half):
        return None
    minor, _, _, fine_row = _table_rows(psf_plane)
    r = half if half / minor > fine_row[-1] else float(np.interp(half / minor, fine_row, TABLE_RADII) * minor)
    # blur across from the half-width of the across profile (a blurred projected disc)
    _, half_across = half_max_half_width(summed - b, across - c_best)
    radii, widths = projected_disc_table()
    effective = coarse
    if np.isfinite(half_across) and half_across > 0:
        rho = np.interp(-half_across / r, -(widths / radii), radii)  # half-width / r falls as r / sigma grows
        effective = float(np.clip(r / rho, 0.5 * coarse, 2.0 * coarse))
    fraction = blurred_peak_fraction(r, vec @ np.diag([fine**2, effective**2]) @ vec.T)
    return r, fraction, b, peak / fraction


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
    radius_mm: float = 8.0,
    pixel_mm: float = 0.3,
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
    fraction = np.full(n, np.nan)
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
        psf_plane = basis @ cov @ basis.T
        blur = float(np.sqrt(np.linalg.eigvalsh(psf_plane)[1]))
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
        r, peak_fraction = deblur(csa_hm[i], psf_plane)
        if _elongation(blob, uu, vv) > max_elongation * _expected_elongation(r, psf_plane):
            continue  # the blob runs into a neighbour (another root, a vessel): not a clean cross-section
        contrast = (peak - b) / peak_fraction
        if _aspect(psf_plane) >= ANISOTROPIC_ASPECT:
            thick = _thick_slice_measurement(filled, uu - cu, vv - cv, r, psf_plane, pixel_mm)
            if thick is None:
                continue
            r, peak_fraction, b, contrast = thick
            background[i] = b
        csa[i] = np.pi * r**2
        signal[i] = b + contrast
        fraction[i] = peak_fraction
        centres[i] = pts[i] + cu * basis[0] + cv * basis[1]
    return CrossSections(centres, tangents, csa, csa_hm, signal, background, fraction)
