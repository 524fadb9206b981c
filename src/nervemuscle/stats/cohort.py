"""Pooling a cohort: findings.json files + clinical table -> tidy tables -> group statistics.

Tidy tables (one row per exam, per root side, per muscle side) feed every statistic, so pandas,
scipy and statsmodels plug in directly. :func:`analyse_cohort` returns one JSON-safe dict.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd

from nervemuscle.anatomy import MUSCLES, ROOTS
from nervemuscle.errors import BadInputError
from nervemuscle.grading import SEVERITY_NAMES
from nervemuscle.protocol import load_protocol
from nervemuscle.stats.accuracy import roc_auc, sensitivity_specificity
from nervemuscle.stats.agreement import PRIMARY_WEIGHTING, kappa_with_bootstrap
from nervemuscle.stats.clinical import load_clinical, load_reads
from nervemuscle.stats.compare import fisher_test, mann_whitney
from nervemuscle.stats.correlation import logistic_odds_ratio, point_biserial, spearman
from nervemuscle.stats.proportions import proportion

GROUP_ORDER = ("ALS", "MMN", "control")

#: Study-level findings (summary keys of findings.json) with their printed names.
FINDINGS = {
    "abnormal": "Abnormal MRI",
    "nerve_abnormal": "Nerve abnormal",
    "muscle_abnormal": "Muscle abnormal",
    "muscle_edema": "Muscle edema",
    "muscle_atrophy": "Muscle atrophy",
    "muscle_fatty_infiltration": "Fatty infiltration",
}

#: Exam-level continuous measures: printed name, unit, and the direction expected in ALS vs MMN
#: (+1 higher in ALS, -1 lower in ALS: nerve enlargement is the MMN hallmark, denervation the ALS one).
MEASURES = {
    "root_csa_mean_mm2": ("Root CSA, mean of roots", "mm²", -1),
    "root_csa_ratio_max": ("Root CSA / level normal, max", "", -1),
    "root_t2_ratio_max": ("Root T2 ratio, max", "", -1),
    "muscle_t2_ratio_mean": ("Muscle T2 ratio, mean", "", +1),
    "muscle_fat_fraction_mean": ("Muscle fat fraction, mean", "", +1),
    "muscle_volume_total_ml": ("Muscle volume, total", "ml", -1),
    "muscle_volume_loss_max": ("Muscle volume loss, max", "", +1),
}

#: Ordinal severity measures correlated (Spearman) with clinical scores, with printed names.
SEVERITY_MEASURES = {
    "nerve_severity_grade": "Nerve severity (highest root grade)",
    "muscle_severity_grade": "Muscle severity (highest muscle grade)",
    "n_abnormal_roots": "Number of abnormal roots",
    "n_abnormal_muscles": "Number of abnormal muscles",
}

#: Reader scales that are not ordinal: agreement by unweighted kappa (the impression codes
#: 0 normal, 1 nerve, 2 muscle, 3 both of nervemuscle.reader.forms).
NOMINAL_SCALES = ("impression",)

PAPER = {
    "source": "Staff NP et al., Muscle Nerve 2015;52(1):137-9, doi:10.1002/mus.24630",
    "ALS": {"n": 60, "abnormal": 85, "nerve_abnormal": 58, "muscle_abnormal": 57},
    "MMN": {"n": 8, "abnormal": 75, "nerve_abnormal": 63, "muscle_abnormal": 33},
}

COMBINED_RULE = ("ALS if muscle abnormal (edema, atrophy or fat) and no root enlarged to thickening "
                 "grade >= 2; score for ROC = muscle severity grade - highest root thickening grade")


@dataclass
class Cohort:
    """The pooled cohort: tidy tables plus what could not be matched."""

    exams: pd.DataFrame
    roots: pd.DataFrame
    muscles: pd.DataFrame
    findings: dict[str, dict] = field(repr=False)
    clinical_without_findings: list[str]
    findings_without_clinical: list[str]
    files: dict[str, str]


def find_findings(root: str | Path) -> list[Path]:
    """Every ``findings.json`` under ``root`` (recursively), sorted."""
    root = Path(root)
    if not root.is_dir():
        raise BadInputError("findings folder not found", root)
    return sorted(root.rglob("findings.json"))


def _schema() -> dict:
    return json.loads(resources.files("nervemuscle.schema").joinpath("findings.schema.json").read_text())


def load_findings(root: str | Path) -> tuple[dict[str, dict], dict[str, str]]:
    """Read and schema-validate every findings.json under ``root``.

    Returns ``({exam_id: findings}, {exam_id: path})``; raises BadInputError naming the file on a
    broken or invalid document or a repeated exam id, and when there is none at all.
    """
    validator = jsonschema.Draft202012Validator(_schema())
    docs, files = {}, {}
    paths = find_findings(root)
    if not paths:
        raise BadInputError("no findings.json found (searched recursively)", root)
    for path in paths:
        try:
            doc = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadInputError(f"unreadable findings ({exc.__class__.__name__}: {exc})", path) from None
        error = jsonschema.exceptions.best_match(validator.iter_errors(doc))
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "(document)"
            raise BadInputError(f"not valid findings at {where}: {error.message}", path)
        exam_id = doc["exam_id"]
        if exam_id in docs:
            raise BadInputError(f"exam id {exam_id!r} also in {files[exam_id]}", path)
        docs[exam_id], files[exam_id] = doc, str(path)
    return docs, files


def _bool(value) -> float:
    return np.nan if value is None else float(value)


def _severity_grade(name) -> float:
    return np.nan if name is None else float(SEVERITY_NAMES.index(name))


def _nanstat(fn, values) -> float:
    arr = np.asarray([np.nan if v is None else v for v in values], dtype=float)
    return float(fn(arr)) if np.isfinite(arr).any() else np.nan


def tidy_tables(findings: dict[str, dict], protocol: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Exams, root and muscle tables from findings documents.

    ``exams`` has one row per exam: summary booleans as 1/0/NaN, severities as grades 0-3 and the
    exam-level measures of :data:`MEASURES`. ``roots`` and ``muscles`` have one row per item and side.
    """
    csa_ref = (protocol or load_protocol())["nerve"]["csa_reference_mm2"]
    root_rows, muscle_rows, exam_rows = [], [], []
    for exam_id, doc in findings.items():
        for n in doc["nerves"]:
            root_rows.append({"exam_id": exam_id, "segment": n["segment"], "side": n["side"],
                              "csa_mm2": n.get("csa_mm2"), "csa_ratio": None if n.get("csa_mm2") is None
                              else n["csa_mm2"] / csa_ref[n["segment"]],
                              "t2_ratio": n.get("t2_ratio"), "grade": n.get("grade"),
                              "thickening_grade": n.get("thickening_grade"), "t2_grade": n.get("t2_grade"),
                              "pattern": n.get("pattern")})
        for m in doc["muscles"]:
            grades = [m.get(k) for k in ("edema_grade", "atrophy_grade", "fat_grade")]
            known = [g for g in grades if g is not None]
            muscle_rows.append({"exam_id": exam_id, "name": m["name"], "side": m["side"],
                                "volume_ml": m.get("volume_ml"), "t2_ratio": m.get("t2_ratio"),
                                "fat_fraction": m.get("fat_fraction"), "volume_loss": m.get("volume_loss"),
                                "edema_grade": m.get("edema_grade"), "atrophy_grade": m.get("atrophy_grade"),
                                "fat_grade": m.get("fat_grade"), "grade": max(known) if known else None})
        s = doc["summary"]
        nerves, muscles = doc["nerves"], doc["muscles"]
        thick = [n.get("thickening_grade") for n in nerves]
        exam_rows.append({
            "exam_id": exam_id,
            **{k: _bool(s.get(k)) for k in FINDINGS},
            "nerve_severity_grade": _severity_grade(s.get("nerve_severity")),
            "muscle_severity_grade": _severity_grade(s.get("muscle_severity")),
            "thickening_grade_max": _nanstat(np.nanmax, thick),
            "n_abnormal_roots": float(sum((n.get("grade") or 0) >= 1 for n in nerves)),
            "n_abnormal_muscles": float(sum(max([m.get(k) or 0 for k in ("edema_grade", "atrophy_grade", "fat_grade")]) >= 1
                                            for m in muscles)),
            "root_csa_mean_mm2": _nanstat(np.nanmean, [n.get("csa_mm2") for n in nerves]),
            "root_csa_ratio_max": _nanstat(np.nanmax, [None if n.get("csa_mm2") is None else
                                                       n["csa_mm2"] / csa_ref[n["segment"]] for n in nerves]),
            "root_t2_ratio_max": _nanstat(np.nanmax, [n.get("t2_ratio") for n in nerves]),
            "muscle_t2_ratio_mean": _nanstat(np.nanmean, [m.get("t2_ratio") for m in muscles]),
            "muscle_fat_fraction_mean": _nanstat(np.nanmean, [m.get("fat_fraction") for m in muscles]),
            "muscle_volume_total_ml": _nanstat(np.nansum, [m.get("volume_ml") for m in muscles]),
            "muscle_volume_loss_max": _nanstat(np.nanmax, [m.get("volume_loss") for m in muscles]),
        })
    roots = pd.DataFrame(root_rows, columns=["exam_id", "segment", "side", "csa_mm2", "csa_ratio", "t2_ratio",
                                             "grade", "thickening_grade", "t2_grade", "pattern"])
    muscles = pd.DataFrame(muscle_rows, columns=["exam_id", "name", "side", "volume_ml", "t2_ratio", "fat_fraction",
                                                 "volume_loss", "edema_grade", "atrophy_grade", "fat_grade", "grade"])
    for df in (roots, muscles):
        for c in df.columns[3:].drop("pattern", errors="ignore"):
            df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    return pd.DataFrame(exam_rows), roots, muscles


