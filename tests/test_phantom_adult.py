"""Adult anatomy family of the phantom: DICOM geometry (dcm2niix), the truth contract shared with the classic
family, vertebral levels and foramina, oval roots of the analytic CSA, adult-scale muscles cut by the field of
view, artefacts, family selection (API and CLI)."""
import json
import shutil
from dataclasses import replace
import subprocess

import nibabel as nib
import numpy as np
import pytest

from nervemuscle.anatomy import ROOTS, SIDES, TISSUE_LABELS, muscle_label, root_label
from nervemuscle.cli import main
from nervemuscle.errors import EXIT_BAD_INPUT
from nervemuscle.phantom import ACQUISITIONS, ANATOMY_FAMILIES, acquire, make_subject, simulate_exam
from nervemuscle.phantom.acquisition import Grid, series_grid
from nervemuscle.phantom.adult import ROOT_FORAMEN
from nervemuscle.phantom.shapes import evaluate
from nervemuscle.phantom.subject import resolve_family
from nervemuscle.phantom.truth import muscle_volumes_ml


@pytest.fixture(scope="module")
def exam(tmp_path_factory):
    """One adult-family 2D exam (MMN, so there is nerve pathology)."""
    return simulate_exam(tmp_path_factory.mktemp("adult"), "mmn", 5, vendor="ge", anatomy="adult")


@pytest.fixture(scope="module")
def truth(exam):
    return json.loads((exam / "truth.json").read_text())


@pytest.fixture(scope="module")
def subject():
    return make_subject("normal", 2, anatomy="adult")


@pytest.mark.skipif(shutil.which("dcm2niix") is None, reason="needs dcm2niix")
def test_dcm2niix_agrees_with_the_adult_geometry(exam, truth, tmp_path):
    for series in truth["series"]:
        folder = next((exam / "dicom").glob(f"{series['series_number']}_*"))
        out = tmp_path / folder.name
        out.mkdir()
        subprocess.run(["dcm2niix", "-z", "n", "-f", "%s", "-o", str(out), str(folder)], check=True, capture_output=True)
        (nii,) = sorted(out.glob("*.nii"))
        theirs = nib.load(str(nii))
        ours = nib.Nifti1Image(np.zeros(series["shape"], np.uint8), np.array(series["affine"]))
        assert theirs.shape[:3] == tuple(series["shape"])
        np.testing.assert_allclose(nib.as_closest_canonical(theirs).affine, nib.as_closest_canonical(ours).affine,
                                   atol=0.01)
        labels = nib.load(str(exam / series["labels"]))
        np.testing.assert_allclose(labels.affine, np.array(series["affine"]), atol=1e-4)


def test_truth_has_the_classic_contract_plus_family_and_levels(exam, truth, tmp_path):
    classic = json.loads((simulate_exam(tmp_path, "mmn", 5, vendor="ge") / "truth.json").read_text())
    assert set(truth) == set(classic)
    assert {k for n in truth["nerves"] for k in n} == {k for n in classic["nerves"] for k in n}
    assert {k for m in truth["muscles"] for k in m} == {k for m in classic["muscles"] for k in m}
    assert truth["anatomy_family"] == "adult" and classic["anatomy_family"] == "classic"
    levels = truth["vertebral_levels"]
    assert list(levels)[:8] == ["C2", "C3", "C4", "C5", "C6", "C7", "T1", "T2"]
    z = [v["z_mm"] for v in levels.values()]
    assert all(a - b > 14 for a, b in zip(z, z[1:]))           # counted top to bottom, 15-25 mm apart
    # each root's centerline starts at its foramen, between the two vertebral bodies named for it
    for nerve in truth["nerves"]:
        upper, lower = ROOT_FORAMEN[nerve["segment"]]
        z0 = nerve["centerline_mm"][0][2]
        assert levels[lower]["z_mm"] < z0 < levels[upper]["z_mm"], nerve["segment"]


def test_field_of_view_starts_between_c2_and_c5():
    tops = []
    for seed in range(12):
        s = make_subject("normal", seed, anatomy="adult")
        lv = s.anatomy.landmarks["vertebrae"]
        top = series_grid(s, ACQUISITIONS["t1_axial"]).bounds[1][2]
        assert lv["C5"][2] <= top <= lv["C2"][2] + 12.0
        tops.append((top - lv["C5"][2]) / (lv["C2"][2] - lv["C5"][2]))
    assert max(tops) - min(tops) > 0.5                          # the start varies over the levels


def test_oval_roots_have_the_analytic_area(subject):
    """The rasterised root (an oval of the drawn CSA) has the volume of the analytic radius profile."""
    structures = {label: shape for label, shape in subject.anatomy.structures}
    for seg in ("C6", "T1"):
        rm = subject.anatomy.roots[(seg, "right")]
        shape = structures[root_label(seg, "right")]
        assert abs(shape.a[0] / shape.b[0] - 1.0) > 0.1          # oval, not round
        lo, hi = shape.bbox
        step = 0.25
        ax = [np.arange(a, b, step) for a, b in zip(lo, hi)]
        vol = evaluate(shape, ax[0][:, None, None], ax[1][None, :, None], ax[2][None, None, :]).sum() * step**3
        keep = rm.s <= rm.s_foramen + 45.0
        analytic = np.trapezoid(np.pi * rm.radius[keep] ** 2, rm.s[keep])
        assert vol == pytest.approx(analytic, rel=0.06)


