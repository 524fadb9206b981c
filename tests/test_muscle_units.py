"""Muscle measurement, fat fraction, grading, user labels, ONNX and nnU-Net export on small synthetic volumes."""
import json

import nibabel as nib
import numpy as np
import pytest

from nervemuscle.anatomy import muscle_label
from nervemuscle.errors import BadInputError
from nervemuscle.muscle import atlas as atlas_mod
from nervemuscle.muscle.external import canonical_muscle, onnx_labels, relabel
from nervemuscle.muscle.fat import ADIPOSE_FAT_FRACTION, dixon_fat_fraction, t1_fat_fraction
from nervemuscle.muscle.grading import assess_atrophy, fat_grade, goutallier, grade_muscle, mercuri
from nervemuscle.muscle.grid import resample_to
from nervemuscle.muscle.measure import axial_csa_mm2, label_means, label_volumes_ml
from nervemuscle.muscle.nnunet import export_nnunet, nnunet_classes
from nervemuscle.muscle.segment import reassign_fragments
from nervemuscle.protocol import default_protocol
from nervemuscle.volume import Volume

DELTOID_L = muscle_label("deltoid", "left")
SUPRA_R = muscle_label("supraspinatus", "right")


def box_labels(spacing=(0.8, 0.8, 4.0)):
    """A 40x30x10 grid with a 20x10x5-voxel deltoid_left box and a 10x10x10 supraspinatus_right box."""
    lab = np.zeros((40, 30, 10), dtype=np.uint8)
    lab[5:25, 5:15, 2:7] = DELTOID_L
    lab[28:38, 18:28, 0:10] = SUPRA_R
    aff = np.diag([*spacing, 1.0])
    aff[:3, 3] = [-16.0, 10.0, 50.0]
    return Volume(lab, aff)


def test_volume_and_csa_of_boxes_are_exact():
    lab = box_labels()
    vols = label_volumes_ml(lab, [DELTOID_L, SUPRA_R])
    assert vols[DELTOID_L] == pytest.approx(20 * 10 * 5 * 0.8 * 0.8 * 4.0 / 1000)
    csa = axial_csa_mm2(lab, [DELTOID_L, SUPRA_R, 30])
    assert csa[DELTOID_L] == pytest.approx(20 * 10 * 0.64)
    assert csa[SUPRA_R] == pytest.approx(100 * 0.64)
    assert csa[30] is None


def test_csa_does_not_depend_on_axis_order():
    lab = box_labels()
    # same object, voxel axes permuted (k first): world geometry unchanged
    perm = Volume(np.transpose(lab.data, (2, 0, 1)).copy(), lab.affine[:, [2, 0, 1, 3]])
    assert axial_csa_mm2(perm, [DELTOID_L])[DELTOID_L] == pytest.approx(128.0)


def test_label_means_use_the_core_away_from_edges():
    lab = box_labels().data
    img = np.where(lab == DELTOID_L, 100.0, 0.0)
    edge = (lab == DELTOID_L) & ~np.pad(np.ones((18, 8, 10), bool), ((6, 16), (6, 16), (0, 0)))
    img[edge] = 50.0  # partial-volume rim
    means = label_means(img, lab, [DELTOID_L, 30])
    assert means[DELTOID_L] == pytest.approx(100.0)
    assert means[30] is None


