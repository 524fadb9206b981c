"""Virtual MR acquisitions: grids, partial-volume rendering, signal, bias field and Rician noise.

A series is an axis-aligned grid (axial or coronal) placed on the subject like a technologist would:
centred on the midline, top slice near C4. Each voxel is sampled at ``supersample`` points per axis
(for thick 2-D slices the through-plane points span the slice thickness and are weighted by a smooth
slice profile); the voxel signal is the weighted sum of the sub-sample signals (partial volume) and its
label is the label with the largest weight.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nervemuscle.anatomy import label_names
from nervemuscle.phantom.shapes import paint
from nervemuscle.phantom.signal import FLUID_TE_MS, compartment_signals, fat_phasor, tissue_of_label
from nervemuscle.volume import Volume

#: Intensity units: noise-free signal of unit proton density at full recovery.
SIGNAL_SCALE = 1000.0
#: Slice-profile weights of the three through-plane sub-samples of a 2-D slice (centre heavier).
SLICE_PROFILE = np.array([0.3, 0.4, 0.3])

_PLANES = {
    # voxel axis -> world axis, and whether the voxel index runs against the world axis
    "axial": ((0, 1, 2), (True, True, False)),      # i: R->L, j: A->P, k: I->S  (DICOM IOP 1,0,0,0,1,0)
    "coronal": ((0, 2, 1), (True, True, True)),     # i: R->L, j: S->I, k: A->P  (DICOM IOP 1,0,0,0,0,-1)
}


@dataclass(frozen=True)
class Acquisition:
    """Parameters of one virtual series.

    ``fov_mm`` and ``voxel_mm`` are world extents / spacings along x (R-L), y (A-P), z (S-I);
    ``thickness_mm`` is the slice thickness along the slice axis (equal to the spacing for 3-D).
    ``ti_ms`` maps field strength (T) to inversion time for IR series. ``fat_residual`` is the
    fraction of fat signal left by spectral fat saturation at the centre and at the lateral FOV edge.
    """

    name: str
    role: str
    plane: str
    mode: str
    tr_ms: float
    te_ms: float
    fov_mm: tuple
    voxel_mm: tuple
    thickness_mm: float
    snr: float
    ti_ms: dict | None = None
    fat_residual: tuple | None = None
    supersample: tuple = (2, 2, 2)
    flip_angle_deg: float = 90.0

    @property
    def slice_axis(self) -> int:
        """World axis (0 x, 1 y, 2 z) along which slices are stacked."""
        return _PLANES[self.plane][0][2]

    def ti_at(self, field_strength: float) -> float | None:
        return None if self.ti_ms is None else float(self.ti_ms[float(field_strength)])

    @property
    def signal_kind(self) -> str:
        return "ir" if self.ti_ms else "se"


ACQUISITIONS: dict[str, Acquisition] = {
    "t1_axial": Acquisition(
        "t1_axial", "t1", "axial", "2D", tr_ms=650.0, te_ms=12.0, fov_mm=(400.0, 300.0, 149.6),
        voxel_mm=(400 / 336, 300 / 252, 4.4), thickness_mm=4.0, snr=25.0, supersample=(2, 2, 3),
    ),
    "t2fs_axial": Acquisition(
        "t2fs_axial", "t2fs", "axial", "2D", tr_ms=4500.0, te_ms=FLUID_TE_MS, fov_mm=(400.0, 300.0, 149.6),
        voxel_mm=(400 / 336, 300 / 252, 4.4), thickness_mm=4.0, snr=25.0, fat_residual=(0.03, 0.08),
        supersample=(2, 2, 3),
    ),
    "stir_3d": Acquisition(
        "stir_3d", "stir", "coronal", "3D", tr_ms=3500.0, te_ms=FLUID_TE_MS, fov_mm=(358.4, 168.0, 201.6),
        voxel_mm=(1.4, 1.4, 1.4), thickness_mm=1.4, snr=20.0, ti_ms={1.5: 195.0, 3.0: 250.0}, supersample=(2, 2, 2),
    ),
    "dixon_3d": Acquisition(
        "dixon_3d", "dixon", "axial", "3D", tr_ms=3000.0, te_ms=FLUID_TE_MS, fov_mm=(384.0, 240.0, 150.0),
        voxel_mm=(1.5, 1.5, 1.5), thickness_mm=1.5, snr=30.0, supersample=(2, 2, 2),
    ),
}


@dataclass(frozen=True)
class Grid:
    """A series grid: world-ascending voxel centres per world axis plus the voxel-order mapping."""

    centers: tuple          # 3 ascending arrays of voxel-centre coordinates along x, y, z
    plane: str
    voxel_mm: tuple
    thickness_mm: float
    slice_axis: int

    @property
    def shape(self) -> tuple[int, int, int]:
        perm, _ = _PLANES[self.plane]
        return tuple(len(self.centers[p]) for p in perm)

    @property
    def affine(self) -> np.ndarray:
        perm, flip = _PLANES[self.plane]
        aff = np.eye(4)
        for a, (p, f) in enumerate(zip(perm, flip)):
            aff[:3, a] = 0.0
            aff[p, a] = -self.voxel_mm[p] if f else self.voxel_mm[p]
            aff[p, 3] = self.centers[p][-1] if f else self.centers[p][0]
        return aff

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """World box covered by the voxels (centres +- half a voxel), mm."""
        lo = np.array([c[0] - v / 2 for c, v in zip(self.centers, self.voxel_mm)])
        hi = np.array([c[-1] + v / 2 for c, v in zip(self.centers, self.voxel_mm)])
        return lo, hi

    def to_voxel_order(self, world_array: np.ndarray) -> np.ndarray:
        """Reorder an (nx, ny, nz) world-ascending array into the series' voxel order."""
        perm, flip = _PLANES[self.plane]
        out = world_array.transpose(perm)
        return out[tuple(slice(None, None, -1) if f else slice(None) for f in flip)]

    def key(self) -> tuple:
        return (self.plane, self.thickness_mm, self.slice_axis) + tuple((c[0], len(c), v) for c, v in zip(self.centers, self.voxel_mm))


