"""Two muscle segmentations compared on anatomy they were not built from: the shipped single-atlas
parcellation and a multi-atlas ANTs registration with label fusion.

Usage: ``python -m benchmarks eval_muscle_methods [--families A B] [--n 4] [--seed0 7100] [--no-external]``.

Methods (both on the same T1 tissue classes, :func:`nervemuscle.muscle.tissue.classify`):

- ``single-atlas``: :func:`nervemuscle.muscle.segment.parcellate` after the 5-parameter atlas search; its atlas
  and volume calibration were built from the classic phantom family (``nervemuscle.muscle.atlas``);
- ``multi-atlas[F]``: :func:`nervemuscle.muscle.multiatlas.segment` with four atlases built from normal
  subjects of family ``F`` (:mod:`nervemuscle.phantom.muscle_atlases`), ANTs affine + SyN, majority vote.

Exams: ``--n`` held-out normal and ALS phantom exams per family (seeds from ``--seed0``; T1 + exact label
map) and the external exams (T1 from DICOM; truth volumes only). Figures per method and exam set: graded
muscles found (volume > 0 of the six scored), median absolute volume error of the raw label volume, Dice
(phantom only) and seconds per exam. Results go to the ``eval_muscle_methods`` entry of results.json.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.__main__ import HERE, write_results
from benchmarks.eval_external import default_exams_dir

SCORED = ("deltoid", "pectoralis_major", "supraspinatus", "infraspinatus", "subscapularis", "trapezius")
SEED0 = 7100


def phantom_exam(family: str, phenotype: str, seed: int):
    """(T1 volume, T1 label map, {(muscle, side): true volume ml}) of one phantom exam."""
    from nervemuscle.phantom import acquire, make_subject
    from nervemuscle.phantom.truth import exam_truth

    subject = make_subject(phenotype, seed, anatomy=family)
    t1, labels = acquire(subject, "t1_axial")
    truth = exam_truth(subject, ["t1_axial", "t2fs_axial"])
    volumes = {(m["name"], m["side"]): m["volume_ml"] for m in truth["muscles"] if m.get("in_fov", True)}
    return t1, labels, volumes


def external_exam(exam_dir: Path):
    """(T1 volume, None, {(muscle, side): true volume ml}) of one external exam."""
    from nervemuscle.io import load_exam
    from nervemuscle.pipeline import select_series

    choice = select_series(load_exam(exam_dir / "dicom"))
    truth = json.loads((exam_dir / "truth.json").read_text())
    return choice.t1.volume, None, {(m["name"], m["side"]): m["volume_ml"] for m in truth["muscles"]}


def segment_single(t1):
    """Label map of the shipped single-atlas parcellation."""
    from nervemuscle.muscle import tissue
    from nervemuscle.muscle.segment import fit_atlas, parcellate

    tissues = tissue.classify(t1)
    transform, atlas = fit_atlas(t1, tissues)
    return parcellate(t1, tissues, transform, atlas)


def segment_multi(t1, atlases):
    """Label map of the multi-atlas segmentation with ``atlases``."""
    from nervemuscle.muscle import multiatlas, tissue

    return multiatlas.segment(t1, tissue.classify(t1), atlases)[0]


def score(labels, truth_labels, volumes: dict) -> dict:
    """Muscles found, absolute volume errors and Dice of one label map against the truth."""
    from nervemuscle.anatomy import muscle_label
    from nervemuscle.muscle.grid import resample_to

    voxel_ml = abs(np.linalg.det(labels.affine[:3, :3])) / 1000.0
    counts = np.bincount(labels.data.ravel().astype(np.int64), minlength=64)
    truth = None if truth_labels is None else resample_to(truth_labels, labels, order=0).data
    found, errors, dice = 0, [], []
    for (name, side), true_ml in volumes.items():
        if name not in SCORED or not true_ml:
            continue
        code = muscle_label(name, side)
        ml = counts[code] * voxel_ml
        found += ml > 0
        errors.append(abs(ml - true_ml) / true_ml)
        if truth is not None:
            a, b = labels.data == code, truth == code
            dice.append(2.0 * (a & b).sum() / max(a.sum() + b.sum(), 1))
    return {"found": int(found), "scored": len(errors), "errors": errors, "dice": dice}


def pooled(rows: list[dict], seconds: list[float]) -> dict:
    """Figures of one method on one exam set."""
    errors = [e for r in rows for e in r["errors"]]
    dice = [d for r in rows for d in r["dice"]]
    return {"exams": len(rows),
            "muscles_found": round(sum(r["found"] for r in rows) / max(sum(r["scored"] for r in rows), 1), 3),
            "volume_error_median": round(float(np.median(errors)), 3) if errors else None,
            "dice_mean": round(float(np.mean(dice)), 3) if dice else None,
            "seconds_per_exam": round(float(np.mean(seconds)), 2) if seconds else None}


def run(families: list[str] | None = None, n: int = 4, seed0: int = SEED0, external: bool = True) -> dict:
    """Evaluate both methods on every exam set; multi-atlas once per atlas family (leave-family-out)."""
    from nervemuscle.phantom import ANATOMY_FAMILIES
    from nervemuscle.phantom.muscle_atlases import build_atlases

    families = families or list(ANATOMY_FAMILIES)
    sets: dict[str, list] = {}
    for family in families:
        specs = [("normal" if i % 2 == 0 else "als", seed0 + i) for i in range(n)]
        sets[f"phantom:{family}"] = [phantom_exam(family, ph, s) for ph, s in specs]
    if external:
        root = default_exams_dir()
        sets["external"] = [external_exam(p) for p in sorted(root.glob("ext-*")) if (p / "truth.json").exists()]
    methods = {"single-atlas (built on classic)": segment_single}
    for family in families:
        atlases = build_atlases((family,))
        methods[f"multi-atlas (built on {family})"] = (lambda t1, a=atlases: segment_multi(t1, a))
    results: dict[str, dict] = {}
    for method, segment in methods.items():
        for set_name, exams in sets.items():
            rows, seconds = [], []
            for t1, truth_labels, volumes in exams:
                t0 = time.process_time()
                labels = segment(t1)
                seconds.append(time.process_time() - t0)
                rows.append(score(labels, truth_labels, volumes))
            results.setdefault(method, {})[set_name] = pooled(rows, seconds)
            print(f"{method:38s} {set_name:22s} {results[method][set_name]}", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    """Command-line entry (see module notes)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks eval_muscle_methods", description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=None)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--seed0", type=int, default=SEED0)
    parser.add_argument("--no-external", action="store_true")
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    results = run(args.families, args.n, args.seed0, not args.no_external)
    write_results({"eval_muscle_methods": {"ok": True, "seconds": round(time.perf_counter() - t0, 1),
                                           "results": results}}, args.out)
    return 0
