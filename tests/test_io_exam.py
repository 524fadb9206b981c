"""Exam loading and writing: NIfTI folders, series splitting, series.json, de-identification, phantom exams."""
from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pydicom
import pytest

from nervemuscle.cli import main
from nervemuscle.io import load_exam, write_ingest
from nervemuscle.volume import Volume
from io_fixtures import write_enhanced, write_series


def test_nifti_folder_with_sidecars(tmp_path):
    aff = np.diag([0.8, 0.8, 3.0, 1.0])
    aff[:3, 3] = [-100, -80, 20]
    Volume(np.zeros((6, 5, 4), np.int16), aff).save(tmp_path / "sub-01_acq-cor_STIR.nii.gz")
    (tmp_path / "sub-01_acq-cor_STIR.json").write_text(json.dumps(
        {"SeriesDescription": "t2_tirm_cor", "SeriesNumber": 4, "RepetitionTime": 5.0, "EchoTime": 0.045,
         "InversionTime": 0.21, "ScanningSequence": "SE_IR", "ImageType": ["ORIGINAL", "PRIMARY", "M"]}))
    Volume(np.ones((6, 5, 4), np.float32), aff).save(tmp_path / "t1_tse_cor.nii")
    Volume(np.ones((6, 5, 4), np.uint8), aff).save(tmp_path / "t1_tse_cor_labels.nii.gz")
    exam = load_exam(tmp_path)
    assert [(s.uid, s.role) for s in exam.series] == [("sub-01_acq-cor_STIR", "stir"), ("t1_tse_cor", "t1")]
    stir = exam.series[0]
    assert stir.number == 4 and stir.description == "t2_tirm_cor"
    assert stir.attributes["RepetitionTime"] == pytest.approx(5000.0)
    assert stir.attributes["InversionTime"] == pytest.approx(210.0) and "TI=210" in stir.role_reason
    np.testing.assert_allclose(stir.volume.affine, aff)
    assert exam.n_ignored_files == 1 and "label map" in exam.warnings[0]
    assert exam.patient == {}


def test_deidentify_drops_identifiers_from_sidecar_attributes(tmp_path):
    (tmp_path / "exam").mkdir()
    Volume(np.zeros((4, 4, 3), np.int16), np.eye(4)).save(tmp_path / "exam" / "t1.nii.gz")
    (tmp_path / "exam" / "t1.json").write_text(json.dumps({"PatientName": "Doe^Jane", "EchoTime": 0.01}))
    summary_path = write_ingest(load_exam(tmp_path / "exam"), tmp_path / "out", deidentify=True) / "series.json"
    text = summary_path.read_text()
    assert "Doe^Jane" not in text and json.loads(text)["series"][0]["attributes"]["EchoTime"] == 10.0


def test_split_by_echo_time_and_enhanced_multiframe(tmp_path):
    uid = pydicom.uid.generate_uid()
    for te, seed in ((30.0, 1), (60.0, 2)):
        write_series(tmp_path / "me", series_uid=uid, series_number=6, description="t2_me",
                     header={"EchoTime": te, "RepetitionTime": 3000}, seed=seed)
    write_enhanced(tmp_path / "mf" / "enh.dcm", echo_times=(10.0, 20.0), series_number=9)
    exam = load_exam(tmp_path)
    by_uid = {s.uid.rsplit(".", 1)[-1] + f"@{s.number}": s for s in exam.series}
    assert sorted(by_uid) == ["te1@6", "te1@9", "te2@6", "te2@9"]
    assert by_uid["te2@6"].attributes["EchoTime"] == 60.0 and by_uid["te1@9"].attributes["EchoTime"] == 10.0
    assert all("split by te" in s.warnings[0] for s in exam.series)
    enhanced = by_uid["te2@9"].volume
    assert enhanced.shape == (16, 20, 5) and enhanced.data.dtype == np.float32
    np.testing.assert_allclose(enhanced.spacing, [0.6, 0.9, 2.5])


def test_split_by_image_type(tmp_path):
    """A series holding Dixon water and fat images at the same positions becomes two classified sub-series."""
    uid = pydicom.uid.generate_uid()
    for kind, seed in (("WATER", 1), ("FAT", 2)):
        write_series(tmp_path, series_uid=uid, series_number=8, description="dixon",
                     header={"ImageType": ["DERIVED", "PRIMARY", "DIXON", kind]}, seed=seed)
    exam = load_exam(tmp_path)
    assert [(s.uid[-6:], s.role) for s in exam.series] == [(".type1", "dixon_fat"), (".type2", "dixon_water")]


def test_diffusion_series_split_by_b_value_and_4d_nifti(tmp_path):
    uid = pydicom.uid.generate_uid()
    for b, seed in ((0, 1), (800, 2)):
        write_series(tmp_path / "dicom", series_uid=uid, series_number=9, description="ep2d_diff_tra", seed=seed,
                     header={"ScanningSequence": "EP", "DiffusionBValue": b, "RepetitionTime": 5000,
                             "EchoTime": 70})
    exam = load_exam(tmp_path / "dicom")
    assert [(s.uid[-5:], s.role) for s in exam.series] == [(".dwi1", "dwi"), (".dwi2", "dwi")]
    (tmp_path / "nifti").mkdir()
    data = np.arange(2 * 3 * 4 * 5, dtype=np.int16).reshape(2, 3, 4, 5)
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "nifti" / "dwi.nii.gz")
    series = load_exam(tmp_path / "nifti").series[0]
    assert series.volume.shape == (2, 3, 4) and "first is used" in series.warnings[0] and series.role == "dwi"