def series_grid(subject, acq: Acquisition) -> Grid:
    """Place the series on the subject: midline, centred antero-posteriorly, top of FOV near C4 (or at the
    anatomy's ``fov_top_z`` landmark where it has one, e.g. the adult family's drawn C2-C5 start)."""
    lm = subject.anatomy.landmarks
    top = lm["fov_top_z"] if "fov_top_z" in lm else lm["c4_z"] + 8.0
    center = np.array([0.0, lm["y_center"], top - acq.fov_mm[2] / 2])
    centers = []
    for a in range(3):
        n = max(1, int(round(acq.fov_mm[a] / acq.voxel_mm[a])))
        centers.append(center[a] + (np.arange(n) - (n - 1) / 2) * acq.voxel_mm[a])
    return Grid(tuple(centers), acq.plane, tuple(acq.voxel_mm), acq.thickness_mm, acq.slice_axis)


def _subsamples(grid: Grid, factors) -> tuple[list, np.ndarray]:
    coords, weights = [], []
    for a in range(3):
        s = factors[a]
        width = grid.thickness_mm if (a == grid.slice_axis) else grid.voxel_mm[a]
        off = ((np.arange(s) + 0.5) / s - 0.5) * width
        w = SLICE_PROFILE if (a == grid.slice_axis and s == 3 and grid.thickness_mm < grid.voxel_mm[a] * 1.01
                              and grid.voxel_mm[a] > 2.0) else np.full(s, 1.0 / s)
        coords.append((grid.centers[a][:, None] + off[None, :]).ravel())
        weights.append(w)
    wgt = np.einsum("i,j,k->ijk", *weights).ravel()
    return coords, wgt


def render_labels(structures: list, xs: np.ndarray, ys: np.ndarray, zs: np.ndarray,
                  dtype=np.uint8) -> np.ndarray:
    """Paint labelled solids on an axis-aligned grid given by ascending 1-D coordinates (mm)."""
    labels = np.zeros((len(xs), len(ys), len(zs)), dtype)
    x, y, z = (np.asarray(a, np.float32) for a in (xs[:, None, None], ys[None, :, None], zs[None, None, :]))
    grid_lo = np.array([xs[0], ys[0], zs[0]])
    grid_hi = np.array([xs[-1], ys[-1], zs[-1]])
    for label, shape in structures:
        lo, hi = shape.bbox
        if np.all(lo <= grid_hi) and np.all(hi >= grid_lo):
            paint(labels, label, shape, x, y, z)
    return labels


