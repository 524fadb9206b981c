"""analyze_nerves end to end: on the phantom cohort (slow, targets from the issue) and on a phantom exam for
landmark seeding/override, partial fields of view, label map and output contract."""
import json
from importlib import resources

import jsonschema
import numpy as np
import pytest

from nervemuscle.anatomy import root_label
from nervemuscle.errors import BadInputError, NotAssessableError
from nervemuscle.grading import summarize
from nervemuscle.nerve import NerveAnalysis, analyze_nerves
from nervemuscle.nerve.evaluation import cohort_metrics, match_roots
from nervemuscle.phantom import acquire, exam_truth, make_subject
from nervemuscle.protocol import default_protocol
from nervemuscle.volume import Volume

#: (phenotype, seed, acquisition, snr, bias): both series kinds, default and low SNR, bias field.
COHORT = [
    ("mmn", 11, "stir_3d", None, 0.0),
    ("als", 12, "t2fs_axial", None, 0.0),
    ("normal", 13, "stir_3d", 10.0, 0.0),
    ("mmn", 14, "t2fs_axial", 12.0, 0.0),
    ("als", 15, "stir_3d", None, 0.25),
    ("normal", 16, "t2fs_axial", None, 0.25),
    ("mmn", 17, "stir_3d", None, 0.0),
    ("als", 18, "stir_3d", 12.0, 0.25),
    ("normal", 19, "t2fs_axial", 12.0, 0.0),
    ("als", 20, "t2fs_axial", None, 0.25),
    ("mmn", 21, "t2fs_axial", None, 0.0),
]


@pytest.fixture(scope="module")
def stir_exam():
    subject = make_subject("mmn", 3)
    image, _ = acquire(subject, "stir_3d")
    truth = exam_truth(subject, ["t1_axial", "stir_3d"])
    return image, truth, analyze_nerves(image, default_protocol())


@pytest.fixture(scope="module")
def cohort():
    exams = []
    for phenotype, seed, acq, snr, bias in COHORT:
        subject = make_subject(phenotype, seed)
        image, _ = acquire(subject, acq, snr=snr, bias=bias)
        truth = exam_truth(subject, ["t1_axial", acq])
        result = analyze_nerves(image, default_protocol())
        exams.append({"roots": result.roots, "records": match_roots(result.roots, truth["nerves"]),
                      "nerve_abnormal_true": truth["summary"]["nerve_abnormal"], "acq": acq})
    return exams


def assert_targets(metrics):
    assert metrics["detection_rate"] >= 0.95
    assert metrics["label_accuracy"] >= 0.90
    assert metrics["csa_median_abs_rel_error"] <= 0.10
    assert metrics["t2_median_abs_rel_error"] <= 0.10
    assert metrics["nerve_abnormal_accuracy"] >= 0.90


@pytest.mark.slow
def test_stir_cohort_meets_targets(cohort):
    metrics = cohort_metrics([e for e in cohort if e["acq"] == "stir_3d"])
    print(metrics)
    assert_targets(metrics)


@pytest.mark.slow
def test_t2fs_cohort_meets_targets(cohort):
    metrics = cohort_metrics([e for e in cohort if e["acq"] == "t2fs_axial"])
    print(metrics)
    assert metrics["exams"] == 6
    assert_targets(metrics)


@pytest.mark.slow
def test_mixed_cohort_meets_targets(cohort):
    metrics = cohort_metrics(cohort)
    print(metrics)
    assert_targets(metrics)


@pytest.mark.slow
def test_stir_exam_roots_and_contract(stir_exam):
    image, truth, result = stir_exam
    assert isinstance(result, NerveAnalysis)
    records = match_roots(result.roots, truth["nerves"])
    assert all(r["label_correct"] for r in records)
    assert np.median([abs(r["csa_rel_error"]) for r in records]) < 0.05
    # findings.json "nerves" items validate against the schema
    schema = json.loads(resources.files("nervemuscle.schema").joinpath("findings.schema.json").read_text())
    jsonschema.validate(result.roots, schema["properties"]["nerves"])
    jsonschema.validate(result.not_assessable, schema["properties"]["not_assessable"])
    json.dumps(result.landmarks), json.dumps(result.reference)
    # label map on the fluid grid with root codes along each root
    assert result.label_map.shape == image.shape
    np.testing.assert_allclose(result.label_map.affine, image.affine)
    for r in result.roots:
        code = root_label(r["segment"], r["side"])
        mid = np.asarray(r["centerline_mm"])[20]
        idx = np.round(image.world_to_voxel(mid[None])[0]).astype(int)
        assert result.label_map.data[tuple(idx)] == code
    assert summarize(result.roots, [])["nerve_abnormal"] == truth["summary"]["nerve_abnormal"]


@pytest.mark.slow
def test_landmarks_override_and_partial_field_of_view(stir_exam):
    image, truth, _ = stir_exam
    true_c6 = next(n for n in truth["nerves"] if n["segment"] == "C6" and n["side"] == "left")
    # field of view of the left side only (to 8 mm right of the midline): right roots are not assessable
    axis = int(np.argmax(np.abs(image.affine[0, :3])))
    x = image.affine[0, axis] * np.arange(image.shape[axis]) + image.affine[0, 3]
    keep = np.nonzero(x < 8.0)[0]
    start = np.zeros(4)
    start[axis] = keep[0]
    affine = image.affine.copy()
    affine[:3, 3] = image.affine[:3, :3] @ start[:3] + image.affine[:3, 3]
    left_only = Volume(np.take(image.data, keep, axis=axis), affine)
    given = np.asarray(true_c6["centerline_mm"])
    result = analyze_nerves(left_only, default_protocol(), landmarks={"roots": {"C6_left": given.tolist()}})
    sides = {(r["segment"], r["side"]) for r in result.roots}
    assert not any(side == "right" for _, side in sides)
    assert {n["item"] for n in result.not_assessable} >= {f"{s} right" for s in ("C5", "C6", "C7", "C8", "T1")}
    c6 = next(r for r in result.roots if r["segment"] == "C6" and r["side"] == "left")
    assert c6["source"] == "landmarks"
    assert c6["csa_mm2"] == pytest.approx(true_c6["csa_mm2"], rel=0.1)
    others = [r for r in result.roots if r["segment"] != "C6"]
    assert others and all(r["source"] == "automatic" for r in others)


def test_bad_landmarks_are_rejected():
    image = Volume(np.zeros((8, 8, 8), np.float32), np.eye(4))
    with pytest.raises(BadInputError, match="expected a list"):
        analyze_nerves(image, default_protocol(), landmarks={"roots": {"C5_left": [[1, 2]]}})


def test_image_without_spine_is_not_assessable():
    rng = np.random.default_rng(0)
    noise = Volume(rng.normal(100, 5, (60, 50, 40)).astype(np.float32), np.diag([1.5, 1.5, 2.0, 1.0]))
    with pytest.raises(NotAssessableError, match="spinal canal"):
        analyze_nerves(noise, default_protocol())