def test_adult_scale_muscles_partly_outside_the_field_of_view(subject):
    big = (np.full(3, -400.0), np.full(3, 400.0))
    codes = {muscle_label(name, side) for name in ("deltoid", "anterior_scalene") for side in SIDES}
    whole = muscle_volumes_ml(subject.anatomy, big, step=2.0, labels=codes)
    in_fov = muscle_volumes_ml(subject.anatomy, series_grid(subject, ACQUISITIONS["t1_axial"]).bounds, labels=codes)
    for side in SIDES:
        deltoid = muscle_label("deltoid", side)
        assert 250.0 < whole[deltoid] < 700.0                    # adult deltoid, several hundred ml
        assert in_fov[deltoid] < 0.9 * whole[deltoid]            # the axial slab cuts it
        assert 5.0 < whole[muscle_label("anterior_scalene", side)] < 25.0


def test_structures_of_the_adult_family_are_present(exam, truth):
    t1 = next(s for s in truth["series"] if s["role"] == "t1")
    labels = np.asarray(nib.load(str(exam / t1["labels"])).dataobj)
    for name in ("cortical_bone", "marrow", "lung", "artery", "vein", "csf", "spinal_cord", "disc", "nerve_trunk"):
        assert (labels == TISSUE_LABELS[name]).any(), name
    for seg in ROOTS:
        assert any((labels == root_label(seg, side)).any() for side in SIDES), seg


def test_artefacts_of_the_adult_family(subject):
    effects = subject.anatomy.effects
    xs, ys, zs = np.arange(-100.0, 100.0, 2.0), np.arange(-60.0, 60.0, 2.0), np.arange(-120.0, 120.0, 4.0)
    grid = Grid((xs, ys, zs), "axial", (2.0, 2.0, 4.0), 4.0, 2)
    # incomplete fat suppression: more residual fat at the neck-chest junction than 60 mm away
    residual = effects.fat_residual(grid, (0.03, 0.08))
    k_near = int(np.argmin(np.abs(zs - effects.junction_z)))
    k_far = int(np.argmin(np.abs(zs - effects.junction_z - 60.0)))
    assert residual[80, 30, k_near] > residual[80, 30, k_far] + 0.02
    # coil shading brightens the back; pulsation ghosts copy a vessel along the phase-encoding axis (x)
    labels = np.full((len(xs), len(ys), len(zs)), TISSUE_LABELS["soft_tissue"], np.uint8)
    labels[48:52, 28:32, :] = TISSUE_LABELS["artery"]
    image = np.where(labels == TISSUE_LABELS["artery"], 0.0, 100.0)
    out = effects.corrupt(image, grid, labels, 100.0)
    assert out[20, 2, 30] > out[20, 57, 30]
    shift = max(1, int(round(effects.ghost_shift * len(xs))))
    quiet = replace(effects, ghost_amp=0.0, motion_amp=0.0).corrupt(image, grid, labels, 100.0)
    assert out[50 + shift, 30, 30] - quiet[50 + shift, 30, 30] > 50.0 * effects.ghost_amp
    assert np.allclose(out[50 + shift, 5, 30], quiet[50 + shift, 5, 30]) or effects.motion_amp > 0
    assert make_subject("normal", 2).anatomy.__class__.__name__ == "Anatomy"     # classic carries no effects


def test_family_selection_and_mixed_draw():
    assert ANATOMY_FAMILIES == ("classic", "adult")
    drawn = {resolve_family("mixed", "als", seed) for seed in range(20)}
    assert drawn == {"classic", "adult"}
    assert resolve_family("mixed", "als", 7) == resolve_family("mixed", "als", 7)
    with pytest.raises(ValueError, match="anatomy"):
        resolve_family("child", "als", 1)


def test_cli_lists_and_checks_the_anatomy(tmp_path, capsys):
    assert main(["simulate", "exam", str(tmp_path), "--anatomy", "child"]) == EXIT_BAD_INPUT
    assert "--anatomy" in capsys.readouterr().err
    main(["simulate", "exam", "--help"])
    out = capsys.readouterr().out
    assert "classic" in out and "adult" in out and "mixed" in out


@pytest.mark.slow
def test_atrophy_and_edema_apply_to_the_adult_family():
    """The shared pathology model: atrophy calibrated to the drawn volume loss inside the slab."""
    from nervemuscle.phantom import exam_truth

    s = make_subject("als", 2, anatomy="adult")
    truth = exam_truth(s, ["t1_axial", "t2fs_axial"])
    atrophic = [m for m in truth["muscles"] if s.pathology.muscles[(m["name"], m["side"])].atrophy > 0]
    assert atrophic
    for m in atrophic:
        drawn = s.pathology.muscles[(m["name"], m["side"])].atrophy
        assert m["volume_loss"] == pytest.approx(drawn, abs=0.02)
        assert m["atrophy_grade"] >= 1
    assert truth["summary"]["muscle_atrophy"]


def test_adult_subjects_are_deterministic_and_vary_with_the_seed():
    from nervemuscle.phantom.acquisition import render_labels

    axes = (np.arange(-220.0, 220.0, 4.0), np.arange(-150.0, 150.0, 4.0), np.arange(-120.0, 120.0, 6.0))
    a = render_labels(make_subject("als", 11, anatomy="adult").anatomy.structures, *axes)
    b = render_labels(make_subject("als", 11, anatomy="adult").anatomy.structures, *axes)
    c = render_labels(make_subject("als", 12, anatomy="adult").anatomy.structures, *axes)
    assert np.array_equal(a, b)
    assert (a != c).mean() > 0.05