@dataclass
class PartialVolume:
    """Rendered series grid: per-voxel majority label plus sub-sample labels of mixed voxels."""

    labels: np.ndarray        # (nx, ny, nz) world-ascending, majority label
    mixed: np.ndarray         # flat indices of voxels with more than one label
    mixed_labels: np.ndarray  # (n_mixed, S)
    weights: np.ndarray       # (S,)

    def blend(self, lut: np.ndarray) -> np.ndarray:
        """Voxel values of a per-label quantity ``lut[label]`` with partial volume."""
        out = lut[self.labels].astype(np.float64)
        flat = out.reshape(-1)
        flat[self.mixed] = (lut[self.mixed_labels] * self.weights).sum(axis=1)
        return out


_CACHE: dict = {}


def render_partial_volume(anatomy, grid: Grid, supersample) -> PartialVolume:
    """Supersample the anatomy on a grid (cached for the last few grids of an anatomy)."""
    key = (id(anatomy), grid.key(), tuple(supersample))
    if key in _CACHE:
        return _CACHE[key][1]
    coords, wgt = _subsamples(grid, supersample)
    fine = render_labels(anatomy.structures, *coords)
    n = [len(c) for c in grid.centers]
    s = list(supersample)
    blocks = fine.reshape(n[0], s[0], n[1], s[1], n[2], s[2]).transpose(0, 2, 4, 1, 3, 5).reshape(n[0] * n[1] * n[2], -1)
    first = blocks[:, 0]
    mixed = np.flatnonzero((blocks != first[:, None]).any(axis=1))
    sub = blocks[mixed]
    iw = np.rint(wgt / wgt.min() * 4).astype(np.int16)       # integer weights: exact ties are rare and harmless
    score = np.zeros(sub.shape, np.int16)
    for j in range(sub.shape[1]):
        score += (sub == sub[:, j : j + 1]) * iw[j]
    majority = first.copy()
    majority[mixed] = sub[np.arange(len(mixed)), np.argmax(score, axis=1)]
    pv = PartialVolume(majority.reshape(n), mixed, sub, wgt)
    if len(_CACHE) >= 2:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = (anatomy, pv)   # keep the anatomy alive so its id is not reused
    return pv


def signal_tables(subject, acq: Acquisition) -> tuple[np.ndarray, np.ndarray]:
    """Per-label signed noise-free (water, fat) signals of a series, indexed by label code."""
    water, fat = np.zeros(64), np.zeros(64)
    for code in [0, *label_names()]:
        tissue = tissue_of_label(code, subject.field_strength, subject.pathology)
        water[code], fat[code] = compartment_signals(
            tissue, kind=acq.signal_kind, tr=acq.tr_ms, te=acq.te_ms, ti=acq.ti_at(subject.field_strength),
            field_strength=subject.field_strength)
    return water * SIGNAL_SCALE, fat * SIGNAL_SCALE


