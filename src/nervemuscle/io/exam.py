"""Load an exam folder (DICOM or NIfTI) into classified series, and write it out as NIfTI + ``series.json``."""
from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

import numpy as np

from nervemuscle.errors import BadInputError, OutputError, UsageError
from nervemuscle.io import dicom, nifti
from nervemuscle.io.classify import classify_series
from nervemuscle.io.series import ROLES, Exam, Series
from nervemuscle.outputs import atomic_output_dir


#: NIfTI file stems that are label maps or masks, not images.
LABEL_MAP_NAME = re.compile(r"(^|[_.-])(labels?|seg|dseg|mask|roi)([_.-]|$)", re.I)


def load_exam(path, role_overrides: dict[int, str] | None = None) -> Exam:
    """Read every MR series below ``path``.

    Parameters
    ----------
    path : str or Path
        A folder of DICOM files (any nesting and names), or of NIfTI files with optional JSON sidecars.
        When DICOM MR images are present, NIfTI files beside them are skipped (counted and warned), so a
        phantom exam folder with ``labels/`` ingests its DICOM series only; NIfTI files named like label
        maps (``*_labels``, ``*_seg``, ``*_mask``) are skipped too. Entries that are not regular files
        (FIFOs, sockets, devices, broken links) are skipped with a warning, never opened.
    role_overrides : dict, optional
        ``{series_number or NIfTI file stem: role}`` replacing the automatic classification (all sub-series of a
        split series).

    Returns
    -------
    Exam
        Series sorted by (number, uid).

    Raises
    ------
    BadInputError
        Missing/empty folder, no images, or an inconsistent series (names the file).
    UsageError
        A role override with an unknown role or naming no series of the exam.
    """
    root = Path(path)
    if not root.is_dir():
        raise BadInputError("exam folder not found", root)
    overrides = {str(k): v for k, v in (role_overrides or {}).items()}
    for key, role in overrides.items():
        if role not in ROLES:
            raise UsageError(f"--role {key}={role}: unknown role (expected one of {', '.join(ROLES)})")
    files, specials = dicom.scan_files(root)
    if not files:
        raise BadInputError("empty folder: no files found" + (f" ({len(specials)} entries that are not regular "
                                                             "files skipped)" if specials else ""), root)
    nifti_files = [f for f in files if nifti.is_nifti(f)]
    nifti_stems = {f.with_name(nifti.nifti_stem(f) + ".json") for f in nifti_files}
    other = [f for f in files if not nifti.is_nifti(f) and f not in nifti_stems]
    headers, n_ignored, warnings = dicom.read_dicom_files(other)
    if specials:  # FIFOs, sockets, devices, broken links: never opened (a FIFO would block for ever)
        warnings.append(f"skipped {len(specials)} entries that are not regular files (FIFO, socket, device or "
                        "broken link): " + ", ".join(p.name for p in specials[:5]))
        n_ignored += len(specials)
    if headers and nifti_files:  # a DICOM exam: NIfTI files beside it (label maps, exports) are not series
        warnings.append(f"DICOM exam: skipped {len(nifti_files)} NIfTI file(s)")
        n_ignored += len(nifti_files) + len([f for f in nifti_stems if f.exists()])
        nifti_files = []
    label_maps = [f for f in nifti_files if LABEL_MAP_NAME.search(nifti.nifti_stem(f))]
    if label_maps:
        warnings.append(f"skipped {len(label_maps)} NIfTI label map(s) by name: "
                        + ", ".join(f.name for f in label_maps[:5]))
        n_ignored += len(label_maps)
    series = [*_dicom_series(headers), *(_nifti_series(f) for f in nifti_files if f not in label_maps)]
    if not series:
        raise BadInputError(f"no DICOM MR images or NIfTI files found ({n_ignored} file(s) ignored)", root)
    keys = {s.uid: _override_keys(s) for s in series}
    unknown = set(overrides) - set().union(*keys.values())
    if unknown:
        names = sorted(set().union(*keys.values()), key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else 0, k))
        raise UsageError(f"--role {', '.join(sorted(unknown))}: no such series in {root} (series: "
                         f"{', '.join(names) or 'none'})")
    for s in series:
        key = next((k for k in sorted(keys[s.uid]) if k in overrides), None)
        if key is not None:
            s.role, s.role_reason = overrides[key], f"set by the user (automatic: {s.role}: {s.role_reason})"
    series.sort(key=lambda s: (s.number is None, s.number or 0, s.uid))
    patient = dicom.patient_of(headers[0][1]) if headers else {}
    patient_ids = {dicom.text_of(ds, "PatientID") for _, ds in headers}
    if len(patient_ids) > 1:
        warnings.append(f"files of {len(patient_ids)} different PatientIDs; the patient block shows the first")
    return Exam(path=root, series=series, n_ignored_files=n_ignored, warnings=warnings, patient=patient)


def _override_keys(series: Series) -> set[str]:
    """What ``--role`` may name a series by: its number, and for a NIfTI series also its file stem."""
    keys = {str(series.number)} if series.number is not None else set()
    return keys | ({series.uid} if series.volume.metadata.get("source") != "dicom" else set())


