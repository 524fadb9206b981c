"""Classical muscle segmentation: T1 intensity classes + atlas registration + nearest-atlas-muscle assignment.

1. Tissue classes on the T1 image (:mod:`nervemuscle.muscle.tissue`): outside, dark, muscle-like, fat.
2. The atlas (:mod:`nervemuscle.muscle.atlas`) is registered to the exam by its tissue classes.
3. Every muscle-like voxel takes the atlas class nearest to its canonical position (graded muscle or
   "other tissue", which is dropped).
4. Fatty muscle is brighter than normal muscle, so in a second pass each muscle's upper intensity
   limit is moved to halfway between its own mean T1 signal and adipose tissue (the majority-tissue
   boundary of a fatty muscle against fat), and the assignment is repeated.
5. Each muscle keeps its largest connected body; detached pieces go to the muscle they border most
   (:func:`reassign_fragments`).
"""
from __future__ import annotations

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


def tissue_classes(image: Volume, tissues: Tissues) -> np.ndarray:
    """0 outside the body, 1 dark, 2 muscle-like, 3 fat (uint8, image grid)."""
    data = image.data
    m, a = tissues.muscle_signal, tissues.adipose_signal
    cls = np.full(data.shape, 2, np.uint8)
    cls[data < 0.5 * m] = 1
    cls[data >= m + 0.5 * (a - m)] = 3
    cls[~tissues.body] = 0
    return cls


def fit_atlas(image: Volume, tissues: Tissues, bank: tuple[atlas_mod.Atlas, ...] | None = None
              ) -> tuple[atlas_mod.Transform, atlas_mod.Atlas]:
    """Register the atlas bank (default: the shipped one) to the exam (see
    :func:`nervemuscle.muscle.atlas.register`)."""
    cls = tissue_classes(image, tissues)
    st = REGISTRATION_STRIDE
    sub = cls[::st, ::st, :]
    near_body = ndimage.binary_dilation(sub > 0, iterations=3)
    idx = np.nonzero(near_body)
    points = world_points(image, (idx[0] * st, idx[1] * st, idx[2]))
    classes = sub[idx]
    x_mid = float(points[0][classes > 0].mean())
    return atlas_mod.register(points, classes, x_mid, bank)


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
    for _ in range(2):
        keep = values < upper[nearest]
        labels[:] = 0
        labels[tuple(i[keep] for i in idx)] = class_codes[nearest[keep]]
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
