"""End-to-end cohort statistics on synthetic findings.json files, including the paper's table."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nervemuscle.anatomy import MUSCLES, ROOTS, SIDES
from nervemuscle.cli import main
from nervemuscle.errors import BadInputError, OutputError
from nervemuscle.grading import grade, summarize
from nervemuscle.protocol import load_protocol
from nervemuscle.stats import format_paper_comparison, run_cohort
from nervemuscle.stats.clinical import load_clinical, load_reads
from nervemuscle.stats.cohort import analyse_cohort, automated_reads

PROTOCOL = load_protocol()
CHROMIUM = Path("/usr/bin/chromium").exists()


def synth_findings(exam_id: str, diagnosis: str, nerve_abnormal: bool, muscle_abnormal: bool | None,
                   rng: np.random.Generator) -> dict:
    """A schema-valid findings document whose summary has exactly the requested booleans.

    MMN roots are enlarged (CSA and T2), ALS roots only T2-bright; ALS muscles show edema, atrophy
    and fat. ``muscle_abnormal=None`` makes every muscle not assessable.
    """
    nv, mu = PROTOCOL["nerve"], PROTOCOL["muscle"]
    sick_roots = set()
    if nerve_abnormal:
        sick_roots = {(ROOTS[i], SIDES[rng.integers(2)]) for i in rng.choice(5, rng.integers(1, 4), replace=False)}
    nerves = []
    for seg in ROOTS:
        for side in SIDES:
            ref = nv["csa_reference_mm2"][seg]
            csa_ratio, t2_rel = rng.uniform(0.85, 1.2), rng.uniform(0.85, 1.3)
            if (seg, side) in sick_roots:
                if diagnosis == "MMN":
                    csa_ratio, t2_rel = rng.uniform(1.35, 2.8), rng.uniform(1.2, 2.2)
                else:
                    t2_rel = rng.uniform(1.45, 2.1)
            t2_ratio = t2_rel * nv["normal_nerve_t2_ratio"]
            thick, t2g = grade(csa_ratio, nv["thickening_thresholds"]), grade(t2_rel, nv["t2_thresholds"])
            nerves.append({"segment": seg, "side": side, "csa_mm2": round(ref * csa_ratio, 3), "t2_ratio": round(t2_ratio, 4),
                           "thickening_grade": thick, "t2_grade": t2g, "grade": max(thick, t2g), "source": "automatic"})
    muscles, not_assessable = [], []
    sick = set()
    if muscle_abnormal:
        sick = {(MUSCLES[i], SIDES[rng.integers(2)]) for i in rng.choice(8, rng.integers(1, 5), replace=False)}
    for name in MUSCLES:
        for side in SIDES:
            if muscle_abnormal is None:
                muscles.append({"name": name, "side": side, "volume_ml": None, "t2_ratio": None, "fat_fraction": None,
                                "edema_grade": None, "atrophy_grade": None, "fat_grade": None})
                not_assessable.append({"item": f"{name}_{side}", "reason": "no fluid-sensitive series covering the shoulder"})
                continue
            t2, loss, ff = rng.uniform(0.9, 1.2), rng.uniform(-0.1, 0.15), rng.uniform(0.02, 0.08)
            if (name, side) in sick:
                t2, loss, ff = rng.uniform(1.0, 2.0), rng.uniform(0.0, 0.45), rng.uniform(0.03, 0.3)
                if max(t2 >= 1.3, loss >= 0.2, ff >= 0.1) is False:
                    t2 = rng.uniform(1.3, 2.0)
            muscles.append({"name": name, "side": side, "volume_ml": round(150 * (1 - loss), 2), "t2_ratio": round(t2, 4),
                            "fat_fraction": round(ff, 4), "volume_loss": round(loss, 4),
                            "edema_grade": grade(t2, mu["edema_thresholds"]),
                            "atrophy_grade": grade(loss, mu["atrophy_thresholds"]),
                            "fat_grade": grade(ff, mu["fat_thresholds"])})
    summary = summarize(nerves, muscles)
    assert summary["nerve_abnormal"] == nerve_abnormal and summary["muscle_abnormal"] == muscle_abnormal
    return {"schema_version": 1, "software": {"name": "nervemuscle", "version": "test"}, "exam_id": exam_id,
            "protocol": {"name": PROTOCOL["name"], "version": PROTOCOL["version"]},
            "sequences": [{"series": "3", "role": "t2fs", "used_for": ["nerve", "muscle"], "reason": "synthetic"}],
            "summary": summary, "nerves": nerves, "muscles": muscles, "not_assessable": not_assessable}


#: (nerve abnormal, muscle abnormal, number of exams) reproducing Staff et al. 2015:
#: ALS 51/60 abnormal, 35/60 nerve, 34/60 muscle; MMN 6/8 abnormal, 5/8 nerve, 2/6 muscle.
PAPER_DESIGN = {
    "ALS": [(True, True, 18), (True, False, 17), (False, True, 16), (False, False, 9)],
    "MMN": [(True, None, 2), (True, False, 2), (True, True, 1), (False, True, 1), (False, False, 2)],
}


def write_paper_cohort(root: Path, seed: int = 7, n_controls: int = 0) -> tuple[Path, Path]:
    """Findings files (one folder per exam, nested) and clinical.csv with the paper's counts."""
    rng = np.random.default_rng(seed)
    design = dict(PAPER_DESIGN, control=[(False, False, n_controls)])
    rows = []
    for dx, cells in design.items():
        for nerve, muscle, count in cells:
            for _ in range(count):
                exam_id = f"{dx}{len(rows):03d}"
                folder = root / "findings" / dx.lower() / exam_id
                folder.mkdir(parents=True)
                (folder / "findings.json").write_text(json.dumps(synth_findings(exam_id, dx, nerve, muscle, rng)))
                alsfrs = int(rng.integers(18, 47)) if dx == "ALS" else ""
                rows.append({"id": exam_id, "diagnosis": dx.lower() if dx == "ALS" else dx, "age": int(rng.integers(35, 80)),
                             "sex": "MF"[rng.integers(2)], "alsfrs_r": alsfrs,
                             "disease_duration_months": round(float(rng.uniform(4, 60)), 1)})
    clinical = root / "clinical.csv"
    pd.DataFrame(rows).to_csv(clinical, index=False)
    return root / "findings", clinical


