"""The structured reading form, generated from the grading protocol, and the read item vocabulary.

A read is a set of ``(item, scale, grade)`` triples, the rows of the export consumed by
``nervemuscle cohort --reads``:

* roots ``C5_left`` .. ``T1_right`` on scales ``nerve_t2`` (T2 signal) and ``nerve_calibre`` (thickening);
* muscles ``deltoid_left`` .. on ``muscle_edema``, ``muscle_fat`` and ``muscle_atrophy``;
* ``overall`` on ``impression``: 0 normal, 1 abnormal nerve, 2 abnormal muscle, 3 both.

Grades on the protocol scales run 0..len(thresholds) (0 none, 1 mild, 2 moderate, 3 severe).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from nervemuscle.anatomy import MUSCLES, ROOTS, SIDES

OVERALL_ITEM = "overall"
IMPRESSION_SCALE = "impression"
IMPRESSION_CHOICES = ("normal", "abnormal nerve", "abnormal muscle", "abnormal nerve and muscle")

#: Read scale -> (protocol section, thresholds key, findings.json key, label).
NERVE_SCALES = {
    "nerve_t2": ("nerve", "t2_thresholds", "t2_grade", "T2 signal"),
    "nerve_calibre": ("nerve", "thickening_thresholds", "thickening_grade", "Thickening"),
}
MUSCLE_SCALES = {
    "muscle_edema": ("muscle", "edema_thresholds", "edema_grade", "Edema"),
    "muscle_fat": ("muscle", "fat_thresholds", "fat_grade", "Fatty infiltration"),
    "muscle_atrophy": ("muscle", "atrophy_thresholds", "atrophy_grade", "Atrophy"),
}


@dataclass(frozen=True)
class Scale:
    name: str
    label: str
    choices: tuple[str, ...]  # choice i is grade i


@dataclass(frozen=True)
class FormSection:
    title: str
    items: tuple[str, ...]
    scales: tuple[Scale, ...]


def _protocol_scales(protocol: dict[str, Any], table: dict) -> tuple[Scale, ...]:
    names = protocol.get("severity_names", ["none", "mild", "moderate", "severe"])
    scales = []
    for scale, (section, key, _finding, label) in table.items():
        n = len(protocol[section][key]) + 1
        scales.append(Scale(scale, label, tuple(names[i] if i < len(names) else str(i) for i in range(n))))
    return tuple(scales)


def build_form(protocol: dict[str, Any]) -> list[FormSection]:
    """Sections of the reading form: roots, muscles and the overall impression."""
    roots = tuple(f"{r}_{s}" for r in ROOTS for s in SIDES)
    muscles = tuple(f"{m}_{s}" for m in MUSCLES for s in SIDES)
    return [
        FormSection("Nerve roots", roots, _protocol_scales(protocol, NERVE_SCALES)),
        FormSection("Muscles", muscles, _protocol_scales(protocol, MUSCLE_SCALES)),
        FormSection("Overall", (OVERALL_ITEM,), (Scale(IMPRESSION_SCALE, "Impression", IMPRESSION_CHOICES),)),
    ]


def form_as_dict(protocol: dict[str, Any]) -> list[dict[str, Any]]:
    """:func:`build_form` as JSON-ready dicts (served to the browser)."""
    return [asdict(section) for section in build_form(protocol)]


def allowed_grades(protocol: dict[str, Any]) -> dict[tuple[str, str], int]:
    """``{(item, scale): highest grade}`` for every gradable cell of the form."""
    return {(item, scale.name): len(scale.choices) - 1
            for section in build_form(protocol) for item in section.items for scale in section.scales}


def impression(nerve_abnormal: bool | None, muscle_abnormal: bool | None) -> int | None:
    """Overall impression code from the two study-level findings (``None`` if neither is known)."""
    if nerve_abnormal is None and muscle_abnormal is None:
        return None
    return int(bool(nerve_abnormal)) + 2 * int(bool(muscle_abnormal))


def automated_grades(findings: dict[str, Any]) -> dict[tuple[str, str], int]:
    """The automated grades of a findings.json in the read vocabulary (not-assessable items left out)."""
    out: dict[tuple[str, str], int] = {}
    for nerve in findings.get("nerves", []):
        item = f"{nerve['segment']}_{nerve['side']}"
        for scale, (_s, _k, key, _l) in NERVE_SCALES.items():
            if nerve.get(key) is not None:
                out[(item, scale)] = int(nerve[key])
    for muscle in findings.get("muscles", []):
        item = f"{muscle['name']}_{muscle['side']}"
        for scale, (_s, _k, key, _l) in MUSCLE_SCALES.items():
            if muscle.get(key) is not None:
                out[(item, scale)] = int(muscle[key])
    summary = findings.get("summary", {})
    overall = impression(summary.get("nerve_abnormal"), summary.get("muscle_abnormal"))
    if overall is not None:
        out[(OVERALL_ITEM, IMPRESSION_SCALE)] = overall
    return out
