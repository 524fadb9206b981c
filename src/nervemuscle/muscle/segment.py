"""Classical muscle segmentation: T1 intensity classes + atlas registration + nearest-atlas-muscle assignment.

1. Tissue classes on the T1 image (:mod:`nervemuscle.muscle.tissue`): outside, dark, muscle-like, fat.
2. The atlas (:mod:`nervemuscle.muscle.atlas`) is registered to the exam by its tissue classes.
3. Every muscle-like voxel takes the atlas class nearest to its canonical position (graded muscle or
   "other tissue", which is dropped).
4. Fatty muscle is brighter than normal muscle, so in a second pass each muscle's upper intensity
   limit is moved to halfway between its own mean T1 signal and adipose tissue (the majority-tissue
   boundary of a fatty muscle against fat), and the assignment is repeated.
5. A muscle-like connected body (muscle tissue bounded by fat or dark tissue) of which most voxels took
   one muscle is given wholly to that muscle (:func:`whole_bodies`): where a muscle is a separate body,
   its extent then comes from the exam's own tissue boundaries, not from the atlas's shape.
6. Each muscle keeps its largest connected body; detached pieces go to the muscle they border most
   (:func:`reassign_fragments`).
"""
from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

from nervemuscle.anatomy import muscle_label
from nervemuscle.muscle import atlas as atlas_mod
from nervemuscle.muscle.grid import world_points
from nervemuscle.muscle.measure import label_means
from nervemuscle.muscle.tissue import Tissues
from nervemuscle.volume import Volume

#: In-plane subsampling of voxels used for registration.
REGISTRATION_STRIDE = 5
#: Perturbations of the fitted atlas transform for the stability check (:func:`volume_stability`): lateral
#: scale +-4 %, antero-posterior and vertical shift +-5 mm, each shoulder's drop +-4 mm, about the size of
#: the registration's own uncertainty (its search steps).
PERTURBATIONS: tuple[dict[str, float], ...] = (
    {"s": 1.04}, {"s": 0.96}, {"ty": 5.0}, {"ty": -5.0}, {"tz": 5.0}, {"tz": -5.0},
    {"dz_left": 4.0}, {"dz_left": -4.0}, {"dz_right": 4.0}, {"dz_right": -4.0},
)
#: A muscle-like connected body goes wholly to one muscle when at least this fraction of its voxels took
#: that muscle by the atlas (else every voxel keeps its own atlas label).
WHOLE_BODY_FRACTION = 0.6


def tissue_classes(image: Volume, tissues: Tissues) -> np.ndarray:
    """0 outside the body, 1 dark, 2 muscle-like, 3 fat (uint8, image grid)."""
    data = image.data
    m, a = tissues.muscle_signal, tissues.adipose_signal
    cls = np.full(data.shape, 2, np.uint8)
    cls[data < 0.5 * m] = 1
    cls[data >= m + 0.5 * (a - m)] = 3
    cls[~tissues.body] = 0
    return cls


def registration_sample(image: Volume, tissues: Tissues) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """World points and tissue classes of the voxels the registration compares (subsampled in-plane)."""
    cls = tissue_classes(image, tissues)
    st = REGISTRATION_STRIDE
    sub = cls[::st, ::st, :]
    near_body = ndimage.binary_dilation(sub > 0, iterations=3)
    idx = np.nonzero(near_body)
    return world_points(image, (idx[0] * st, idx[1] * st, idx[2])), sub[idx]


def fit_atlas(image: Volume, tissues: Tissues, bank: tuple[atlas_mod.Atlas, ...] | None = None, *,
              sample: tuple[tuple[np.ndarray, ...], np.ndarray] | None = None
              ) -> tuple[atlas_mod.Transform, atlas_mod.Atlas]:
    """Register the atlas bank (default: the shipped one) to the exam (see
    :func:`nervemuscle.muscle.atlas.register`); ``sample``: :func:`registration_sample`, when already made."""
    points, classes = sample if sample is not None else registration_sample(image, tissues)
    x_mid = float(points[0][classes > 0].mean())
    return atlas_mod.register(points, classes, x_mid, bank)


def atlas_fit(sample: tuple[tuple[np.ndarray, ...], np.ndarray], transform: atlas_mod.Transform,
              atlas: atlas_mod.Atlas) -> float:
    """Fraction of the exam's body voxels (``sample``, :func:`registration_sample`) whose T1 tissue class
    (dark, muscle-like, fat) is the one the registered atlas expects: how well the atlas's anatomy explains
    this exam (1 = perfectly).

    Exams of the anatomy the atlas was built from score about 0.85-0.9; exams of another anatomy (the
    external check exams) about 0.4 (docs/methods.md).
    """
    points, classes = sample
    expected = atlas_mod.lookup(atlas, "tissue", transform, points, fill=0)
    valid = (expected != 255) & (classes > 0)
    return float(np.mean(expected[valid] == classes[valid])) if valid.any() else 0.0


