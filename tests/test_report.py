"""findings.json assembly/validation, QC overlays, key images and the clinical report on small synthetic volumes."""
import json
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from nervemuscle.anatomy import muscle_label, root_label
from nervemuscle.errors import BadInputError
from nervemuscle.findings import (build_findings, dumps_findings, plain, protocol_sha256, read_findings,
                                  validate_findings, write_findings)
from nervemuscle.protocol import default_protocol
from nervemuscle.report.clinical_report import impression, render_html, write_pdf
from nervemuscle.report.figures import abnormal_structures, key_images, level_z
from nervemuscle.report.qc import axial_display, canonical, labels_on_slice, resample_labels, write_qc
from nervemuscle.volume import Volume


def lps_affine(spacing, origin):
    """DICOM-like voxel order: i towards patient left, j posterior (i.e. 'LPS' axis codes)."""
    aff = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
    aff[:3, 3] = origin
    return aff


@pytest.fixture(scope="module")
def exam_volumes():
    """T1 with a bright blob per deltoid, fluid series (other grid) with bright tubes for the C5/C6 roots."""
    t1_aff = lps_affine((2.0, 2.0, 4.0), (64.0, 64.0, -40.0))
    shape = (64, 64, 20)
    world = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, 3)
    xyz = (world @ t1_aff[:3, :3].T + t1_aff[:3, 3]).reshape(*shape, 3)
    t1 = np.full(shape, 100.0)
    labels = np.zeros(shape, np.int16)
    for side, x0 in (("right", 40.0), ("left", -40.0)):
        blob = ((xyz[..., 0] - x0) ** 2 / 144 + xyz[..., 1] ** 2 / 400 + (xyz[..., 2] + 20) ** 2 / 300) < 1
        labels[blob] = muscle_label("deltoid", side)
        t1[blob] = 400.0
    fl_aff = lps_affine((1.5, 1.5, 3.0), (48.0, 48.0, -10.0))
    fshape = (64, 64, 16)
    fw = np.stack(np.meshgrid(*[np.arange(n) for n in fshape], indexing="ij"), -1).reshape(-1, 3)
    fxyz = (fw @ fl_aff[:3, :3].T + fl_aff[:3, 3]).reshape(*fshape, 3)
    fluid = np.full(fshape, 50.0)
    roots = np.zeros(fshape, np.int16)
    for seg, z0 in (("C5", 20.0), ("C6", 14.0)):
        for side, sign in (("right", 1), ("left", -1)):
            tube = ((fxyz[..., 1] - 0) ** 2 + (fxyz[..., 2] - z0) ** 2 < 9) & (sign * fxyz[..., 0] > 10) & (
                sign * fxyz[..., 0] < 40)
            roots[tube] = root_label(seg, side)
            fluid[tube] = 300.0
    return {
        "t1": Volume(t1.astype(np.float32), t1_aff), "muscles": Volume(labels, t1_aff),
        "fluid": Volume(fluid.astype(np.float32), fl_aff), "nerves": Volume(roots, fl_aff),
    }


def make_findings(protocol=None):
    protocol = protocol or default_protocol()
    nerves = [
        {"segment": "C5", "side": "right", "csa_mm2": np.float64(21.0), "t2_ratio": 2.9, "thickening_grade": 2,
         "t2_grade": 2, "grade": 2},
        {"segment": "C5", "side": "left", "csa_mm2": 10.4, "t2_ratio": 1.2, "thickening_grade": 0, "t2_grade": 0,
         "grade": 0},
        {"segment": "C6", "side": "left", "csa_mm2": None, "t2_ratio": None, "thickening_grade": None,
         "t2_grade": None, "grade": None},
    ]
    muscles = [
        {"name": "deltoid", "side": "right", "volume_ml": 210.0, "t2_ratio": 1.8, "fat_fraction": 0.05,
         "volume_loss": 0.36, "edema_grade": 2, "atrophy_grade": 2, "fat_grade": 0},
        {"name": "deltoid", "side": "left", "volume_ml": 330.0, "t2_ratio": 1.0, "fat_fraction": 0.04,
         "volume_loss": 0.0, "edema_grade": 0, "atrophy_grade": 0, "fat_grade": 0},
    ]
    return build_findings(exam_id="exam-001", protocol=protocol,
                          sequences=[{"series": "3: t2 stir", "role": "stir", "used_for": ["nerve"], "reason": "x"}],
                          nerves=nerves, muscles=muscles,
                          not_assessable=[{"item": "C6 left", "reason": "root not found"}])


def test_findings_are_valid_sorted_and_deterministic(tmp_path):
    f = make_findings()
    validate_findings(f)
    assert [(n["segment"], n["side"]) for n in f["nerves"]] == [("C5", "left"), ("C5", "right"), ("C6", "left")]
    assert f["summary"]["abnormal"] is True and f["summary"]["nerve_severity"] == "moderate"
    assert f["summary"]["muscle_atrophy"] is True
    assert isinstance(f["nerves"][1]["csa_mm2"], float)
    write_findings(f, tmp_path / "a" / "findings.json")
    write_findings(make_findings(), tmp_path / "b" / "findings.json")
    assert (tmp_path / "a" / "findings.json").read_bytes() == (tmp_path / "b" / "findings.json").read_bytes()
    assert read_findings(tmp_path / "a" / "findings.json") == json.loads(dumps_findings(f))
    assert "time" not in dumps_findings(f)


def test_findings_schema_violation_is_one_clear_error(tmp_path):
    f = make_findings()
    f["nerves"][0]["grade"] = 7
    with pytest.raises(BadInputError, match=r"nerves/0/grade"):
        validate_findings(f)
    with pytest.raises(BadInputError):
        write_findings(f, tmp_path / "findings.json")
    assert not (tmp_path / "findings.json").exists()


