"""Vertebral levels counted on adult-family phantom exams: bodies and discs against the phantom's vertebrae,
and roots named by their foramina for a field of view starting at C2 and one starting at C5."""
from __future__ import annotations

import numpy as np
import pytest

from nervemuscle.nerve import analyze_nerves
from nervemuscle.nerve.evaluation import match_roots
from nervemuscle.nerve.landmarks import detect_canal
from nervemuscle.nerve.vertebrae import (VERTEBRA_NAMES, count_vertebrae, find_discs, ladder_at_foramina,
                                         root_foramen_heights)
from nervemuscle.phantom import acquire, exam_truth, make_subject
from nervemuscle.protocol import default_protocol

#: Adult-family seeds whose field of view starts at the C2 body (top 9 mm above its centre) and at C5.
SEED_TOP_C2 = 7358
SEED_TOP_C5 = 7349


def _exam(seed: int):
    subject = make_subject("normal", seed, anatomy="adult")
    image, _ = acquire(subject, "t2fs_axial")
    return subject, image


@pytest.fixture(scope="module")
def top_c2():
    return _exam(SEED_TOP_C2)


@pytest.fixture(scope="module")
def top_c5():
    return _exam(SEED_TOP_C5)


def _check_levels(subject, image) -> dict:
    truth = {name: c[2] for name, c in subject.anatomy.landmarks["vertebrae"].items()}
    levels = count_vertebrae(image, detect_canal(image))
    assert levels["anchor"] is not None, levels["reason"]
    assert len(levels["bodies"]) >= 5
    for name, z in levels["bodies"].items():
        assert abs(z - truth[name]) < 3.0, (name, z, truth[name])
    # each root's foramen at the height where the true root leaves the canal (within a few mm)
    foramina = root_foramen_heights(levels)
    exits = {n["segment"]: n["centerline_mm"][0][2] for n in exam_truth(subject, ["t2fs_axial"])["nerves"]
             if n["side"] == "left" and n.get("centerline_mm")}
    for segment, z in zip(("C5", "C6", "C7", "C8", "T1"), foramina):
        if segment in exits:
            assert abs(z - exits[segment]) < 5.0, (segment, z, exits[segment])
    return levels


def test_levels_field_of_view_from_c2(top_c2):
    subject, image = top_c2
    assert subject.anatomy.landmarks["fov_top_z"] > subject.anatomy.landmarks["vertebrae"]["C3"][2] + 10
    levels = _check_levels(subject, image)
    assert "C3" in levels["bodies"]  # C3 and C4 in view: more than five root levels


def test_levels_field_of_view_from_c5(top_c5):
    subject, image = top_c5
    levels = _check_levels(subject, image)
    assert "C4" not in levels["bodies"]


def test_roots_named_right_when_fov_starts_at_c2(top_c2):
    subject, image = top_c2
    result = analyze_nerves(image, default_protocol())
    truth = exam_truth(subject, ["t1_axial", "t2fs_axial"])["nerves"]
    # the vertebrae are counted; with five root levels in view the ladder names the roots and the count agrees
    levels = result.reference["vertebral_levels"]
    assert levels["anchor"] == "T1" and levels["roots_named_by"] == "root-exit ladder"
    # every exit is named by its own foramen
    first_point = {f"{n['segment']}_{n['side']}": n["centerline_mm"][0][2] for n in truth if n.get("centerline_mm")}
    assert len(result.landmarks["foramina"]) >= 8
    for key, point in result.landmarks["foramina"].items():
        assert abs(point[2] - first_point[key]) < 5.0, (key, point, first_point[key])
    detected = [r for r in match_roots(result.roots, truth) if r["detected"]]
    assert len(detected) >= 5
    assert all(r["label_correct"] for r in detected)


def test_find_discs_keeps_the_regular_run():
    z = np.arange(100.0, -60.0, -1.0)
    discs_true = np.array([80.0, 60.0, 40.0, 20.0, 0.0, -20.0])
    profile = np.exp(-0.5 * ((z[:, None] - discs_true[None]) / 2.0) ** 2).sum(axis=1)
    found = find_discs(z[::-1], profile[::-1])
    np.testing.assert_allclose(found, discs_true, atol=1.0)
    # a missed disc (gap of two levels) breaks the run: only the longer regular run is counted
    gap = profile - np.exp(-0.5 * ((z - 40.0) / 2.0) ** 2)
    np.testing.assert_allclose(find_discs(z[::-1], gap[::-1]), [20.0, 0.0, -20.0], atol=1.0)


def test_unnamed_levels_give_no_foramina_and_ladder_rungs_follow_foramina():
    assert root_foramen_heights({"discs": {}}) is None
    discs = {f"{a}/{b}": 100.0 - 20.0 * i for i, (a, b) in enumerate(zip(VERTEBRA_NAMES[:-1], VERTEBRA_NAMES[1:]))}
    foramina = root_foramen_heights({"discs": discs})
    np.testing.assert_allclose(foramina, [60.0, 40.0, 20.0, 0.0, -20.0])
    # a five-rung ladder starting one level too high (C4 root in view) is shifted onto the foramina
    ladder = np.array([78.0, 58.0, 38.0, 18.0, -2.0])
    np.testing.assert_allclose(ladder_at_foramina(ladder, foramina), [58.0, 38.0, 18.0, -2.0, -22.0])
    # discs partly out of view: the missing foramina one spacing further on
    partial = {k: v for k, v in discs.items() if k in ("C3/C4", "C4/C5", "C5/C6", "C6/C7")}
    np.testing.assert_allclose(root_foramen_heights({"discs": partial}), [60.0, 40.0, 20.0, 0.0, -20.0])