def parcellate(image: Volume, tissues: Tissues, transform: atlas_mod.Transform, atlas: atlas_mod.Atlas) -> Volume:
    """Muscle label map (nervemuscle codes) on the grid of ``image``."""
    data = image.data
    m, a = tissues.muscle_signal, tissues.adipose_signal
    class_codes = np.zeros(atlas_mod.OTHER_CLASS + 1, np.uint8)
    for i, (name, side) in enumerate(atlas_mod.MUSCLE_CLASSES):
        class_codes[i + 1] = muscle_label(name, side)
    upper = np.full(atlas_mod.OTHER_CLASS + 1, m + 0.5 * (a - m))
    candidates = tissues.body & (data >= 0.5 * m) & (data < a - 0.1 * (a - m))
    idx = np.nonzero(candidates)
    values = data[idx]
    nearest = atlas_mod.lookup(atlas, "nearest", transform, world_points(image, idx), fill=0)
    labels = np.zeros(data.shape, np.uint8)
    muscle_codes = [int(c) for c in class_codes[1:-1]]
    for _ in range(2):
        keep = values < upper[nearest]
        labels[:] = 0
        labels[tuple(i[keep] for i in idx)] = class_codes[nearest[keep]]
        tissue_mask = np.zeros(data.shape, bool)
        tissue_mask[tuple(i[keep] for i in idx)] = True
        labels = whole_bodies(labels, tissue_mask, muscle_codes)
        means = label_means(data, labels, [int(c) for c in class_codes[1:]])
        for i, code in enumerate(class_codes[1:]):
            s = means[int(code)]
            if s is not None:
                upper[i + 1] = max(m + 0.5 * (a - m), s + 0.5 * (a - s))
    return image.with_data(reassign_fragments(labels, [int(c) for c in class_codes[1:]]))


def reassign_fragments(labels: np.ndarray, codes: list[int]) -> np.ndarray:
    """Each label kept as its largest 3-D connected component; every other piece goes to the label it
    borders most (face neighbours), or to background when it borders no other label.

    A muscle is one connected body. Pieces of a neighbouring muscle that fall inside a muscle's atlas
    territory (typically where an atrophic muscle left room, filled by fat) are cut off from that
    muscle's body and touch their own muscle.
    """
    out = labels.copy()
    n_labels = int(labels.max()) + 1
    boxes = ndimage.find_objects(labels, max_label=max(codes))
    for code in codes:
        box = boxes[code - 1]
        if box is None:
            continue
        box = tuple(slice(max(b.start - 1, 0), b.stop + 1) for b in box)
        sub = labels[box]
        comp, n = ndimage.label(sub == code)
        if n < 2:
            continue
        sizes = np.bincount(comp.ravel())
        sizes[0] = 0
        comp[comp == sizes.argmax()] = 0          # the body stays; comp now numbers the fragments
        votes = np.zeros((n + 1, n_labels), np.int64)
        for axis in range(3):
            for a, b in ((slice(1, None), slice(None, -1)), (slice(None, -1), slice(1, None))):
                here = [slice(None)] * 3
                there = [slice(None)] * 3
                here[axis], there[axis] = a, b
                piece, neighbour = comp[tuple(here)], sub[tuple(there)]
                hit = (piece > 0) & (neighbour > 0) & (neighbour != code)
                np.add.at(votes, (piece[hit], neighbour[hit]), 1)
        target = np.where(votes.any(axis=1), votes.argmax(axis=1), 0)
        fragment = comp > 0
        out[box][fragment] = target[comp[fragment]]
    return out


def whole_bodies(labels: np.ndarray, tissue_mask: np.ndarray, codes: list[int] | tuple[int, ...],
                 fraction: float = WHOLE_BODY_FRACTION) -> np.ndarray:
    """Give each connected body of ``tissue_mask`` wholly to the muscle (of ``codes``) that at least
    ``fraction`` of its voxels took; voxels of ``tissue_mask`` without a muscle label count against it.

    Returns a copy of ``labels``; bodies without such a majority are left as they were.
    """
    bodies, n = ndimage.label(tissue_mask)
    if n == 0:
        return labels
    body = bodies[tissue_mask]
    lab = labels[tissue_mask].astype(np.int64)
    counts = np.zeros((n + 1, max(int(labels.max()), max(codes)) + 1), np.int64)
    np.add.at(counts, (body, lab), 1)
    total = counts.sum(axis=1)
    muscle_counts = counts[:, list(codes)]
    best = np.asarray(codes)[muscle_counts.argmax(axis=1)]
    whole = muscle_counts.max(axis=1) >= fraction * np.maximum(total, 1)
    whole[0] = False
    out = labels.copy()
    take = whole[bodies] & tissue_mask
    out[take] = best[bodies[take]]
    return out


def perturbed(transform: atlas_mod.Transform, change: dict[str, float]) -> atlas_mod.Transform:
    """``transform`` with one :data:`PERTURBATIONS` entry applied (``s`` multiplies, the rest add mm)."""
    values = {k: (getattr(transform, k) * v if k == "s" else getattr(transform, k) + v) for k, v in change.items()}
    return dataclasses.replace(transform, **values)


def volume_stability(image: Volume, tissues: Tissues, transform: atlas_mod.Transform, atlas: atlas_mod.Atlas,
                     labels: Volume, codes: list[int]) -> dict[int, float | None]:
    """Coefficient of variation of each muscle's segmented volume over the fitted and perturbed atlas
    transforms (:data:`PERTURBATIONS`).

    A muscle whose label boundary runs through muscle tissue (where the atlas, not the image, decides
    the extent) changes volume when the registration moves a little; one bounded by fat or bone does
    not. ``None`` for a muscle absent from ``labels``.
    """
    counts = [np.bincount(labels.data.ravel(), minlength=max(codes) + 1)[codes]]
    for change in PERTURBATIONS:
        lab = parcellate(image, tissues, perturbed(transform, change), atlas).data
        counts.append(np.bincount(lab.ravel(), minlength=max(codes) + 1)[codes])
    table = np.array(counts, float)
    out: dict[int, float | None] = {}
    for i, c in enumerate(codes):
        out[c] = None if table[0, i] == 0 else float(table[:, i].std() / table[:, i].mean())
    return out