def test_plain_and_protocol_hash():
    assert plain({"a": np.float32(1.23456789), "b": np.nan, "c": (np.int64(2), np.bool_(True))}) == {
        "a": 1.2346, "b": None, "c": [2, True]}
    p = default_protocol()
    h = protocol_sha256(p)
    assert h == protocol_sha256(default_protocol()) and len(h) == 64
    p["muscle"]["fat_thresholds"] = [0.1, 0.2, 0.4]
    assert protocol_sha256(p) != h
    assert make_findings(p)["protocol"]["sha256"] == protocol_sha256(p)


def test_canonical_keeps_world_geometry(exam_volumes):
    vol = exam_volumes["t1"]
    can = canonical(vol)
    assert vol.orientation == "LPS" and can.orientation == "RAS"
    ijk = np.array([[3, 5, 7]])
    world = vol.voxel_to_world(ijk)
    back = np.round(can.world_to_voxel(world)).astype(int)[0]
    assert can.data[tuple(back)] == vol.data[3, 5, 7]


def test_resample_labels_through_affines(exam_volumes):
    muscles, fluid = exam_volumes["muscles"], exam_volumes["fluid"]
    on_fluid = resample_labels(muscles, fluid)
    assert on_fluid.shape == fluid.shape and np.allclose(on_fluid.affine, fluid.affine)
    # a labelled fluid voxel maps to the same label at the same world point on the T1 grid
    idx = np.argwhere(on_fluid.data == muscle_label("deltoid", "right"))
    assert len(idx)
    w = fluid.voxel_to_world(idx[len(idx) // 2][None])
    src = np.round(muscles.world_to_voxel(w)).astype(int)[0]
    assert muscles.data[tuple(src)] == muscle_label("deltoid", "right")
    can_fluid = canonical(fluid)
    whole = canonical(on_fluid).data
    for k in (0, 5, 9):  # identical up to rounding ties of voxel centres that fall exactly half-way
        assert np.mean(labels_on_slice(muscles, can_fluid, k) != whole[:, :, k]) < 0.01


def test_axial_display_is_radiological(exam_volumes):
    can = canonical(exam_volumes["muscles"])
    k = int(np.argmax((can.data > 0).sum(axis=(0, 1))))
    plane = axial_display(can.data, k)
    cols = np.nonzero(plane == muscle_label("deltoid", "right"))[1]
    assert cols.mean() < plane.shape[1] / 2  # patient right on the viewer's left


def test_qc_and_key_images_are_written(tmp_path, exam_volumes):
    v = exam_volumes
    pngs = write_qc(tmp_path / "qc", t1=v["t1"], muscle_labels=v["muscles"], fluid=v["fluid"],
                    nerve_labels=v["nerves"])
    assert sorted(p.name for p in pngs) == ["muscles_axial.png", "nerves_axial.png", "nerves_coronal_mip.png"]
    for p in pngs:
        assert Image.open(p).size[0] > 300
    f = make_findings()
    abnormal = abnormal_structures(f)
    assert abnormal == {root_label("C5", "right"): "C5 R", muscle_label("deltoid", "right"): "deltoid R"}
    assert 14.0 <= level_z(v["nerves"]) <= 20.0  # a slice through the C5/C6 roots
    png = key_images(tmp_path / "key.png", f, t1=v["t1"], fluid=v["fluid"], muscle_labels=v["muscles"],
                     nerve_labels=v["nerves"], fluid_role="stir")
    w, h = Image.open(png).size
    assert w > 600 and h > 600
    assert key_images(tmp_path / "none.png", f, t1=None, fluid=None, muscle_labels=None, nerve_labels=None) is None


def test_impression_and_html_are_self_contained(tmp_path, exam_volumes):
    f = make_findings()
    lines = impression(f)
    assert lines[0] == "Abnormal MRI by the grading protocol: nerve and muscle findings."
    nerve_only = {**f, "summary": {**f["summary"], "muscle_abnormal": False}}
    assert impression(nerve_only)[0] == "Abnormal MRI by the grading protocol: nerve findings."
    assert any("Thickening of the right C5 root" in x for x in lines)
    assert any("Atrophy of the right deltoid (moderate)" in x for x in lines)
    html = render_html(f, default_protocol(), key_images=None, qc_images=[],
                       exam_info={"patient": "P-7", "notes": ["3 file(s) ignored"]})
    assert "P-7" in html and "3 file(s) ignored" in html
    assert "exam-001" in html and "21.0" in html and "n/a" in html and "http://" not in html
    normal = build_findings(exam_id="n", protocol=default_protocol(), sequences=[], not_assessable=[],
                            nerves=[{"segment": "C7", "side": "left", "csa_mm2": 15.0, "t2_ratio": 1.2, "grade": 0}],
                            muscles=[])
    assert impression(normal)[0].startswith("Normal") and any("could not be assessed" in x for x in impression(normal))


@pytest.mark.browser
@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian chromium")
def test_pdf_is_printed_by_chromium(tmp_path, exam_volumes):
    v = exam_volumes
    f = make_findings()
    key = key_images(tmp_path / "key.png", f, t1=v["t1"], fluid=v["fluid"], muscle_labels=v["muscles"],
                     nerve_labels=v["nerves"])
    (tmp_path / "report.html").write_text(render_html(f, default_protocol(), key_images=key))
    pdf = write_pdf(tmp_path / "report.html", tmp_path / "report.pdf")
    assert pdf.read_bytes()[:4] == b"%PDF"
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
        assert "exam-001" in text and "Impression" in text