def test_write_ingest_outputs_and_deidentify(tmp_path, capsys):
    write_series(tmp_path / "exam" / "s1", series_number=1, description="t1_tse_tra")
    write_series(tmp_path / "exam" / "s2", series_number=2, description="t2_tse_tra",
                 header={"ScanOptions": "FS", "RepetitionTime": 4000, "EchoTime": 80})
    (tmp_path / "exam" / "README").write_text("not dicom")
    out = tmp_path / "out"
    assert main(["ingest", str(tmp_path / "exam"), "-o", str(out), "--deidentify", "--role", "2=stir"]) == 0
    summary = json.loads((out / "series.json").read_text())
    assert summary["n_ignored_files"] == 1 and summary["patient"] == {} and summary["deidentified"]
    assert [(s["file"], s["role"]) for s in summary["series"]] == [("1_t1_tse_tra.nii.gz", "t1"),
                                                                     ("2_t2_tse_tra.nii.gz", "stir")]
    assert summary["series"][1]["role_reason"].startswith("set by the user (automatic: t2fs")
    text = (out / "series.json").read_text() + "".join(p.name for p in out.iterdir())
    assert "NM-TEST-001" not in text and "Phantom" not in text and "19600101" not in text
    for record in summary["series"]:
        img = nib.load(str(out / record["file"]))
        np.testing.assert_allclose(img.affine, record["affine"], atol=1e-5)
        assert list(img.shape) == record["shape"]
    exam = load_exam(tmp_path / "exam")
    assert exam.patient["PatientID"] == "NM-TEST-001"
    write_ingest(exam, out)  # replaces the previous output
    assert json.loads((out / "series.json").read_text())["patient"]["PatientID"] == "NM-TEST-001"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exam", "out"]


VENDOR_ROLES = [(vendor, acq, image_role) for vendor in ("siemens", "ge", "philips")
                for acq, image_roles in (("t1_axial", [None]), ("t2fs_axial", [None]), ("stir_3d", [None]),
                                         ("dixon_3d", ["water", "fat", "in", "opp"]))
                for image_role in image_roles]


@pytest.mark.parametrize("vendor,acq_name,image_role", VENDOR_ROLES)
def test_phantom_headers_classify(tmp_path, vendor, acq_name, image_role):
    """The phantom's vendor-flavoured headers (nervemuscle.phantom.dicom_writer) get the role it simulated."""
    from nervemuscle.phantom.acquisition import ACQUISITIONS
    from nervemuscle.phantom.dicom_writer import series_description, write_series as phantom_write

    acq = ACQUISITIONS[acq_name]
    vol = Volume(np.random.default_rng(0).random((6, 5, 3)), np.diag([1.2, 1.1, 4.4, 1.0]))
    phantom_write(vol, tmp_path, series_number=3, description=series_description(vendor, acq.role, image_role),
                  vendor=vendor, role=acq.role, acquisition=acq, patient={"name": "P^Q", "id": "X1"},
                  study_uid=pydicom.uid.generate_uid(), frame_uid=pydicom.uid.generate_uid(),
                  series_uid=pydicom.uid.generate_uid(), image_role=image_role)
    series = load_exam(tmp_path).series
    expected = acq.role if image_role is None else f"dixon_{image_role}"
    assert [s.role for s in series] == [expected], series[0].role_reason
    np.testing.assert_allclose(series[0].volume.affine, vol.affine, atol=1e-4)
    step = vol.data.max() / 32000.0  # the phantom stores uint16 with RescaleSlope = max / 32000
    np.testing.assert_allclose(series[0].volume.data, vol.data, atol=0.51 * step, rtol=1e-6)


@pytest.mark.slow
def test_phantom_exam_matches_truth_and_dcm2niix(tmp_path):
    """A simulated GE Dixon exam: roles match truth.json; geometry and values match dcm2niix."""
    from nervemuscle.phantom import simulate_exam
    from test_io_geometry import DCM2NIIX, canonical, dcm2niix

    exam_dir = simulate_exam(tmp_path / "sim", "als", 3, kind="dixon", vendor="ge")
    truth = json.loads((exam_dir / "truth.json").read_text())
    exam = load_exam(exam_dir)
    roles = {s.uid: s.role for s in exam.series}
    assert roles == {t["series_instance_uid"]: t["role"] for t in truth["series"]}
    if DCM2NIIX is None:
        pytest.skip("dcm2niix not installed")
    theirs = [canonical(nib.load(str(p))) for p in dcm2niix(exam_dir / "dicom", tmp_path / "d2n")]
    for series in exam.series:
        aff, data = canonical(series.volume.to_nifti())
        match = [t for t in theirs if t[1].shape == data.shape and np.allclose(t[0], aff, atol=0.01)]
        assert match, series.description
        # RescaleSlope is not a float32 number; dcm2niix stores it in the float32 scl_slope field
        assert any(np.allclose(t[1], data, rtol=1e-6, atol=0) for t in match), series.description
