"""Volume geometry, protocol loading, grading rules and the CLI error contract."""
import json
from importlib import resources

import jsonschema
import numpy as np
import pytest

from nervemuscle.anatomy import MUSCLES, ROOTS, label_names, muscle_label, root_label
from nervemuscle.cli import main
from nervemuscle.errors import EXIT_BAD_INPUT, BadInputError
from nervemuscle.grading import grade, severity, summarize
from nervemuscle.protocol import default_protocol, load_protocol
from nervemuscle.volume import Volume


def oblique_affine():
    theta = np.deg2rad(20)
    rot = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    aff = np.eye(4)
    aff[:3, :3] = rot @ np.diag([0.7, 0.8, 3.5])
    aff[:3, 3] = [-120.5, 33.25, 80.0]
    return aff


def test_volume_nifti_roundtrip_keeps_affine_exactly(tmp_path):
    vol = Volume(np.arange(24, dtype=np.float32).reshape(2, 3, 4), oblique_affine(), {"a": 1})
    vol.save(tmp_path / "v.nii.gz")
    back = Volume.load(tmp_path / "v.nii.gz")
    np.testing.assert_allclose(back.affine, vol.affine, atol=1e-5)
    np.testing.assert_array_equal(back.data, vol.data)
    np.testing.assert_allclose(back.spacing, [0.7, 0.8, 3.5], atol=1e-6)


def test_volume_world_voxel_inverse():
    vol = Volume(np.zeros((5, 6, 7)), oblique_affine())
    idx = np.array([[0, 0, 0], [4, 5, 6], [1.5, 2.25, 3.0]])
    np.testing.assert_allclose(vol.world_to_voxel(vol.voxel_to_world(idx)), idx, atol=1e-9)
    assert Volume(np.zeros((2, 2, 2)), np.diag([-1, -1, 1, 1])).orientation == "LPS"


def test_unreadable_nifti_names_file(tmp_path):
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"not a nifti")
    with pytest.raises(BadInputError, match="bad.nii.gz"):
        Volume.load(bad)


def test_label_codes_are_unique():
    names = label_names()
    assert len(names) == len(set(names.values()))
    assert names[muscle_label("deltoid", "right")] == "deltoid_right"
    assert names[root_label("T1", "left")] == "T1_left"
    assert len([n for n in names if 20 <= n < 40]) == 2 * len(MUSCLES)
    assert len([n for n in names if 40 <= n < 60]) == 2 * len(ROOTS)


def test_grade_thresholds_are_at_or_above():
    thresholds = default_protocol()["nerve"]["thickening_thresholds"]
    assert thresholds == [1.3, 1.8, 2.4]
    assert [grade(v, thresholds) for v in (1.0, 1.29, 1.3, 1.8, 2.39, 2.4, 9)] == [0, 0, 1, 2, 2, 3, 3]
    assert grade(None, thresholds) is None
    assert severity([0, None, 2]) == "moderate" and severity([None]) is None


def test_summary_rules_of_section_8():
    nerves = [{"grade": 0}, {"grade": None}]
    muscles = [{"edema_grade": 0, "atrophy_grade": 1, "fat_grade": 0}]
    s = summarize(nerves, muscles)
    assert s["nerve_abnormal"] is False and s["muscle_atrophy"] is True and s["muscle_edema"] is False
    assert s["muscle_abnormal"] is True and s["abnormal"] is True
    assert s["nerve_severity"] == "none" and s["muscle_severity"] == "mild"
    unknown = summarize([{"grade": None}], [])
    assert unknown["nerve_abnormal"] is None and unknown["muscle_abnormal"] is None and unknown["abnormal"] is None


def test_protocol_override_merges(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("nerve:\n  csa_reference_mm2:\n    C5: 9.0\n")
    p = load_protocol(f)
    assert p["nerve"]["csa_reference_mm2"]["C5"] == 9.0 and p["nerve"]["csa_reference_mm2"]["C6"] == 13.0
    with pytest.raises(BadInputError, match="not found"):
        load_protocol(tmp_path / "missing.yaml")


def test_findings_schema_is_valid_json_schema():
    schema = json.loads(resources.files("nervemuscle.schema").joinpath("findings.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)


def test_cli_protocol_show_and_bad_protocol(tmp_path, capsys):
    assert main(["protocol", "show"]) == 0
    assert "thickening_thresholds" in capsys.readouterr().out
    assert main(["protocol", "show", "--protocol", str(tmp_path / "nope.yaml")]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "nope.yaml" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
