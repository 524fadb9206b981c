"""A virtual subject: seed-drawn body, pathology and the resulting geometry."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from nervemuscle.anatomy import ROOTS, SIDES, muscle_label
from nervemuscle.phantom.anatomy import Anatomy, BodyParams, build_anatomy, fusiform_weight
from nervemuscle.phantom.pathology import Pathology, draw_pathology
from nervemuscle.phantom.signal import base_tissue
from nervemuscle.protocol import default_protocol

PHENOTYPES = ("normal", "als", "mmn")
_PHENOTYPE_CODE = {"normal": 0, "als": 1, "mmn": 2}
#: Anatomy families: ``classic`` (:mod:`~nervemuscle.phantom.anatomy`, the original phantom) and ``adult``
#: (:mod:`~nervemuscle.phantom.adult`, built independently from published adult dimensions).
ANATOMY_FAMILIES = ("classic", "adult")
#: Accepted ``anatomy`` values: a family, or ``mixed`` (the family drawn from the seed, see :func:`resolve_family`).
ANATOMY_CHOICES = (*ANATOMY_FAMILIES, "mixed")


@dataclass
class Subject:
    """One virtual subject.

    ``root_centerlines[(segment, side)]`` is the extraforaminal course (foramen to trunk, (N, 3)
    world mm); ``anatomy`` holds the painted solids and root models.
    """

    id: str
    phenotype: str
    seed: int
    field_strength: float
    affected_side: str | None
    body: BodyParams
    pathology: Pathology
    anatomy: Anatomy
    normal_anatomy: Anatomy | None
    root_centerlines: dict
    volume_cache: dict = field(default_factory=dict, repr=False, compare=False)
    family: str = "classic"


@lru_cache(maxsize=1)
def _protocol() -> dict:
    """The default protocol, read once per process (treated as read-only)."""
    return default_protocol()


def subject_rng(phenotype: str, seed: int) -> np.random.Generator:
    """The deterministic random generator of a (phenotype, seed) pair."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), _PHENOTYPE_CODE[phenotype], 3]))


def resolve_family(anatomy: str, phenotype: str, seed: int) -> str:
    """The anatomy family of a subject: ``anatomy`` itself, or for ``mixed`` one drawn from (phenotype, seed)
    with equal odds.

    Raises
    ------
    ValueError
        ``anatomy`` is not one of :data:`ANATOMY_CHOICES`.
    """
    if anatomy not in ANATOMY_CHOICES:
        raise ValueError(f"anatomy must be one of {ANATOMY_CHOICES}, got {anatomy!r}")
    if anatomy != "mixed":
        return anatomy
    code = _PHENOTYPE_CODE.get(phenotype, 9)
    draw = np.random.SeedSequence([int(seed), code, 41]).generate_state(1)[0]
    return ANATOMY_FAMILIES[int(draw) % len(ANATOMY_FAMILIES)]


def draw_body(rng: np.random.Generator) -> BodyParams:
    jitter = {(seg, side): tuple(map(float, rng.normal(0.0, [2.0, 1.0, 2.0]))) for seg in ROOTS for side in SIDES}
    return BodyParams(
        width=float(rng.uniform(0.92, 1.06)),
        height=float(rng.uniform(0.95, 1.05)),
        fat_mm=float(rng.uniform(6.0, 14.0)),
        shoulder_drop={"left": float(rng.uniform(-6, 6)), "right": float(rng.uniform(-6, 6))},
        y_shift=float(rng.uniform(-6, 6)),
        root_jitter=jitter,
    )


def root_lesion(rp, normal_csa_ratio: float, measure: tuple[float, float]) -> dict | None:
    """Radius-profile lesion for :func:`~nervemuscle.phantom.anatomy.root_radius_profile`.

    The mean CSA over the measured segment becomes exactly ``rp.csa_ratio / normal_csa_ratio`` times
    normal: for a focal lesion the fusiform peak is scaled by the mean of its weight over the segment.
    """
    factor = rp.csa_ratio / normal_csa_ratio
    if rp.lesion == "diffuse":
        return {"kind": "diffuse", "factor": factor}
    if rp.lesion == "focal":
        d = np.linspace(measure[0], measure[1], 20001)
        g = fusiform_weight(d, rp.focal_center_mm, rp.focal_half_width_mm).mean()
        return {"kind": "focal", "peak": 1 + (factor - 1) / g, "center": rp.focal_center_mm,
                "half_width": rp.focal_half_width_mm}
    return None