@pytest.fixture(scope="module")
def paper(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper")
    findings, clinical = write_paper_cohort(root)
    results = run_cohort(findings, clinical, root / "out", pdf=CHROMIUM)
    return root, results


def test_paper_table_percentages_cis_and_p(paper):
    root, results = paper
    als, mmn = results["groups"]["ALS"]["findings"], results["groups"]["MMN"]["findings"]
    assert [(als[k]["k"], als[k]["n"]) for k in ("abnormal", "nerve_abnormal", "muscle_abnormal")] == [(51, 60), (35, 60), (34, 60)]
    assert [(mmn[k]["k"], mmn[k]["n"]) for k in ("abnormal", "nerve_abnormal", "muscle_abnormal")] == [(6, 8), (5, 8), (2, 6)]
    text = format_paper_comparison(results)
    rows = {line.split("  ")[0]: line for line in text.splitlines()}
    assert "51/60 (85%)" in rows["Abnormal MRI"] and "6/8 (75%)" in rows["Abnormal MRI"]
    assert "35/60 (58%)" in rows["Nerve abnormal"] and "5/8 (63%)" in rows["Nerve abnormal"]
    assert "34/60 (57%)" in rows["Muscle abnormal"] and "2/6 (33%)" in rows["Muscle abnormal"]
    # clinical reference section 1: 51/60 Wilson 73.9-91.9, Clopper-Pearson 73.4-92.9; MMN 6/8 40.9-92.9 / 34.9-96.8
    assert np.round(100 * np.array(als["abnormal"]["wilson"]), 1).tolist() == [73.9, 91.9]
    assert np.round(100 * np.array(als["abnormal"]["exact"]), 1).tolist() == [73.4, 92.9]
    assert np.round(100 * np.array(mmn["abnormal"]["wilson"]), 1).tolist() == [40.9, 92.9]
    assert np.round(100 * np.array(mmn["abnormal"]["exact"]), 1).tolist() == [34.9, 96.8]
    assert np.round(100 * np.array(als["nerve_abnormal"]["wilson"]), 1).tolist() == [45.7, 69.9]
    assert np.round(100 * np.array(mmn["nerve_abnormal"]["wilson"]), 1).tolist() == [30.6, 86.3]
    assert np.round(100 * np.array(als["muscle_abnormal"]["wilson"]), 1).tolist() == [44.1, 68.4]
    fisher = results["comparison"]["fisher"]
    assert [round(fisher[k]["p"], 2) for k in ("abnormal", "nerve_abnormal", "muscle_abnormal")] == [0.61, 1.00, 0.40]
    table = pd.read_csv(root / "out" / "table.csv", dtype=str).set_index("Finding")
    assert table.loc["Abnormal MRI", "ALS k/n (%)"] == "51/60 (85%)"
    assert table.loc["Abnormal MRI", "ALS Wilson 95% CI (%)"] == "73.9–91.9"
    assert table.loc["Muscle abnormal", "MMN k/n (%)"] == "2/6 (33%)"
    assert table.loc["Nerve abnormal", "Fisher p (ALS vs MMN)"] == "1.00"


def test_outputs_complete_and_json_safe(paper):
    root, results = paper
    out = root / "out"
    loaded = json.loads((out / "results.json").read_text())  # strict JSON: no NaN tokens
    assert loaded["groups"]["ALS"]["n"] == 60
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "src=\"http" not in html and "<link" not in html
    assert "Fisher" in html and "Wilson" in html and "Methods" in html
    if CHROMIUM:
        assert (out / "report.pdf").read_bytes()[:5] == b"%PDF-"
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".out.")]  # temp folders cleaned


