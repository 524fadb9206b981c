"""Catalogue of hostile inputs, each generated here (nothing stored): the expected exit code, the start of the
one-line message, no traceback, nothing half-written and the input untouched (docs/reliability.md)."""
from __future__ import annotations

import gzip
import hashlib
import io
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
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))
    if header:  # patched in the file: nib.save would rewrite them from the affine
        packed = path.name.endswith(".gz")
        raw = bytearray(gzip.decompress(path.read_bytes()) if packed else path.read_bytes())
        hdr = nib.Nifti1Header.from_fileobj(io.BytesIO(bytes(raw[:348])), check=False)
        for key, value in header.items():
            hdr[key] = value
        raw[:348] = hdr.binaryblock
        path.write_bytes(gzip.compress(bytes(raw)) if packed else bytes(raw))
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
    message: str | None  # start of the error (or, with code 0, of a warning); None: no message required


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


# --- 3. DICOM headers that would silently give wrong values or geometry ----------------------------------------

@case("BitsAllocated 8 on 16-bit pixel data", BAD, "BitsAllocated, Rows, Columns or NumberOfFrames is wrong")
def _(t):
    return _ingest(str(exam(t, header={"BitsAllocated": 8, "BitsStored": 8, "HighBit": 7})), str(t.parent / "o"))


@case("Rows smaller than the pixel data", BAD, "need 480: BitsAllocated, Rows")
def _(t):
    return _ingest(str(exam(t, shape=(24, 20, 6), header={"Rows": 12})), str(t.parent / "o"))


@case("Rows 0", BAD, "an empty or negative image size 1x0x20")
def _(t):
    return _ingest(str(exam(t, header={"Rows": 0})), str(t.parent / "o"))


@case("Rows x Columns 65535^2 on a small file", BAD, "more than the limit")
def _(t):
    return _ingest(str(exam(t, header={"Rows": 65535, "Columns": 65535})), str(t.parent / "o"))


@case("direction cosines not orthogonal", BAD, "is not two orthogonal unit vectors")
def _(t):
    return _ingest(str(exam(t, orientation=(1, 0, 0, 0.6, 0.8, 0))), str(t.parent / "o"))


@case("direction cosines not unit length", BAD, "is not two orthogonal unit vectors")
def _(t):
    return _ingest(str(exam(t, orientation=(2, 0, 0, 0, 2, 0))), str(t.parent / "o"))


@case("ImageOrientationPatient all zero", BAD, "is not two orthogonal unit vectors")
def _(t):
    return _ingest(str(exam(t, orientation=(0, 0, 0, 0, 0, 0), positions=slice_positions((1, 0, 0, 0, 1, 0),
                                                                                       (0, 0, 0), 3.0, 6))),
                   str(t.parent / "o"))


@case("PixelSpacing 0", BAD, "PixelSpacing [0.0, 0.7] is not positive")
def _(t):
    return _ingest(str(exam(t, pixel_spacing=(0, 0.7))), str(t.parent / "o"))


@case("PixelSpacing NaN", BAD, "are not finite numbers")
def _(t):
    return _ingest(str(exam(t, header={"PixelSpacing": ["nan", "0.7"]})), str(t.parent / "o"))


@case("ImagePositionPatient infinite", BAD, "are not finite numbers")
def _(t):
    positions = slice_positions((1, 0, 0, 0, 1, 0), (0, 0, 0), 3.0, 6)
    positions[2, 0] = np.inf
    return _ingest(str(exam(t, positions=positions)), str(t.parent / "o"))


@case("RescaleSlope 0", BAD, "RescaleSlope is 0")
def _(t):
    return _ingest(str(exam(t, slope=0.0, intercept=5.0)), str(t.parent / "o"))


@case("PixelSpacing with 3 values", BAD, "malformed geometry attribute (ValueError: expected 2 values, got 3)")
def _(t):
    return _ingest(str(exam(t, header={"PixelSpacing": [0.8, 0.7, 0.1]})), str(t.parent / "o"))


