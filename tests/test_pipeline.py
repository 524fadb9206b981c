"""End to end on phantom exams: ``nervemuscle analyze`` against the phantom's truth.json.

One exam per phenotype and acquisition kind that matters (ALS 2D as in the paper, MMN 3D STIR, control
Dixon, ALS Dixon); each is simulated and analysed once per session.
"""
import json
import shutil

import numpy as np
import pytest

from nervemuscle.anatomy import label_names
from nervemuscle.cli import main
from nervemuscle.errors import EXIT_BAD_INPUT, EXIT_NOT_ASSESSABLE
from nervemuscle.findings import read_findings
from nervemuscle.pipeline import analyze_exam

pytestmark = pytest.mark.slow

EXAMS = {"als_2d": ("als", "2d", 3), "mmn_3d": ("mmn", "3d", 5), "normal_dixon": ("normal", "dixon", 8),
         "als_dixon": ("als", "dixon", 4)}
SUMMARY_KEYS = ("abnormal", "nerve_abnormal", "muscle_abnormal", "muscle_edema", "muscle_atrophy")


@pytest.fixture(scope="module")
def analysed(tmp_path_factory, phantom_exam):
    """{name: (exam_dir, out_dir, truth, findings)}; the ALS 2D exam also gets the PDF."""
    out_root = tmp_path_factory.mktemp("analysed")
    results = {}
    for name, (phenotype, kind, seed) in EXAMS.items():
        exam = phantom_exam(phenotype, kind, seed)
        analyze_exam(exam / "dicom", out_root / name, pdf=(name == "als_2d" and shutil.which("chromium")))
        truth = json.loads((exam / "truth.json").read_text())
        results[name] = (exam, out_root / name, truth, read_findings(out_root / name / "findings.json"))
    return results


def rel_errors(pairs):
    return np.array([abs(a - b) / b for a, b in pairs if a is not None and b is not None and b > 0])


def test_outputs_exist_and_are_self_contained(analysed):
    for name, (_, out, _, findings) in analysed.items():
        assert findings["exam_id"] == name.split("/")[-1] or findings["exam_id"]
        for rel in ("findings.json", "report.html", "key_images.png", "labels/muscles.nii.gz", "labels/nerves.nii.gz",
                    "qc/muscles_axial.png", "qc/nerves_axial.png", "qc/nerves_coronal_mip.png"):
            assert (out / rel).is_file(), f"{name}: {rel} missing"
        used = {s["role"] for s in findings["sequences"]}
        assert all((out / "series" / f"{r}.nii.gz").is_file() for r in used)
        html = (out / "report.html").read_text()
        assert "data:image/png;base64," in html and "src=\"http" not in html and "src=\"/" not in html
        assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{name}.")], "temp folder left"
    assert not shutil.which("chromium") or (analysed["als_2d"][1] / "report.pdf").read_bytes()[:4] == b"%PDF"


def test_series_choice_is_recorded(analysed):
    seq = {name: a[3]["sequences"] for name, a in analysed.items()}
    nerve_3d = next(s for s in seq["mmn_3d"] if "nerve" in s["used_for"])
    assert nerve_3d["role"] == "stir" and "3D" in nerve_3d["reason"]
    nerve_2d = next(s for s in seq["als_2d"] if "nerve" in s["used_for"])
    assert nerve_2d["role"] in ("t2fs", "stir")
    assert any("muscle_fat" in s["used_for"] for s in seq["normal_dixon"])
    assert all(any("muscle" in s["used_for"] for s in v) for v in seq.values())


def test_roots_agree_with_truth(analysed):
    csa, t2, n_visible, n_found = [], [], 0, 0
    for _, _, truth, findings in analysed.values():
        measured = {(n["segment"], n["side"]): n for n in findings["nerves"]}
        for t in truth["nerves"]:
            if not t.get("visible", True):
                continue
            n_visible += 1
            m = measured.get((t["segment"], t["side"]))
            if m is None or m["csa_mm2"] is None:
                continue
            n_found += 1
            csa.append((m["csa_mm2"], t["csa_mm2"]))
            t2.append((m["t2_ratio"], t["t2_ratio"]))
    assert n_found >= 0.8 * n_visible, f"only {n_found}/{n_visible} visible roots measured"
    csa_err, t2_err = rel_errors(csa), rel_errors(t2)
    assert np.mean(csa_err <= 0.15) >= 0.8, f"CSA within 15%: {np.mean(csa_err <= 0.15):.2f}"
    assert np.mean(t2_err <= 0.15) >= 0.8, f"T2 ratio within 15%: {np.mean(t2_err <= 0.15):.2f}"


