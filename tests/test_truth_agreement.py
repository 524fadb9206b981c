"""stats.truth: automated findings against phantom truth, on hand-made findings/truth files."""
import json

import pytest

from nervemuscle.stats.truth import format_truth_agreement, truth_agreement


def write(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))


def summary(nerve, muscle):
    return {"abnormal": None if nerve is None else (nerve or muscle), "nerve_abnormal": nerve,
            "muscle_abnormal": muscle, "muscle_edema": muscle, "muscle_atrophy": False,
            "muscle_fatty_infiltration": False, "nerve_severity": None if nerve is None else "mild" if nerve else "none",
            "muscle_severity": "mild" if muscle else "none"}


def findings(exam, summary_, nerves, muscles):
    """A findings document valid against the shipped schema."""
    return {"schema_version": 1, "software": {"name": "nervemuscle", "version": "test"}, "exam_id": exam,
            "protocol": {"name": "test", "version": 1},
            "sequences": [{"series": "3", "role": "t2fs", "used_for": ["nerve", "muscle"], "reason": "synthetic"}],
            "summary": summary_, "nerves": nerves, "muscles": muscles, "not_assessable": []}


@pytest.fixture()
def folders(tmp_path):
    # exam A: both right; B: nerve false positive; C: nerve not assessable (null); D: no truth (skipped)
    cases = {"A": ((True, True), (True, True)), "B": ((True, False), (False, False)),
             "C": ((None, False), (True, False))}
    for exam, (found, true) in cases.items():
        write(tmp_path / "findings" / exam / "findings.json", findings(
            exam, summary(*found),
            [{"segment": "C5", "side": "left", "csa_mm2": 11.0, "t2_ratio": 1.2, "grade": 0}],
            [{"name": "deltoid", "side": "left", "volume_ml": 90.0, "t2_ratio": 1.0, "fat_fraction": 0.05,
              "edema_grade": 0, "atrophy_grade": 0}]))
        write(tmp_path / "cohort" / exam / "truth.json", {
            "exam_id": exam, "summary": summary(*true),
            "nerves": [{"segment": "C5", "side": "left", "visible": True, "csa_mm2": 10.0, "t2_ratio": 1.25}],
            "muscles": [{"name": "deltoid", "side": "left", "in_fov": True, "volume_ml": 100.0}]})
    write(tmp_path / "findings" / "D" / "findings.json", findings("D", summary(True, True), [], []))
    return tmp_path / "findings", tmp_path / "cohort"


def test_counts_errors_and_table(folders):
    result = truth_agreement(*folders)
    assert result["exams"] == 3
    nerve = result["summary"]["nerve_abnormal"]
    assert (nerve["accuracy"]["k"], nerve["accuracy"]["n"]) == (1, 2)  # C left out: not assessable
    assert (nerve["tp"], nerve["fp"], nerve["tn"], nerve["fn"]) == (1, 1, 0, 0)
    muscle = result["summary"]["muscle_abnormal"]
    assert (muscle["accuracy"]["k"], muscle["accuracy"]["n"]) == (3, 3)
    assert result["roots"]["csa_median_abs_rel_error"] == pytest.approx(0.10)
    assert result["roots"]["t2_median_abs_rel_error"] == pytest.approx(0.04)
    assert result["muscles"]["volume_median_abs_rel_error"] == pytest.approx(0.10)
    text = format_truth_agreement(result)
    assert "nerve_abnormal" in text and "1/2 (50%" in text and "CSA median |error| 10.0%" in text
