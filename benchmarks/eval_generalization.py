"""How the nerve and muscle analyses do on anatomy they were not built from: per phantom anatomy family,
leave-family-out, and on the external exams.

Usage: ``python -m benchmarks eval_generalization [--families A B ...] [--n 6] [--seed0 7000] [--jobs 2]
[--exams DIR] [--no-external] [--out benchmarks/results.json] [--keep DIR]``.

For each anatomy family of ``nervemuscle.phantom`` (``--families``; default every family the phantom offers,
or its single anatomy, called ``default``, when it has no families) ``--n`` exams are simulated into a
temporary folder with held-out seeds ``seed0, seed0 + 1, ...`` (no test, benchmark, atlas or calibration uses
seeds 7000-7999), cycling control / ALS / MMN and the 2D (axial T1 + T2 fat-sat) and 3D (T1 + 3D STIR)
protocols. Every exam is analysed in memory with :func:`nervemuscle.pipeline.analyze`, the same analysis
``nervemuscle analyze`` runs, and scored with :mod:`benchmarks.eval_external` (muscles found, volume error,
edema / atrophy / fat sensitivity and specificity, roots detected, level labels, CSA and T2-ratio errors,
root grades, study-level summary) plus the Dice overlap of the muscle label map with the phantom's label map.

Columns of the table:

- ``<family> [in]`` / ``<family> [out]``: the shipped methods on that family; ``in`` when the family is one the
  shipped atlas / calibrations were built from (:func:`shipped_provenance`), ``out`` (leave-family-out) when
  it is not. The shipped methods cannot be rebuilt from another family (the canonical atlas's builder paints
  classic-family body parameters; the nerve constants were tuned by hand), so this is the only direction;
  ``benchmarks/eval_muscle_methods.py`` builds the multi-atlas candidate from either family;
- ``external``: the four exams of the independent simulator.

The ``eval_generalization`` entry of ``benchmarks/results.json`` holds every column's pooled figures, the
nerve figures per fluid-series kind, per-exam rows, the provenance of the shipped methods and the code
version the numbers belong to.
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.eval_external import SCORED_MUSCLES, TABLE_ROWS, default_exams_dir, format_table, pool, score_exam

REPO = Path(__file__).resolve().parent.parent
#: Held-out seeds start here (nothing else in the repository draws subjects from 7000-7999).
SEED0 = 7000
#: (phenotype, exam kind) cycle of the simulated exams: controls, ALS, MMN on both protocols.
CASES = (("normal", "2d"), ("als", "2d"), ("mmn", "2d"), ("normal", "3d"), ("als", "3d"), ("mmn", "3d"))
FLUID_KIND = {"2d": "t2fs_axial", "3d": "stir_3d"}
DEFAULT_FAMILY = "default"
#: Extra rows of the table (label, key, format) after those of eval_external.
EXTRA_ROWS = (("muscle Dice mean (six)", "dice_mean", "f"), ("muscle Dice min (six)", "dice_min", "f"),
              ("analysis s / exam", "analysis_seconds_mean", "p"))


# --- what the shipped methods were built from ----------------------------------------------------------

def first_family() -> str:
    """Name of the phantom's original anatomy (``make_subject``'s default ``anatomy``), the one every shipped
    method was developed on; :data:`DEFAULT_FAMILY` while the phantom has a single anatomy."""
    from nervemuscle.phantom import subject

    param = inspect.signature(subject.make_subject).parameters.get("anatomy")
    return DEFAULT_FAMILY if param is None or not isinstance(param.default, str) else param.default


def phantom_families() -> list[str]:
    """Anatomy families the phantom offers (``[DEFAULT_FAMILY]`` while ``make_subject`` has no ``anatomy``)."""
    from nervemuscle.phantom import subject

    if "anatomy" not in inspect.signature(subject.make_subject).parameters:
        return [DEFAULT_FAMILY]
    for name in ("ANATOMY_FAMILIES", "ANATOMIES", "FAMILIES"):
        for module in (subject, importlib.import_module("nervemuscle.phantom")):
            names = getattr(module, name, None)
            if names:
                return [str(n) for n in (names.keys() if isinstance(names, dict) else names) if n != "mixed"]
    raise RuntimeError("the phantom takes an anatomy but lists no families; pass --families")


def _family_arg(family: str) -> dict:
    """Keyword for ``make_subject`` / ``simulate_exam``: none for the phantom without families."""
    return {} if phantom_families() == [DEFAULT_FAMILY] else {"anatomy": family}


def shipped_provenance() -> dict[str, Any]:
    """What each shipped atlas, table or calibration was built from, read from the code and data files.

    Returns ``{method: {"families": [...], "detail": str}}``. Hand-tuned constants of the nerve method are
    listed with the family they were tuned on (the only family there was then).
    """
    family1 = first_family()
    out: dict[str, Any] = {}
    try:
        from nervemuscle.muscle import atlas
    except ImportError:
        atlas = None
    if atlas is not None and (Path(atlas.__file__).resolve().parent.parent / "data" / atlas.ATLAS_FILE).is_file():
        out["muscle canonical atlas (data/muscle_atlas.npz)"] = {
            "families": [family1],
            "detail": f"majority labels of normal phantom subjects, seeds {list(atlas.ATLAS_SEEDS)}, "
                      f"fat bank {list(atlas.FAT_BANK_MM)} mm x shoulder-drop bank {list(atlas.DROP_BANK_MM)} mm"}
        out["muscle reference-volume width calibration (muscle_atlas.npz volume_calibration)"] = {
            "families": [family1],
            "detail": f"exp(a + b ln s) per muscle, least squares on normal phantom subjects seeds "
                      f"{atlas.CALIBRATION_SEEDS[0]}-{atlas.CALIBRATION_SEEDS[-1]}"}
    out.update({
        "nerve PSF variance divisor (nerve/csa.py PSF_VARIANCE_DIVISOR)": {
            "families": [family1], "detail": "hand-calibrated on phantom 2D T2 fat-sat CSA bias"},
        "nerve landmark / tracking / quality-gate constants (nerve/*.py)": {
            "families": [family1], "detail": "hand-tuned on phantom exams (dev seeds, see git log of nerve/)"},
        "grading protocol thresholds (data/protocol_default.yaml)": {
            "families": [], "detail": "clinical reference section 8 defaults, not fitted on any phantom"},
    })
    analyze = importlib.import_module("nervemuscle.muscle.analyze")
    if hasattr(analyze, "MIN_ATLAS_FIT"):
        out[f"muscle atlas-fit threshold {analyze.MIN_ATLAS_FIT} (muscle/analyze.py MIN_ATLAS_FIT)"] = {
            "families": [family1, "external"],
            "detail": "placed between the atlas family's fits and the external exams' fits (its docstring): the "
                      "external exams are not independent of this threshold"}
    if hasattr(analyze, "MAX_VOLUME_CV"):
        out[f"muscle quality gate volume CV {analyze.MAX_VOLUME_CV} (muscle/analyze.py MAX_VOLUME_CV)"] = {
            "families": [], "detail": "engineering choice, no fit recorded"}
    grading = importlib.import_module("nervemuscle.nerve.grading")
    if hasattr(grading, "FOCAL_SWELLING_INDEX"):
        out["nerve focal-swelling index (nerve/grading.py FOCAL_SWELLING_INDEX)"] = {
            "families": [family1], "detail": "root CSA profiles of phantom exams seeds 100-117 (docs/methods.md)"}
    return out


def built_on_families(provenance: dict[str, Any]) -> set[str]:
    """Phantom families any shipped atlas or calibration was built or tuned on (``default`` read as
    :func:`first_family`; ``external`` is not a phantom family)."""
    return {first_family() if f == DEFAULT_FAMILY else f for p in provenance.values() for f in p["families"]
            if f != "external"}


# --- one exam --------------------------------------------------------------------------------------------

def simulate(family: str, phenotype: str, seed: int, kind: str, out: Path) -> Path:
    """Simulate one phantom exam of ``family`` under ``out`` (``<out>/<family>-<kind>-<seed>/<exam_id>``)."""
    from nervemuscle.phantom.exam import simulate_exam

    return simulate_exam(out / f"{family}-{kind}-{seed}", phenotype, seed, kind=kind, **_family_arg(family))


def muscle_dice(ours, truth_labels_path: Path, truth_muscles: list[dict],
                muscles: tuple[str, ...] = SCORED_MUSCLES) -> dict[str, float | None]:
    """Dice of each scored in-view truth muscle (``"name side"``) between our label map and the phantom's.

    A muscle we did not label scores 0.
    """
    from nervemuscle.anatomy import muscle_label
    from nervemuscle.muscle.grid import resample_to
    from nervemuscle.volume import Volume

    truth = Volume.load(truth_labels_path)
    ours_on_truth = None if ours is None else resample_to(ours, truth, order=0).data
    out = {}
    for t in truth_muscles:
        if t["name"] not in muscles or not t.get("in_fov", True):
            continue
        code = muscle_label(t["name"], t["side"])
        ref = truth.data == code
        mine = np.zeros_like(ref) if ours_on_truth is None else ours_on_truth == code
        total = int(ref.sum() + mine.sum())
        out[f"{t['name']} {t['side']}"] = None if total == 0 else 2.0 * float((ref & mine).sum()) / total
    return out


def _t1_label_file(exam: Path, truth: dict) -> Path | None:
    """The phantom label map of the exam's T1 series (``series[].labels``, else ``labels/<number>_*``)."""
    series = next((s for s in truth.get("series", []) if s.get("role") == "t1"), None)
    if series is None:
        return None
    if series.get("labels") and (exam / series["labels"]).is_file():
        return exam / series["labels"]
    found = sorted((exam / "labels").glob(f"{series['series_number']}_*labels.nii.gz"))
    return found[0] if found else None