@case("non-DICOM and non-MR files only", BAD, "no DICOM MR images or NIfTI files found (2 file(s) ignored)")
def _(t):
    (t / "exam").mkdir()
    (t / "exam" / "notes.txt").write_text("x")
    (t / "exam" / "IM1").write_bytes(os.urandom(600))
    return _ingest(str(t / "exam"), str(t.parent / "o"))


# --- 3. NIfTI headers and voxels ---------------------------------------------------------------------------------

@case("NIfTI pixdim 0 without sform", BAD, "voxel size pixdim [0.0, 0.800000011920929, 3.0] is 0")
def _(t):
    return _ingest(str(nifti(t / "exam" / "t1.nii.gz", header={"pixdim": [1, 0, 0.8, 3, 1, 0, 0, 0],
                                                               "sform_code": 0}).parent), str(t.parent / "o"))


@case("NIfTI pixdim negative without sform", BAD, "is 0, negative or not finite")
def _(t):
    return _ingest(str(nifti(t / "exam" / "t1.nii.gz", header={"pixdim": [1, -0.8, 0.8, 3, 1, 0, 0, 0],
                                                               "sform_code": 0}).parent), str(t.parent / "o"))


@case("NIfTI sform all zero", BAD, "sform is singular")
def _(t):
    return _ingest(str(nifti(t / "exam" / "t1.nii.gz", header={"srow_x": [0, 0, 0, 0], "srow_y": [0, 0, 0, 0],
                                                               "srow_z": [0, 0, 0, 0]}).parent),
                   str(t.parent / "o"))


@case("NIfTI sform with collinear axes", BAD, "sform is singular")
def _(t):
    return _ingest(str(nifti(t / "exam" / "t1.nii.gz", affine=np.array([[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 3, 0],
                                                                       [0, 0, 0, 1.0]])).parent), str(t.parent / "o"))


@case("NIfTI sform NaN", BAD, "sform holds values that are not finite")
def _(t):
    return _ingest(str(nifti(t / "exam" / "t1.nii.gz", header={"srow_x": [np.nan, 0, 0, 0]}).parent),
                   str(t.parent / "o"))


@case("NIfTI NaN voxels", BAD, "voxel(s) are NaN or infinite")
def _(t):
    data = np.ones((8, 9, 10), np.float32)
    data[2:4, 2:4, 2:4] = np.nan
    return _ingest(str(nifti(t / "exam" / "t1.nii.gz", data).parent), str(t.parent / "o"))


@case("NIfTI infinite voxels", BAD, "1 voxel(s) are NaN or infinite")
def _(t):
    data = np.ones((8, 9, 10), np.float64)
    data[0, 0, 0] = -np.inf
    return _ingest(str(nifti(t / "exam" / "t1.nii.gz", data).parent), str(t.parent / "o"))


@case("NIfTI 608 bytes claiming 1024^3 voxels", BAD, "1024x1024x1024 = 1073741824 voxels, more than the limit")
def _(t):
    path = nifti(t / "exam" / "t1.nii")
    raw = bytearray(path.read_bytes()[:608])
    hdr = nib.Nifti1Header.from_fileobj(io.BytesIO(bytes(raw[:348])))
    hdr.set_data_shape((1024, 1024, 1024))
    raw[:348] = hdr.binaryblock
    path.write_bytes(bytes(raw))
    return _ingest(str(path.parent), str(t.parent / "o"))


@case("NIfTI .nii shorter than its declared data", BAD, "truncated NIfTI: the header declares")
def _(t):
    path = nifti(t / "exam" / "t1.nii")
    path.write_bytes(path.read_bytes()[:900])
    return _ingest(str(path.parent), str(t.parent / "o"))


