"""Per-muscle measurements on a label map: volume (ml), cross-sectional area (mm²), mean signal.

The cross-sectional area is taken in the axial plane (world z = const) through the muscle's
centroid: the voxels whose centres lie within half a voxel height of that plane, times the voxel
volume, divided by the voxel height along z. On an axial grid this is exactly the area of the slice
nearest the centroid.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from nervemuscle.volume import Volume


def voxel_volume_mm3(vol: Volume) -> float:
    """Volume of one voxel in mm³ (``|det(affine)|``)."""
    return float(abs(np.linalg.det(vol.affine[:3, :3])))


def label_volumes_ml(labels: Volume, codes: list[int]) -> dict[int, float]:
    """Volume in ml of each label code (0.0 when absent)."""
    counts = np.bincount(labels.data.ravel().astype(np.int64), minlength=max(codes) + 1)
    vox = voxel_volume_mm3(labels)
    return {c: float(counts[c] * vox / 1000.0) for c in codes}


def axial_csa_mm2(labels: Volume, codes: list[int]) -> dict[int, float | None]:
    """Cross-sectional area (mm²) of each label in the axial plane through its centroid.

    ``None`` for an absent label.
    """
    lab = labels.data
    idx = np.nonzero(np.isin(lab, codes))
    code_of = lab[idx].astype(np.int64)
    z = labels.affine[2, 0] * idx[0] + labels.affine[2, 1] * idx[1] + labels.affine[2, 2] * idx[2] \
        + labels.affine[2, 3]
    n = max(codes) + 1
    count = np.bincount(code_of, minlength=n)
    zsum = np.bincount(code_of, weights=z, minlength=n)
    height = float(np.abs(labels.affine[2, :3]).max())
    centroid = zsum / np.maximum(count, 1)
    offset = z - centroid[code_of]
    in_slab = (offset >= -height / 2) & (offset < height / 2)
    slab_count = np.bincount(code_of[in_slab], minlength=n)
    vox = voxel_volume_mm3(labels)
    return {c: (float(slab_count[c] * vox / height) if count[c] else None) for c in codes}


def inplane_core(labels: np.ndarray) -> np.ndarray:
    """Labels with every voxel removed whose four in-plane (i, j) neighbours do not all share its label.

    Used to measure signal away from partial-volume edges. Voxels on the border of the grid never
    count as core.
    """
    core = np.zeros_like(labels)
    nz = np.nonzero(labels.any(axis=2))
    if nz[0].size == 0:
        return core
    i0, i1 = max(nz[0].min() - 1, 0), min(nz[0].max() + 2, labels.shape[0])
    j0, j1 = max(nz[1].min() - 1, 0), min(nz[1].max() + 2, labels.shape[1])
    box = labels[i0:i1, j0:j1]
    keep = np.zeros(box.shape, dtype=bool)
    inner = box[1:-1, 1:-1]
    keep[1:-1, 1:-1] = ((inner == box[:-2, 1:-1]) & (inner == box[2:, 1:-1])
                        & (inner == box[1:-1, :-2]) & (inner == box[1:-1, 2:]))
    core[i0:i1, j0:j1] = np.where(keep, box, 0)
    if i0 == 0:
        core[0] = 0
    if j0 == 0:
        core[:, 0] = 0
    if i1 == labels.shape[0]:
        core[-1] = 0
    if j1 == labels.shape[1]:
        core[:, -1] = 0
    return core


def _bounding_box(labels: np.ndarray) -> tuple[slice, ...]:
    """Slices of the smallest box holding every non-zero voxel (empty box when there is none)."""
    box = []
    for axis in range(3):
        nz = np.flatnonzero(labels.any(axis=tuple(a for a in range(3) if a != axis)))
        box.append(slice(int(nz[0]), int(nz[-1]) + 1) if nz.size else slice(0, 0))
    return tuple(box)


def label_means(values: np.ndarray, labels: np.ndarray, codes: list[int], *,
                min_voxels: int = 20, core: np.ndarray | None = None) -> dict[int, float | None]:
    """Mean of ``values`` inside each label's in-plane core (whole label when the core is small).

    ``None`` for a label with fewer than ``min_voxels`` voxels in total. ``core`` may pass a
    precomputed :func:`inplane_core` of ``labels``.
    """
    n = max(codes) + 1
    core = inplane_core(labels) if core is None else core
    box = _bounding_box(labels)
    flat_lab = labels[box].ravel().astype(np.int64)
    flat_val = values[box].ravel().astype(np.float64)
    core = core[box].ravel().astype(np.int64)
    count = np.bincount(flat_lab, minlength=n)
    total = np.bincount(flat_lab, weights=flat_val, minlength=n)
    core_count = np.bincount(core, minlength=n)
    core_total = np.bincount(core, weights=flat_val, minlength=n)
    out: dict[int, float | None] = {}
    for c in codes:
        if count[c] < min_voxels:
            out[c] = None
        elif core_count[c] >= min_voxels:
            out[c] = float(core_total[c] / core_count[c])
        else:
            out[c] = float(total[c] / count[c])
    return out


def partial_volumes_ml(labels: Volume, image: np.ndarray, codes: list[int], label_signal: dict[int, float | None],
                       fat_signal: float) -> dict[int, float]:
    """Volume in ml of each label with partial-volume voxels at its fat border counted fractionally.

    A voxel mixing muscle of mean signal ``s`` with fat (``fat_signal``) holds the muscle fraction
    ``(fat - I) / (fat - s)``. Every labelled voxel counts that fraction (clipped to 0..1; darker voxels
    count fully), and every unlabelled voxel in-plane next to a label, brighter than the label's mean,
    counts its fraction of that label (the muscle part of the fat-side border voxels the segmentation
    left out). Labels with no signal (``None``) are counted by voxels.
    """
    lab = labels.data
    box = _bounding_box(lab)
    if lab[box].size == 0:
        return {c: 0.0 for c in codes}
    pad = tuple(slice(max(b.start - 1, 0), min(b.stop + 1, n)) for b, n in zip(box, lab.shape))
    sub = lab[pad].astype(np.int64)
    values = image[pad].astype(np.float64)
    n = max(int(sub.max()), max(codes)) + 1
    signal = np.full(n, np.nan)
    for c in codes:
        if label_signal.get(c) is not None and label_signal[c] < fat_signal:
            signal[c] = label_signal[c]
    neighbour = ndimage.grey_dilation(sub, footprint=np.array([[[0], [1], [0]], [[1], [1], [1]], [[0], [1], [0]]],
                                                             bool))
    rim = (sub == 0) & (neighbour > 0)
    owner = np.where(rim, neighbour, sub)
    s = signal[owner]
    frac = np.clip((fat_signal - values) / (fat_signal - s), 0.0, 1.0)
    frac = np.where(np.isnan(s), (sub > 0).astype(np.float64), frac)
    frac = np.where(rim & ~(values > s), 0.0, frac)
    total = np.bincount(owner.ravel(), weights=frac.ravel(), minlength=n)
    vox = voxel_volume_mm3(labels)
    return {c: float(total[c] * vox / 1000.0) for c in codes}