def pool_cohort(findings_root: str | Path, clinical_csv: str | Path) -> Cohort:
    """Load findings and clinical data and join them on the exam id (unmatched ids are listed)."""
    findings, files = load_findings(findings_root)
    clinical = load_clinical(clinical_csv)
    exams, roots, muscles = tidy_tables(findings)
    clinical_cols = [c for c in clinical.columns if c != "id"]
    exams = exams.merge(clinical[clinical_cols], left_on="exam_id", right_index=True, how="left")
    return Cohort(
        exams=exams, roots=roots, muscles=muscles, findings=findings, files=files,
        clinical_without_findings=sorted(set(clinical.index) - set(findings)),
        findings_without_clinical=sorted(set(findings) - set(clinical.index)),
    )


def groups_present(exams: pd.DataFrame) -> list[str]:
    """Diagnosis groups with at least one exam, in the order ALS, MMN, control."""
    return [g for g in GROUP_ORDER if (exams["diagnosis"] == g).any()]


def _prop(values: pd.Series) -> dict:
    v = values.dropna()
    return proportion(int((v >= 1).sum()), int(v.size)).to_dict()


def _describe(values) -> dict:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not v.size:
        return {"n": 0, "median": None, "iqr": None, "mean": None, "sd": None}
    return {"n": int(v.size), "median": float(np.median(v)), "iqr": [float(x) for x in np.percentile(v, [25, 75])],
            "mean": float(v.mean()), "sd": float(v.std(ddof=1)) if v.size > 1 else None}