@case("gzip bomb: small .nii.gz declaring 2048x2048x1024", BAD, "more than the limit")
def _(t):
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((2048, 2048, 1024))
    hdr.set_data_dtype(np.int16)
    (t / "exam").mkdir()
    with gzip.open(t / "exam" / "t1.nii.gz", "wb") as fh:
        fh.write(hdr.binaryblock + b"\0" * 4 + b"\0" * 2**22)
    return _ingest(str(t / "exam"), str(t.parent / "o"))


@case("NIfTI int64 with values beyond int32", BAD, "int64 values outside the int32 range")
def _(t):
    data = np.full((8, 9, 10), 2**40, np.int64)
    img = nib.Nifti1Image(data, np.eye(4), dtype=np.int64)
    (t / "exam").mkdir()
    nib.save(img, str(t / "exam" / "t1.nii.gz"))
    return _ingest(str(t / "exam"), str(t.parent / "o"))


@case("NIfTI int64 with small values (converted)", OK, None)
def _(t):
    img = nib.Nifti1Image(np.arange(720, dtype=np.int64).reshape(8, 9, 10), np.eye(4), dtype=np.int64)
    (t / "exam").mkdir()
    nib.save(img, str(t / "exam" / "t1.nii.gz"))
    return _ingest(str(t / "exam"), str(t.parent / "o"))


@case("NIfTI uint8 binary mask as the only image", OK, None)
def _(t):
    return _ingest(str(nifti(t / "exam" / "t1.nii.gz", (np.arange(720).reshape(8, 9, 10) % 2).astype(np.uint8))
                       .parent), str(t.parent / "o"))


@case("NIfTI complex voxels", BAD, "complex voxel values")
def _(t):
    return _ingest(str(nifti(t / "exam" / "t1.nii.gz", np.ones((8, 9, 10), np.complex64)).parent),
                   str(t.parent / "o"))


@case("NIfTI 5-D", BAD, "expected a 3-D image (or 4-D")
def _(t):
    return _ingest(str(nifti(t / "exam" / "t1.nii.gz", np.ones((4, 4, 4, 2, 2), np.int16)).parent),
                   str(t.parent / "o"))


@case("NIfTI 2-D", BAD, "expected a 3-D image (or 4-D")
def _(t):
    return _ingest(str(nifti(t / "exam" / "t1.nii.gz", np.ones((4, 4), np.int16)).parent), str(t.parent / "o"))


@case("NIfTI unknown datatype code", BAD, "unreadable NIfTI header")
def _(t):
    path = nifti(t / "exam" / "t1.nii")
    raw = bytearray(path.read_bytes())
    raw[70:72] = (1234).to_bytes(2, "little")
    path.write_bytes(bytes(raw))
    return _ingest(str(path.parent), str(t.parent / "o"))


@case("NIfTI vox_offset 2 GB", BAD, "vox_offset 2e+09 outside")
def _(t):
    return _ingest(str(nifti(t / "exam" / "t1.nii.gz", header={"vox_offset": 2e9}).parent), str(t.parent / "o"))


@case("NIfTI wrong sizeof_hdr", BAD, "no NIfTI-1 or NIfTI-2 header")
def _(t):
    path = nifti(t / "exam" / "t1.nii")
    path.write_bytes(b"\x00\x00\x00\x01" + path.read_bytes()[4:])
    return _ingest(str(path.parent), str(t.parent / "o"))


@case("sidecar SeriesNumber NaN", BAD, "SeriesNumber nan in the JSON sidecar is not a whole number")
def _(t):
    return _ingest(str(nifti(t / "exam" / "t1.nii.gz", sidecar={"SeriesNumber": float("nan")}).parent),
                   str(t.parent / "o"))


@case("sidecar SeriesNumber Infinity", BAD, "SeriesNumber inf in the JSON sidecar")
def _(t):
    return _ingest(str(nifti(t / "exam" / "t1.nii.gz", sidecar={"SeriesNumber": float("inf")}).parent),
                   str(t.parent / "o"))


