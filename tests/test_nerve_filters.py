"""Hessian tubular filter, cross-sections, tracking and landmarks on analytic tubes (known radius and course)."""
import json

import numpy as np
import pytest
from scipy.spatial import cKDTree
from skimage.filters import sato

from nervemuscle.errors import BadInputError
from nervemuscle.nerve import load_landmarks
from nervemuscle.nerve.csa import cross_sections
from nervemuscle.nerve.grading import asymmetry, grade_root, normal_nerve_ratio
from nervemuscle.nerve.hessian import symmetric_eigenvalues, tubularity
from nervemuscle.nerve.rasterize import rasterize_tubes
from nervemuscle.nerve.tracking import arc_length, resample_polyline, track
from nervemuscle.protocol import default_protocol
from nervemuscle.volume import Volume


def grid_affine(spacing, shape, rot_deg=0.0):
    th = np.deg2rad(rot_deg)
    rot = np.array([[np.cos(th), -np.sin(th), 0], [np.sin(th), np.cos(th), 0], [0, 0, 1]])
    aff = np.eye(4)
    aff[:3, :3] = rot @ np.diag(spacing)
    aff[:3, 3] = -(aff[:3, :3] @ (np.array(shape) - 1) / 2)
    return aff


def tube_image(shape, spacing, direction, radius, *, rot_deg=0.0, inside=2.0, outside=0.2, supersample=3):
    """Straight tube through the origin with exact partial volume (supersampled box voxels)."""
    aff = grid_affine(spacing, shape, rot_deg)
    d = np.asarray(direction, float) / np.linalg.norm(direction)
    offs = (np.arange(supersample) + 0.5) / supersample - 0.5
    idx = np.stack(np.meshgrid(*[np.arange(s, dtype=float) for s in shape], indexing="ij"), -1).reshape(-1, 3)
    frac = np.zeros(len(idx))
    for a in offs:
        for b in offs:
            for c in offs:
                w = (idx + [a, b, c]) @ aff[:3, :3].T + aff[:3, 3]
                perp = w - (w @ d)[:, None] * d
                frac += (perp**2).sum(1) <= radius**2
    frac /= supersample**3
    return Volume((outside + (inside - outside) * frac).reshape(shape).astype(np.float32), aff)


def test_eigenvalues_match_numpy():
    rng = np.random.default_rng(0)
    h = rng.normal(size=(6, 500))
    mats = np.zeros((500, 3, 3))
    for n, (a, b) in enumerate(((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))):
        mats[:, a, b] = mats[:, b, a] = h[n]
    ref = np.linalg.eigvalsh(mats)[:, ::-1].T
    np.testing.assert_allclose(symmetric_eigenvalues(h), ref, atol=1e-9)
    np.testing.assert_allclose(symmetric_eigenvalues(np.zeros((6, 3))), 0.0)


def test_tubularity_zero_on_flat_image_and_peaks_on_tube_axis():
    flat = np.ones((20, 20, 20), np.float32)
    resp, _ = tubularity(flat, (1, 1, 1), (1.5,))
    assert np.abs(resp).max() < 1e-4
    vol = tube_image((31, 31, 21), (1.0, 1.0, 1.0), (0, 0, 1), 2.0, supersample=2)
    resp, best = tubularity(vol.data, vol.spacing, (1.0, 1.5, 2.0))
    centre = resp[15, 15, 10]
    assert centre == pytest.approx(resp[..., 10].max())
    assert resp[5, 5, 10] < 0.05 * centre
    assert best[15, 15, 10] in (1.0, 1.5, 2.0)


def test_tubularity_in_mm_is_the_same_on_anisotropic_grid():
    """A z-directed tube on 1x1x1 mm and on 1x1x3 mm grids gives the same cross-sectional response."""
    iso = tube_image((31, 31, 31), (1.0, 1.0, 1.0), (0, 0, 1), 2.5, supersample=2)
    aniso = tube_image((31, 31, 11), (1.0, 1.0, 3.0), (0, 0, 1), 2.5, supersample=2)
    r_iso, _ = tubularity(iso.data, iso.spacing, (1.5,))
    r_aniso, _ = tubularity(aniso.data, aniso.spacing, (1.5,))
    np.testing.assert_allclose(r_aniso[:, :, 5], r_iso[:, :, 15], rtol=0.05, atol=0.02 * r_iso.max())


def test_tubularity_agrees_with_skimage_sato_on_isotropic_grid():
    vol = tube_image((40, 40, 40), (1.0, 1.0, 1.0), (1, 0.5, 0.3), 2.0, supersample=2)
    ours, _ = tubularity(vol.data, vol.spacing, (1.0, 1.5, 2.0))
    ref = sato(vol.data, sigmas=(1.0, 1.5, 2.0), black_ridges=False, mode="nearest")
    inner = (slice(5, -5),) * 3
    corr = np.corrcoef(ours[inner].ravel(), ref[inner].ravel())[0, 1]
    assert corr > 0.9