def bias_field(grid: Grid, amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth multiplicative field ``exp(amplitude * f)``, ``f`` a random low-order polynomial in [-1, 1]."""
    lo, hi = grid.bounds
    u = [((c - (l + h) / 2) / ((h - l) / 2)) for c, l, h in zip(grid.centers, lo, hi)]
    x, y, z = u[0][:, None, None], u[1][None, :, None], u[2][None, None, :]
    c = rng.normal(0, 1, 7)
    f = c[0] * x + c[1] * y + c[2] * z + c[3] * x * x + c[4] * y * y + c[5] * x * y + c[6] * z * z
    f = f / max(np.abs(f).max(), 1e-9)
    return np.exp(amplitude * f)


def _fat_residual_map(grid: Grid, residual: tuple) -> np.ndarray:
    centre, edge = residual
    x = grid.centers[0][:, None, None]
    return centre + (edge - centre) * (x / 200.0) ** 2 + np.zeros((1, len(grid.centers[1]), len(grid.centers[2])))


def reference_muscle_signal(subject, acq: Acquisition) -> float:
    """Noise-free signal of normal muscle on a series (sets the noise level from the SNR)."""
    from nervemuscle.anatomy import TISSUE_LABELS
    water, fat = signal_tables(subject, acq)
    return float(abs(water[TISSUE_LABELS["paraspinal_muscle"]] + fat[TISSUE_LABELS["paraspinal_muscle"]]))


def _rician(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    img = img.astype(np.float32)
    n1 = rng.standard_normal(img.shape, dtype=np.float32) * np.float32(sigma)
    n2 = rng.standard_normal(img.shape, dtype=np.float32) * np.float32(sigma)
    return np.sqrt((img + n1) ** 2 + n2**2)


def acquire(subject, acq: "Acquisition | str", *, snr: float | None = None, bias: float = 0.0,
            seed: int | None = None, noise_free: bool = False):
    """Simulate one series of a subject.

    Parameters
    ----------
    subject : Subject
    acq : Acquisition or name in :data:`ACQUISITIONS`
    snr : float, optional
        Normal-muscle signal / noise sigma; default ``acq.snr``.
    bias : float
        Amplitude of the smooth multiplicative bias field (0 = none, 0.2 = about +-20%).
    seed : int, optional
        Noise and bias seed; default derived from the subject seed and the series name.
    noise_free : bool
        Skip noise and bias (ground-truth images).

    Returns
    -------
    image : Volume, or dict role -> Volume for Dixon ("water", "fat", "in", "opp")
    labels : Volume
        Label map on the same grid (nervemuscle.anatomy codes), majority tissue per voxel.
    """
    if isinstance(acq, str):
        if acq not in ACQUISITIONS:
            raise ValueError(f"unknown acquisition {acq!r}; known: {sorted(ACQUISITIONS)}")
        acq = ACQUISITIONS[acq]
    grid = series_grid(subject, acq)
    pv = render_partial_volume(subject.anatomy, grid, acq.supersample)
    water_lut, fat_lut = signal_tables(subject, acq)
    water, fat = pv.blend(water_lut), pv.blend(fat_lut)
    effects = getattr(subject.anatomy, "effects", None)      # tissue details and artefacts (adult family)
    if effects is not None:
        water, fat = effects.tissue(subject, acq, grid, pv.labels, water, fat)
    if seed is None:
        seed = int(np.random.SeedSequence([subject.seed, sum(map(ord, acq.name)), sum(map(ord, subject.phenotype))])
                   .generate_state(1)[0])
    rng = np.random.default_rng(seed)
    field = bias_field(grid, bias, rng) if bias else 1.0
    sigma = reference_muscle_signal(subject, acq) / (snr or acq.snr)
    meta = {"acquisition": acq.name, "role": acq.role, "tr_ms": acq.tr_ms, "te_ms": acq.te_ms,
            "ti_ms": acq.ti_at(subject.field_strength), "field_strength_T": subject.field_strength,
            "snr": None if noise_free else float(snr or acq.snr), "bias": bias, "noise_sigma": sigma}
    if acq.role == "dixon":
        dt = 1.0 / (2 * 3.4e-6 * 42.577e6 * subject.field_strength) * 1e3   # ms to opposed phase
        c_opp, c_in = fat_phasor(dt, subject.field_strength), fat_phasor(2 * dt, subject.field_strength)
        images = {"water": np.abs(water), "fat": np.abs(fat), "in": np.abs(water + c_in * fat),
                  "opp": np.abs(water + c_opp * fat)}
    elif acq.role == "t2fs":
        residual = effects.fat_residual(grid, acq.fat_residual) if effects is not None else \
            _fat_residual_map(grid, acq.fat_residual)
        images = {"t2fs": np.abs(water + residual * fat)}
    else:
        images = {acq.role: np.abs(water + fat)}
    out = {}
    for role, img in images.items():
        if effects is not None and not noise_free:
            img = effects.corrupt(img, grid, pv.labels, sigma * (snr or acq.snr))
        img = img * field
        if not noise_free:
            img = _rician(img, sigma, rng)
        out[role] = Volume(grid.to_voxel_order(img).astype(np.float32), grid.affine, {**meta, "image_role": role})
    labels = Volume(grid.to_voxel_order(pv.labels).astype(np.int16), grid.affine, {**meta, "image_role": "labels"})
    image = out if acq.role == "dixon" else out[acq.role]
    return image, labels