def test_severity_root_and_muscle_frequencies(paper):
    _, results = paper
    als = results["groups"]["ALS"]
    sev = als["severity"]["nerve"]
    assert sum(sev[s] for s in ("mild", "moderate", "severe")) == 35 and sev["none"] == 25
    assert results["groups"]["MMN"]["severity"]["muscle"]["not_assessable"] == 2
    assert set(als["roots"]) == set(ROOTS) and set(als["muscles"]) == set(MUSCLES)
    assert all(0 < p["k"] <= 35 and p["n"] == 60 for p in als["roots"].values())
    assert all(p["n"] == 6 for p in results["groups"]["MMN"]["muscles"].values())


def test_als_vs_mmn_measures_accuracy_and_correlation(paper):
    _, results = paper
    mw = results["comparison"]["mann_whitney"]["root_csa_ratio_max"]
    assert mw["n_a"] == 60 and mw["n_b"] == 8 and 0 <= mw["p"] <= 1
    assert results["comparison"]["per_root"]["C5"]["csa_mm2"]["n_b"] == 8
    acc = results["accuracy"]
    sens = acc["findings"]["abnormal"]["sensitivity"]
    assert (sens["k"], sens["n"]) == (51, 60)
    assert acc["findings"]["abnormal"]["specificity"]["n"] == 8
    auc = acc["findings"]["abnormal"]["roc"]
    assert auc["auc"] == pytest.approx((51 / 60 + 2 / 8) / 2)
    assert acc["combined_rule"]["sensitivity"]["n"] == 60 and acc["combined_rule"]["specificity"]["n"] == 6
    corr = results["correlation"]
    assert corr["group"] == "ALS" and corr["alsfrs_r"]["point_biserial"]["abnormal"]["n"] == 60
    assert -1 <= corr["alsfrs_r"]["spearman"]["nerve_severity_grade"]["rho"] <= 1


def test_unmatched_ids_listed_and_warned(tmp_path):
    findings, clinical = write_paper_cohort(tmp_path, n_controls=2)
    df = pd.read_csv(clinical)
    extra = pd.DataFrame([{"id": "GHOST1", "diagnosis": "MMN"}])
    pd.concat([df[df["id"] != "ALS000"], extra]).to_csv(clinical, index=False)
    cohort, results = analyse_cohort(findings, clinical)
    assert results["unmatched"] == {"clinical_without_findings": ["GHOST1"], "findings_without_clinical": ["ALS000"]}
    assert any("GHOST1" in w for w in results["warnings"]) and any("ALS000" in w for w in results["warnings"])
    assert results["groups"]["ALS"]["n"] == 59 and results["groups"]["control"]["n"] == 2


