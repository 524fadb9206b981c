"""Exact ground truth of a simulated exam (the content of ``truth.json``)."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from nervemuscle.anatomy import MUSCLES, ROOTS, SIDES, TISSUE_LABELS, muscle_label, root_label
from nervemuscle.errors import BadInputError
from nervemuscle.grading import grade, summarize
from nervemuscle.phantom.acquisition import ACQUISITIONS, render_labels, series_grid
from nervemuscle.phantom.anatomy import root_radius_profile
from nervemuscle.phantom.signal import base_tissue, compartment_signals, tissue_of_label
from nervemuscle.protocol import default_protocol

#: Grid step (mm) used to integrate muscle volumes from the continuous model.
VOLUME_STEP_MM = 1.0

FLUID_ROLES = ("t2fs", "stir", "dixon")


def _fluid_acquisition(acquisitions: list[str]) -> str:
    for name in acquisitions:
        if ACQUISITIONS[name].role in FLUID_ROLES:
            return name
    raise ValueError(f"no fluid-sensitive series among {acquisitions}")


def _muscle_acquisition(acquisitions: list[str]) -> str:
    for name in acquisitions:
        if ACQUISITIONS[name].role == "t1":
            return name
    return acquisitions[0]


def mean_csa(root, lo: float, hi: float, lesion: dict | None, r0: float) -> float:
    """Mean analytic CSA (mm²) of a root between ``lo`` and ``hi`` mm from the foramen."""
    d = np.linspace(lo, hi, 20001)
    r = root_radius_profile(root.s_foramen + d, root.s_foramen, r0, lesion)
    return float(np.mean(np.pi * r**2))


def _water_signal(tissue, acq, field):
    return compartment_signals(tissue, kind=acq.signal_kind, tr=acq.tr_ms, te=acq.te_ms,
                               ti=acq.ti_at(field), field_strength=field)[0]


def muscle_volumes_ml(anatomy, bounds, step: float = VOLUME_STEP_MM, labels=None,
                      cache: dict | None = None) -> dict[int, float]:
    """Volume (ml) of each graded muscle label (or of ``labels``) inside a world box, from the painted model.

    A point counts for a label when the last solid containing it carries that label, so only the
    label's own solids and those painted after them are rendered (midpoint rule on a ``step`` grid).
    ``cache`` (e.g. ``subject.volume_cache``) keeps results per anatomy, box, step and label.
    """
    lo_f, hi_f = bounds
    out = {}
    box_key = (id(anatomy), tuple(np.round(lo_f, 6)), tuple(np.round(hi_f, 6)), step)
    shapes, first = {}, {}
    for i, (label, shape) in enumerate(anatomy.structures):
        if 20 <= label < 40 and (labels is None or label in labels):
            shapes.setdefault(label, []).append(shape)
            first.setdefault(label, i)
    for label, parts in shapes.items():
        if cache is not None and (box_key, label) in cache:
            out[label] = cache[(box_key, label)]
            continue
        lo = np.max([np.min([p.bbox[0] for p in parts], axis=0), lo_f], axis=0)
        hi = np.min([np.max([p.bbox[1] for p in parts], axis=0), hi_f], axis=0)
        if np.any(hi <= lo):
            out[label] = 0.0
            continue
        # cells partition [lo, hi] exactly (last cell shorter, sampled at its own centre), so the flat
        # faces of the box (clip planes, extrusion ends, field of view) fall on cell faces
        axes, weights = [], []
        for l, h in zip(lo, hi):
            edges = np.append(np.arange(l, h, step), h)
            edges = edges[np.append(np.diff(edges) > 1e-9, True)]
            axes.append(0.5 * (edges[:-1] + edges[1:]))
            weights.append(np.diff(edges) / step)
        if any(len(a) == 0 for a in axes):
            out[label] = 0.0
            continue
        # earlier solids cannot change whether a point ends up with this label
        painted = render_labels(anatomy.structures[first[label]:], *axes)
        cell = np.einsum("i,j,k->ijk", *weights)
        out[label] = float((cell * (painted == label)).sum() * step**3 / 1000.0)
        if cache is not None:
            cache[(box_key, label)] = out[label]
    return out


def exam_truth(subject, acquisitions: list[str], *, protocol: dict | None = None) -> dict:
    """Ground truth of an exam made of ``acquisitions`` (names in ACQUISITIONS).

    Returns the ``truth.json`` dict without the ``series`` list and exam metadata, which
    :func:`~nervemuscle.phantom.exam.simulate_exam` adds (``exam_id``, ``kind``, ``series``).
    """
    proto = protocol or default_protocol()
    nerve_p, muscle_p = proto["nerve"], proto["muscle"]
    field = subject.field_strength
    fluid = ACQUISITIONS[_fluid_acquisition(acquisitions)]
    fluid_grid = series_grid(subject, fluid)
    lo_b, hi_b = fluid_grid.bounds
    measure = nerve_p["measure_from_foramen_mm"]
    muscle_ref = _water_signal(base_tissue("muscle", field), fluid, field)
    normal_nerve = _water_signal(base_tissue("nerve", field), fluid, field)
    normal_t2_ratio = normal_nerve / muscle_ref
    ref = nerve_p["csa_reference_mm2"]
    from nervemuscle.phantom.subject import root_lesion

    nerves = []
    for side in SIDES:
        for seg in ROOTS:
            rp = subject.pathology.roots[(seg, side)]
            root = subject.anatomy.roots[(seg, side)]
            r0 = np.sqrt(ref[seg] * rp.normal_csa_ratio / np.pi)
            lesion = root_lesion(rp, rp.normal_csa_ratio, tuple(measure))
            csa = mean_csa(root, measure[0], measure[1], lesion, r0)
            normal_csa = mean_csa(root, measure[0], measure[1], None, r0)
            seg_pts = root.extraforaminal(*measure)
            visible = bool(np.all((seg_pts >= lo_b) & (seg_pts <= hi_b)))
            signal = _water_signal(tissue_of_label(root_label(seg, side), field, subject.pathology), fluid, field)
            t2_ratio = signal / muscle_ref
            thick_g = grade(csa / ref[seg], nerve_p["thickening_thresholds"])
            t2_g = grade(t2_ratio / normal_t2_ratio, nerve_p["t2_thresholds"])
            course = root.extraforaminal(0.0, 45.0)[::4]
            nerves.append({
                "segment": seg, "side": side, "visible": visible,
                "csa_mm2": round(csa, 4), "normal_csa_mm2": round(normal_csa, 4),
                "csa_factor": round(csa / normal_csa, 5), "lesion": rp.lesion,
                "t2_ratio": round(t2_ratio, 5), "normal_t2_ratio": round(normal_t2_ratio, 5),
                "thickening_grade": thick_g, "t2_grade": t2_g, "grade": max(thick_g, t2_g),
                "centerline_mm": np.round(course, 3).tolist(),
            })

    muscle_acq = ACQUISITIONS[_muscle_acquisition(acquisitions)]
    bounds = series_grid(subject, muscle_acq).bounds
    volumes = muscle_volumes_ml(subject.anatomy, bounds, cache=subject.volume_cache)
    normal_volumes = volumes if subject.normal_anatomy is subject.anatomy else \
        muscle_volumes_ml(subject.normal_anatomy, bounds, cache=subject.volume_cache)
    muscles = []
    for side in SIDES:
        for name in MUSCLES:
            code = muscle_label(name, side)
            mp = subject.pathology.muscles[(name, side)]
            vol, normal_vol = volumes.get(code, 0.0), normal_volumes.get(code, 0.0)
            in_fov = normal_vol > 0.0
            loss = 1.0 - vol / normal_vol if in_fov else None
            tissue = tissue_of_label(code, field, subject.pathology)
            water_ratio = _water_signal(replace(tissue, fat_fraction=0.0), fluid, field) / muscle_ref
            muscles.append({
                "name": name, "side": side, "in_fov": in_fov, "volume_ml": round(vol, 3),
                "normal_volume_ml": round(normal_vol, 3), "volume_loss": None if loss is None else round(loss, 5),
                "t2_ratio": round(water_ratio, 5), "fat_fraction": round(mp.fat_fraction, 5),
                "edema_grade": grade(water_ratio, muscle_p["edema_thresholds"]),
                "atrophy_grade": grade(loss, muscle_p["atrophy_thresholds"]),
                "fat_grade": grade(mp.fat_fraction, muscle_p["fat_thresholds"]),
            })
    rules = {
        "csa_mm2": f"mean analytic CSA perpendicular to the centerline over the extraforaminal segment "
                   f"{measure[0]}-{measure[1]} mm from the foramen (protocol nerve.measure_from_foramen_mm)",
        "thickening_grade": "grade(csa_mm2 / protocol nerve.csa_reference_mm2[level], thickening_thresholds)",
        "t2_ratio": f"noise-free signal of root / noise-free signal of normal muscle on the fluid series "
                    f"({fluid.name}); no bias field",
        "t2_grade": "grade(t2_ratio / normal_t2_ratio, nerve.t2_thresholds); normal_t2_ratio = exact ratio of a "
                    "normal root on that series",
        "muscle_t2_ratio": "water-signal ratio (edema only): noise-free water signal per unit water of the muscle / "
                           "that of normal muscle on the fluid series; fat infiltration is excluded (fat-suppressed)",
        "volume_ml": f"volume of the muscle inside the field of view of {muscle_acq.name} from the continuous model "
                     f"(painted solids integrated on a {VOLUME_STEP_MM} mm grid)",
        "volume_loss": "1 - volume_ml / normal_volume_ml (the same muscle without atrophy, same field of view)",
        "centerline_mm": "extraforaminal course, 0-45 mm from the foramen, world RAS+ mm, every 1 mm",
        "label_map": "per voxel the tissue with the largest (slice-profile weighted) fraction",
        **{f"summary.{k}": v for k, v in proto["summary_rules"].items()},
    }
    rules["vertebral_levels"] = ("world RAS+ centre (mm) of each vertebral body of the phantom; z_mm its height, "
                                 "for checking level names")
    levels = {name: {"center_mm": [round(float(v), 3) for v in c], "z_mm": round(float(c[2]), 3)}
              for name, c in subject.anatomy.landmarks.get("vertebrae", {}).items()}
    return {
        "anatomy_family": getattr(subject, "family", "classic"), "vertebral_levels": levels,
        "field_of_view_top_z_mm": round(float(series_grid(subject, muscle_acq).bounds[1][2]), 3),
        "phenotype": subject.phenotype, "seed": subject.seed, "field_strength_T": field,
        "affected_side": subject.affected_side, "fluid_series": fluid.role if fluid.role != "dixon" else "dixon_water",
        "nerves": nerves, "muscles": muscles, "summary": summarize(nerves, muscles), "rules": rules,
        "subject_id": subject.id, "tissue_labels": TISSUE_LABELS,
    }


def load_truths(cohort_dir: str | Path) -> dict[str, dict]:
    """``{exam_id: truth}`` of every ``truth.json`` below ``cohort_dir`` (a simulated cohort), in exam-id order.

    Raises
    ------
    BadInputError
        A truth file cannot be read, naming it.
    """
    truths = {}
    for path in sorted(Path(cohort_dir).rglob("truth.json")):
        try:
            truth = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise BadInputError(f"unreadable truth file: {exc}", path) from None
        truths[truth["exam_id"]] = truth
    return dict(sorted(truths.items()))