def evaluate_exam(exam: str, keep: str | None = None) -> dict[str, Any]:
    """Analyse ``exam/dicom`` (outputs also written under ``keep`` when given) and score it against its truth.

    Returns ``{"exam", "score" (eval_external.score_exam), "dice", "seconds", "timings", "error"}``; an
    analysis that raises is scored as nothing found, with the error kept.
    """
    from nervemuscle.pipeline import analyze, write_outputs

    exam_dir = Path(exam)
    truth = json.loads((exam_dir / "truth.json").read_text())
    start = time.perf_counter()
    error, findings, labels, timings = None, {"exam_id": exam_dir.name}, None, {}
    try:
        analysis = analyze(exam_dir / "dicom")
        seconds = time.perf_counter() - start
        findings, labels, timings = analysis.findings, analysis.muscle_labels, analysis.timings
        if keep is not None:
            write_outputs(analysis, Path(keep) / exam_dir.name, pdf=False)
    except Exception as exc:  # noqa: BLE001 - a failed exam is a result (nothing found), not the end of the run
        error = f"{exc.__class__.__name__}: {exc}"
        seconds = time.perf_counter() - start
    label_file = _t1_label_file(exam_dir, truth)
    return {"exam": exam_dir.name, "score": score_exam(findings, truth),
            "dice": muscle_dice(labels, label_file, truth["muscles"]) if label_file is not None else None,
            "seconds": seconds, "timings": {k: round(v, 2) for k, v in timings.items()}, "error": error}


