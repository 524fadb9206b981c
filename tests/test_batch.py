"""Batch machinery: exam discovery, input hashing, failures table, the analyze-batch command."""
import os

import pandas as pd
import pytest

from nervemuscle.batch import discover_exams, input_hash, write_failures
from nervemuscle.cli import main
from nervemuscle.errors import EXIT_BAD_INPUT, EXIT_BATCH_FAILURES, EXIT_USAGE, BadInputError


def touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_discovery_rules(tmp_path):
    root = tmp_path / "root"
    touch(root / "clinical.csv")
    touch(root / "phantom_a" / "dicom" / "001_t1" / "0001.dcm")
    touch(root / "phantom_a" / "labels" / "t1_labels.nii.gz")  # not an exam of its own
    touch(root / "site1" / "patient_b" / "s3" / "IM0001", b"\0" * 128 + b"DICM" + b"\0" * 10)
    touch(root / "site1" / "patient_b" / "s4" / "x.nii.gz")
    touch(root / "site1" / "patient_c" / "a.dcm")
    touch(root / "site1" / "notes" / "README")  # no suffix, no DICOM preamble: not an image
    touch(root / "out" / "phantom_a" / "series" / "t1.nii.gz")
    tasks = discover_exams(root, exclude=[root / "out"])
    assert [(t.name, t.input_dir.relative_to(root).as_posix()) for t in tasks] == [
        ("phantom_a", "phantom_a/dicom"),
        ("site1/patient_b", "site1/patient_b"),
        ("site1/patient_c", "site1/patient_c"),
    ]
    with pytest.raises(BadInputError, match="not found"):
        discover_exams(tmp_path / "nope")


def test_input_hash_follows_names_sizes_and_mtimes(tmp_path):
    touch(tmp_path / "s" / "a.dcm", b"abc")
    h = input_hash(tmp_path)
    assert h == input_hash(tmp_path)
    st = (tmp_path / "s" / "a.dcm").stat()
    os.utime(tmp_path / "s" / "a.dcm", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    h2 = input_hash(tmp_path)
    assert h2 != h
    touch(tmp_path / "s" / "b.dcm")
    assert input_hash(tmp_path) != h2


def test_failures_csv(tmp_path):
    path = write_failures(tmp_path, [{"exam": "b", "error_type": "BadInputError", "reason": "x: bad, file",
                                      "seconds": 1.0}, {"exam": "a", "error_type": "E", "reason": "r"}])
    df = pd.read_csv(path)
    assert list(df.columns) == ["exam", "error_type", "reason"] and list(df.exam) == ["a", "b"]
    assert df.reason[1] == "x: bad, file"
    assert pd.read_csv(write_failures(tmp_path, [])).empty


def write_dicom(path, study_uid):
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.StudyInstanceUID = study_uid
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def test_flat_exam_folders_are_split_by_study(tmp_path):
    """root/<exam>/*.dcm: leaf folders of different studies are separate exams, of one study one exam."""
    write_dicom(tmp_path / "cohort" / "p1" / "a.dcm", "1.2.3.1")
    write_dicom(tmp_path / "cohort" / "p2" / "a.dcm", "1.2.3.2")
    write_dicom(tmp_path / "exam" / "s1" / "a.dcm", "1.2.3.9")
    write_dicom(tmp_path / "exam" / "s2" / "a.dcm", "1.2.3.9")
    assert [t.name for t in discover_exams(tmp_path / "cohort")] == ["p1", "p2"]
    assert [t.name for t in discover_exams(tmp_path / "exam")] == ["exam"]


def test_analyze_batch_usage_and_input_errors(tmp_path, capsys):
    assert main(["analyze-batch", "-o", str(tmp_path / "out")]) == EXIT_USAGE
    assert "Missing argument" in capsys.readouterr().err
    assert main(["analyze-batch", str(tmp_path / "nope"), "-o", str(tmp_path / "out")]) == EXIT_BAD_INPUT
    assert "nope" in capsys.readouterr().err and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_batch_on_local_cluster_survives_a_corrupt_exam_and_resumes(phantom_exam, tmp_path, capsys):
    import shutil

    from nervemuscle.batch import analyze_batch

    root = tmp_path / "cohort"
    for name, (phenotype, seed) in {"als_01": ("als", 3), "normal_01": ("normal", 8)}.items():
        shutil.copytree(phantom_exam(phenotype, "2d", seed), root / name)
    # corrupt exam: every DICOM file truncated or replaced by garbage
    shutil.copytree(root / "normal_01", root / "corrupt_01")
    for i, f in enumerate(sorted((root / "corrupt_01" / "dicom").rglob("*.dcm"))):
        f.write_bytes(f.read_bytes()[:200] if i % 2 else b"this is not DICOM")
    out = tmp_path / "out"

    first = analyze_batch(root, out, workers=2, progress=False)
    assert (first.analysed, first.skipped, first.failed) == (2, 0, 1)
    failures = pd.read_csv(out / "failures.csv")
    assert list(failures.exam) == ["corrupt_01"] and failures.reason[0]
    summary = pd.read_parquet(out / "findings.parquet")
    assert sorted(summary.exam) == ["als_01", "normal_01"]
    assert {"abnormal", "nerve_abnormal", "muscle_abnormal"} <= set(summary.columns)
    nerves, muscles = pd.read_parquet(out / "nerves.parquet"), pd.read_parquet(out / "muscles.parquet")
    assert set(nerves.exam) == {"als_01", "normal_01"} and {"segment", "side", "csa_mm2"} <= set(nerves.columns)
    assert {"name", "side", "volume_ml"} <= set(muscles.columns)

    capsys.readouterr()
    # the command line signals a batch with failures (nothing changed: no cluster is started)
    assert main(["analyze-batch", str(root), "-o", str(out), "--workers", "2"]) == EXIT_BATCH_FAILURES == 1
    printed = capsys.readouterr().out
    assert "analysed 0, skipped 3 (unchanged), failed 1" in printed and "failures.csv" in printed
    assert list(pd.read_csv(out / "failures.csv").exam) == ["corrupt_01"]

    some = next((root / "als_01" / "dicom").rglob("*.dcm"))
    os.utime(some, ns=(some.stat().st_atime_ns, some.stat().st_mtime_ns + 10**9))
    third = analyze_batch(root, out, workers=1, progress=False)
    assert (third.analysed, third.skipped, third.failed) == (1, 2, 1)
    assert sorted(pd.read_parquet(out / "findings.parquet").exam) == ["als_01", "normal_01"]

    shutil.rmtree(root / "corrupt_01")
    assert main(["analyze-batch", str(root), "-o", str(out)]) == 0
    assert "failed 0" in capsys.readouterr().out and pd.read_csv(out / "failures.csv").empty
