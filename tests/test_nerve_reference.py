"""Normal-muscle reference of the root T2 ratios (independent estimates, agreement rule), the plane rule
for roots merging with a larger structure, root patterns, and truth given in DICOM LPS."""
import numpy as np
import pytest

from nervemuscle.nerve import analyze_nerves
from nervemuscle.nerve.evaluation import exam_agreement, truth_nerves_ras
from nervemuscle.nerve.grading import root_pattern
from nervemuscle.nerve.reference import (REFERENCE_TOLERANCE, choose_reference, estimate_muscle_reference,
                                         reference_candidates)
from nervemuscle.phantom import acquire, exam_truth, make_subject
from nervemuscle.protocol import default_protocol
from nervemuscle.volume import Volume


def _neck(muscle: float = 400.0, dark: float = 30.0, air: float = 0.4, seed: int = 0) -> tuple[Volume, dict]:
    """Axial-like volume (1.5 mm, RAS) with a canal at x = y = 0 and, behind it, muscle as the brightest
    tissue of the paraspinal box, darker bone/fat bands and air at the back (a thin neck)."""
    rng = np.random.default_rng(seed)
    step = 1.5
    x = np.arange(-60, 60, step)
    y = np.arange(-80, 40, step)
    z = np.arange(-30, 30, step)
    xx, yy, _ = np.meshgrid(x, y, z, indexing="ij")
    data = np.full(xx.shape, muscle)
    data[(np.abs(xx) < 6) | ((yy > -30) & (yy < -24))] = dark     # spinous process, lamina
    data[yy < -50] = air                                          # behind the neck
    data[np.hypot(xx, yy) < 8] = 4 * muscle                       # CSF
    data = data * (1 + 0.03 * rng.standard_normal(data.shape))
    affine = np.diag([step, step, step, 1.0])
    affine[:3, 3] = [x[0], y[0], z[0]]
    canal = {"coef_x": [0.0], "coef_y": [0.0]}
    return Volume(data.astype(np.float32), affine), canal


def test_paraspinal_mode_when_muscle_is_the_brightest_tissue_and_air_is_in_the_box():
    # the failure seen on a STIR exam: air took a multi-Otsu class and the 95th-percentile cut removed the
    # muscle peak, giving the bone/fat mode (about 10x too low)
    volume, canal = _neck()
    value, _ = estimate_muscle_reference(volume, canal, (-25.0, 25.0))
    assert value == pytest.approx(400.0, rel=0.05)
    sides = reference_candidates(volume, canal, (-25.0, 25.0))
    assert sides["paraspinal_left"] == pytest.approx(400.0, rel=0.05)
    assert sides["paraspinal_right"] == pytest.approx(400.0, rel=0.05)
    assert sides["shoulder"] is None


def test_reference_confirmed_when_estimates_agree():
    choice = choose_reference({"paraspinal": 100.0, "paraspinal_left": 98.0, "paraspinal_right": 104.0,
                               "shoulder": 0.9 * 100.0})
    assert choice["assessable"] and choice["used"] == "paraspinal" and choice["value"] == 100.0
    assert set(choice["checked"]) == {"paraspinal_left", "paraspinal_right", "shoulder"}


@pytest.mark.parametrize("shoulder", [100.0 * REFERENCE_TOLERANCE * 1.05, 100.0 / (REFERENCE_TOLERANCE * 1.05), 1204.0])
def test_reference_not_assessable_when_one_estimate_disagrees(shoulder):
    # both paraspinal sides share one method and fail together: they do not outvote the shoulder muscles
    choice = choose_reference({"paraspinal": 100.0, "paraspinal_left": 100.0, "paraspinal_right": 100.0,
                               "shoulder": shoulder})
    assert not choice["assessable"]
    assert "shoulder" in choice["reason"] and "disagree" in choice["reason"]


def test_reference_falls_back_to_the_shoulder_muscles_and_says_so():
    choice = choose_reference({"paraspinal": None, "paraspinal_left": None, "paraspinal_right": None,
                               "shoulder": 250.0})
    assert choice["used"] == "shoulder" and choice["value"] == 250.0 and choice["assessable"]
    assert "no independent estimate" in choice["reason"]
    assert choose_reference({"paraspinal": None, "shoulder": None})["value"] is None