# --- pooling and the table -------------------------------------------------------------------------------

def figures(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Pooled figures of :func:`evaluate_exam` results (those of :func:`benchmarks.eval_external.pool` plus
    Dice and time)."""
    out = pool([r["score"] for r in results])
    dice = [d for r in results if r["dice"] for d in r["dice"].values() if d is not None]
    out["dice_mean"] = float(np.mean(dice)) if dice else None
    out["dice_min"] = float(np.min(dice)) if dice else None
    out["analysis_seconds_mean"] = float(np.mean([r["seconds"] for r in results])) if results else None
    out["failed_exams"] = [f"{r['exam']}: {r['error']}" for r in results if r["error"]]
    return out


#: Figures kept per exam in the results (the pooled columns keep them all).
PER_EXAM_KEYS = ("muscles_found", "muscles_not_assessable", "muscle_volume_median_error_pct", "roots_reported",
                 "roots_detected", "root_label_accuracy", "root_csa_median_error_pct", "root_t2_ratio_median_error_pct")


def _brief(result: dict[str, Any]) -> dict[str, Any]:
    """One exam's key figures, its study-level calls ``[found, true]`` and mean Dice."""
    figs = pool([result["score"]])
    dice = [d for d in (result["dice"] or {}).values() if d is not None]
    return {**{k: figs[k] for k in PER_EXAM_KEYS}, "study": result["score"]["study"],
            "dice_mean": float(np.mean(dice)) if dice else None}


def code_version() -> dict[str, Any]:
    """Commit of the repository and whether ``src/`` has uncommitted changes (the numbers belong to both)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()
    return {"commit": git("rev-parse", "--short", "HEAD"), "src_dirty": bool(git("status", "--porcelain", "src"))}


# --- the whole evaluation --------------------------------------------------------------------------------

def _limit_threads(threads: int) -> None:
    """Worker initializer: BLAS / OpenMP / ITK (ANTs) threads per worker, so workers do not oversubscribe."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"):
        os.environ[var] = str(threads)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(families: list[str] | None = None, n: int = 6, seed0: int = SEED0, exams_dir: Path | None = None,
        external: bool = True, jobs: int = 2, keep: Path | None = None) -> dict[str, Any]:
    """Simulate, analyse and score; returns the ``results.json`` entry (see module notes)."""
    families = families or phantom_families()
    ext_items = []
    if external:
        ext_dir = exams_dir or default_exams_dir()
        ext_items = [(p.parent, "") for p in sorted(ext_dir.glob("*/truth.json"))]
        if not ext_items:
            raise FileNotFoundError(f"{ext_dir}: no <exam>/truth.json folders (--exams or --no-external)")
    provenance = shipped_provenance()
    built_on = built_on_families(provenance)
    tmp = Path(tempfile.mkdtemp(prefix="nm-eval-generalization-"))
    columns: dict[str, dict] = {}
    per_exam: dict[str, list] = {}
    try:
        threads = max(1, (os.cpu_count() or 1) // jobs)
        with ProcessPoolExecutor(max_workers=jobs, initializer=_limit_threads, initargs=(threads,)) as workers:
            exams: dict[str, list[tuple[Path, str]]] = {}
            for family in families:
                cases = [(CASES[i % len(CASES)], seed0 + i) for i in range(n)]
                _progress(f"simulating {n} {family} exams ...")
                futures = [workers.submit(simulate, family, ph, seed, kind, tmp / "exams")
                           for (ph, kind), seed in cases]
                exams[family] = [(f.result(), kind) for f, ((_, kind), _) in zip(futures, cases)]

            def evaluate(label: str, items: list[tuple[Path, str]]) -> None:
                _progress(f"analysing {label} ({len(items)} exams) ...")
                sub = None if keep is None else str(keep / label.replace(" ", "_").replace(">", ""))
                results = list(workers.map(evaluate_exam, [str(p) for p, _ in items], [sub] * len(items)))
                columns[label] = figures(results)
                kinds = sorted({k for _, k in items if k})
                if len(kinds) > 1:
                    columns[label]["by_fluid_series"] = {
                        FLUID_KIND[k]: pool([r["score"] for r, (_, kk) in zip(results, items) if kk == k])
                        for k in kinds}
                per_exam[label] = [{"exam": r["exam"], "kind": k, "error": r["error"],
                                    "seconds": round(r["seconds"], 1), "timings": r["timings"], **_brief(r)}
                                   for r, (_, k) in zip(results, items)]

            for family in families:
                evaluate(f"{family} [{'in' if family in built_on else 'out'}]", exams[family])
            if ext_items:
                evaluate("external", ext_items)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"families": families, "exams_per_family": n, "seeds": [seed0, seed0 + n - 1],
            "cases": [f"{ph} {kind}" for ph, kind in CASES[:n]], "muscles_scored": list(SCORED_MUSCLES),
            "built_from": provenance, "code": code_version(), "columns": columns, "per_exam": per_exam}


