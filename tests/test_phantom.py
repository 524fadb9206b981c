"""Phantom: geometry written to DICOM, analytic CSA vs rasterised roots, truth consistency, determinism,
prevalences of the drawn pathology."""
import json
import shutil
import subprocess

import nibabel as nib
import numpy as np
import pydicom
import pytest

from nervemuscle.anatomy import MUSCLES, ROOTS, SIDES, TISSUE_LABELS, muscle_label, root_label
from nervemuscle.cli import main
from nervemuscle.errors import EXIT_BAD_INPUT
from nervemuscle.grading import grade, summarize
from nervemuscle.phantom import ACQUISITIONS, acquire, make_subject, simulate_exam
from nervemuscle.phantom.acquisition import Grid, series_grid, signal_tables
from nervemuscle.phantom.dicom_writer import deterministic_uid, write_series
from nervemuscle.phantom.pathology import draw_pathology
from nervemuscle.phantom.shapes import evaluate
from nervemuscle.phantom.truth import muscle_volumes_ml
from nervemuscle.protocol import default_protocol
from nervemuscle.volume import Volume

PROTO = default_protocol()


@pytest.fixture(scope="module")
def exam(tmp_path_factory):
    """One simulated 2D exam (MMN, so there is pathology to check)."""
    return simulate_exam(tmp_path_factory.mktemp("phantom"), "mmn", 3, vendor="siemens")


@pytest.fixture(scope="module")
def truth(exam):
    return json.loads((exam / "truth.json").read_text())


def _canonical_affine(path):
    return nib.as_closest_canonical(nib.load(str(path))).affine


def _dcm2niix(dicom_dir, out_dir):
    out_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(["dcm2niix", "-z", "n", "-f", "%s", "-o", str(out_dir), str(dicom_dir)], check=True,
                   capture_output=True)
    return sorted(out_dir.glob("*.nii"))


@pytest.mark.skipif(shutil.which("dcm2niix") is None, reason="needs dcm2niix")
def test_dcm2niix_recovers_the_geometry_of_every_series(exam, truth, tmp_path):
    for series in truth["series"]:
        folder = next((exam / "dicom").glob(f"{series['series_number']}_*"))
        (nii,) = _dcm2niix(folder, tmp_path / folder.name)
        ours = nib.Nifti1Image(np.zeros(series["shape"], np.uint8), np.array(series["affine"]))
        theirs = nib.load(str(nii))
        assert theirs.shape[:3] == tuple(series["shape"])
        np.testing.assert_allclose(nib.as_closest_canonical(theirs).affine,
                                   nib.as_closest_canonical(ours).affine, atol=0.01)
        labels = nib.load(str(exam / series["labels"]))
        np.testing.assert_allclose(_canonical_affine(exam / series["labels"]),
                                   nib.as_closest_canonical(ours).affine, atol=1e-3)
        assert labels.shape == tuple(series["shape"])


