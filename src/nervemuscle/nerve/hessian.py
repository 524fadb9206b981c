"""Multi-scale Hessian tubular ("vesselness") filter in millimetres, for anisotropic voxel grids.

The Hessian is taken with Gaussian derivatives whose widths are given in mm and converted per axis
(``sigma_mm / spacing``), so a 0.8 x 0.8 x 4 mm grid and a 1 mm isotropic grid see the same physical
scale. Derivatives are scale-normalised (``sigma_mm**2``) and eigenvalues are computed in closed form
(Smith 1961) over the whole array at once.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

#: Order of the six distinct Hessian components returned by :func:`hessian_components`.
COMPONENTS: tuple[tuple[int, int], ...] = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))


def derivative_kernel(sigma_vox: float, order: int) -> np.ndarray:
    """1-D sampled Gaussian (derivative) kernel for ``scipy.ndimage.correlate1d``, moment-corrected.

    The sampled kernels are corrected so that they are exact on polynomials of degree ``order``
    (smoothing sums to 1; first derivative: ``sum(w x) = 1``; second: ``sum(w) = 0``, ``sum(w x^2) = 2``).
    This keeps narrow kernels (``sigma`` below one voxel, e.g. 1 mm across 4 mm slices) unbiased: they
    tend to the central finite differences instead of answering a constant image.
    """
    radius = max(int(np.ceil(3.0 * sigma_vox)), 1)
    x = np.arange(-radius, radius + 1, dtype=float)
    g = np.exp(-0.5 * (x / max(sigma_vox, 1e-3)) ** 2)
    g /= g.sum()
    if order == 0:
        return g
    if order == 1:
        w = x * g
        if not (w * x).sum() > 1e-12:
            w = np.where(np.abs(x) == 1, x, 0.0)
        return w / (w * x).sum()
    w = (x**2 / max(sigma_vox, 1e-3) ** 2 - 1.0) * g
    w -= g * w.sum()
    if not (w * x**2).sum() > 1e-12:
        w = np.where(np.abs(x) == 1, 1.0, np.where(x == 0, -2.0, 0.0))
    return 2.0 * w / (w * x**2).sum()


def hessian_components(image: np.ndarray, sigma_mm: float, spacing: Sequence[float]) -> np.ndarray:
    """Scale-normalised Hessian of ``image`` at Gaussian width ``sigma_mm``.

    Parameters
    ----------
    image : (I, J, K) ndarray
    sigma_mm : float
        Gaussian standard deviation in mm.
    spacing : (3,) sequence of float
        Voxel size along i, j, k in mm (the axes are assumed orthogonal, as in MR grids).

    Returns
    -------
    (6, I, J, K) float32 ndarray
        ``sigma_mm**2 * d2I/(dx_a dx_b)`` in mm along the voxel axes, ordered as :data:`COMPONENTS`.
    """
    spacing = np.asarray(spacing, dtype=float)
    sigma_vox = sigma_mm / spacing
    image = np.asarray(image, dtype=np.float32)
    kernels = [[derivative_kernel(sigma_vox[a], o) for o in range(3)] for a in range(3)]
    out = np.empty((6, *image.shape), dtype=np.float32)
    cache: dict[tuple[int, ...], np.ndarray] = {}

    def filtered(orders: tuple[int, int, int]) -> np.ndarray:
        # separable: filter along k, then j, then i; partial results are shared between components
        for axis in (2, 1, 0):
            key = orders[axis:]
            if key not in cache:
                src = image if axis == 2 else cache[orders[axis + 1:]]
                cache[key] = ndimage.correlate1d(src, kernels[axis][orders[axis]], axis=axis, mode="nearest")
        return cache[orders]

    for n, (a, b) in enumerate(COMPONENTS):
        order = [0, 0, 0]
        order[a] += 1
        order[b] += 1
        out[n] = filtered(tuple(order))
        out[n] *= sigma_mm**2 / (spacing[a] * spacing[b])
    return out


def symmetric_eigenvalues(h: np.ndarray) -> np.ndarray:
    """Eigenvalues of symmetric 3x3 matrices given by their six components, sorted descending.

    Parameters
    ----------
    h : (6, ...) ndarray
        Components ordered as :data:`COMPONENTS` (xx, yy, zz, xy, xz, yz).

    Returns
    -------
    (3, ...) ndarray
        ``l1 >= l2 >= l3`` (signed).
    """
    a11, a22, a33, a12, a13, a23 = h
    q = (a11 + a22 + a33) / 3.0
    b11, b22, b33 = a11 - q, a22 - q, a33 - q
    p1 = a12 * a12 + a13 * a13 + a23 * a23
    p = np.sqrt((b11 * b11 + b22 * b22 + b33 * b33 + 2.0 * p1) / 6.0)
    safe = np.where(p > 1e-10, p, 1.0)
    det = (
        b11 * (b22 * b33 - a23 * a23)
        - a12 * (a12 * b33 - a23 * a13)
        + a13 * (a12 * a23 - b22 * a13)
    )
    r = np.clip(det / (2.0 * safe**3), -1.0, 1.0)
    phi = np.arccos(r) / 3.0
    l1 = q + 2.0 * p * np.cos(phi)
    l3 = q + 2.0 * p * np.cos(phi + 2.0 * np.pi / 3.0)
    l2 = 3.0 * q - l1 - l3
    return np.stack([l1, l2, l3])


def tubularity_at_scale(image: np.ndarray, sigma_mm: float, spacing: Sequence[float], *, bright: bool = True) -> np.ndarray:
    """Sato-type line measure at one scale: ``sqrt(l2 * l3)`` where both cross-sectional curvatures
    point the right way (negative for bright tubes), else 0.

    Returns
    -------
    (I, J, K) float32 ndarray
    """
    h = hessian_components(image, sigma_mm, spacing)
    if bright:
        h *= -1.0
    lam = symmetric_eigenvalues(h)
    del h
    # after the sign flip a bright tube has l1 >= l2 >> 0 and l3 ~ 0
    l1, l2 = lam[0], lam[1]
    return np.where(l2 > 0, np.sqrt(np.clip(l1 * l2, 0, None)), 0.0).astype(np.float32)


def tubularity(
    image: np.ndarray,
    spacing: Sequence[float],
    sigmas_mm: Sequence[float] = (1.0, 1.5, 2.0, 2.5),
    *,
    bright: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Multi-scale tubular filter: the maximum over scales of :func:`tubularity_at_scale`.

    Parameters
    ----------
    image : (I, J, K) ndarray
    spacing : (3,) sequence of float
        Voxel size in mm.
    sigmas_mm : sequence of float
        Gaussian widths in mm; a bright tube of radius ``r`` responds most near ``sigma = r / sqrt(2)``.
    bright : bool
        Bright tubes on a dark background (nerves on T2 fat-sat / STIR) when True.

    Returns
    -------
    response : (I, J, K) float32 ndarray
    best_sigma : (I, J, K) float32 ndarray
        The scale (mm) that gave the maximum response.

    See also
    --------
    skimage.filters.sato : the reference implementation (isotropic voxels only).
    """
    response = np.zeros(np.shape(image), dtype=np.float32)
    best = np.full(np.shape(image), sigmas_mm[0], dtype=np.float32)
    for sigma in sigmas_mm:
        r = tubularity_at_scale(image, sigma, spacing, bright=bright)
        better = r > response
        response[better] = r[better]
        best[better] = sigma
    return response, best