def main(argv: list[str] | None = None) -> int:
    from benchmarks.__main__ import write_results

    parser = argparse.ArgumentParser(prog="python -m benchmarks eval_generalization",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=None, help="anatomy families (default: all)")
    parser.add_argument("--n", type=int, default=len(CASES), help="exams per family")
    parser.add_argument("--seed0", type=int, default=SEED0)
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--exams", type=Path, default=None, help="external exams <exam>/{dicom,truth.json}")
    parser.add_argument("--no-external", action="store_true")
    parser.add_argument("--keep", type=Path, default=None, help="also write every analyze output here")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results.json",
                        help="results file (the eval_generalization entry is replaced)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    result = run(args.families, args.n, args.seed0, args.exams, not args.no_external, args.jobs, args.keep)
    seconds = round(time.perf_counter() - start, 1)
    write_results({"eval_generalization": {"ok": True, "seconds": seconds, "results": result}}, args.out)
    print(format_table(result["columns"], TABLE_ROWS + EXTRA_ROWS))
    for label, cols in result["columns"].items():
        for fail in cols["failed_exams"]:
            print(f"{label}: {fail}")
    print("\nbuilt from:")
    for method, prov in result["built_from"].items():
        print(f"  {method}: {', '.join(prov['families']) or 'no phantom family'} ({prov['detail']})")
    print(f"\ncode {result['code']['commit']}{' + uncommitted src changes' if result['code']['src_dirty'] else ''}; "
          f"{seconds} s; written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