@pytest.mark.parametrize(
    "spacing, direction, radius, rot",
    [((1.4, 1.4, 1.4), (1, 0.5, -0.3), 2.0, 0.0), ((1.4, 1.4, 1.4), (1, 0.2, -0.6), 3.3, 25.0),
     ((0.8, 0.8, 1.5), (1, 0.4, -0.4), 1.9, 10.0)],
)
def test_cross_section_area_of_oblique_tube(spacing, direction, radius, rot):
    shape = tuple(int(round(60 / s)) for s in spacing)
    vol = tube_image(shape, spacing, direction, radius, rot_deg=rot)
    d = np.asarray(direction, float) / np.linalg.norm(direction)
    pts = np.outer(np.linspace(-12, 12, 13), d) + [0.4, -0.3, 0.2]  # slightly off-axis start
    cs = cross_sections(vol, pts)
    true = np.pi * radius**2
    assert np.nanmean(cs.csa_mm2) == pytest.approx(true, rel=0.06)
    assert np.nanmedian(cs.signal) == pytest.approx(2.0, rel=0.06)
    # re-centred points lie on the axis
    perp = cs.points_mm - (cs.points_mm @ d)[:, None] * d
    assert np.linalg.norm(perp, axis=1).max() < 0.3


def test_tracking_follows_a_curved_tube_and_respects_turn_limit():
    s = np.linspace(0, 50, 201)
    course = np.stack([s, 8 * np.sin(s / 25.0), -0.3 * s], axis=1) - [25, 0, -8]
    shape = (60, 30, 30)
    aff = grid_affine((1.0, 1.0, 1.0), shape)
    idx = np.stack(np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij"), -1).reshape(-1, 3)
    dist, _ = cKDTree(resample_polyline(course, 0.1)).query(idx @ aff[:3, :3].T + aff[:3, 3])
    img = np.clip(2.2 - dist, 0, 1).reshape(shape).astype(np.float32)
    vol = Volume(img, aff)
    resp, _ = tubularity(vol.data, vol.spacing, (1.0, 1.5))
    rvol = vol.with_data(resp)
    line = track(rvol, course[4], course[8] - course[4], min_response=0.2 * resp.max())
    err, _ = cKDTree(course).query(line)
    assert arc_length(line)[-1] > 40
    assert np.median(err) < 0.4
    steps = np.diff(line, axis=0)
    steps /= np.linalg.norm(steps, axis=1, keepdims=True)
    turns = np.degrees(np.arccos(np.clip((steps[1:] * steps[:-1]).sum(1), -1, 1)))
    assert turns.max() <= 70.0


def test_rasterize_tube_volume():
    vol = Volume(np.zeros((40, 40, 40), np.float32), grid_affine((1.0, 1.0, 1.0), (40, 40, 40)))
    line = np.array([[-15.0, 0, 0], [15.0, 0, 0]])
    lab = rasterize_tubes(vol, [(44, line, 3.0)])
    assert set(np.unique(lab.data)) == {0, 44}
    assert (lab.data == 44).sum() == pytest.approx(np.pi * 9 * 30 + 4 / 3 * np.pi * 27, rel=0.15)  # capsule


def test_grading_and_normal_ratio():
    protocol = default_protocol()
    g = grade_root("C7", 15.0 * 1.9, 1.25 * 1.5, 1.25, protocol)
    assert g == {"thickening_grade": 2, "t2_grade": 1, "grade": 2}
    assert grade_root("C5", None, None, 1.25, protocol)["grade"] is None
    ratio, _ = normal_nerve_ratio([1.2] * 4 + [2.5] * 6, protocol)  # most roots affected
    assert ratio == pytest.approx(1.2)
    ratio, _ = normal_nerve_ratio([3.0] * 10, protocol)  # every root affected: capped near the protocol value
    assert ratio == pytest.approx(1.25 * 1.4)
    ratio, how = normal_nerve_ratio([3.0, 3.0], protocol)
    assert ratio == 1.25 and "protocol" in how
    assert asymmetry(12.0, 10.0) == pytest.approx(2 / 11)
    assert asymmetry(None, 10.0) is None


def test_load_landmarks(tmp_path):
    good = tmp_path / "lm.json"
    good.write_text(json.dumps({"roots": {"C5_left": [[1, 2, 3]], "T1_right": [[0, 0, 0], [10, 0, -5]]}}))
    assert load_landmarks(good)["roots"]["T1_right"][1] == [10.0, 0.0, -5.0]
    for content, match in [("{", "unreadable"), ('{"roots": {"C9_left": [[1,2,3]]}}', "unknown root"),
                           ('{"roots": {"C5_left": [[1,2]]}}', "expected a list"), ("[]", "roots")]:
        bad = tmp_path / "bad.json"
        bad.write_text(content)
        with pytest.raises(BadInputError, match=match) as exc:
            load_landmarks(bad)
        assert "bad.json" in str(exc.value)
    with pytest.raises(BadInputError, match="not found"):
        load_landmarks(tmp_path / "missing.json")