@case("sidecar SeriesNumber 1e308", BAD, "SeriesNumber 1e+308 in the JSON sidecar")
def _(t):
    return _ingest(str(nifti(t / "exam" / "t1.nii.gz", sidecar={"SeriesNumber": 1e308}).parent),
                   str(t.parent / "o"))


@case("sidecar that is a list", BAD, "JSON sidecar is not an object")
def _(t):
    path = nifti(t / "exam" / "t1.nii.gz")
    (t / "exam" / "t1.json").write_text("[1, 2]")
    return _ingest(str(path.parent), str(t.parent / "o"))


@case("t2fs.nii.gz is a T2 fat-sat series", OK, None)
def _(t):
    nifti(t / "exam" / "t2fs.nii.gz")
    return _ingest(str(t / "exam"), str(t.parent / "o"))


# --- 3. command-line arguments and protocol files ----------------------------------------------------------------

@case("--role with an unknown role", USAGE, "--role '1=flair': expected SERIES=ROLE")
def _(t):
    return _ingest(str(exam(t)), str(t.parent / "o"), "--role", "1=flair")


@case("--role naming no series", USAGE, "--role 9: no such series")
def _(t):
    return _ingest(str(exam(t)), str(t.parent / "o"), "--role", "9=stir")


@case("--role by NIfTI file stem", OK, None)
def _(t):
    nifti(t / "exam" / "cor_a.nii.gz")
    return _ingest(str(t / "exam"), str(t.parent / "o"), "--role", "cor_a=stir")


@case("protocol thresholds not ascending", BAD, "'nerve.thickening_thresholds' must be strictly ascending")
def _(t):
    (t / "p.yaml").write_text("nerve:\n  thickening_thresholds: [1.8, 1.3, 2.4]\n")
    return ["protocol", "show", "--protocol", str(t / "p.yaml")]


@case("protocol misspelt key", BAD, "unknown protocol key 'muscle.edema_treshold'")
def _(t):
    (t / "p.yaml").write_text("muscle:\n  edema_treshold: [1.3, 1.7, 2.3]\n")
    return ["protocol", "show", "--protocol", str(t / "p.yaml")]


@case("protocol NaN threshold in analyze", BAD, "'muscle.fat_thresholds' must be a list of 3 finite numbers")
def _(t):
    (t / "p.yaml").write_text("muscle:\n  fat_thresholds: [0.1, .nan, 0.5]\n")
    return ["analyze", str(exam(t)), "-o", str(t.parent / "o"), "--protocol", str(t / "p.yaml"), "--no-pdf"]


@case("protocol reference 0", BAD, "'nerve.csa_reference_mm2.C5' must be a positive finite number")
def _(t):
    (t / "p.yaml").write_text("nerve:\n  csa_reference_mm2: {C5: 0}\n")
    return ["protocol", "show", "--protocol", str(t / "p.yaml")]


@case("protocol that is a list", BAD, "protocol file must hold a YAML mapping")
def _(t):
    (t / "p.yaml").write_text("- 1\n- 2\n")
    return ["protocol", "show", "--protocol", str(t / "p.yaml")]


@case("users add with an unparsable --db", BAD, "is not a database URL")
def _(t):
    return ["users", "add", "bob", "--role", "admin", "--password-stdin", "--db", "::::"]


@case("users add with a database in a missing folder", OUTPUT, "the folder of the database file does not exist")
def _(t):
    return ["users", "add", "bob", "--role", "admin", "--password-stdin", "--db", f"sqlite:///{t}/no/such/r.db"]


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
    elif entry.message is not None:
        assert any(line.startswith("warning: ") and entry.message in line for line in err.splitlines()), err
    after = snapshot(work)
    assert after == before or entry.code == OK and {k: v for k, v in after.items() if k in before} == before
    assert not [p for p in tmp_path.rglob(".*.tmp-*")], "temporary output left behind"