def _per_item_abnormal(table: pd.DataFrame, key: str) -> pd.DataFrame:
    """Per exam and item (sides pooled): 1 if any side has grade >= 1, NaN if no side assessable."""
    if table.empty:
        return pd.DataFrame(columns=["exam_id", key, "grade"])
    return table.groupby(["exam_id", key], as_index=False)["grade"].max()


def group_statistics(cohort: Cohort) -> dict:
    """Per diagnosis group: proportions with CIs, severity distributions, per-root/per-muscle frequency, measures."""
    exams = cohort.exams.dropna(subset=["diagnosis"])
    roots = _per_item_abnormal(cohort.roots, "segment")
    muscles = _per_item_abnormal(cohort.muscles, "name")
    muscle_names = [m for m in MUSCLES if m in set(muscles["name"])] + sorted(set(muscles["name"]) - set(MUSCLES))
    out = {}
    for g in groups_present(exams):
        ex = exams[exams["diagnosis"] == g]
        ids = set(ex["exam_id"])
        r, m = roots[roots["exam_id"].isin(ids)], muscles[muscles["exam_id"].isin(ids)]
        out[g] = {
            "n": int(len(ex)),
            "findings": {k: _prop(ex[k]) for k in FINDINGS},
            "severity": {kind: _severity_counts(ex[f"{kind}_severity_grade"]) for kind in ("nerve", "muscle")},
            "roots": {s: _prop(r.loc[r["segment"] == s, "grade"]) for s in ROOTS},
            "root_patterns": root_pattern_counts(cohort.roots[cohort.roots["exam_id"].isin(ids)]),
            "muscles": {name: _prop(m.loc[m["name"] == name, "grade"]) for name in muscle_names},
            "measures": {k: _describe(ex[k]) for k in MEASURES},
        }
    return out


