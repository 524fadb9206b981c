"""Root level naming: a field of view holding more than five root levels cannot be named from the roots."""
import numpy as np

from nervemuscle.nerve.landmarks import level_heights, levels_beyond


def _exits(heights, strength=50.0):
    return {side: [{"point_mm": [sign * 18.0, 5.0, float(z)], "response": strength} for z in heights]
            for side, sign in (("left", -1.0), ("right", 1.0))}


def test_five_levels_are_named_and_not_ambiguous():
    z = 60.0 - 16.0 * np.arange(5)
    exits = _exits(z)
    heights = level_heights(exits)
    assert np.allclose(heights, z, atol=0.5)
    assert levels_beyond(exits, heights) == []


def test_a_sixth_level_of_comparable_strength_makes_the_names_ambiguous():
    z = 60.0 - 16.0 * np.arange(6)  # C4..T1 or C5..T2: both fit
    exits = _exits(z)
    heights = level_heights(exits)
    beyond = levels_beyond(exits, heights)
    assert len(beyond) == 1 and min(abs(beyond[0] - z[0]), abs(beyond[0] - z[-1])) < 1.0


def test_a_weak_candidate_beyond_the_ladder_does_not():
    z = 60.0 - 16.0 * np.arange(5)
    exits = _exits(z)
    exits["left"].append({"point_mm": [-18.0, 5.0, z[-1] - 16.0], "response": 10.0})
    assert levels_beyond(exits, level_heights(exits)) == []