def test_reads_agreement_with_automated_grades(tmp_path):
    findings, clinical = write_paper_cohort(tmp_path)
    cohort, _ = analyse_cohort(findings, clinical)
    auto = automated_reads(cohort.findings)
    rng = np.random.default_rng(3)
    r1 = auto.assign(reader="r1", submitted_at="2026-01-01T10:00:00Z", note="x")
    r2 = auto.assign(reader="r2", submitted_at="2026-01-02T10:00:00Z")
    flip = rng.random(len(r2)) < 0.2
    r2.loc[flip, "grade"] = np.clip(r2.loc[flip, "grade"] + rng.choice([-1, 1], flip.sum()), 0, 3)
    stale = r1.iloc[:5].assign(grade=3, submitted_at="2025-12-31T09:00:00Z")  # superseded by the later read
    reads = tmp_path / "reads.csv"
    pd.concat([stale, r1, r2]).to_csv(reads, index=False)
    loaded = load_reads(reads)
    assert len(loaded) == 2 * len(auto)
    _, results = analyse_cohort(findings, clinical, reads)
    pairs = {(p["rater_a"], p["rater_b"], p["scale"]): p for p in results["agreement"]["pairs"]}
    assert results["agreement"]["primary_weighting"] == "linear"
    assert pairs[("r1", "automated", "all ordinal")]["linear"]["kappa"] == pytest.approx(1.0)
    k12 = pairs[("r1", "r2", "all ordinal")]["linear"]
    assert 0.3 < k12["kappa"] < 0.99 and k12["bootstrap_ci"][0] < k12["kappa"] < k12["bootstrap_ci"][1]
    assert pairs[("r1", "r2", "all ordinal")]["n_exams"] == 68
    assert ("r2", "automated", "muscle_edema") in pairs
    impression = pairs[("r1", "automated", "impression")]   # nominal: unweighted kappa only
    assert impression["primary"] == "unweighted" and impression["linear"] is None
    assert impression["unweighted"]["kappa"] == pytest.approx(1.0) and impression["n_items"] == 68


@pytest.mark.parametrize("content, message", [
    ("id,diagnosis\nA,ALS\nB,CIDP\n", "row 3, column diagnosis: 'CIDP' is not ALS, MMN or control"),
    ("id,diagnosis,alsfrs_r\nA,ALS,50\n", "row 2, column alsfrs_r: '50' outside 0-48"),
    ("id,diagnosis,alsfrs_r\nA,ALS,40.5\n", "row 2, column alsfrs_r: '40.5' must be an integer"),
    ("id,diagnosis,age\nA,ALS,old\n", "row 2, column age: 'old' is not a number"),
    ("id,diagnosis\nA,ALS\nA,MMN\n", "row 3, column id: duplicate id 'A'"),
    ("id,dx\nA,ALS\n", "missing required column(s) diagnosis"),
])
def test_clinical_errors_name_row_column_problem(tmp_path, content, message):
    path = tmp_path / "clinical.csv"
    path.write_text(content)
    with pytest.raises(BadInputError) as info:
        load_clinical(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_clinical_normalises_diagnosis_and_keeps_extra_columns(tmp_path):
    path = tmp_path / "clinical.csv"
    path.write_text("ID, Diagnosis ,site\nA, als ,x\nB,Mmn,y\nC,CONTROL,z\n")
    df = load_clinical(path)
    assert df["diagnosis"].tolist() == ["ALS", "MMN", "control"] and df["site"].tolist() == ["x", "y", "z"]


def test_invalid_findings_named(tmp_path):
    findings, clinical = write_paper_cohort(tmp_path)
    bad = next(findings.rglob("findings.json"))
    doc = json.loads(bad.read_text())
    doc["nerves"][0]["segment"] = "C9"
    bad.write_text(json.dumps(doc))
    with pytest.raises(BadInputError, match="nerves/0/segment") as info:
        analyse_cohort(findings, clinical)
    assert str(bad) in str(info.value)


@pytest.mark.slow
def test_cli_exit_codes_and_atomic_output(tmp_path, capsys):
    findings, clinical = write_paper_cohort(tmp_path)
    out = tmp_path / "study"
    assert main(["cohort", str(findings), "--clinical", str(clinical), "-o", str(out), "--no-pdf"]) == 0
    printed = capsys.readouterr().out
    assert "51/60 (85%)" in printed and "2/6 (33%)" in printed and "Staff" in printed
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "results.json", "table.csv"]
    # a re-run replaces the earlier output; a foreign non-empty folder is refused untouched
    assert main(["cohort", str(findings), "--clinical", str(clinical), "-o", str(out), "--no-pdf"]) == 0
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    assert main(["cohort", str(findings), "--clinical", str(clinical), "-o", str(foreign), "--no-pdf"]) == OutputError.exit_code
    assert [p.name for p in foreign.iterdir()] == ["keep.txt"]
    bad = tmp_path / "bad.csv"
    bad.write_text("id,diagnosis\nX,flu\n")
    assert main(["cohort", str(findings), "--clinical", str(bad), "-o", str(tmp_path / "o2"), "--no-pdf"]) == 2
    assert "row 2, column diagnosis" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()