def root_pattern_counts(roots: pd.DataFrame) -> dict:
    """Measured roots by pattern (findings ``pattern``: normal / diffuse / focal), with ``not_assessable``
    for roots without one and ``exams_with`` the number of exams with at least one diffuse / focal root
    (MMN: focal and multifocal; ALS: diffuse)."""
    pattern = roots["pattern"] if "pattern" in roots else pd.Series([], dtype=object)
    counts = {name: int((pattern == name).sum()) for name in ("normal", "diffuse", "focal")}
    counts["not_assessable"] = int(pattern.isna().sum())
    counts["exams_with"] = {name: int(roots.loc[pattern == name, "exam_id"].nunique()) for name in ("diffuse", "focal")}
    return counts


def _severity_counts(grades: pd.Series) -> dict:
    counts = {name: int((grades == i).sum()) for i, name in enumerate(SEVERITY_NAMES)}
    counts["not_assessable"] = int(grades.isna().sum())
    return counts


def compare_groups(cohort: Cohort, a: str = "ALS", b: str = "MMN") -> dict | None:
    """Fisher exact tests of every proportion and Mann-Whitney tests of every measure, ``a`` vs ``b``."""
    exams = cohort.exams
    ga, gb = exams[exams["diagnosis"] == a], exams[exams["diagnosis"] == b]
    if ga.empty or gb.empty:
        return None

    def counts(series):
        v = series.dropna()
        return int((v >= 1).sum()), int(v.size)

    fisher = {k: fisher_test(*counts(ga[k]), *counts(gb[k])) for k in FINDINGS}
    mw = {k: mann_whitney(ga[k], gb[k]) for k in MEASURES}
    per_root = {}
    ids_a, ids_b = set(ga["exam_id"]), set(gb["exam_id"])
    by_exam = cohort.roots.groupby(["exam_id", "segment"], as_index=False)[["csa_mm2", "t2_ratio"]].mean()
    for seg in ROOTS:
        rows = by_exam[by_exam["segment"] == seg]
        per_root[seg] = {q: mann_whitney(rows.loc[rows["exam_id"].isin(ids_a), q], rows.loc[rows["exam_id"].isin(ids_b), q])
                         for q in ("csa_mm2", "t2_ratio")}
    return {"a": a, "b": b, "fisher": fisher, "mann_whitney": mw, "per_root": per_root}


def clinical_correlation(cohort: Cohort, group: str = "ALS") -> dict | None:
    """Association of abnormality and severity with ALSFRS-R and disease duration within ``group``."""
    ex = cohort.exams[cohort.exams["diagnosis"] == group]
    outcomes = [c for c in ("alsfrs_r", "disease_duration_months") if c in ex.columns and ex[c].notna().sum() >= 3]
    if ex.empty or not outcomes:
        return None
    out = {"group": group}
    for c in outcomes:
        y = ex[c].to_numpy(float)
        out[c] = {
            "point_biserial": {k: point_biserial(ex[k], y) for k in ("abnormal", "nerve_abnormal", "muscle_abnormal")},
            "spearman": {k: spearman(ex[k], y) for k in SEVERITY_MEASURES},
            "logistic": {k: logistic_odds_ratio(ex[k], y) for k in ("abnormal", "nerve_abnormal", "muscle_abnormal")},
        }
    return out


def diagnostic_accuracy(cohort: Cohort, positive: str = "ALS", negative: str = "MMN") -> dict | None:
    """Accuracy of each finding, of the combined rule and of each measure for ``positive`` vs ``negative``."""
    ex = cohort.exams[cohort.exams["diagnosis"].isin([positive, negative])]
    if ex["diagnosis"].nunique() < 2:
        return None
    truth = (ex["diagnosis"] == positive).to_numpy()
    findings = {}
    for k in FINDINGS:
        v = ex[k].to_numpy(float)
        findings[k] = {**sensitivity_specificity(v, truth), "roc": roc_auc(v, truth)}
    thick = ex["thickening_grade_max"].fillna(0).to_numpy(float)
    muscle = ex["muscle_abnormal"].to_numpy(float)
    rule = np.where(np.isnan(muscle), np.nan, (muscle >= 1) & (thick < 2))
    score = ex["muscle_severity_grade"].to_numpy(float) - thick
    measures = {}
    for k, (_, _, direction) in MEASURES.items():
        measures[k] = {"direction": "higher in " + (positive if direction > 0 else negative),
                       "roc": roc_auc(direction * ex[k].to_numpy(float), truth)}
    return {"positive": positive, "negative": negative, "findings": findings,
            "combined_rule": {"definition": COMBINED_RULE, **sensitivity_specificity(rule, truth),
                              "roc": roc_auc(score, truth)},
            "measures": measures}


