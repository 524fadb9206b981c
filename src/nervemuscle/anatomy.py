"""Names and label codes shared by the phantom, the analyses, the reports and the reader.

A label map is an integer volume on the grid of the series it belongs to. Codes:

* 1-19: tissues that are not graded (see :data:`TISSUE_LABELS`);
* 20-39: muscles, ``muscle_label(name, side)``;
* 40-59: nerve roots, ``root_label(segment, side)``.
"""
from __future__ import annotations

SIDES: tuple[str, ...] = ("left", "right")

#: Roots of the brachial plexus, cranial to caudal.
ROOTS: tuple[str, ...] = ("C5", "C6", "C7", "C8", "T1")

#: Graded shoulder-girdle muscles (snake_case names used in findings.json).
MUSCLES: tuple[str, ...] = (
    "deltoid",
    "pectoralis_major",
    "supraspinatus",
    "infraspinatus",
    "subscapularis",
    "trapezius",
    "anterior_scalene",
    "middle_scalene",
)

TISSUE_LABELS: dict[str, int] = {
    "subcutaneous_fat": 1,
    "skin": 2,
    "cortical_bone": 3,
    "marrow": 4,
    "csf": 5,
    "spinal_cord": 6,
    "artery": 7,
    "vein": 8,
    "lung": 9,
    "soft_tissue": 10,
    "intermuscular_fat": 11,
    "disc": 12,
    "nerve_trunk": 13,
    "paraspinal_muscle": 14,
}


def muscle_label(name: str, side: str) -> int:
    """Label code of a graded muscle on one side."""
    return 20 + 2 * MUSCLES.index(name) + SIDES.index(side)


def muscle_item(name: str, side: str) -> str:
    """How findings name a graded muscle in text, e.g. a ``not_assessable`` item: ``"pectoralis major left"``."""
    return f"{name.replace('_', ' ')} {side}"


def root_label(segment: str, side: str) -> int:
    """Label code of a root on one side."""
    return 40 + 2 * ROOTS.index(segment) + SIDES.index(side)


def label_names() -> dict[int, str]:
    """All codes with readable names, e.g. ``{21: 'deltoid_right', 40: 'C5_left', ...}``."""
    names = {code: name for name, code in TISSUE_LABELS.items()}
    for m in MUSCLES:
        for s in SIDES:
            names[muscle_label(m, s)] = f"{m}_{s}"
    for r in ROOTS:
        for s in SIDES:
            names[root_label(r, s)] = f"{r}_{s}"
    return names
