"""MR signal model: relaxation times per tissue and field, spin-echo / fat-sat / STIR / Dixon signals.

Values from clinical-reference.md section 4 (SpinSight table) where given; nerve PD/T1 and the
flow-void amplitudes are engineering assumptions [A] chosen so that a normal root is 1.2-1.4x muscle
on the fat-saturated T2 series. Each tissue has a water compartment and a fat fraction; series signals
are returned as a signed ``(water, fat)`` pair (the water of adipose tissue is given muscle-like
relaxation so that fat suppression leaves fat dark) so that partial volume adds them linearly before the
magnitude is taken.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from nervemuscle.anatomy import TISSUE_LABELS, label_names

#: Echo time shared by every fluid-sensitive series (T2 FS, STIR, Dixon TSE), ms. With one TE and T1
#: unchanged by disease, a T2 change gives the same lesion/normal signal ratio on all of them.
FLUID_TE_MS = 70.0

#: Fat resonances (ppm from water, relative amplitude), clinical-reference.md section 4.
FAT_PEAKS = ((-3.8, 0.087), (-3.4, 0.694), (-2.6, 0.129), (-1.9, 0.004), (-0.4, 0.039), (0.6, 0.047))
GAMMA_MHZ_PER_T = 42.577


@dataclass(frozen=True)
class Tissue:
    """Water compartment (PD, T1, T2 in ms) plus a fat fraction with the field's fat T1/T2."""

    pd: float
    t1: float
    t2: float
    fat_fraction: float = 0.0


# name -> {field: (pd, t1, t2, fat_fraction)}
_TABLE = {
    "muscle": {1.5: (1.0, 856, 27, 0.0), 3.0: (1.0, 898, 29, 0.0)},
    "fat": {1.5: (1.0, 856, 27, 0.95), 3.0: (1.0, 898, 29, 0.95)},       # 5% water, muscle-like; fat T1/T2 below
    "marrow": {1.5: (1.0, 856, 46, 0.5), 3.0: (1.0, 898, 34, 0.5)},
    "cord": {1.5: (0.85, 745, 74, 0.0), 3.0: (0.85, 993, 78, 0.0)},
    "csf": {1.5: (1.0, 4280, 2030, 0.0), 3.0: (1.0, 4160, 2100, 0.0)},
    "bone": {1.5: (0.05, 1000, 3, 0.0), 3.0: (0.05, 1000, 1, 0.0)},
    "artery": {1.5: (0.03, 1441, 290, 0.0), 3.0: (0.03, 1932, 275, 0.0)},      # flow void
    "vein": {1.5: (0.07, 1441, 290, 0.0), 3.0: (0.07, 1932, 275, 0.0)},        # slow-flow void
    "nerve": {1.5: (0.56, 1100, 50, 0.0), 3.0: (0.56, 1300, 44.5, 0.0)},
    "skin": {1.5: (0.9, 700, 38, 0.0), 3.0: (0.9, 800, 36, 0.0)},
    "lung": {1.5: (0.08, 1200, 25, 0.0), 3.0: (0.08, 1300, 20, 0.0)},
    "disc": {1.5: (0.9, 1000, 100, 0.0), 3.0: (0.9, 1100, 90, 0.0)},
    "air": {1.5: (0.0, 1000, 1, 0.0), 3.0: (0.0, 1000, 1, 0.0)},
}
_FAT_RELAX = {1.5: (290.0, 165.0), 3.0: (370.0, 130.0)}

_TISSUE_OF_LABEL = {
    0: "air",
    TISSUE_LABELS["subcutaneous_fat"]: "fat",
    TISSUE_LABELS["skin"]: "skin",
    TISSUE_LABELS["cortical_bone"]: "bone",
    TISSUE_LABELS["marrow"]: "marrow",
    TISSUE_LABELS["csf"]: "csf",
    TISSUE_LABELS["spinal_cord"]: "cord",
    TISSUE_LABELS["artery"]: "artery",
    TISSUE_LABELS["vein"]: "vein",
    TISSUE_LABELS["lung"]: "lung",
    TISSUE_LABELS["soft_tissue"]: "muscle",
    TISSUE_LABELS["intermuscular_fat"]: "fat",
    TISSUE_LABELS["disc"]: "disc",
    TISSUE_LABELS["nerve_trunk"]: "nerve",
    TISSUE_LABELS["paraspinal_muscle"]: "muscle",
}


def _field_key(field_strength: float) -> float:
    if field_strength not in (1.5, 3.0):
        raise ValueError(f"field_strength must be 1.5 or 3.0 T, got {field_strength}")
    return float(field_strength)


def base_tissue(name: str, field_strength: float) -> Tissue:
    """Normal tissue parameters (``name`` in muscle, fat, marrow, cord, csf, bone, artery, vein, nerve, ...)."""
    return Tissue(*_TABLE[name][_field_key(field_strength)])


def tissue_of_label(label: int, field_strength: float, pathology=None) -> Tissue:
    """Tissue of a label code, with the subject's pathology applied to graded muscles and roots."""
    if label in _TISSUE_OF_LABEL:
        return base_tissue(_TISSUE_OF_LABEL[label], field_strength)
    name = label_names()[label]
    if 20 <= label < 40:
        t = base_tissue("muscle", field_strength)
        if pathology is not None:
            mp = pathology.muscle_of_label(label)
            t = replace(t, t2=t.t2 * mp.t2_factor, fat_fraction=mp.fat_fraction)
        return t
    if 40 <= label < 60:
        t = base_tissue("nerve", field_strength)
        if pathology is not None:
            t = replace(t, t2=t.t2 * pathology.root_of_label(label).t2_factor)
        return t
    raise KeyError(f"no tissue for label {label} ({name})")


def t2_factor_for_ratio(ratio: float, t2_ms: float, te_ms: float = FLUID_TE_MS) -> float:
    """T2 multiplier that raises the spin-echo signal at ``te_ms`` by ``ratio`` (T1 unchanged)."""
    denom = 1.0 - t2_ms * np.log(ratio) / te_ms
    if denom <= 0:
        raise ValueError(f"signal ratio {ratio} is not reachable by T2 prolongation at TE {te_ms} ms")
    return 1.0 / denom


def fat_phasor(dt_ms: float, field_strength: float) -> complex:
    """Complex signal of unit fat after a chemical-shift evolution time ``dt_ms`` (6-peak model)."""
    f0 = GAMMA_MHZ_PER_T * field_strength  # MHz; ppm * MHz = Hz
    return complex(sum(a * np.exp(2j * np.pi * ppm * f0 * dt_ms * 1e-3) for ppm, a in FAT_PEAKS))


def _recovery(kind: str, tr: float, ti: float | None, t1: float) -> float:
    e_tr = np.exp(-tr / t1)
    if kind == "ir":
        return 1.0 - 2.0 * np.exp(-ti / t1) + e_tr      # signed: negative below the null point
    return 1.0 - e_tr


def compartment_signals(tissue: Tissue, *, kind: str, tr: float, te: float, ti: float | None,
                        field_strength: float) -> tuple[float, float]:
    """Signed noise-free (water, fat) signal of a tissue for a spin-echo (``"se"``) or IR (``"ir"``) series."""
    t1f, t2f = _FAT_RELAX[_field_key(field_strength)]
    water = tissue.pd * (1 - tissue.fat_fraction) * _recovery(kind, tr, ti, tissue.t1) * np.exp(-te / tissue.t2)
    fat = tissue.pd * tissue.fat_fraction * _recovery(kind, tr, ti, t1f) * np.exp(-te / t2f)
    return float(water), float(fat)