def test_root_pattern_rules():
    protocol = default_protocol()
    ref = protocol["nerve"]["csa_reference_mm2"]["C6"]
    assert root_pattern("C6", 0, 1.1 * ref, 1.1, protocol) == "normal"
    assert root_pattern("C6", 1, 1.6 * ref, 1.1, protocol) == "diffuse"
    assert root_pattern("C6", 0, 1.6 * ref, 1.5, protocol) == "focal"      # swollen segment, normal mean
    assert root_pattern("C6", 0, 1.1 * ref, 1.5, protocol) == "normal"     # relative bump, not thick
    assert root_pattern("C6", None, None, None, protocol) is None


def test_truth_in_lps_is_converted_and_scored():
    line_ras = np.stack([np.linspace(20, 60, 41), np.linspace(0, 10, 41), np.linspace(40, 20, 41)], axis=1)
    truth = {"summary": {"nerve_abnormal": False},
             "nerves": [{"segment": "C6", "side": "right", "csa_mm2": 13.0, "t2_ratio": 1.6, "grade": 0,
                         "thickening": "none", "centerline_lps": (line_ras * [-1, -1, 1]).tolist()}]}
    assert np.allclose(truth_nerves_ras(truth["nerves"])[0]["centerline_mm"], line_ras)
    findings = {"summary": {"nerve_abnormal": False},
                "nerves": [{"segment": "C6", "side": "right", "csa_mm2": 14.3, "t2_ratio": 1.6, "grade": 0,
                            "pattern": "normal", "centerline_mm": line_ras[5:].tolist()}]}
    record = exam_agreement(findings, truth)["records"][0]
    assert record["detected"] and record["label_correct"]
    assert record["csa_rel_error"] == pytest.approx(0.1)
    assert record["pattern_true"] == record["pattern_found"] == "normal"


@pytest.mark.slow
def test_poisoned_muscle_reference_makes_t2_not_assessable_but_keeps_csa():
    subject = make_subject("mmn", 3)
    image, _ = acquire(subject, "stir_3d")
    truth = exam_truth(subject, ["t1_axial", "stir_3d"])
    good = analyze_nerves(image, default_protocol())
    assert good.reference["t2_assessable"] and good.reference["muscle_reference_used"] == "paraspinal"
    poisoned = analyze_nerves(image, default_protocol(), muscle_reference=good.reference["muscle_reference"] / 3)
    assert not poisoned.reference["t2_assessable"]
    assert any(n["item"] == "nerve T2 signal" and "shoulder" in n["reason"] for n in poisoned.not_assessable)
    assert all(r["t2_ratio"] is None and r["t2_grade"] is None for r in poisoned.roots)
    assert [r["csa_mm2"] for r in poisoned.roots] == [r["csa_mm2"] for r in good.roots]
    # the CSA profile holds the measured planes (1 mm apart) of the 10-35 mm segment; its maximum and the
    # focal-swelling index agree with csa_max_mm2
    lesions = {(t["segment"], t["side"]): t["lesion"] for t in truth["nerves"]}
    for root in good.roots:
        profile = np.array([np.nan if v is None else v for v in root["csa_profile_mm2"]])
        assert 20 <= len(profile) <= 27 and np.isfinite(profile).sum() >= 5
        assert root["csa_max_mm2"] <= np.nanmax(profile) + 1e-6
        assert root["focal_swelling_index"] >= 1.0
        if lesions[(root["segment"], root["side"])] == "none":
            assert root["pattern"] == "normal"


def test_cohort_tabulates_root_patterns():
    from nervemuscle.stats.cohort import root_pattern_counts, tidy_tables

    def doc(patterns):
        nerves = [{"segment": seg, "side": "left", "csa_mm2": 12.0, "t2_ratio": 1.5, "grade": 0, "pattern": p}
                  for seg, p in zip(("C5", "C6", "C7"), patterns)]
        return {"nerves": nerves, "muscles": [], "summary": {}}

    _, roots, _ = tidy_tables({"mmn1": doc(["focal", "normal", "focal"]), "als1": doc(["diffuse", "diffuse", None])})
    counts = root_pattern_counts(roots)
    assert {k: counts[k] for k in ("normal", "diffuse", "focal", "not_assessable")} == \
        {"normal": 1, "diffuse": 2, "focal": 2, "not_assessable": 1}
    assert counts["exams_with"] == {"diffuse": 1, "focal": 1}
