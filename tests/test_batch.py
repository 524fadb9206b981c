"""Batch machinery: exam discovery, input hashing, failures table, atomic output folders."""
import os

import pandas as pd
import pytest

from nervemuscle.batch import discover_exams, input_hash, write_failures
from nervemuscle.errors import BadInputError
from nervemuscle.pipeline import atomic_output_dir


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


def test_atomic_output_dir_replaces_or_keeps(tmp_path):
    out = tmp_path / "out"
    with atomic_output_dir(out) as tmp:
        (tmp / "a.txt").write_text("1")
        assert not out.exists()
    assert (out / "a.txt").read_text() == "1"
    with pytest.raises(RuntimeError):
        with atomic_output_dir(out) as tmp:
            (tmp / "a.txt").write_text("2")
            raise RuntimeError("analysis failed half-way")
    assert (out / "a.txt").read_text() == "1"
    with atomic_output_dir(out) as tmp:
        (tmp / "b.txt").write_text("3")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp folders left behind


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