@pytest.mark.skipif(shutil.which("dcm2niix") is None, reason="needs dcm2niix")
def test_coronal_3d_series_geometry_survives_dcm2niix(tmp_path):
    subject = make_subject("normal", 5)
    grid = series_grid(subject, ACQUISITIONS["stir_3d"])
    small = Grid(tuple(c[:: max(1, len(c) // 24)] for c in grid.centers), grid.plane,
                 tuple(v * max(1, len(c) // 24) for v, c in zip(grid.voxel_mm, grid.centers)), 1.4, grid.slice_axis)
    # coarse grid with the same orientation and origin convention, random content
    vol = Volume(np.random.default_rng(0).uniform(0, 100, small.shape).astype(np.float32), small.affine)
    write_series(vol, tmp_path / "dcm", series_number=5, description="t2_stir_spc_cor_iso", vendor="siemens",
                 role="stir", acquisition=ACQUISITIONS["stir_3d"], patient={"name": "X", "id": "X"},
                 study_uid=deterministic_uid("s"), frame_uid=deterministic_uid("f"), series_uid=deterministic_uid("x"))
    (nii,) = _dcm2niix(tmp_path / "dcm", tmp_path / "nii")
    np.testing.assert_allclose(nib.as_closest_canonical(nib.load(str(nii))).affine,
                               nib.as_closest_canonical(nib.Nifti1Image(vol.data, vol.affine)).affine, atol=0.01)
    ds = pydicom.dcmread(sorted((tmp_path / "dcm").glob("*.dcm"))[0])
    assert ds.ScanningSequence == ["SE", "IR"] and ds.InversionTime == 250
    # stored pixels times the slope give back the float image
    np.testing.assert_allclose(ds.pixel_array.T * float(ds.RescaleSlope), vol.data[:, :, 0],
                               atol=float(ds.RescaleSlope))


def test_dicom_headers_are_vendor_flavoured_and_fat_sat_is_flagged(exam, truth):
    t2 = next(s for s in truth["series"] if s["role"] == "t2fs")
    ds = pydicom.dcmread(next((exam / "dicom").glob(f"{t2['series_number']}_*/IM_0001.dcm")))
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4"
    assert ds.Manufacturer == "SIEMENS" and ds.SeriesDescription == "t2_tse_tra_fs"
    assert "FS" in ds.ScanOptions and float(ds.EchoTime) == 70 and float(ds.MagneticFieldStrength) == 3
    assert float(ds.SliceThickness) == 4.0 and float(ds.SpacingBetweenSlices) == pytest.approx(4.4, abs=1e-4)


def _root_axis_grid(root, d_lo, d_hi, step):
    pts = root.extraforaminal(d_lo - 3, d_hi + 3)
    lo, hi = pts.min(axis=0) - 8, pts.max(axis=0) + 8
    return [np.arange(a + step / 2, b, step) for a, b in zip(lo, hi)]


@pytest.mark.parametrize("phenotype,seed", [("mmn", 3), ("normal", 4)])
def test_rasterised_root_csa_matches_the_analytic_csa(phenotype, seed):
    """Root volume on a 0.2 mm label map between two perpendicular planes / length = analytic mean CSA."""
    subject = make_subject(phenotype, seed)
    checked = 0
    for (seg, side), root in subject.anatomy.roots.items():
        if phenotype == "normal" and seg not in ("C5", "T1"):
            continue
        if phenotype == "mmn" and subject.pathology.roots[(seg, side)].lesion == "none" and seg != "C7":
            continue
        lo_d, hi_d = PROTO["nerve"]["measure_from_foramen_mm"]
        axes = _root_axis_grid(root, lo_d, hi_d, 0.2)
        tube = root.tube((0.0, root.s_foramen + 45.0))
        mask = evaluate(tube, axes[0][:, None, None], axes[1][None, :, None], axes[2][None, None, :])
        idx = np.nonzero(mask)
        pts = np.column_stack([axes[0][idx[0]], axes[1][idx[1]], axes[2][idx[2]]])
        _, s = tube.project(pts)
        d = s - root.s_foramen
        rasterised = ((d >= lo_d) & (d <= hi_d)).sum() * 0.2**3 / (hi_d - lo_d)
        expected = _analytic_csa(subject, seg, side)
        assert rasterised == pytest.approx(expected, rel=0.03), (seg, side)
        checked += 1
    assert checked >= 2


def _analytic_csa(subject, seg, side):
    from nervemuscle.phantom.subject import root_lesion
    from nervemuscle.phantom.truth import mean_csa
    lo, hi = PROTO["nerve"]["measure_from_foramen_mm"]
    rp = subject.pathology.roots[(seg, side)]
    r0 = np.sqrt(PROTO["nerve"]["csa_reference_mm2"][seg] * rp.normal_csa_ratio / np.pi)
    return mean_csa(subject.anatomy.roots[(seg, side)], lo, hi, root_lesion(rp, rp.normal_csa_ratio, (lo, hi)), r0)


def test_truth_grades_follow_the_values_and_the_protocol(truth):
    ref = PROTO["nerve"]["csa_reference_mm2"]
    assert len(truth["nerves"]) == len(ROOTS) * 2 and len(truth["muscles"]) == len(MUSCLES) * 2
    for n in truth["nerves"]:
        assert n["thickening_grade"] == grade(n["csa_mm2"] / ref[n["segment"]], PROTO["nerve"]["thickening_thresholds"])
        assert n["t2_grade"] == grade(n["t2_ratio"] / n["normal_t2_ratio"], PROTO["nerve"]["t2_thresholds"])
        assert n["grade"] == max(n["thickening_grade"], n["t2_grade"])
        assert 1.15 <= n["normal_t2_ratio"] <= 1.45
        assert len(n["centerline_mm"]) > 20
    for m in truth["muscles"]:
        assert m["in_fov"] and m["volume_ml"] > 0
        assert m["atrophy_grade"] == grade(m["volume_loss"], PROTO["muscle"]["atrophy_thresholds"])
    assert truth["summary"] == summarize(truth["nerves"], truth["muscles"])
    assert truth["fluid_series"] == "t2fs"


def test_label_maps_hold_every_root_and_muscle(exam, truth):
    t1 = next(s for s in truth["series"] if s["role"] == "t1")
    labels = np.asarray(nib.load(str(exam / t1["labels"])).dataobj)
    present = set(np.unique(labels).tolist())
    for seg in ROOTS:
        for side in SIDES:
            assert root_label(seg, side) in present
    assert set(range(20, 36)) <= present


def test_noise_free_root_signal_gives_the_truth_t2_ratio():
    subject = make_subject("mmn", 3)
    water, _ = signal_tables(subject, ACQUISITIONS["t2fs_axial"])
    normal = water[TISSUE_LABELS["nerve_trunk"]] / water[TISSUE_LABELS["paraspinal_muscle"]]
    img, labels = acquire(subject, "t2fs_axial", noise_free=True)
    muscle = np.median(img.data[labels.data == 14])
    from scipy.ndimage import binary_erosion
    for (seg, side), rp in subject.pathology.roots.items():
        core = binary_erosion(labels.data == root_label(seg, side), np.ones((3, 3, 1)))
        if core.sum() < 3:
            continue
        ratio = np.median(img.data[core]) / muscle
        assert ratio == pytest.approx(rp.t2_relative * normal, rel=0.06), (seg, side)


def test_subjects_and_images_are_deterministic_for_a_seed():
    a, b = make_subject("als", 11), make_subject("als", 11)
    assert a.pathology == b.pathology and a.body == b.body
    for key in a.root_centerlines:
        np.testing.assert_array_equal(a.root_centerlines[key], b.root_centerlines[key])
    img1, lab1 = acquire(a, "t1_axial", seed=4)
    img2, lab2 = acquire(a, "t1_axial", seed=4)
    np.testing.assert_array_equal(img1.data, img2.data)
    np.testing.assert_array_equal(lab1.data, lab2.data)
    c = make_subject("als", 12)
    assert c.body != a.body


def _draw(phenotype, n):
    from nervemuscle.phantom.subject import subject_rng
    out = []
    for seed in range(n):
        rng = subject_rng(phenotype, seed)
        out.append(draw_pathology(phenotype, rng, "right", nerve_t2=44.5, muscle_t2=29.0, protocol=PROTO))
    return out


def _nerve_abnormal(p):
    n = PROTO["nerve"]
    return any(grade(r.csa_ratio, n["thickening_thresholds"]) or grade(r.t2_relative, n["t2_thresholds"])
               for r in p.roots.values())


def _muscle_abnormal(p):
    m = PROTO["muscle"]
    return any(grade(x.edema_ratio, m["edema_thresholds"]) or grade(x.atrophy, m["atrophy_thresholds"])
               or grade(x.fat_fraction, m["fat_thresholds"]) for x in p.muscles.values())


def test_drawn_prevalences_follow_the_paper():
    als, mmn, normal = _draw("als", 300), _draw("mmn", 200), _draw("normal", 50)
    assert np.mean([_nerve_abnormal(p) for p in als]) == pytest.approx(0.58, abs=0.08)
    assert np.mean([_muscle_abnormal(p) for p in als]) == pytest.approx(0.57, abs=0.08)
    assert np.mean([_nerve_abnormal(p) for p in mmn]) == pytest.approx(0.63, abs=0.09)
    assert np.mean([_muscle_abnormal(p) for p in mmn]) == pytest.approx(0.33, abs=0.09)
    assert not any(_nerve_abnormal(p) or _muscle_abnormal(p) for p in normal)
    assert all(x.atrophy == 0 for p in mmn for x in p.muscles.values())
    # ALS thickening is rare, MMN thickening common
    thick = PROTO["nerve"]["thickening_thresholds"][0]
    als_thick = np.mean([any(r.csa_ratio >= thick for r in p.roots.values()) for p in als])
    mmn_thick = np.mean([any(r.csa_ratio >= thick for r in p.roots.values()) for p in mmn])
    assert als_thick < 0.15 < 0.4 < mmn_thick


def test_drawn_values_keep_away_from_grade_thresholds():
    nerve, muscle = PROTO["nerve"], PROTO["muscle"]
    pairs = []
    for p in _draw("als", 150) + _draw("mmn", 100):
        pairs += [(r.csa_ratio, nerve["thickening_thresholds"]) for r in p.roots.values()]
        pairs += [(r.t2_relative, nerve["t2_thresholds"]) for r in p.roots.values()]
        pairs += [(m.edema_ratio, muscle["edema_thresholds"]) for m in p.muscles.values()]
        pairs += [(m.atrophy, muscle["atrophy_thresholds"]) for m in p.muscles.values() if m.atrophy > 0]
        pairs += [(m.fat_fraction, muscle["fat_thresholds"]) for m in p.muscles.values()]
    for value, thresholds in pairs:
        assert min(abs(value / t - 1) for t in thresholds) >= 0.08 - 1e-9


def test_muscle_volume_integration_converges():
    subject = make_subject("normal", 6)
    bounds = series_grid(subject, ACQUISITIONS["t1_axial"]).bounds
    labels = {24, 32, 34}     # supraspinatus, anterior and middle scalene (left)
    coarse = muscle_volumes_ml(subject.anatomy, bounds, 1.0, labels)
    fine = muscle_volumes_ml(subject.anatomy, bounds, 0.4, labels)
    for code in labels:
        assert coarse[code] == pytest.approx(fine[code], rel=0.005)


def test_cli_rejects_an_unknown_phenotype(tmp_path, capsys):
    assert main(["simulate", "exam", str(tmp_path), "--phenotype", "cidp"]) == EXIT_BAD_INPUT
    assert "--phenotype" in capsys.readouterr().err


@pytest.mark.slow
def test_cohort_writes_clinical_table_and_is_deterministic(tmp_path):
    from nervemuscle.phantom import simulate_cohort
    import pandas as pd
    csv1 = simulate_cohort(tmp_path / "a", n_als=1, n_mmn=1, n_controls=1, seed=3, workers=2, progress=False)
    table = pd.read_csv(csv1)
    assert list(table["diagnosis"]) == ["ALS", "control", "MMN"]
    assert {"id", "diagnosis", "age", "sex", "side", "alsfrs_r", "disease_duration_months", "mrc_sum"} <= set(table)
    assert table.loc[table.diagnosis == "ALS", "alsfrs_r"].between(0, 48).all()
    assert table.loc[table.diagnosis != "ALS", "alsfrs_r"].isna().all()
    truth = json.loads((tmp_path / "a" / "ALS-001" / "truth.json").read_text())
    csv2 = simulate_cohort(tmp_path / "b", n_als=1, n_mmn=0, seed=3, workers=1, progress=False)
    truth2 = json.loads((tmp_path / "b" / "ALS-001" / "truth.json").read_text())
    assert truth == truth2 and pd.read_csv(csv2).iloc[0].equals(table.iloc[0])


def test_atrophy_truth_matches_the_drawn_volume_loss():
    from nervemuscle.phantom.truth import exam_truth
    subject = make_subject("als", 4)
    truth = exam_truth(subject, ["t1_axial", "t2fs_axial"])
    atrophic = [m for m in truth["muscles"] if subject.pathology.muscles[(m["name"], m["side"])].atrophy > 0]
    assert atrophic
    for m in atrophic:
        assert m["volume_loss"] == pytest.approx(subject.pathology.muscles[(m["name"], m["side"])].atrophy, abs=0.004)
    # the vacated space is painted as fat right before each shrunken muscle
    labels = [label for label, _ in subject.anatomy.structures]
    for m in atrophic:
        i = labels.index(muscle_label(m["name"], m["side"]))
        assert labels[i - 1] == TISSUE_LABELS["intermuscular_fat"]