def test_dixon_and_t1_fat_fraction_recover_the_mixture():
    lab = box_labels().data
    ff_true = np.where(lab == DELTOID_L, 0.3, np.where(lab == SUPRA_R, 0.05, 0.0))
    water, fat = 800 * (1 - ff_true), 900 * ff_true
    ff = dixon_fat_fraction(water, fat, lab, [DELTOID_L, SUPRA_R])
    assert ff[DELTOID_L] == pytest.approx(900 * 0.3 / (900 * 0.3 + 800 * 0.7))
    # with an adipose reference the water weighting does not matter
    adipose = np.zeros(lab.shape, bool)
    adipose[0:4, 0:4, :] = True
    fat_adipose = np.where(adipose, 900 * ADIPOSE_FAT_FRACTION, fat)
    ff = dixon_fat_fraction(water * 0.1, fat_adipose, lab, [DELTOID_L, SUPRA_R], adipose=adipose)
    assert ff[DELTOID_L] == pytest.approx(0.3) and ff[SUPRA_R] == pytest.approx(0.05)
    muscle, pure_fat = 300.0, 1000.0
    adipose = ADIPOSE_FAT_FRACTION * pure_fat + (1 - ADIPOSE_FAT_FRACTION) * muscle
    t1 = (1 - ff_true) * muscle + ff_true * pure_fat
    est = t1_fat_fraction(label_means(t1, lab, [DELTOID_L, SUPRA_R]), muscle_signal=muscle, adipose_signal=adipose,
                          normal_fat_fraction=0.0)
    assert est[DELTOID_L] == pytest.approx(0.3)
    assert est[SUPRA_R] == pytest.approx(0.05)
    # edema raising the water signal by 10% is divided out
    edematous = np.where(lab == DELTOID_L, (1 - 0.3) * muscle * 1.1 + 0.3 * pure_fat, t1)
    est = t1_fat_fraction(label_means(edematous, lab, [DELTOID_L]), muscle_signal=muscle, adipose_signal=adipose,
                          normal_fat_fraction=0.0, water_factors={DELTOID_L: 1.1})
    assert est[DELTOID_L] == pytest.approx(0.3)


def test_mercuri_and_goutallier_follow_the_fat_grade():
    thr = default_protocol()["muscle"]["fat_thresholds"]
    assert [mercuri(f, thr) for f in (0.02, 0.12, 0.27, 0.35, 0.5, 0.8, None)] == \
        ["0", "1", "2a", "2b", "3", "4", None]
    assert [goutallier("supraspinatus", f, thr) for f in (0.02, 0.12, 0.3, 0.5, 0.6)] == [0, 1, 2, 3, 4]
    assert goutallier("deltoid", 0.6, thr) is None


def test_atrophy_is_graded_against_the_contralateral_muscle_within_its_uncertainty():
    thr = default_protocol()["muscle"]["atrophy_thresholds"]   # 0.2, 0.35, 0.5
    vols = {("deltoid", "left"): 120.0, ("deltoid", "right"): 200.0,      # AI 0.40
            ("trapezius", "left"): 100.0, ("trapezius", "right"): 77.0,   # AI 0.23, uncertain
            ("pectoralis_major", "left"): 100.0, ("pectoralis_major", "right"): 57.0,  # AI 0.43, +-0.1
            ("supraspinatus", "left"): 30.0, ("supraspinatus", "right"): None}
    cv = {("trapezius", "left"): 0.05, ("trapezius", "right"): 0.05,
          ("pectoralis_major", "left"): 0.06, ("pectoralis_major", "right"): 0.08}
    result = assess_atrophy(vols, cv, thr)
    left, right = result[("deltoid", "left")], result[("deltoid", "right")]
    assert left.loss == pytest.approx(0.4) and left.grade == 2 and left.reference == "contralateral muscle"
    assert right.loss == 0.0 and right.grade == 0 and right.asymmetry_index == pytest.approx(0.4)
    # 0.23 - hypot(0.05, 0.05) < 0.2: atrophy itself uncertain -> not graded, with a reason
    trap = result[("trapezius", "right")]
    assert trap.grade is None and "straddles" in trap.reason
    # 0.43 - 0.1 = 0.33 is still atrophic but below the grade-2 threshold: the lower grade
    assert result[("pectoralis_major", "right")].grade == 1
    assert result[("supraspinatus", "left")].grade is None
    assert "contralateral" in result[("supraspinatus", "left")].reason
    assert result[("supraspinatus", "right")].loss is None
    cut = assess_atrophy(vols, cv, thr, cut={("deltoid", "right")})
    assert cut[("deltoid", "left")].grade is None and "field of view" in cut[("deltoid", "left")].reason
    assert cut[("trapezius", "right")].reason == trap.reason


