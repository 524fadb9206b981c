"""Multi-atlas muscle segmentation: deformable registration of labelled T1 atlases, label fusion, and
assignment of the exam's own muscle tissue.

Why: the single canonical atlas of :mod:`nervemuscle.muscle.atlas` is placed by a 5-parameter search
(scale, shifts, shoulder drops); on anatomy that is not our phantom's it lands muscle labels on other
tissue. Here each atlas (a T1 image with its label map, on a coarse grid) is registered to the exam
with ANTs (affine, then SyN diffeomorphic, Mattes mutual information: contrast differences between
sites do not matter), its labels are carried over, and the atlases vote.

1. The exam's T1 is reduced to a coarse grid (:data:`GRID_MM`) and divided by its fat signal; atlases
   are stored the same way.
2. Each atlas is registered to the exam; its label map is warped with a label interpolator.
3. Fusion: per coarse voxel the most voted label and the fraction of atlases that voted for it
   (``agreement``).
4. Assignment on the exam's own grid: every muscle-like voxel (T1 signal between the dark tissue and
   fat, see :func:`nervemuscle.muscle.segment.tissue_classes`) takes the nearest fused label of any
   non-fat tissue within :data:`MAX_DISTANCE_MM` (graded muscles compete with the other muscle-like
   tissue of the atlases, such as paraspinal muscle); a muscle-like connected body whose voxels mostly
   take one muscle is given wholly to that muscle (:func:`whole_bodies`), which recovers the parts of a
   muscle that a registration of another anatomy did not quite reach.
5. Each muscle keeps its largest connected body (:func:`nervemuscle.muscle.segment.reassign_fragments`).

Status: compared with the shipped single-atlas parcellation (:mod:`nervemuscle.muscle.segment`) by
``python -m benchmarks muscle_methods``; not the default, because on the external check exams it was
slower (10-40 s per exam) and no more accurate (docs/methods.md). Atlases are built from normal phantom
subjects by :mod:`nervemuscle.phantom.muscle_atlases`, per anatomy family, never from analysed exams.
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from nervemuscle.anatomy import MUSCLES, SIDES, TISSUE_LABELS, muscle_label
from nervemuscle.muscle.grid import resample_to
from nervemuscle.muscle.segment import reassign_fragments, whole_bodies
from nervemuscle.muscle.tissue import Tissues
from nervemuscle.volume import Volume, block_affine, block_mean

#: Edge of the coarse registration grid (mm).
GRID_MM = 4.0
#: SyN similarity metric, its parameter (radius for CC, bins for mattes), iterations per level (8x, 4x, 2x ... shrink).
SYN_METRIC, SYN_SAMPLING, SYN_ITERATIONS = "meansquares", 32, (60, 40, 20)
#: A muscle-like voxel farther than this from every fused non-fat label stays unlabelled (mm).
MAX_DISTANCE_MM = 8.0
#: Labels that are not muscle-like on T1 (fat, skin) and do not compete for muscle tissue.
_NOT_COMPETING = (0, TISSUE_LABELS["subcutaneous_fat"], TISSUE_LABELS["intermuscular_fat"], TISSUE_LABELS["skin"],
                  TISSUE_LABELS["marrow"])
MUSCLE_CODES = tuple(muscle_label(m, s) for m in MUSCLES for s in SIDES)


@dataclass(frozen=True)
class LabelledAtlas:
    """One atlas: T1 image divided by its fat signal and its label map, on a coarse grid."""

    name: str
    image: np.ndarray
    labels: np.ndarray
    affine: np.ndarray


@dataclass
class Fusion:
    """Fused atlas labels on the exam's coarse grid: ``labels`` and the fraction of atlases that agree."""

    labels: Volume
    agreement: Volume
    n_atlases: int


