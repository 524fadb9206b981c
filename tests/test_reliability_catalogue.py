"""Catalogue of hostile inputs, each generated here (nothing stored): the expected exit code, the start of the
one-line message, no traceback, nothing half-written and the input untouched (docs/reliability.md)."""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from nervemuscle.cli import main
from io_fixtures import slice_positions, write_series

OK, USAGE, BAD, NOT_ASSESSABLE, OUTPUT = 0, 1, 2, 3, 4


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` with its type and content hash (FIFOs by type only, never opened)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            if path.is_symlink():
                out[str(path)] = "link:" + os.readlink(path)
            elif os.path.isdir(path):
                out[str(path)] = f"dir:{st.st_mode:o}"
            elif not path.is_file():
                out[str(path)] = f"special:{st.st_mode:o}"
            else:
                out[str(path)] = f"{st.st_mode:o}:" + hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def nifti(path: Path, data=None, affine=None, *, sidecar: dict | None = None, header: dict | None = None) -> Path:
    """A small valid 3-D NIfTI (optionally with a JSON sidecar and overridden header fields)."""
    data = np.arange(8 * 9 * 10, dtype=np.int16).reshape(8, 9, 10) if data is None else data
    img = nib.Nifti1Image(data, np.diag([0.8, 0.8, 3.0, 1.0]) if affine is None else affine)
    for key, value in (header or {}).items():
        img.header[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))
    if sidecar is not None:
        path.with_name(path.name.split(".nii")[0] + ".json").write_text(json.dumps(sidecar))
    return path


def exam(tmp: Path, **kw) -> Path:
    write_series(tmp / "exam", **kw)
    return tmp / "exam"


@dataclass
class Case:
    """One hostile input: ``build(tmp)`` writes the inputs under ``tmp/in`` and returns the command line."""

    name: str
    build: Callable[[Path], list[str]]
    code: int
    message: str


def _ingest(src: str, out: str, *extra: str) -> list[str]:
    return ["ingest", src, "-o", out, *extra]


CASES: list[Case] = []


def case(name: str, code: int, message: str):
    def register(build):
        CASES.append(Case(name, build, code, message))
        return build
    return register


# --- 1. outputs that would replace or change an input -------------------------------------------------------

@case("ingest -o EXAM", OUTPUT, "output folder is the input")
def _(t):
    return _ingest(str(exam(t)), str(t / "exam"))


@case("ingest -o EXAM/..", OUTPUT, "output folder contains the input")
def _(t):
    return _ingest(str(exam(t / "a")), str(t / "a"))


@case("ingest -o EXAM/sub", OUTPUT, "output folder is inside the input")
def _(t):
    return _ingest(str(exam(t)), str(t / "exam" / "nifti"))


@case("ingest -o symlink to EXAM", OUTPUT, "output folder is the input")
def _(t):
    (t / "link").symlink_to(exam(t))
    return _ingest(str(t / "exam"), str(t / "link"))


@case("ingest -o a non-empty folder of other files", OUTPUT, "exists, is not empty and holds no series.json")
def _(t):
    (t / "documents").mkdir()
    (t / "documents" / "thesis.txt").write_text("years of work")
    return _ingest(str(exam(t)), str(t / "documents"))


@case("analyze -o EXAM", OUTPUT, "output folder is the input")
def _(t):
    return ["analyze", str(exam(t)), "-o", str(t / "exam"), "--no-pdf"]


@case("analyze -o parent of EXAM", OUTPUT, "output folder contains the input")
def _(t):
    return ["analyze", str(exam(t / "p")), "-o", str(t / "p"), "--no-pdf"]


@case("analyze -o a folder holding the protocol", OUTPUT, "output folder contains the input")
def _(t):
    (t / "cfg").mkdir()
    (t / "cfg" / "p.yaml").write_text("name: x\n")
    return ["analyze", str(exam(t)), "-o", str(t / "cfg"), "--protocol", str(t / "cfg" / "p.yaml"), "--no-pdf"]


@case("analyze-batch -o ROOT", OUTPUT, "output folder is or contains the batch root")
def _(t):
    exam(t / "root" / "e1")
    return ["analyze-batch", str(t / "root"), "-o", str(t / "root"), "--workers", "1"]


@case("analyze-batch -o inside an exam", OUTPUT, "output folder is inside the input")
def _(t):
    exam(t / "root" / "e1")
    return ["analyze-batch", str(t / "root"), "-o", str(t / "root" / "e1" / "exam" / "out"), "--workers", "1"]


@case("cohort -o the findings root", OUTPUT, "output folder is the input")
def _(t):
    (t / "findings").mkdir()
    (t / "clinical.csv").write_text("id,diagnosis\n")
    return ["cohort", str(t / "findings"), "--clinical", str(t / "clinical.csv"), "-o", str(t / "findings"),
            "--no-pdf"]


@case("cohort -o a folder holding clinical.csv", OUTPUT, "output folder contains the input")
def _(t):
    (t / "findings").mkdir()
    (t / "study").mkdir()
    (t / "study" / "clinical.csv").write_text("id,diagnosis\n")
    return ["cohort", str(t / "findings"), "--clinical", str(t / "study" / "clinical.csv"), "-o", str(t / "study"),
            "--no-pdf"]


@case("export-nnunet over its own images", OUTPUT, "output folder contains the input")
def _(t):
    ds = t / "raw" / "Dataset501_ShoulderGirdle"
    nifti(ds / "img.nii.gz")
    nifti(ds / "lab.nii.gz")
    (t / "m.csv").write_text("case,labels,image0\nc1,raw/Dataset501_ShoulderGirdle/lab.nii.gz,"
                             "raw/Dataset501_ShoulderGirdle/img.nii.gz\n")
    return ["export-nnunet", str(t / "m.csv"), str(t / "raw")]


# --- 2. entries that are not regular files: skipped with a warning, never opened (a FIFO blocks for ever) ----

@case("ingest: FIFO among the DICOM files", OK, "skipped 1 entries that are not regular files")
def _(t):
    os.mkfifo(exam(t) / "IM_fifo")
    return _ingest(str(t / "exam"), str(t.parent / "out"))


@case("ingest: FIFO named like a NIfTI and its sidecar", OK, "skipped 2 entries that are not regular files")
def _(t):
    nifti(t / "exam" / "t1.nii.gz")
    os.mkfifo(t / "exam" / "t2fs.nii.gz")
    os.mkfifo(t / "exam" / "t1.json")
    return _ingest(str(t / "exam"), str(t.parent / "out"))


@case("analyze: FIFO in the exam folder", OK, "skipped 1 entries that are not regular files")
def _(t):
    os.mkfifo(exam(t) / "IM_fifo")
    return ["analyze", str(t / "exam"), "-o", str(t.parent / "out"), "--no-pdf"]


@case("ingest: only a FIFO and a broken link", BAD, "empty folder: no files found (2 entries")
def _(t):
    (t / "exam").mkdir()
    os.mkfifo(t / "exam" / "IM1")
    (t / "exam" / "IM2").symlink_to(t / "nowhere")
    return _ingest(str(t / "exam"), str(t.parent / "out"))


# -----------------------------------------------------------------------------------------------------------


@pytest.fixture
def alarm():
    """Fail instead of hanging: SIGALRM after 60 s."""
    def on_alarm(*_):
        raise TimeoutError("the command hung")
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def test_catalogue_is_large_enough():
    assert len(CASES) >= 40, len(CASES)


@pytest.mark.parametrize("entry", CASES, ids=[c.name for c in CASES])
def test_hostile_input(entry: Case, tmp_path, capsys, monkeypatch, alarm):
    work = tmp_path / "in"
    work.mkdir()
    monkeypatch.chdir(tmp_path)
    argv = entry.build(work)
    before = snapshot(work)
    code = main(argv)
    err = capsys.readouterr().err
    assert code == entry.code, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    if entry.code != OK:
        assert len(lines) == 1 and entry.message in lines[0], err
    else:
        assert any(line.startswith("warning: ") and entry.message in line for line in err.splitlines()), err
    after = snapshot(work)
    assert after == before or entry.code == OK and {k: v for k, v in after.items() if k in before} == before
    assert not [p for p in tmp_path.rglob(".*.tmp-*")], "temporary output left behind"