def test_muscles_agree_with_truth(analysed):
    vol = []
    for _, _, truth, findings in analysed.values():
        measured = {(m["name"], m["side"]): m for m in findings["muscles"]}
        for t in truth["muscles"]:
            m = measured.get((t["name"], t["side"]))
            if m is not None and t.get("in_fov", True):
                vol.append((m["volume_ml"], t["volume_ml"]))
    err = rel_errors(vol)
    in_fov = sum(t.get("in_fov", True) for a in analysed.values() for t in a[2]["muscles"])
    assert len(err) >= 0.8 * in_fov, f"only {len(err)}/{in_fov} muscles in the field of view measured"
    assert np.mean(err <= 0.10) >= 0.8, f"muscle volume within 10%: {np.mean(err <= 0.10):.2f}"


def test_summary_agrees_with_truth(analysed):
    agree = [a[3]["summary"][k] == a[2]["summary"][k] for a in analysed.values() for k in SUMMARY_KEYS
             if a[2]["summary"].get(k) is not None]
    assert np.mean(agree) >= 0.75, f"summary agreement {np.mean(agree):.2f}"
    assert analysed["als_2d"][3]["summary"]["abnormal"] is True


def test_cli_same_input_same_findings_and_json_log(analysed, tmp_path, capsys):
    exam, out, _, _ = analysed["mmn_3d"]
    assert main(["analyze", str(exam / "dicom"), "-o", str(tmp_path / "again"), "--no-pdf", "--json-log"]) == 0
    assert (tmp_path / "again" / "findings.json").read_bytes() == (out / "findings.json").read_bytes()
    steps = [json.loads(line)["step"] for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    assert steps[0] == "ingest" and {"muscle", "nerve", "qc", "report"} <= set(steps) and steps[-1] == "done"


def test_cli_exit_codes(analysed, tmp_path, capsys):
    exam = analysed["als_2d"][0]
    assert main(["analyze", str(tmp_path / "missing"), "-o", str(tmp_path / "o"), "--json-log"]) == EXIT_BAD_INPUT
    logged = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    assert logged[-1]["step"] == "error" and logged[-1]["exit_code"] == EXIT_BAD_INPUT
    numbers = sorted({p.parent.name.split("_")[0] for p in (exam / "dicom").rglob("*.dcm")})
    roles = []
    for number in numbers:
        if number.isdigit():
            roles += ["--role", f"{int(number)}=other"]
    assert main(["analyze", str(exam / "dicom"), "-o", str(tmp_path / "o"), "--no-pdf", *roles]) \
        == EXIT_NOT_ASSESSABLE
    err = capsys.readouterr().err
    assert "no series suitable" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_external_labels_give_truth_volumes(analysed, tmp_path):
    """With the phantom's own muscle label map, volumes are the truth within 5%."""
    exam, _, truth, _ = analysed["als_2d"]
    labels = [p for p in sorted((exam / "labels").glob("*_labels.nii.gz")) if "t1" in p.name.lower()]
    (tmp_path / "names.json").write_text(json.dumps({str(k): v for k, v in label_names().items()}))
    result = analyze_exam(exam / "dicom", tmp_path / "out", pdf=False, labels=labels[0],
                          label_names=tmp_path / "names.json")
    measured = {(m["name"], m["side"]): m["volume_ml"] for m in result.findings["muscles"]}
    err = rel_errors([(measured.get((t["name"], t["side"])), t["volume_ml"]) for t in truth["muscles"]
                      if t.get("in_fov", True)])
    assert len(err) and np.mean(err <= 0.05) >= 0.9