def coarse_grid(volume: Volume, mm: float = GRID_MM) -> Volume:
    """``volume`` block-averaged to voxels of about ``mm`` (each axis reduced by an integer factor; the last
    block of an axis is completed by repeating the edge, so the coarse grid covers the whole image)."""
    factors = tuple(max(1, int(round(mm / s))) for s in volume.spacing)
    return Volume(block_mean(volume.data, factors), block_affine(volume.affine, factors))


def _ants_image(data: np.ndarray, affine: np.ndarray):
    import ants

    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    return ants.from_numpy(np.ascontiguousarray(data, dtype=np.float32), origin=tuple(map(float, affine[:3, 3])),
                           spacing=tuple(map(float, spacing)), direction=affine[:3, :3] / spacing)


def register_labels(atlas: LabelledAtlas, fixed: Volume, *, seed: int = 1) -> np.ndarray:
    """Warp ``atlas.labels`` onto the grid of ``fixed`` (a coarse, fat-normalised T1) by affine + SyN
    registration of the atlas image (ANTs, Mattes mutual information)."""
    import ants

    fixed_img = _ants_image(fixed.data, fixed.affine)
    moving = _ants_image(atlas.image, atlas.affine)
    with tempfile.TemporaryDirectory(prefix="nervemuscle-ants-") as tmp:
        reg = ants.registration(fixed_img, moving, type_of_transform="SyN", outprefix=str(Path(tmp) / "r"),
                                syn_metric=SYN_METRIC, syn_sampling=SYN_SAMPLING, reg_iterations=SYN_ITERATIONS,
                                aff_iterations=(500, 250, 100), aff_shrink_factors=(4, 2, 1),
                                aff_smoothing_sigmas=(2, 1, 0),
                                random_seed=seed, verbose=False)
        warped = ants.apply_transforms(fixed_img, _ants_image(atlas.labels.astype(np.float32), atlas.affine),
                                       reg["fwdtransforms"], interpolator="genericLabel")
    return np.rint(warped.numpy()).astype(np.uint8)


def fuse(fixed: Volume, atlases: list[LabelledAtlas]) -> Fusion:
    """Register every atlas to ``fixed`` and fuse the warped labels by majority vote."""
    warped = np.stack([register_labels(a, fixed) for a in atlases])
    n_labels = int(warped.max()) + 1
    votes = np.zeros((n_labels,) + fixed.shape, np.uint8)
    for w in warped:
        np.add.at(votes, (w,) + tuple(np.indices(fixed.shape)), 1)
    labels = votes.argmax(axis=0).astype(np.uint8)
    agreement = votes.max(axis=0).astype(np.float32) / len(atlases)
    return Fusion(fixed.with_data(labels), fixed.with_data(agreement), len(atlases))


def parcellate(image: Volume, tissues: Tissues, fusion: Fusion) -> tuple[Volume, dict[int, float]]:
    """Muscle label map on ``image``'s grid from fused atlas labels, and each muscle's mean atlas agreement.

    Muscle-like voxels take the nearest competing fused label (module notes, step 4); fatty muscle is
    brighter, so in a second pass each muscle's upper T1 limit moves to halfway between its own mean and
    fat, as in :func:`nervemuscle.muscle.segment.parcellate`.
    """
    data = image.data
    m, a = tissues.muscle_signal, tissues.adipose_signal
    fused = resample_to(fusion.labels, image, order=0).data
    agreement = resample_to(fusion.agreement, image, order=0).data
    competing = ~np.isin(fused, _NOT_COMPETING)
    distance, nearest_index = ndimage.distance_transform_edt(~competing, sampling=image.spacing, return_indices=True)
    nearest = fused[tuple(nearest_index)]
    nearest[distance > MAX_DISTANCE_MM] = 0
    candidates = tissues.body & (data >= 0.5 * m) & (data < a - 0.1 * (a - m))
    upper = np.full(256, m + 0.5 * (a - m), np.float32)
    labels = np.zeros(data.shape, np.uint8)
    for _ in range(2):
        tissue_mask = candidates & (data < upper[nearest])
        labels = np.where(tissue_mask, nearest, 0).astype(np.uint8)
        labels = whole_bodies(labels, tissue_mask, MUSCLE_CODES)
        labels[~np.isin(labels, MUSCLE_CODES)] = 0
        for code in MUSCLE_CODES:
            inside = labels == code
            if inside.any():
                s = float(data[inside].mean())
                upper[code] = max(m + 0.5 * (a - m), s + 0.5 * (a - s))
    labels = reassign_fragments(labels, list(MUSCLE_CODES))
    confidence = {}
    for code in MUSCLE_CODES:
        inside = labels == code
        confidence[code] = float(agreement[inside].mean()) if inside.any() else 0.0
    return image.with_data(labels), confidence


