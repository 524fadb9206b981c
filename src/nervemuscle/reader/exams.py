"""Finding exams on disk for import (pure file-system scanning, no database).

An exam is a folder holding NIfTI series in one of these layouts (see docs/reader.md):

* ``series/*.nii[.gz]`` plus ``series.json`` (in the exam folder or in ``series/``) mapping file name -> role:
  ``{"a.nii.gz": "t1"}``, ``[{"file": "a.nii.gz", "role": "t1"}]`` or the ``nervemuscle ingest`` output
  (``{"series": [{"file": ..., "role": ...}, ...], ...}``), so ``nervemuscle ingest DICOM -o <exam>/series``
  prepares a DICOM exam (e.g. a phantom exam, whose ``labels/`` then already sit in place);
* files named by role (``t1.nii.gz``, ``t2fs.nii.gz``, ``stir.nii.gz``, ...) in ``series/`` or the exam folder;

optionally ``labels/*.nii[.gz]`` (segmentation label maps, ``nervemuscle.anatomy`` codes),
``findings.json`` (automated grades) and ``clinical.json`` (clinical data, hidden from readers).
A cohort folder is a folder of exam folders, optionally with ``clinical.csv`` (column ``id`` = exam id).
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib

from nervemuscle.errors import BadInputError

#: Series roles the viewer knows, in display preference (the first two present are shown side by side).
IMAGE_ROLES = ("t1", "t2fs", "stir", "dixon_water", "dixon_fat", "dixon_in", "dixon_opp", "dwi", "other")
NIFTI_SUFFIXES = (".nii.gz", ".nii")


@dataclass(frozen=True)
class SeriesFile:
    role: str
    kind: str  # "image" or "labels"
    path: Path
    shape: tuple[int, ...]


@dataclass
class ExamFolder:
    exam_id: str
    folder: Path
    series: list[SeriesFile]
    findings: dict[str, Any] | None = None
    clinical: dict[str, Any] = field(default_factory=dict)


def resolve_inside(root: str | Path, relative: str | Path) -> Path:
    """``root / relative`` resolved (symlinks included); refuses anything outside ``root``."""
    base = Path(root).resolve()
    target = (base / relative).resolve()
    if not target.is_relative_to(base):
        raise BadInputError("path is outside the data root", relative)
    return target


def _is_nifti(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(NIFTI_SUFFIXES)


def _stem(path: Path) -> str:
    name = path.name.lower()
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _shape(path: Path) -> tuple[int, ...]:
    try:
        shape = tuple(int(n) for n in nib.load(str(path)).shape)
    except Exception as exc:  # nibabel raises many types for corrupt headers
        raise BadInputError(f"unreadable NIfTI ({exc.__class__.__name__})", path) from None
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise BadInputError(f"expected a 3-D image, got shape {shape}", path)
    return shape


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BadInputError(f"unreadable JSON ({exc.__class__.__name__})", path) from None


def _roles_from_sidecar(folder: Path, series_dir: Path) -> dict[str, str] | None:
    sidecar = next((d / "series.json" for d in (series_dir, folder) if (d / "series.json").exists()), None)
    if sidecar is None:
        return None
    spec = _read_json(sidecar)
    if isinstance(spec, dict) and isinstance(spec.get("series"), list):  # nervemuscle ingest output
        spec = spec["series"]
    if isinstance(spec, list):
        spec = {entry.get("file"): entry.get("role") for entry in spec if isinstance(entry, dict)}
    if not isinstance(spec, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in spec.items()):
        raise BadInputError('expected {"file": "role"} or [{"file": ..., "role": ...}]', sidecar)
    return {Path(k).name: v.lower() for k, v in spec.items()}


def _role_from_name(path: Path) -> str:
    stem = _stem(path)
    for role in IMAGE_ROLES:
        if stem == role or stem.startswith(role + "_") or stem.endswith("_" + role):
            return role
    return "other"


def is_exam_folder(folder: Path) -> bool:
    """True when ``folder`` holds NIfTI series directly or in ``series/``."""
    return any(_is_nifti(p) for p in folder.glob("*")) or any(_is_nifti(p) for p in (folder / "series").glob("*"))


def scan_exam(folder: str | Path, clinical: dict[str, Any] | None = None) -> ExamFolder:
    """Read one exam folder's layout (headers only); raises :class:`BadInputError` naming the file."""
    folder = Path(folder)
    series_dir = folder / "series" if (folder / "series").is_dir() else folder
    roles = _roles_from_sidecar(folder, series_dir)
    series = []
    for path in sorted(p for p in series_dir.iterdir() if _is_nifti(p)):
        role = roles.get(path.name) if roles is not None else _role_from_name(path)
        if role is None:
            continue  # a file series.json does not list is not part of the exam
        series.append(SeriesFile(role, "image", path, _shape(path)))
    if not series:
        raise BadInputError("no NIfTI series found (expected series/*.nii.gz or t1/t2fs/stir.nii.gz)", folder)
    labels_dir = folder / "labels"
    if labels_dir.is_dir():
        series += [SeriesFile(_stem(p), "labels", p, _shape(p)) for p in sorted(labels_dir.iterdir()) if _is_nifti(p)]
    findings = _read_json(folder / "findings.json") if (folder / "findings.json").exists() else None
    exam_clinical = dict(clinical or {})
    if (folder / "clinical.json").exists():
        exam_clinical.update(_read_json(folder / "clinical.json"))
    exam_id = str(findings.get("exam_id")) if isinstance(findings, dict) and findings.get("exam_id") else folder.name
    return ExamFolder(exam_id, folder, series, findings, exam_clinical)


def _cohort_clinical(folder: Path) -> dict[str, dict[str, Any]]:
    table = folder / "clinical.csv"
    if not table.exists():
        return {}
    with table.open(newline="") as fh:
        return {row["id"]: row for row in csv.DictReader(fh) if row.get("id")}


def discover_exams(folder: str | Path) -> list[ExamFolder]:
    """One exam (``folder`` is an exam) or every exam sub-folder of a cohort folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BadInputError("not a folder", folder)
    if is_exam_folder(folder):
        return [scan_exam(folder)]
    clinical = _cohort_clinical(folder)
    exams = [scan_exam(sub, clinical.get(sub.name)) for sub in sorted(folder.iterdir())
             if sub.is_dir() and is_exam_folder(sub)]
    if not exams:
        if _holds_dicom(folder):
            raise BadInputError("DICOM files but no NIfTI series: convert each exam first with `nervemuscle ingest "
                                "<exam>/dicom -o <exam>/series`, or import the output of `nervemuscle analyze`",
                                folder)
        raise BadInputError("no exam folders found", folder)
    return exams


def _holds_dicom(folder: Path, max_files: int = 500) -> bool:
    """Whether one of the first ``max_files`` files below ``folder`` is a DICOM file."""
    from nervemuscle.io.dicom import has_dicm_magic, list_files

    return any(has_dicm_magic(path) for path in list_files(folder)[:max_files])