def _dicom_series(headers) -> list[Series]:
    groups = dicom.group_series(headers)
    sorted_groups = [(g, *dicom.sort_and_check(g)) for g in groups]
    out = []
    for group, frames, step, warnings in sorted_groups:
        try:
            volume = dicom.build_volume(frames, step)
            attributes = dicom.series_attributes(frames)
            ds = frames[0].header
            description = str(ds.get("SeriesDescription", "") or "")
            role, reason = classify_series(attributes, description)
            notes = [*warnings, *([f"{group.split_note} (sub-series of {ds.get('SeriesInstanceUID')})"]
                                  if group.split_note else [])]
            number = ds.get("SeriesNumber")
            number = int(number) if number not in (None, "") else None
        except dicom.MALFORMED_VALUE_ERRORS as exc:  # a damaged attribute (pydicom converts on first access)
            raise BadInputError(f"malformed DICOM attribute ({exc.__class__.__name__}: {exc})",
                                frames[0].path) from None
        volume.metadata.update(attributes=attributes, source="dicom")
        out.append(Series(uid=group.uid, number=number, description=description, volume=volume, role=role,
                          role_reason=reason, n_files=len({f.path for f in frames}), attributes=attributes,
                          warnings=notes))
    return out


def _nifti_series(path: Path) -> Series:
    volume, warnings = nifti.read_nifti(path)
    sidecar = nifti.read_sidecar(path)
    attributes = nifti.sidecar_attributes(sidecar)
    description = str(sidecar.get("SeriesDescription") or sidecar.get("ProtocolName") or nifti.nifti_stem(path))
    role, reason = classify_series(attributes, description)
    if role == "other" and description != nifti.nifti_stem(path):
        stem_role, stem_reason = classify_series(attributes, nifti.nifti_stem(path))
        if stem_role != "other":
            role, reason = stem_role, f"file name: {stem_reason}"
    number = sidecar.get("SeriesNumber")
    if number is not None and not (isinstance(number, (int, float)) and not isinstance(number, bool)
                                   and math.isfinite(number) and number == int(number) and 0 <= number < 2**31):
        raise BadInputError(f"SeriesNumber {number!r} in the JSON sidecar is not a whole number",
                            path.with_name(nifti.nifti_stem(path) + ".json"))
    volume.metadata.update(attributes=attributes)
    return Series(uid=nifti.nifti_stem(path), number=None if number is None else int(number),
                  description=description, volume=volume, role=role, role_reason=reason, n_files=1,
                  attributes=attributes, warnings=warnings)


def safe_name(text: str) -> str:
    """File-name-safe version of a description (letters, digits, ``-``, ``_``)."""
    return re.sub(r"[^A-Za-z0-9-]+", "_", text).strip("_")[:60] or "series"


#: Attribute names dropped from ``series.json`` by ``--deidentify`` (sidecars may carry them).
IDENTIFYING_ATTRIBUTES = frozenset({
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge", "PatientWeight", "PatientSize",
    "AccessionNumber", "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName",
    "ReferringPhysicianName", "PerformingPhysicianName", "OperatorsName", "StationName", "DeviceSerialNumber",
    "StudyInstanceUID", "SeriesInstanceUID", "StudyID", "AcquisitionDateTime", "StudyDate", "SeriesDate",
    "AcquisitionDate", "ContentDate", "StudyTime", "SeriesTime", "AcquisitionTime"})


def _pseudonym(uid: str) -> str:
    return hashlib.sha256(uid.encode()).hexdigest()[:16]


def series_record(series: Series, file_name: str, deidentify: bool) -> dict:
    """The ``series.json`` entry of one series."""
    vol = series.volume
    return {
        "file": file_name,
        "uid": _pseudonym(series.uid) if deidentify else series.uid,
        "number": series.number,
        "description": series.description,
        "role": series.role,
        "role_reason": series.role_reason,
        "shape": list(vol.shape),
        "spacing": [round(float(v), 6) for v in vol.spacing],
        "orientation": vol.orientation,
        "affine": np.asarray(vol.affine).round(6).tolist(),
        "dtype": str(vol.data.dtype),
        "n_files": series.n_files,
        "attributes": {k: v for k, v in series.attributes.items()
                       if not (deidentify and k in IDENTIFYING_ATTRIBUTES)},
        "warnings": series.warnings,
    }


def write_ingest(exam: Exam, out_dir, deidentify: bool = False) -> Path:
    """Write one NIfTI per series (``<number>_<description>.nii.gz``) and ``series.json``, atomically.

    Files are written into a temporary folder next to ``out_dir`` which then replaces ``out_dir``; an output
    folder that is, contains or lies inside the exam folder is refused, and an existing non-empty one is
    replaced only when it holds the ``series.json`` of an earlier ingest.
    With ``deidentify`` the patient block is dropped, UIDs are replaced by hashes and the exam path by its name.

    Returns
    -------
    Path
        ``out_dir``.

    Raises
    ------
    OutputError
        ``out_dir`` (or its parent) cannot be written, or overlaps the exam folder.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError("output exists and is not a folder", out)
    try:
        with atomic_output_dir(out, error="cannot write output", inputs=[exam.path], replaces=("series.json",)) as tmp:
            records, used = [], set()
            for index, series in enumerate(exam.series):
                number = series.number if series.number is not None else index + 1
                split = re.findall(r"\.((?:ori|te|type|dwi)\d+)", series.uid)
                name = f"{number}_{safe_name(series.description)}" + "".join(f"_{part}" for part in split)
                base, k = name, 2
                while name in used:
                    name, k = f"{base}_{k}", k + 1
                used.add(name)
                series.volume.save(tmp / f"{name}.nii.gz")
                records.append(series_record(series, f"{name}.nii.gz", deidentify))
            summary = {
                "exam": exam.path.name if deidentify else str(exam.path.resolve()),
                "n_series": len(records),
                "n_ignored_files": exam.n_ignored_files,
                "warnings": exam.warnings,
                "deidentified": deidentify,
                "patient": {} if deidentify else exam.patient,
                "series": records,
            }
            (tmp / "series.json").write_text(json.dumps(summary, indent=2))
    except OSError as exc:
        raise OutputError(f"cannot write output ({exc.strerror or exc})", out) from None
    return out