def standardise(data: np.ndarray, tissues: Tissues) -> np.ndarray:
    """T1 signal mapped piecewise linearly so that normal muscle is 0.5 and fat 1.0 (0 stays 0).

    Sites and simulators differ in how dark muscle is relative to fat; after this mapping the exam and the
    atlases have the same contrast, so a plain intensity-difference metric can drive the deformable
    registration.
    """
    m, a = tissues.muscle_signal, tissues.adipose_signal
    low = 0.5 * data / m
    high = 0.5 + 0.5 * (data - m) / max(a - m, 1e-6)
    return np.clip(np.where(data < m, low, high), 0.0, 1.5).astype(np.float32)


def fixed_image(image: Volume, tissues: Tissues) -> Volume:
    """The exam's T1 on the coarse grid with standardised contrast (what atlases are registered to)."""
    small = coarse_grid(image)
    return small.with_data(standardise(small.data, tissues))


def segment(image: Volume, tissues: Tissues, atlases: list[LabelledAtlas]) -> tuple[Volume, dict[int, float], Fusion]:
    """Multi-atlas muscle label map of a T1 exam (module notes), per-muscle agreement, and the fusion."""
    fusion = fuse(fixed_image(image, tissues), atlases)
    labels, confidence = parcellate(image, tissues, fusion)
    return labels, confidence, fusion


def to_atlas(t1: Volume, labels: Volume, tissues: Tissues, name: str) -> LabelledAtlas:
    """A :class:`LabelledAtlas` from a T1 volume and its label map (labels by majority per coarse voxel)."""
    small = fixed_image(t1, tissues)
    coarse_labels = resample_to(labels, small, order=0).data.astype(np.uint8)
    return LabelledAtlas(name, small.data.astype(np.float32), coarse_labels, small.affine)


def save_atlases(atlases: list[LabelledAtlas], path: str | Path, provenance: dict) -> None:
    """Write atlases to one compressed ``.npz`` with a JSON provenance record."""
    arrays = {"provenance": np.frombuffer(json.dumps(provenance).encode(), np.uint8)}
    for i, a in enumerate(atlases):
        arrays[f"image_{i}"] = a.image.astype(np.float16)
        arrays[f"labels_{i}"] = a.labels
        arrays[f"affine_{i}"] = a.affine
        arrays[f"name_{i}"] = np.frombuffer(a.name.encode(), np.uint8)
    np.savez_compressed(path, **arrays)


def load_atlases(path: str | Path) -> list[LabelledAtlas]:
    """Read atlases written by :func:`save_atlases`."""
    with np.load(path) as z:
        n = sum(1 for k in z.files if k.startswith("image_"))
        return [LabelledAtlas(bytes(z[f"name_{i}"]).decode(), z[f"image_{i}"].astype(np.float32), z[f"labels_{i}"],
                              z[f"affine_{i}"]) for i in range(n)]


def atlas_provenance(path: str | Path) -> dict:
    """The provenance record of an atlas file (family, seeds, how it was built)."""
    with np.load(path) as z:
        return json.loads(bytes(z["provenance"]).decode())
