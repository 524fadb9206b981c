"""Bad input through the CLI: one-line stderr naming the file and problem, documented exit code, no output."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pydicom.data
import pytest

from nervemuscle.cli import main
from nervemuscle.errors import EXIT_BAD_INPUT, EXIT_OUTPUT, EXIT_USAGE
from io_fixtures import slice_positions, write_series

TEST_FILES = Path(pydicom.data.__file__).parent / "test_files"


def run_ingest(capsys, src: Path, out: Path, *extra: str) -> tuple[int, str]:
    code = main(["ingest", str(src), "-o", str(out), *extra])
    return code, capsys.readouterr().err


def assert_bad_input(capsys, src: Path, tmp_path: Path, file_name: str, *words: str) -> None:
    out = tmp_path / "out"
    code, err = run_ingest(capsys, src, out)
    assert code == EXIT_BAD_INPUT, err
    line = err.strip()
    assert "\n" not in line and "Traceback" not in line, err
    assert line.startswith("error: ") and file_name in line, line
    for word in words:
        assert word in line, line
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")], "temporary output left behind"


def test_empty_folder(capsys, tmp_path):
    (tmp_path / "exam").mkdir()
    assert_bad_input(capsys, tmp_path / "exam", tmp_path, "exam", "empty folder")


def test_missing_folder(capsys, tmp_path):
    assert_bad_input(capsys, tmp_path / "nope", tmp_path, "nope", "not found")


def test_no_dicom(capsys, tmp_path):
    (tmp_path / "exam" / "sub").mkdir(parents=True)
    (tmp_path / "exam" / "notes.txt").write_text("not an image")
    (tmp_path / "exam" / "sub" / "IM0001").write_bytes(os.urandom(2000))
    assert_bad_input(capsys, tmp_path / "exam", tmp_path, "exam", "no DICOM MR images", "2 file(s) ignored")


def test_truncated_file(capsys, tmp_path):
    (tmp_path / "exam").mkdir()
    shutil.copy(TEST_FILES / "MR_truncated.dcm", tmp_path / "exam" / "MR_truncated.dcm")
    assert_bad_input(capsys, tmp_path / "exam", tmp_path, "MR_truncated.dcm", "truncated")


def test_truncated_header(capsys, tmp_path):
    paths = write_series(tmp_path / "exam")
    paths[1].write_bytes(paths[1].read_bytes()[:400])
    assert_bad_input(capsys, tmp_path / "exam", tmp_path, paths[1].name, "truncated")


def test_file_without_pixel_data(capsys, tmp_path):
    paths = write_series(tmp_path / "exam")
    ds = pydicom.dcmread(paths[3])
    del ds.PixelData
    ds.save_as(paths[3])
    assert_bad_input(capsys, tmp_path / "exam", tmp_path, paths[3].name, "no pixel data")



def test_missing_slice(capsys, tmp_path):
    positions = np.delete(slice_positions((1, 0, 0, 0, 1, 0), (0, 0, 0), 3.0, 7), 4, axis=0)
    paths = write_series(tmp_path / "exam", positions=positions)
    assert_bad_input(capsys, tmp_path / "exam", tmp_path, paths[4].name, "missing slice", "6.000 mm", "3.000 mm")


def test_duplicate_slice(capsys, tmp_path):
    positions = slice_positions((1, 0, 0, 0, 1, 0), (0, 0, 0), 3.0, 6)
    positions[3] = positions[2]
    paths = write_series(tmp_path / "exam", positions=positions)
    names = sorted(paths[i].name for i in (2, 3))
    assert_bad_input(capsys, tmp_path / "exam", tmp_path, names[1], "duplicate slice", "6.00 mm", names[0])


def test_inconsistent_spacing(capsys, tmp_path):
    positions = slice_positions((1, 0, 0, 0, 1, 0), (0, 0, 0), 3.0, 6)
    positions[4:] += [0, 0, 1.0]
    paths = write_series(tmp_path / "exam", positions=positions)
    assert_bad_input(capsys, tmp_path / "exam", tmp_path, paths[4].name, "inconsistent slice spacing", "4.000 mm")


def test_mixed_orientations_are_split(capsys, tmp_path):
    """Decision: a series mixing orientations is split into sub-series (uid suffix .ori1, .ori2), not refused."""
    uid = pydicom.uid.generate_uid()
    write_series(tmp_path / "exam", orientation="axial", series_uid=uid, series_number=3, description="mixed")
    write_series(tmp_path / "exam", orientation="coronal", series_uid=uid, series_number=3, description="mixed",
                 seed=5)
    code, err = run_ingest(capsys, tmp_path / "exam", tmp_path / "out")
    assert code == 0, err
    files = sorted(p.name for p in (tmp_path / "out").glob("*.nii.gz"))
    assert files == ["3_mixed_ori1.nii.gz", "3_mixed_ori2.nii.gz"]


def test_unreadable_nifti(capsys, tmp_path):
    (tmp_path / "exam").mkdir()
    (tmp_path / "exam" / "t1_cor.nii.gz").write_bytes(b"\x1f\x8b garbage that is not gzip")
    assert_bad_input(capsys, tmp_path / "exam", tmp_path, "t1_cor.nii.gz", "unreadable NIfTI")


def test_unwritable_output(capsys, tmp_path):
    write_series(tmp_path / "exam")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder is needed")
    code, err = run_ingest(capsys, tmp_path / "exam", blocker / "out")
    assert code == EXIT_OUTPUT, err
    line = err.strip()
    assert "\n" not in line and "Traceback" not in line and str(blocker / "out") in line, err
    assert blocker.read_text() == "a file where a folder is needed"


def test_bad_role_override(capsys, tmp_path):
    write_series(tmp_path / "exam")
    code, err = run_ingest(capsys, tmp_path / "exam", tmp_path / "out", "--role", "1=flair")
    assert code == EXIT_USAGE and "--role '1=flair'" in err and "\n" not in err.strip()  # a bad argument: README
    assert not (tmp_path / "out").exists()