def test_atrophy_with_trusted_expected_volumes_combines_them_with_the_contralateral_muscle():
    thr = default_protocol()["muscle"]["atrophy_thresholds"]
    expected = {("deltoid", "left"): 200.0, ("deltoid", "right"): 200.0, ("trapezius", "left"): 100.0,
                ("trapezius", "right"): 100.0}
    vols = {("deltoid", "left"): 120.0, ("deltoid", "right"): 190.0,   # left atrophic, right normal
            ("trapezius", "left"): 50.0, ("trapezius", "right"): 60.0}  # both atrophic
    result = assess_atrophy(vols, {}, thr, expected_ml=expected)
    # normal volume = geometric mean of the expected (200) and contralateral (190) estimates
    assert result[("deltoid", "left")].loss == pytest.approx(1 - 120 / np.sqrt(200 * 190))
    assert result[("deltoid", "right")].loss == pytest.approx(1 - 190 / 200)
    # bilateral atrophy is seen against the expected volume
    assert result[("trapezius", "left")].loss == pytest.approx(0.5) and result[("trapezius", "left")].grade == 3
    assert result[("trapezius", "right")].grade == 2


def test_fat_grade_only_when_the_uncertainty_stays_in_one_band():
    thr = default_protocol()["muscle"]["fat_thresholds"]     # 0.1, 0.25, 0.45
    assert fat_grade(0.04, 0.02, thr) == 0
    assert fat_grade(0.09, 0.02, thr) is None
    assert fat_grade(0.30, 0.03, thr) == 2
    assert fat_grade(0.24, 0.02, thr) == 1     # straddles 0.25: fatty for certain, the lower grade
    assert fat_grade(0.30, None, thr) == 2 and fat_grade(None, 0.02, thr) is None


def test_grade_muscle_applies_protocol_thresholds():
    mp = default_protocol()["muscle"]
    item = grade_muscle({"name": "infraspinatus", "side": "left", "t2_ratio": 1.8, "volume_loss": 0.4,
                         "fat_fraction": 0.3}, mp)
    assert (item["edema_grade"], item["atrophy_grade"], item["fat_grade"]) == (2, 2, 2)
    assert item["mercuri"] == "2b" and item["goutallier"] == 2
    empty = grade_muscle({"name": "deltoid", "side": "left", "t2_ratio": None, "volume_loss": None,
                          "fat_fraction": None}, mp)
    assert empty["edema_grade"] is None and empty["mercuri"] is None


def test_resample_labels_between_grids_keeps_world_position():
    lab = box_labels()
    half = np.diag([0.5, 0.5, 0.5, 1.0])
    half[:3, 3] = -0.25  # fine voxel centres a quarter coarse voxel either side of the coarse ones
    fine = Volume(np.zeros((80, 60, 20)), lab.affine @ half)
    up = resample_to(lab, fine, order=0)
    assert label_volumes_ml(up, [DELTOID_L])[DELTOID_L] == pytest.approx(label_volumes_ml(lab, [DELTOID_L])[DELTOID_L])
    centre = lambda v: v.voxel_to_world(np.argwhere(v.data == DELTOID_L)).mean(axis=0)  # noqa: E731
    np.testing.assert_allclose(centre(up), centre(lab), atol=1e-9)


def test_user_label_names_are_normalised():
    assert canonical_muscle("Deltoid L") == ("deltoid", "left")
    assert canonical_muscle("right-pectoralis major") == ("pectoralis_major", "right")
    assert canonical_muscle("biceps_left") is None
    lab = box_labels()
    user = lab.with_data(np.where(lab.data == DELTOID_L, 7, np.where(lab.data == SUPRA_R, 3, 0)))
    out = relabel(user, {7: "deltoid_left", 3: "Supraspinatus R", 9: "liver"}, lab)
    np.testing.assert_array_equal(out.data, lab.data)
    with pytest.raises(BadInputError, match="none of the graded muscles"):
        relabel(user, {7: "liver"}, lab)


