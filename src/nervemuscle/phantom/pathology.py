"""Per-root and per-muscle pathology of a virtual subject, drawn from phenotype prevalences.

Prevalences follow Staff et al. 2015 (clinical-reference.md section 1-2): ALS nerve changes ~58%
(mostly mild T2 increase, little thickening), muscle changes ~57% (edema and atrophy, mostly on the
affected side in C5-C6 muscles); MMN nerve changes ~63% (fusiform or diffuse thickening with T2
increase, multifocal and asymmetric), muscle ~33% (edema only, never atrophy); normal: none.

Every drawn value is placed inside one grade band of the default protocol and at least
``MARGIN`` (relative) away from its thresholds, so a measurement with a few % error keeps the grade.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nervemuscle.anatomy import MUSCLES, ROOTS, SIDES, label_names
from nervemuscle.protocol import default_protocol

MARGIN = 0.10
P_NERVE = {"normal": 0.0, "als": 0.58, "mmn": 0.63}
P_MUSCLE = {"normal": 0.0, "als": 0.57, "mmn": 0.33}
C5C6_MUSCLES = ("deltoid", "supraspinatus", "infraspinatus", "subscapularis")


@dataclass(frozen=True)
class RootPathology:
    """Drawn state of one root.

    ``csa_ratio``: extraforaminal mean CSA / protocol reference for the level;
    ``normal_csa_ratio``: the same for this root without disease; ``lesion``: none, diffuse or focal;
    ``t2_relative``: root/normal-root signal ratio on the fluid series; ``t2_factor``: T2 multiplier
    that produces it; ``focal_center_mm``/``focal_half_width_mm``: fusiform lesion position.
    """

    csa_ratio: float
    normal_csa_ratio: float
    lesion: str = "none"
    t2_relative: float = 1.0
    t2_factor: float = 1.0
    focal_center_mm: float = 22.0
    focal_half_width_mm: float = 14.0


@dataclass(frozen=True)
class MusclePathology:
    """Drawn state of one muscle: edema (water T2 signal ratio), fat fraction, atrophy (volume loss)."""

    edema_ratio: float = 1.0
    t2_factor: float = 1.0
    fat_fraction: float = 0.03
    atrophy: float = 0.0


@dataclass
class Pathology:
    roots: dict = field(default_factory=dict)      # (segment, side) -> RootPathology
    muscles: dict = field(default_factory=dict)    # (muscle, side) -> MusclePathology

    def muscle_of_label(self, label: int) -> MusclePathology:
        name, side = label_names()[label].rsplit("_", 1)
        return self.muscles[(name, side)]

    def root_of_label(self, label: int) -> RootPathology:
        seg, side = label_names()[label].split("_")
        return self.roots[(seg, side)]


def value_in_grade(rng: np.random.Generator, thresholds, g: int, *, floor: float = 1.0, ceiling_factor: float = 1.2) -> float:
    """Uniform draw inside grade ``g`` of ``thresholds``, ``MARGIN`` away from both bounds."""
    lo = floor if g == 0 else thresholds[g - 1] * (1 + MARGIN)
    hi = thresholds[g] * (1 - MARGIN) if g < len(thresholds) else thresholds[-1] * ceiling_factor
    return float(rng.uniform(lo, hi))


def _pick_grade(rng, weights) -> int:
    w = np.asarray(weights, float)
    return int(rng.choice(len(w), p=w / w.sum()))


def draw_pathology(phenotype: str, rng: np.random.Generator, affected_side: str | None, *,
                   nerve_t2: float, muscle_t2: float, protocol: dict | None = None) -> Pathology:
    """Draw per-root and per-muscle pathology for one subject.

    ``nerve_t2`` and ``muscle_t2`` are the normal water T2 (ms) at the subject's field, used to turn
    signal ratios into T2 factors.
    """
    from nervemuscle.phantom.signal import t2_factor_for_ratio

    proto = protocol or default_protocol()
    nerve_p, muscle_p = proto["nerve"], proto["muscle"]
    thick_t, t2_t = nerve_p["thickening_thresholds"], nerve_p["t2_thresholds"]
    edema_t, atrophy_t, fat_t = muscle_p["edema_thresholds"], muscle_p["atrophy_thresholds"], muscle_p["fat_thresholds"]
    side = affected_side or "right"
    other = "left" if side == "right" else "right"

    roots = {}
    for seg in ROOTS:
        for s in SIDES:
            normal = float(rng.uniform(0.93, 1.07))
            roots[(seg, s)] = {"csa_ratio": normal, "normal_csa_ratio": normal, "lesion": "none", "t2_relative": 1.0}
    if phenotype == "als":
        for key in roots:      # subthreshold T2 rise in some ALS roots (Schreiber 2020: slight T2 increase)
            if rng.random() < 0.3:
                roots[key]["t2_relative"] = value_in_grade(rng, t2_t, 0, floor=1.03)
    if rng.random() < P_NERVE.get(phenotype, 0.0):
        if phenotype == "als":
            n = int(rng.choice([1, 2, 3], p=[0.5, 0.35, 0.15]))
            pool = [(seg, side) for seg in ("C5", "C6", "C7")] * 3 + [(seg, s) for seg in ROOTS for s in SIDES]
            chosen = _unique_draw(rng, pool, n)
            for key in chosen:
                r = roots[key]
                r["t2_relative"] = value_in_grade(rng, t2_t, _pick_grade(rng, [0, 0.8, 0.2]))
                if rng.random() < 0.12:
                    r["lesion"] = "diffuse"
                    r["csa_ratio"] = value_in_grade(rng, thick_t, 1)
        else:
            n = int(rng.choice([2, 3, 4, 5], p=[0.3, 0.35, 0.2, 0.15]))
            pool = [(seg, side) for seg in ROOTS] * 3 + [(seg, other) for seg in ROOTS]
            chosen = _unique_draw(rng, pool, n)
            for key in chosen:
                r = roots[key]
                if rng.random() < 0.85:
                    r["lesion"] = "focal" if rng.random() < 0.6 else "diffuse"
                    r["csa_ratio"] = value_in_grade(rng, thick_t, _pick_grade(rng, [0, 0.5, 0.35, 0.15]))
                if rng.random() < 0.75 or r["lesion"] == "none":
                    r["t2_relative"] = value_in_grade(rng, t2_t, _pick_grade(rng, [0, 0.6, 0.4]))
    root_path = {}
    for key, r in roots.items():
        root_path[key] = RootPathology(
            csa_ratio=r["csa_ratio"], normal_csa_ratio=r["normal_csa_ratio"], lesion=r["lesion"],
            t2_relative=r["t2_relative"], t2_factor=t2_factor_for_ratio(r["t2_relative"], nerve_t2),
            focal_center_mm=float(rng.uniform(19.0, 26.0)), focal_half_width_mm=float(rng.uniform(12.0, 16.0)),
        )

    muscles = {(m, s): {"edema": 1.0, "fat": float(rng.uniform(0.02, 0.06)), "atrophy": 0.0}
               for m in MUSCLES for s in SIDES}
    if rng.random() < P_MUSCLE.get(phenotype, 0.0):
        if phenotype == "als":
            n = int(rng.choice([1, 2, 3, 4], p=[0.3, 0.35, 0.25, 0.1]))
            pool = [(m, side) for m in C5C6_MUSCLES] * 4 + [(m, other) for m in C5C6_MUSCLES] + \
                   [("pectoralis_major", side), ("trapezius", side)]
            kind = rng.choice(["edema", "atrophy", "both"], p=[0.45, 0.2, 0.35])
            for key in _unique_draw(rng, pool, n):
                mu = muscles[key]
                if kind in ("edema", "both"):
                    mu["edema"] = value_in_grade(rng, edema_t, _pick_grade(rng, [0, 0.6, 0.35, 0.05]))
                if kind in ("atrophy", "both"):
                    mu["atrophy"] = value_in_grade(rng, atrophy_t, _pick_grade(rng, [0, 0.6, 0.35, 0.05]),
                                                   ceiling_factor=1.15)
                    if rng.random() < 0.4:
                        mu["fat"] = value_in_grade(rng, fat_t, _pick_grade(rng, [0, 0.8, 0.2]))
        else:
            n = int(rng.choice([1, 2], p=[0.6, 0.4]))
            pool = [(m, side) for m in MUSCLES if "scalene" not in m] * 2 + [(m, other) for m in C5C6_MUSCLES]
            for key in _unique_draw(rng, pool, n):
                muscles[key]["edema"] = value_in_grade(rng, edema_t, 1)
    muscle_path = {
        key: MusclePathology(edema_ratio=mu["edema"], t2_factor=t2_factor_for_ratio(mu["edema"], muscle_t2),
                             fat_fraction=mu["fat"], atrophy=mu["atrophy"])
        for key, mu in muscles.items()
    }
    return Pathology(root_path, muscle_path)


def _unique_draw(rng: np.random.Generator, pool: list, n: int) -> list:
    """``n`` distinct items from a weighted pool (repeats in ``pool`` raise an item's weight)."""
    chosen: list = []
    while len(chosen) < n and len(set(pool) - set(chosen)) > 0:
        item = pool[int(rng.integers(len(pool)))]
        if item not in chosen:
            chosen.append(item)
    return chosen