def automated_reads(findings: dict[str, dict]) -> pd.DataFrame:
    """The automated grades in the reads format (exam_id, reader 'automated', item, scale, grade).

    Uses the reader app's vocabulary (:func:`nervemuscle.reader.forms.automated_grades`), so the
    two sides of every comparison mean the same thing.
    """
    from nervemuscle.reader.forms import automated_grades

    rows = [(exam_id, "automated", item, scale, g)
            for exam_id, doc in findings.items() for (item, scale), g in automated_grades(doc).items()]
    return pd.DataFrame(rows, columns=["exam_id", "reader", "item", "scale", "grade"])


def reader_agreement(reads: pd.DataFrame, findings: dict[str, dict], n_boot: int = 2000) -> dict:
    """Kappa between every pair of readers and each reader vs the automated grades.

    Ordinal scales: linearly weighted kappa (primary) and quadratic; the nominal impression scale:
    unweighted kappa. Per scale and pooled over all ordinal scales.
    """
    auto = automated_reads(findings)
    readers = sorted(reads["reader"].unique())
    everyone = pd.concat([reads[auto.columns], auto], ignore_index=True)
    pairs = [(a, b) for i, a in enumerate(readers) for b in readers[i + 1:]] + [(r, "automated") for r in readers]
    keys = ["exam_id", "item", "scale"]
    rows = []
    for a, b in pairs:
        merged = everyone[everyone["reader"] == a].merge(everyone[everyone["reader"] == b], on=keys, suffixes=("_a", "_b"))
        ordinal = merged[~merged["scale"].isin(NOMINAL_SCALES)]
        subsets = [("all ordinal", ordinal)] + [(sc, merged[merged["scale"] == sc]) for sc in sorted(merged["scale"].unique())]
        for scale, sub in subsets:
            if sub.empty:
                continue
            nominal = scale in NOMINAL_SCALES
            row = {"rater_a": a, "rater_b": b, "scale": scale, "n_items": int(len(sub)),
                   "n_exams": int(sub["exam_id"].nunique()), "primary": "unweighted" if nominal else PRIMARY_WEIGHTING}
            for wt in ("linear", "quadratic", "unweighted"):
                row[wt] = None if nominal and wt != "unweighted" else kappa_with_bootstrap(
                    sub["grade_a"], sub["grade_b"], sub["exam_id"], 4, wt, n_boot=n_boot)
            rows.append(row)
    return {"primary_weighting": PRIMARY_WEIGHTING, "nominal_scales": list(NOMINAL_SCALES), "readers": readers, "pairs": rows,
            "unmatched_exams": sorted(set(reads["exam_id"]) - set(findings))}


def analyse_cohort(findings_root: str | Path, clinical_csv: str | Path, reads_csv: str | Path | None = None
                   ) -> tuple[Cohort, dict]:
    """Pool the cohort and compute every statistic; returns the cohort tables and the results dict."""
    cohort = pool_cohort(findings_root, clinical_csv)
    warnings = []
    if cohort.findings_without_clinical:
        warnings.append(f"{len(cohort.findings_without_clinical)} exam(s) with findings but no clinical row "
                        f"(left out of the groups): {', '.join(cohort.findings_without_clinical)}")
    if cohort.clinical_without_findings:
        warnings.append(f"{len(cohort.clinical_without_findings)} clinical id(s) without findings.json: "
                        f"{', '.join(cohort.clinical_without_findings)}")
    results = {
        "inputs": {"findings_root": str(findings_root), "clinical": str(clinical_csv),
                   "reads": None if reads_csv is None else str(reads_csv), "n_findings": len(cohort.findings)},
        "warnings": warnings,
        "unmatched": {"clinical_without_findings": cohort.clinical_without_findings,
                      "findings_without_clinical": cohort.findings_without_clinical},
        "groups": group_statistics(cohort),
        "comparison": compare_groups(cohort),
        "correlation": clinical_correlation(cohort),
        "accuracy": diagnostic_accuracy(cohort),
        "agreement": None,
        "paper": PAPER,
    }
    if reads_csv is not None:
        agreement = reader_agreement(load_reads(reads_csv), cohort.findings)
        if agreement["unmatched_exams"]:
            warnings.append(f"{len(agreement['unmatched_exams'])} exam(s) in the reads without findings.json: "
                            f"{', '.join(agreement['unmatched_exams'])}")
        results["agreement"] = agreement
    return cohort, results