def calibrate_atrophy(body, root_csa: dict, lesions: dict, targets: dict, normal: Anatomy,
                      *, tolerance: float = 0.003, iterations: int = 6, cache: dict | None = None,
                      builder=build_anatomy) -> Anatomy:
    """Anatomy whose atrophic muscles lose exactly the drawn volume fraction (to ``tolerance``).

    Shrinking a shape by its drawn factor does not give the same volume loss inside the field of view
    (shells, clipping, other solids on top), so the shape factor is corrected by fixed-point iteration on
    the volumes inside the T1 axial field of view, the series used for muscle measurements. ``builder`` is
    the anatomy family's ``build_*_anatomy(body, root_csa, lesions, muscle_scale)``.
    """
    from types import SimpleNamespace

    from nervemuscle.phantom.acquisition import ACQUISITIONS, series_grid
    from nervemuscle.phantom.truth import muscle_volumes_ml

    bounds = series_grid(SimpleNamespace(anatomy=normal), ACQUISITIONS["t1_axial"]).bounds
    labels = {muscle_label(*k): k for k in targets}
    normal_ml = muscle_volumes_ml(normal, bounds, labels=set(labels), cache=cache)
    scale = {k: 1.0 - a for k, a in targets.items()}
    for _ in range(iterations):
        anatomy = builder(body, root_csa, lesions, scale)
        measured: dict = {}
        ml = muscle_volumes_ml(anatomy, bounds, labels=set(labels), cache=measured)
        worst = 0.0
        for code, key in labels.items():
            if normal_ml[code] <= 0:
                continue
            loss = 1.0 - ml[code] / normal_ml[code]
            worst = max(worst, abs(loss - targets[key]))
            scale[key] = float(np.clip(scale[key] * (1.0 - targets[key]) / max(1.0 - loss, 1e-3), 0.05, 1.0))
        if worst <= tolerance:
            break
    if cache is not None:      # volumes of the returned anatomy (the last one measured)
        cache.update(measured)
    return anatomy


def make_subject(phenotype: str, seed: int, *, field_strength: float = 3.0, anatomy: str = "classic") -> Subject:
    """Draw a virtual subject.

    Parameters
    ----------
    phenotype : {"normal", "als", "mmn"}
    seed : int
        Same seed and phenotype -> identical subject; body size and pose vary with the seed.
    field_strength : {1.5, 3.0}
        Tesla; sets relaxation times.
    anatomy : {"classic", "adult", "mixed"}
        Anatomy family (:data:`ANATOMY_FAMILIES`); ``mixed`` draws one from the seed. The pathology model,
        signal physics and ground truth are the same for every family.

    Returns
    -------
    Subject
    """
    if phenotype not in PHENOTYPES:
        raise ValueError(f"phenotype must be one of {PHENOTYPES}, got {phenotype!r}")
    if field_strength not in (1.5, 3.0):
        raise ValueError(f"field_strength must be 1.5 or 3.0, got {field_strength}")
    family = resolve_family(anatomy, phenotype, seed)
    if family == "adult":
        from nervemuscle.phantom import adult

        rng = np.random.default_rng(np.random.SeedSequence([int(seed), _PHENOTYPE_CODE[phenotype], 3, 1]))
        body, builder = adult.draw_body(rng), adult.build_adult_anatomy
    else:
        rng = subject_rng(phenotype, seed)
        body, builder = draw_body(rng), build_anatomy
    affected = None if phenotype == "normal" else str(rng.choice(SIDES))
    pathology = draw_pathology(phenotype, rng, affected, nerve_t2=base_tissue("nerve", field_strength).t2,
                               muscle_t2=base_tissue("muscle", field_strength).t2, protocol=_protocol())
    protocol = _protocol()
    ref = protocol["nerve"]["csa_reference_mm2"]
    measure = tuple(protocol["nerve"]["measure_from_foramen_mm"])
    root_csa = {k: ref[k[0]] * rp.normal_csa_ratio for k, rp in pathology.roots.items()}
    lesions = {k: root_lesion(rp, rp.normal_csa_ratio, measure) for k, rp in pathology.roots.items()}
    targets = {k: mp.atrophy for k, mp in pathology.muscles.items() if mp.atrophy > 0}
    cache: dict = {}
    if targets:
        normal_anatomy = builder(body, root_csa, {}, {})
        anatomy = calibrate_atrophy(body, root_csa, lesions, targets, normal_anatomy, cache=cache, builder=builder)
    else:
        anatomy = normal_anatomy = builder(body, root_csa, lesions, {})
    centerlines = {k: rm.extraforaminal(0.0, 45.0) for k, rm in anatomy.roots.items()}
    return Subject(
        id=f"{phenotype.upper()}-{seed:05d}", phenotype=phenotype, seed=int(seed), field_strength=float(field_strength),
        affected_side=affected, body=body, pathology=pathology, anatomy=anatomy, normal_anatomy=normal_anatomy,
        root_centerlines=centerlines, volume_cache=cache, family=family,
    )