def test_onnx_model_output_becomes_muscle_codes(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    # 1x1 conv with fixed weights: class 0 score = -x, class 1 score = x  => argmax 1 where z-scored input > 0
    weights = helper.make_tensor("w", TensorProto.FLOAT, [2, 1, 1, 1, 1], [-1.0, 1.0])
    node = helper.make_node("Conv", ["x", "w"], ["y"])
    graph = helper.make_graph([node], "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, None, None, None])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, None, None, None])],
                              initializer=[weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    helper.set_model_props(model, {"labels": json.dumps({"background": 0, "deltoid_left": 1})})
    path = tmp_path / "tiny.onnx"
    onnx.save(model, str(path))
    lab = box_labels()
    image = lab.with_data(np.where(lab.data == DELTOID_L, 500.0, 10.0).astype(np.float32))
    out = onnx_labels(path, [image])
    np.testing.assert_array_equal(out.data == DELTOID_L, lab.data == DELTOID_L)
    with pytest.raises(BadInputError, match="not found"):
        onnx_labels(tmp_path / "missing.onnx", [image])


def test_nnunet_export_layout(tmp_path):
    lab = box_labels()
    t1 = lab.with_data(np.random.default_rng(0).normal(size=lab.shape).astype(np.float32), role="T1")
    fs = Volume(np.ones((20, 15, 10), np.float32), lab.affine @ np.diag([2.0, 2.0, 1.0, 1.0]), {"role": "T2FS"})
    out = export_nnunet([("case_001", [t1, fs], lab), ("case_002", [t1, fs], lab)], tmp_path, dataset_id=7)
    assert out.name == "Dataset007_ShoulderGirdle"
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["channel_names"] == {"0": "T1", "1": "T2FS"}
    assert meta["numTraining"] == 2 and meta["file_ending"] == ".nii.gz"
    assert meta["labels"] == nnunet_classes() and sorted(meta["labels"].values()) == list(range(17))
    seg = nib.load(out / "labelsTr" / "case_001.nii.gz")
    assert set(np.unique(np.asarray(seg.dataobj))) == {0, meta["labels"]["deltoid_left"], meta["labels"]["supraspinatus_right"]}
    img1 = nib.load(out / "imagesTr" / "case_001_0001.nii.gz")
    assert img1.shape == lab.shape
    np.testing.assert_allclose(img1.affine, lab.affine, atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Dataset007_ShoulderGirdle"]
    with pytest.raises(BadInputError, match="case id"):
        export_nnunet([("bad id", [t1], lab)], tmp_path)


def test_export_nnunet_cli_from_manifest(tmp_path):
    from nervemuscle.cli import main

    lab = box_labels()
    user = lab.with_data(np.where(lab.data == DELTOID_L, 5, 0).astype(np.int16))
    user.save(tmp_path / "case1_labels.nii.gz")
    lab.with_data(np.ones(lab.shape, np.float32)).save(tmp_path / "case1_t1.nii.gz")
    (tmp_path / "names.json").write_text(json.dumps({"5": "Deltoid L"}))
    (tmp_path / "manifest.csv").write_text("case,labels,image0\ncase1,case1_labels.nii.gz,case1_t1.nii.gz\n")
    code = main(["export-nnunet", str(tmp_path / "manifest.csv"), str(tmp_path / "raw"),
                 "--label-names", str(tmp_path / "names.json"), "--dataset-id", "12"])
    assert code == 0
    out = tmp_path / "raw" / "Dataset012_ShoulderGirdle"
    seg = np.asarray(nib.load(out / "labelsTr" / "case1.nii.gz").dataobj)
    assert set(np.unique(seg)) == {0, nnunet_classes()["deltoid_left"]}
    assert main(["export-nnunet", str(tmp_path / "missing.csv"), str(tmp_path / "raw")]) == 2


def test_echo_time_is_read_from_every_metadata_style():
    from nervemuscle.muscle.analyze import _echo_time_ms

    grid = np.diag([1.0, 1.0, 1.0, 1.0])
    assert _echo_time_ms(Volume(np.zeros((2, 2, 2)), grid, {"te_ms": 12.0})) == 12.0
    assert _echo_time_ms(Volume(np.zeros((2, 2, 2)), grid, {"attributes": {"EchoTime": 70.0}})) == 70.0
    assert _echo_time_ms(Volume(np.zeros((2, 2, 2)), grid, {"EchoTime": 0.07})) == pytest.approx(70.0)
    assert _echo_time_ms(Volume(np.zeros((2, 2, 2)), grid, {})) is None


def test_detached_pieces_go_to_the_label_they_touch():
    lab = np.zeros((30, 20, 6), dtype=np.uint8)
    lab[2:12, 2:12, 1:5] = DELTOID_L                  # deltoid body
    lab[15:28, 2:12, 1:5] = SUPRA_R                   # supraspinatus body
    lab[13:15, 4:8, 2:4] = DELTOID_L                  # deltoid piece cut off from its body, touching supraspinatus
    lab[20:22, 15:18, 2:4] = DELTOID_L                # isolated piece touching nothing
    out = reassign_fragments(lab, [DELTOID_L, SUPRA_R])
    assert (out[2:12, 2:12, 1:5] == DELTOID_L).all() and (out[15:28, 2:12, 1:5] == SUPRA_R).all()
    assert (out[13:15, 4:8, 2:4] == SUPRA_R).all()
    assert (out[20:22, 15:18, 2:4] == 0).all()


def test_each_shoulder_is_looked_up_in_the_member_of_its_drop():
    shape = atlas_mod.SHAPE
    arrays = {"drop_mm": np.array([-3.0, 0.0, 3.0]), "fat_mm": np.array([9.0])}
    for member in range(3):
        for kind in atlas_mod.KINDS:
            arrays[f"{kind}_0_{member}"] = np.full(shape, member + 1, np.uint8)
    (atlas,) = atlas_mod.bank_from_arrays(arrays)
    t = atlas_mod.Transform(x_mid=0.0, dz_left=-5.0, dz_right=3.0)
    x = np.array([-150.0, -20.0, 20.0, 150.0], np.float32)
    y = np.zeros(4, np.float32)
    z = np.ones(4, np.float32)
    # left side -> member -3 (index 0), right side -> member +3 (index 2)
    np.testing.assert_array_equal(atlas_mod.lookup(atlas, "labels", t, (x, y, z)), [1, 1, 3, 3])
    # the remainder of the drop (left -2 mm = one atlas voxel, right 0) shifts only the shoulder (|xc| >= 70 mm)
    flat, inside, right = t.flat_index(x, y, z, atlas.drops)
    iz = flat % shape[2]
    assert inside.all() and list(right) == [False, False, True, True]
    assert list(iz - iz[1]) == [-1, 0, 0, 0]


def test_histogram_peaks_find_dark_muscle_under_coil_shading():
    """Muscle at 0.3 x fat, lots of dark tissue and a shaded half of the fat (the external exams' case that
    put shaded fat in a multi-Otsu muscle class): the peaks are still muscle and unshaded fat."""
    from nervemuscle.muscle.tissue import histogram_peaks

    rng = np.random.default_rng(3)
    values = np.concatenate([rng.normal(60, 20, 200_000).clip(0), rng.normal(800, 40, 150_000),
                             rng.normal(2700, 80, 250_000), rng.normal(2000, 150, 120_000)])
    muscle, fat = histogram_peaks(values)
    assert muscle == pytest.approx(800, rel=0.05) and fat == pytest.approx(2700, rel=0.05)


def test_histogram_without_a_muscle_peak_is_not_assessable():
    from nervemuscle.errors import NotAssessableError
    from nervemuscle.muscle.tissue import histogram_peaks

    with pytest.raises(NotAssessableError):
        histogram_peaks(np.random.default_rng(1).normal(1000, 30, 100_000))


def test_whole_bodies_give_a_separate_body_to_its_majority_muscle():
    from nervemuscle.muscle.segment import whole_bodies

    tissue = np.zeros((20, 10, 3), bool)
    tissue[1:8, 1:9, :] = True            # body A: 7 x 8 x 3 voxels
    tissue[11:19, 1:9, :] = True          # body B
    labels = np.zeros(tissue.shape, np.uint8)
    labels[1:6, 1:9, :] = DELTOID_L       # 5/7 of A took the deltoid -> A wholly deltoid
    labels[11:14, 1:9, :] = SUPRA_R       # 3/8 of B -> B left as it was
    out = whole_bodies(labels, tissue, [DELTOID_L, SUPRA_R])
    assert (out[1:8, 1:9] == DELTOID_L).all()
    assert (out[11:14, 1:9] == SUPRA_R).all() and (out[14:19, 1:9] == 0).all()
