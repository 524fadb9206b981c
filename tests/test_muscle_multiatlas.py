"""Multi-atlas segmentation (compared with the shipped one in benchmarks/eval_muscle_methods.py)."""
import numpy as np
import pytest

from nervemuscle.anatomy import MUSCLES, SIDES, muscle_label
from nervemuscle.muscle import multiatlas, tissue
from nervemuscle.muscle.grid import resample_to
from nervemuscle.phantom import acquire, make_subject
from nervemuscle.phantom.muscle_atlases import build_atlases

pytest.importorskip("ants")


def test_atlas_file_round_trip_keeps_images_labels_and_provenance(tmp_path):
    atlases = build_atlases(("classic",), (1001,))
    path = tmp_path / "atlases.npz"
    multiatlas.save_atlases(atlases, path, {"families": ["classic"], "seeds": [1001]})
    back = multiatlas.load_atlases(path)
    assert back[0].name == "classic-1001" and np.array_equal(back[0].labels, atlases[0].labels)
    assert np.allclose(back[0].image, atlases[0].image, atol=1e-2) and np.allclose(back[0].affine, atlases[0].affine)
    assert multiatlas.atlas_provenance(path)["seeds"] == [1001]


def test_an_atlas_registered_to_its_own_subject_returns_its_muscles():
    """Tolerance: Dice >= 0.8 for the large muscles (coarse 4 mm registration grid, exam-grid reassignment)."""
    atlases = build_atlases(("classic",), (1001,))
    image, labels = acquire(make_subject("normal", 1001, anatomy="classic"), "t1_axial")
    seg, confidence, fusion = multiatlas.segment(image, tissue.classify(image), atlases)
    truth = resample_to(labels, seg, order=0).data
    for name in ("deltoid", "trapezius", "pectoralis_major"):
        for side in SIDES:
            code = muscle_label(name, side)
            a, b = seg.data == code, truth == code
            assert 2 * (a & b).sum() / (a.sum() + b.sum()) >= 0.8, (name, side)
            assert confidence[code] >= 0.95  # one atlas agrees with itself (edge voxels of the coarse grid: 0)
    assert fusion.n_atlases == 1
    assert set(np.unique(seg.data)) <= {0, *[muscle_label(m, s) for m in MUSCLES for s in SIDES]}
