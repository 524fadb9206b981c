"""Shoulder-girdle atlas: label and tissue maps of normal anatomy in a canonical frame, and its registration.

Canonical frame (mm): ``xc = (x - x_mid) / s`` (lateral scale ``s``), ``yc = y - ty``,
``zc = z - tz``. ``x_mid`` is the body's centroid; ``s``, ``ty``, ``tz`` and the shoulder drop of each
side, ``dz_left`` and ``dz_right`` (mm, + = lower), are found by :func:`register` (coordinate search
maximising the agreement of the exam's T1 tissue classes with the atlas tissue map).

The shoulders rise and drop independently of the neck and chest wall, and a drop is not a rigid
shift: the humeral head, acromion, supraspinatus and deltoid move with the shoulder while the lower
scapular muscles stretch and the chest wall stays. So the atlas is built at several shoulder drops
(:data:`DROP_BANK_MM`); each side of the exam is looked up in the member nearest to its drop, and the
remainder (at most half a bank step inside the bank's range) is applied as a vertical shift of the
shoulder (``|xc| >= LATERAL_MM``).

The shipped atlas ``nervemuscle/data/muscle_atlas.npz`` is built by ``python -m nervemuscle.muscle.atlas``
from the normal anatomy of phantom subjects ``make_subject("normal", seed)`` (seeds
:data:`ATLAS_SEEDS`, never an analysed exam): each subject's labels are painted on the canonical
grid through its own known body parameters (width, antero-posterior shift; both shoulders set to the
member's drop), and the majority label per voxel is kept. It holds

* ``labels``: 0 background, 1..16 graded muscles (``MUSCLE_CLASSES`` order), 17 other non-fat tissue;
* ``nearest``: the nearest of classes 1..17 for every voxel (Voronoi fill), used to assign muscle
  tissue voxels to muscles;
* ``tissue``: T1 tissue class expected from the labels (0 outside, 1 dark, 2 muscle-like, 3 fat,
  255 ambiguous) used for registration;

one set per subcutaneous fat thickness in :data:`FAT_BANK_MM` (``fat_mm``) and shoulder drop in
:data:`DROP_BANK_MM`, stored as ``{kind}_{fat index}_{drop index}`` and decompressed on first use;
and ``volume_calibration`` (see :func:`calibrate_volumes`).

Reference volumes. The atlas label volume inside the exam's field of view is not yet the normal
volume: the lateral scale ``s`` stretches every muscle with the body width although muscle bulk does
not follow width in proportion (more so for the round deltoid and scapular muscles than for the long
supraspinatus and the trapezius and pectoral sheets), and the majority vote shrinks thin shells. So
each muscle's atlas volume is multiplied by ``exp(a + b ln s)``, with ``a`` and ``b`` fitted per muscle
by least squares on calibration subjects (:data:`CALIBRATION_SEEDS`, normal, never analysed, never
in the atlas): their simulated T1 exam is registered like any exam and their exactly known normal
volumes in the field of view are compared with the atlas volumes.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np
from scipy import ndimage

from nervemuscle.anatomy import MUSCLES, SIDES, TISSUE_LABELS, muscle_label

#: Class index (1..16) of each graded muscle in the atlas.
MUSCLE_CLASSES = [(m, s) for m in MUSCLES for s in SIDES]
OTHER_CLASS = 17
#: |xc| from which the per-side shoulder shift applies (mm).
LATERAL_MM = 70.0
ATLAS_FILE = "muscle_atlas.npz"
ATLAS_SEEDS = tuple(range(1001, 1005))
#: Normal phantom subjects that calibrate the reference volumes (see module notes).
CALIBRATION_SEEDS = tuple(range(1005, 1021))
#: Subcutaneous fat thicknesses (mm) of the atlas bank: the superficial muscles (trapezius, pectoralis
#: major) lie deeper under a thicker fat layer, so one atlas is built per thickness and registration
#: picks the one that agrees best with the exam.
FAT_BANK_MM = (7.0, 9.0, 11.0, 13.0)
#: Shoulder drops (mm, + = lower) of the atlas bank, spanning those of the atlas population.
DROP_BANK_MM = (-6.0, -3.0, 0.0, 3.0, 6.0)
KINDS = ("labels", "nearest", "tissue")
VOXEL_MM = 2.0
ORIGIN = np.array([-230.0, -160.0, -135.0])
SHAPE = (231, 156, 121)

# T1 tissue class of each label code (see module notes)
_DARK = ("cortical_bone", "csf", "artery", "vein", "lung")
_FAT = ("subcutaneous_fat", "intermuscular_fat")
_AMBIGUOUS = ("marrow", "nerve_trunk", "disc")


class Atlas:
    """The atlas of one subcutaneous fat thickness: ``labels``, ``nearest`` and ``tissue`` arrays of
    every member of :data:`DROP_BANK_MM`, read from ``arrays`` (mapping ``kind_drop-index`` ->
    array, e.g. an open ``.npz``) on first use."""

    def __init__(self, arrays, fat_mm: float, drops: tuple[float, ...] = DROP_BANK_MM,
                 volume_calibration: np.ndarray | None = None):
        self._arrays, self._cache = arrays, {}
        self.fat_mm, self.drops = float(fat_mm), tuple(float(d) for d in drops)
        self.volume_calibration = volume_calibration

    def array(self, kind: str, member: int) -> np.ndarray:
        """The flat ``kind`` array (see module notes) of drop member ``member``."""
        key = f"{kind}_{member}"
        if key not in self._cache:
            self._cache[key] = np.ascontiguousarray(self._arrays[key]).reshape(-1)
        return self._cache[key]

    @property
    def body_centroid_y(self) -> float:
        """Mean canonical y of the atlas body (initial antero-posterior alignment)."""
        if not hasattr(self, "_centroid_y"):
            level = self.array("tissue", int(np.argmin(np.abs(self.drops)))).reshape(SHAPE)
            profile = (level > 0).sum(axis=(0, 2))
            self._centroid_y = float(ORIGIN[1] + VOXEL_MM * (profile * np.arange(SHAPE[1])).sum() / profile.sum())
        return self._centroid_y


@dataclass
class Transform:
    """Exam world -> canonical atlas frame (see module notes)."""

    x_mid: float
    s: float = 1.0
    ty: float = 0.0
    tz: float = 0.0
    dz_left: float = 0.0
    dz_right: float = 0.0

    def members(self, drops: tuple[float, ...]) -> dict[str, int]:
        """Per side, the index of the bank drop nearest to this transform's shoulder drop."""
        bank = np.asarray(drops)
        return {side: int(np.argmin(np.abs(bank - getattr(self, f"dz_{side}")))) for side in SIDES}

    def flat_index(self, x: np.ndarray, y: np.ndarray, z: np.ndarray, drops: tuple[float, ...] = (0.0,)
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Flat index into the canonical grid (nearest voxel) of world points, whether it is inside, and
        whether the point is on the right side (looked up in the right shoulder's member of ``drops``)."""
        xc = (x - np.float32(self.x_mid)) * np.float32(1.0 / self.s)
        member = self.members(drops)
        rest = {side: np.float32(getattr(self, f"dz_{side}") - drops[member[side]]) for side in SIDES}
        shift = np.where(xc >= LATERAL_MM, rest["right"],
                         np.where(xc <= -LATERAL_MM, rest["left"], np.float32(0.0)))
        inv = np.float32(1.0 / VOXEL_MM)
        ix = np.rint((xc - np.float32(ORIGIN[0])) * inv).astype(np.int32)
        iy = np.rint((y - np.float32(self.ty + ORIGIN[1])) * inv).astype(np.int32)
        iz = np.rint((z + shift - np.float32(self.tz + ORIGIN[2])) * inv).astype(np.int32)
        inside = ((ix >= 0) & (ix < SHAPE[0]) & (iy >= 0) & (iy < SHAPE[1]) & (iz >= 0) & (iz < SHAPE[2]))
        return (ix * SHAPE[1] + iy) * SHAPE[2] + iz, inside, xc >= 0


def class_of_label() -> np.ndarray:
    """Lookup table label code -> atlas class (0 background/fat, 1..16 muscles, 17 other)."""
    lut = np.full(64, OTHER_CLASS, np.uint8)
    lut[0] = 0
    for name in _FAT:
        lut[TISSUE_LABELS[name]] = 0
    for i, (m, s) in enumerate(MUSCLE_CLASSES):
        lut[muscle_label(m, s)] = i + 1
    return lut


def tissue_of_label() -> np.ndarray:
    """Lookup table label code -> T1 tissue class (0 outside, 1 dark, 2 muscle-like, 3 fat, 255 ambiguous)."""
    lut = np.full(64, 2, np.uint8)
    lut[0] = 0
    for name in _DARK:
        lut[TISSUE_LABELS[name]] = 1
    for name in _FAT:
        lut[TISSUE_LABELS[name]] = 3
    for name in _AMBIGUOUS:
        lut[TISSUE_LABELS[name]] = 255
    lut[40:60] = 255  # roots
    return lut


def canonical_axes() -> list[np.ndarray]:
    return [ORIGIN[a] + VOXEL_MM * np.arange(SHAPE[a]) for a in range(3)]


def lookup(atlas: Atlas, kind: str, transform: Transform, points: tuple[np.ndarray, ...], fill: int = 0
           ) -> np.ndarray:
    """Nearest-voxel values of the atlas's ``kind`` array at world ``points`` (x, y, z arrays), each side
    from the member of its shoulder drop; ``fill`` outside the atlas grid."""
    flat, inside, right = transform.flat_index(*points, atlas.drops)
    member = transform.members(atlas.drops)
    out = np.take(atlas.array(kind, member["left"]), flat, mode="clip")
    if member["right"] != member["left"]:
        out[right] = np.take(atlas.array(kind, member["right"]), flat[right], mode="clip")
    out[~inside] = fill
    return out


class _Members:
    """``kind_member`` -> array of one fat thickness of an open atlas file (see module notes)."""

    def __init__(self, npz, fat_index: int):
        self._npz, self._fat = npz, fat_index

    def __getitem__(self, key: str) -> np.ndarray:
        kind, member = key.rsplit("_", 1)
        return self._npz[f"{kind}_{self._fat}_{member}"]


def bank_from_arrays(arrays) -> tuple[Atlas, ...]:
    """Atlases, one per subcutaneous fat thickness, from the arrays of :func:`build_atlas` (or its file)."""
    drops = tuple(float(d) for d in arrays["drop_mm"])
    calibration = np.asarray(arrays["volume_calibration"]) if "volume_calibration" in arrays else None
    return tuple(Atlas(_Members(arrays, i), fat_mm=float(f), drops=drops, volume_calibration=calibration)
                 for i, f in enumerate(arrays["fat_mm"]))


@lru_cache(maxsize=1)
def load_atlas_bank() -> tuple[Atlas, ...]:
    """The shipped atlases, one per subcutaneous fat thickness (see module notes)."""
    return bank_from_arrays(np.load(io.BytesIO(resources.files("nervemuscle.data").joinpath(ATLAS_FILE).read_bytes())))


def _score(atlas: Atlas, points: tuple[np.ndarray, ...], classes: np.ndarray, t: Transform) -> float:
    expected = lookup(atlas, "tissue", t, points, fill=0)
    valid = expected != 255
    return float(np.mean(expected[valid] == classes[valid]))


def register(points: tuple[np.ndarray, ...], classes: np.ndarray, x_mid: float,
             bank: tuple[Atlas, ...] | None = None) -> tuple[Transform, Atlas]:
    """Fit the exam -> atlas transform by coordinate search.

    Parameters
    ----------
    points : tuple of 3 (N,) ndarrays
        World x, y, z (mm) of a subsample of the exam's voxels (inside and around the body).
    classes : (N,) ndarray
        Their T1 tissue classes (0 outside, 1 dark, 2 muscle-like, 3 fat).
    x_mid : float
        Body midline (world x, mm).
    bank : tuple of Atlas, optional
        The atlas bank (default: the shipped one, :func:`load_atlas_bank`).

    Returns
    -------
    Transform, Atlas
        The transform and the member of the atlas bank that fits best.
    """
    bank = bank or load_atlas_bank()
    atlas = bank[len(bank) // 2]
    t = Transform(x_mid=x_mid)
    t.ty = float(points[1][classes > 0].mean() - atlas.body_centroid_y)
    t = _search(atlas, points, classes, t, (COARSE_SEARCH, FINE_SEARCH, FINE_SEARCH))
    atlas = max(bank, key=lambda a: _score(a, points, classes, t))
    return _search(atlas, points, classes, t, (FINE_SEARCH,)), atlas


def _search(atlas: Atlas, points: tuple[np.ndarray, ...], classes: np.ndarray, t: Transform, rounds) -> Transform:
    best = _score(atlas, points, classes, t)
    for offsets in rounds:
        for name, steps in offsets.items():
            centre = getattr(t, name)
            for v in centre + steps:
                trial = Transform(**{**t.__dict__, name: float(v)})
                score = _score(atlas, points, classes, trial)
                if score > best:
                    best, t = score, trial
    return t


#: Offsets tried around the current value of each parameter (coordinate search).
COARSE_SEARCH = {"tz": np.arange(-40, 41, 4.0), "ty": np.arange(-12, 12.1, 3.0), "s": np.arange(-0.14, 0.141, 0.02),
                 "dz_left": np.arange(-12, 12.1, 2.0), "dz_right": np.arange(-12, 12.1, 2.0)}
FINE_SEARCH = {"tz": np.arange(-3, 3.1, 1.0), "ty": np.arange(-1.5, 1.6, 0.5), "s": np.arange(-0.02, 0.021, 0.01),
               "dz_left": np.arange(-2, 2.1, 0.5), "dz_right": np.arange(-2, 2.1, 0.5)}


def expected_volumes_ml(atlas: Atlas, points: tuple[np.ndarray, ...], voxel_ml: float, t: Transform) -> dict:
    """Normal volume of each muscle inside the exam's field of view: atlas label voxels mapped from
    every exam voxel (``points``: world x, y, z of all exam voxels), times the atlas's volume
    calibration (see module notes) when it has one."""
    cls = lookup(atlas, "labels", t, points, fill=0)
    counts = np.bincount(cls, minlength=OTHER_CLASS + 1)
    factor = {name: 1.0 for name in MUSCLES}
    if atlas.volume_calibration is not None:
        factor = {name: float(np.exp(a + b * np.log(t.s))) for name, (a, b) in zip(MUSCLES, atlas.volume_calibration)}
    return {(m, s): float(counts[i + 1] * voxel_ml * factor[m]) for i, (m, s) in enumerate(MUSCLE_CLASSES)}


def calibrate_volumes(bank: tuple[Atlas, ...], seeds=CALIBRATION_SEEDS) -> np.ndarray:
    """Per muscle (``MUSCLES`` order) the coefficients ``(a, b)`` of the reference-volume calibration
    ``exp(a + b ln s)`` (see module notes), from the normal phantom subjects ``seeds``."""
    from nervemuscle.muscle.grid import world_points
    from nervemuscle.muscle.measure import voxel_volume_mm3
    from nervemuscle.muscle.segment import fit_atlas
    from nervemuscle.muscle.tissue import classify
    from nervemuscle.phantom import acquire, make_subject
    from nervemuscle.phantom.acquisition import ACQUISITIONS, series_grid
    from nervemuscle.phantom.truth import muscle_volumes_ml

    rows: dict[str, list[tuple[float, float]]] = {name: [] for name in MUSCLES}
    for seed in seeds:
        subject = make_subject("normal", seed)
        t1, _ = acquire(subject, "t1_axial")
        normal = muscle_volumes_ml(subject.anatomy, series_grid(subject, ACQUISITIONS["t1_axial"]).bounds)
        t, atlas = fit_atlas(t1, classify(t1), bank)
        raw = Atlas(atlas._arrays, atlas.fat_mm, atlas.drops)
        ref = expected_volumes_ml(raw, world_points(t1), voxel_volume_mm3(t1) / 1000.0, t)
        for (m, side), v in ref.items():
            true = normal.get(muscle_label(m, side), 0.0)
            if v > 0 and true > 0:
                rows[m].append((float(np.log(t.s)), float(np.log(true / v))))
    out = np.zeros((len(MUSCLES), 2))
    for i, name in enumerate(MUSCLES):
        x, y = np.array(rows[name]).T
        out[i] = np.linalg.lstsq(np.column_stack([np.ones_like(x), x]), y, rcond=None)[0]
    return out


def build_atlas(seeds=ATLAS_SEEDS, fat_bank=FAT_BANK_MM, drop_bank=DROP_BANK_MM) -> dict[str, np.ndarray]:
    """Majority labels of normal phantom subjects on the canonical grid, one atlas per fat thickness
    and shoulder drop (keys ``{kind}_{fat index}_{drop index}``, plus ``fat_mm`` and ``drop_mm``).

    Each subject's own body parameters (width, antero-posterior shift) map it into the canonical
    frame; both its shoulders are set to the member's drop and its subcutaneous fat thickness to the
    member's thickness.
    """
    from dataclasses import replace

    from nervemuscle.phantom.acquisition import render_labels
    from nervemuscle.phantom.anatomy import build_anatomy
    from nervemuscle.phantom.subject import make_subject
    from nervemuscle.protocol import default_protocol

    csa = default_protocol()["nerve"]["csa_reference_mm2"]
    root_csa = {(seg, side): float(v) for seg, v in csa.items() for side in SIDES}
    xs, ys, zs = canonical_axes()
    classes = class_of_label()
    tissue_lut = tissue_of_label()
    tissue_lut[tissue_lut == 255] = 4
    out = {"fat_mm": np.asarray(fat_bank, float), "drop_mm": np.asarray(drop_bank, float)}
    for i, fat_mm in enumerate(fat_bank):
        for j, drop in enumerate(drop_bank):
            votes = np.zeros((OTHER_CLASS + 1, *SHAPE), np.uint8)
            tissue_votes = np.zeros((5, *SHAPE), np.uint8)
            for seed in seeds:
                p = replace(make_subject("normal", seed).body, fat_mm=float(fat_mm),
                            shoulder_drop={"left": float(drop), "right": float(drop)})
                anatomy = build_anatomy(p, root_csa, {}, {})
                labels = render_labels(anatomy.structures, xs * p.width, ys + p.y_shift, zs)
                cls, tis = classes[labels], tissue_lut[labels]
                for c in range(OTHER_CLASS + 1):
                    votes[c] += cls == c
                for c in range(5):
                    tissue_votes[c] += tis == c
            labels = votes.argmax(axis=0).astype(np.uint8)
            tissue = tissue_votes.argmax(axis=0).astype(np.uint8)
            tissue[tissue == 4] = 255
            _, idx = ndimage.distance_transform_edt(labels == 0, return_indices=True)
            out[f"labels_{i}_{j}"] = labels
            out[f"nearest_{i}_{j}"] = labels[idx[0], idx[1], idx[2]]
            out[f"tissue_{i}_{j}"] = tissue
    return out


def main() -> None:
    """Build the atlas and write it into the package data folder."""
    from pathlib import Path

    import nervemuscle.data as data

    arrays = build_atlas()
    arrays["volume_calibration"] = calibrate_volumes(bank_from_arrays(arrays))
    calibration = dict(zip(MUSCLES, np.round(arrays["volume_calibration"], 3).tolist()))
    print(f"volume calibration (a, b) per muscle: {calibration}")
    path = Path(data.__file__).parent / ATLAS_FILE
    np.savez_compressed(path, **arrays)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
