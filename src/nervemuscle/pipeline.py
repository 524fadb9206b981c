"""Analyse one exam: ingest, pick the series each analysis needs, run muscle then nerve analysis, assemble
``findings.json`` and write every output atomically (temp folder beside the destination, then rename).

Series choice (recorded with its reason in findings ``sequences``):

* nerve (fluid-sensitive) series: STIR 3D, else T2 fat-sat 3D, else STIR 2D, else T2 fat-sat 2D, else
  Dixon water; within a class the finest voxels, then the highest series number;
* muscle: T1 (3D before 2D, finest voxels) else Dixon in-phase as the anatomical image; the fluid series
  above for edema; Dixon water + fat for the fat fraction when both are present.
"""
from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nervemuscle.anatomy import MUSCLES, SIDES, muscle_item, muscle_label
from nervemuscle.errors import BadInputError, NotAssessableError
from nervemuscle.findings import build_findings, plain, validate_findings, write_findings
from nervemuscle.outputs import atomic_output_dir, refuse_overlap
from nervemuscle.protocol import load_protocol
from nervemuscle.volume import Volume

#: Nerve series classes in order of preference: (role, 3D?, reason).
NERVE_PREFERENCE: tuple[tuple[str, bool, str], ...] = (
    ("stir", True, "3D STIR: isotropic fat-suppressed fluid-sensitive series, preferred for root tracing"),
    ("t2fs", True, "3D T2 fat-sat: no 3D STIR in the exam"),
    ("stir", False, "2D STIR: no 3D fluid-sensitive series in the exam"),
    ("t2fs", False, "2D T2 fat-sat: no STIR and no 3D fluid-sensitive series in the exam"),
    ("dixon_water", None, "Dixon water image as the fat-suppressed series: no STIR or T2 fat-sat in the exam"),
)
DIXON_ROLES = ("dixon_water", "dixon_fat", "dixon_in", "dixon_opp")
#: Quality gate for handing the muscle analysis's normal-muscle signal to the nerve analysis (where it must
#: agree with the paraspinal reference): at least this fraction of the graded muscles was segmented (a
#: segmentation that lost many muscles has often taken other tissue for the rest).
MUSCLE_REFERENCE_MIN_FOUND = 0.75

StepCallback = Callable[[str, dict[str, Any]], None]


@dataclass
class SeriesChoice:
    """The series picked for each analysis (``None`` when absent) and the findings ``sequences`` entries."""

    fluid: Any = None
    t1: Any = None
    dixon: dict[str, Any] = field(default_factory=dict)
    sequences: list[dict[str, Any]] = field(default_factory=list)
    not_assessable: list[dict[str, str]] = field(default_factory=list)


@dataclass
class ExamAnalysis:
    """Everything one exam's analysis produced, in memory (see :func:`write_outputs`)."""

    exam_id: str
    findings: dict[str, Any]
    protocol: dict[str, Any]
    choice: SeriesChoice
    muscle_labels: Volume | None
    nerve_labels: Volume | None
    exam_info: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)


def _is_3d(series) -> bool:
    return str(series.attributes.get("MRAcquisitionType", "")).upper() == "3D"


def _rank(series) -> tuple[float, int]:
    """Sort key within a class: finest voxels first, then the latest series number."""
    return (float(np.prod(series.volume.spacing)), -int(series.number or 0))


def _label(series) -> str:
    desc = f" {series.description}" if series.description else ""
    return f"{series.number}:{desc}".strip()


def select_series(exam) -> SeriesChoice:
    """Pick the nerve (fluid), T1 and Dixon series of ``exam``; record which and why.

    Parameters
    ----------
    exam : nervemuscle.io.Exam
        An ingested, classified exam.

    Returns
    -------
    SeriesChoice
    """
    choice = SeriesChoice()
    used: dict[str, dict[str, Any]] = {}

    def use(series, purpose: str, reason: str) -> None:
        entry = used.setdefault(series.uid, {"series": _label(series), "role": series.role, "used_for": [],
                                             "reason": reason})
        if purpose not in entry["used_for"]:
            entry["used_for"].append(purpose)
        if reason not in entry["reason"]:
            entry["reason"] += f"; {reason}"

    for role, three_d, reason in NERVE_PREFERENCE:
        candidates = [s for s in exam.by_role(role) if three_d is None or _is_3d(s) == three_d]
        if candidates:
            choice.fluid = sorted(candidates, key=_rank)[0]
            use(choice.fluid, "nerve", reason)
            break
    t1s = sorted(exam.by_role("t1"), key=lambda s: (not _is_3d(s), *_rank(s)))
    dixon = {role: sorted(exam.by_role(role), key=_rank)[0] for role in DIXON_ROLES if exam.by_role(role)}
    if t1s:
        choice.t1 = t1s[0]
        use(choice.t1, "muscle", ("3D" if _is_3d(t1s[0]) else "2D") + " T1: anatomical image for muscle "
            "segmentation and volume")
    elif "dixon_in" in dixon:
        choice.t1 = dixon["dixon_in"]
        use(choice.t1, "muscle", "no T1 in the exam: Dixon in-phase used as the anatomical image")
    if choice.t1 is not None and choice.fluid is not None:
        use(choice.fluid, "muscle", "fluid-sensitive series for muscle edema (T2 ratio)")
    if "dixon_water" in dixon and "dixon_fat" in dixon and choice.t1 is not None:
        choice.dixon = dixon
        for role, series in dixon.items():
            use(series, "muscle_fat", f"Dixon {role.split('_')[1]}: fat fraction")
    if choice.fluid is None:
        choice.not_assessable.append({"item": "nerves", "reason": "no fluid-sensitive series (STIR, T2 fat-sat or "
                                                                  "Dixon water) in the exam"})
    if choice.t1 is None:
        choice.not_assessable.append({"item": "muscles", "reason": "no T1 (or Dixon in-phase) series in the exam"})
    choice.sequences = sorted(used.values(), key=lambda e: e["series"])
    return choice


def _exam_id(exam_dir: Path) -> str:
    exam_dir = exam_dir.resolve()
    return exam_dir.parent.name if exam_dir.name == "dicom" else exam_dir.name


def _exam_info(exam) -> dict[str, Any]:
    patient = getattr(exam, "patient", None)
    info: dict[str, Any] = {}
    if isinstance(patient, dict):
        info["patient"] = patient.get("id") or patient.get("PatientID") or patient.get("name")
        info["study_date"] = patient.get("study_date") or patient.get("StudyDate")
    elif patient:
        info["patient"] = str(patient)
    notes = list(getattr(exam, "warnings", []) or [])
    if getattr(exam, "n_ignored_files", 0):
        notes.append(f"{exam.n_ignored_files} file(s) in the exam folder were not images and were ignored")
    for s in exam.series:
        notes += [f"series {_label(s)}: {w}" for w in s.warnings]
    info["notes"] = notes
    return {k: v for k, v in info.items() if v}


def _step(callback: StepCallback | None, name: str, **info: Any) -> None:
    if callback is not None:
        callback(name, info)


def _load_label_names(path: str | Path) -> dict[int, str]:
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
        return {int(k): str(v) for k, v in raw.items()}
    except FileNotFoundError:
        raise BadInputError("label names file not found", path) from None
    except (OSError, ValueError, AttributeError) as exc:
        raise BadInputError(f"label names must be a JSON object {{code: name}} ({exc.__class__.__name__})",
                            path) from None


def analyze(
    exam_dir: str | Path,
    *,
    protocol: dict[str, Any] | str | Path | None = None,
    landmarks: str | Path | None = None,
    labels: str | Path | None = None,
    label_names: str | Path | None = None,
    role_overrides: dict[int, str] | None = None,
    on_step: StepCallback | None = None,
) -> ExamAnalysis:
    """Analyse one exam in memory (nothing written).

    Parameters
    ----------
    exam_dir : path
        Folder of DICOM or NIfTI series (for phantom exams the ``<exam>/dicom`` folder).
    protocol : dict or path, optional
        Grading protocol (dict) or YAML overriding the default.
    landmarks : path, optional
        Root landmarks (``nervemuscle.nerve.load_landmarks``); roots are then measured along them.
    labels, label_names : path, optional
        External muscle label map (NIfTI) and its ``{code: name}`` JSON.
    role_overrides : dict, optional
        ``{series_number: role}`` replacing the automatic classification.
    on_step : callable, optional
        Called as ``on_step(step_name, info_dict)`` before each step (progress, logs).

    Returns
    -------
    ExamAnalysis

    Raises
    ------
    BadInputError
        Unreadable input.
    NotAssessableError
        Neither nerves nor muscles can be assessed (no suitable series).
    """
    exam_dir = Path(exam_dir)
    if not exam_dir.is_dir():
        raise BadInputError("exam folder not found", exam_dir)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    protocol = protocol if isinstance(protocol, dict) else load_protocol(protocol)

    from nervemuscle.io import load_exam
    from nervemuscle.muscle import analyze_muscles
    from nervemuscle.nerve import analyze_nerves, load_landmarks
    _step(on_step, "ingest", path=str(exam_dir))
    exam = load_exam(exam_dir, role_overrides=role_overrides)
    timings["ingest"] = time.perf_counter() - t0

    _step(on_step, "select", n_series=len(exam.series))
    choice = select_series(exam)
    if choice.fluid is None and choice.t1 is None:
        roles = ", ".join(sorted({s.role for s in exam.series})) or "none"
        raise NotAssessableError(f"no series suitable for nerve or muscle analysis (series roles: {roles})",
                                 exam_dir)
    not_assessable = list(choice.not_assessable)
    muscles: list[dict[str, Any]] = []
    nerves: list[dict[str, Any]] = []
    muscle_labels = nerve_labels = None
    muscle_reference = None
    nerve_reference: dict[str, Any] = {}
    muscle_details: dict[str, Any] = {}

    if choice.t1 is not None:
        _step(on_step, "muscle", t1=_label(choice.t1))
        t = time.perf_counter()
        external = Volume.load(labels) if labels else None
        names = _load_label_names(label_names) if label_names else None
        dixon = {role: s.volume for role, s in choice.dixon.items()} or None
        fluid_volume = choice.fluid.volume if choice.fluid is not None else None
        try:
            result = analyze_muscles(choice.t1.volume, fluid_volume, protocol, dixon=dixon, labels=external,
                                     label_names=names)
        except NotAssessableError as exc:
            not_assessable.append({"item": "muscles", "reason": exc.message})
        else:
            muscles = list(result.muscles)
            not_assessable += list(result.not_assessable)
            muscle_labels = result.label_map
            muscle_details = dict(result.reference)
            if result.assessed_fraction >= MUSCLE_REFERENCE_MIN_FOUND:
                muscle_reference = result.reference_signal
        timings["muscle"] = time.perf_counter() - t

    if choice.fluid is not None:
        _step(on_step, "nerve", fluid=_label(choice.fluid))
        t = time.perf_counter()
        marks = load_landmarks(landmarks) if landmarks else None
        t1_volume = choice.t1.volume if choice.t1 is not None else None
        try:
            result = analyze_nerves(choice.fluid.volume, protocol, t1=t1_volume, landmarks=marks,
                                    muscle_reference=muscle_reference)
        except NotAssessableError as exc:
            not_assessable.append({"item": "nerves", "reason": exc.message})
        else:
            nerves = list(result.roots)
            not_assessable += list(result.not_assessable)
            nerve_labels = result.label_map
            nerve_reference = dict(result.reference)
        timings["nerve"] = time.perf_counter() - t

    _step(on_step, "findings", n_nerves=len(nerves), n_muscles=len(muscles))
    findings = build_findings(exam_id=_exam_id(exam_dir), protocol=protocol, sequences=choice.sequences,
                              nerves=nerves, muscles=muscles, not_assessable=not_assessable)
    if nerve_reference:
        findings["nerve_reference"] = nerve_reference
    if muscle_details:
        findings["muscle_reference"] = plain(muscle_details)
    validate_findings(findings, exam_dir)
    timings["total_analysis"] = time.perf_counter() - t0
    return ExamAnalysis(exam_id=findings["exam_id"], findings=findings, protocol=protocol, choice=choice,
                        muscle_labels=muscle_labels, nerve_labels=nerve_labels, exam_info=_exam_info(exam),
                        timings=timings)


def write_outputs(analysis: ExamAnalysis, out_dir: str | Path, *, pdf: bool = True,
                  on_step: StepCallback | None = None) -> dict[str, Path]:
    """Write findings.json, report.html(+pdf), qc/*.png, series/<role>.nii.gz and labels/*.nii.gz atomically.

    An existing non-empty ``out_dir`` is replaced only when it holds an earlier output (``findings.json`` or a
    batch ``.done.json``).

    Returns the written paths by name (relative to their final place in ``out_dir``).
    """
    from nervemuscle.report.clinical_report import render_html, write_pdf
    from nervemuscle.report.figures import key_images
    from nervemuscle.report.qc import write_qc

    out_dir = Path(out_dir).absolute()
    choice = analysis.choice
    t1 = choice.t1.volume if choice.t1 is not None else None
    fluid = choice.fluid.volume if choice.fluid is not None else None
    written: dict[str, str] = {}
    t = time.perf_counter()
    with atomic_output_dir(out_dir, replaces=("findings.json", ".done.json")) as tmp:
        write_findings(analysis.findings, tmp / "findings.json")
        written["findings"] = "findings.json"
        _step(on_step, "volumes")
        (tmp / "series").mkdir()
        for series in [choice.fluid, choice.t1, *choice.dixon.values()]:
            if series is not None and not (tmp / "series" / f"{series.role}.nii.gz").exists():
                series.volume.save(tmp / "series" / f"{series.role}.nii.gz")
                written[f"series_{series.role}"] = f"series/{series.role}.nii.gz"
        (tmp / "labels").mkdir()
        for name, vol in (("muscles", analysis.muscle_labels), ("nerves", analysis.nerve_labels)):
            if vol is not None:
                vol.with_data(np.asarray(vol.data).astype(np.int16)).save(tmp / "labels" / f"{name}.nii.gz")
                written[f"labels_{name}"] = f"labels/{name}.nii.gz"
        _step(on_step, "qc")
        na_items = {n["item"] for n in analysis.findings["not_assessable"]}
        na_muscles = frozenset(muscle_label(m, s) for m in MUSCLES for s in SIDES if muscle_item(m, s) in na_items)
        counted = analysis.findings.get("nerve_reference", {}).get("vertebral_levels", {})
        # vertebra labels on the QC image only where the count named the roots (else it was not relied on)
        vertebrae = counted.get("bodies_z_mm") if counted.get("roots_named_by") == "vertebrae" else None
        qc = write_qc(tmp / "qc", t1=t1, muscle_labels=analysis.muscle_labels, fluid=fluid,
                      nerve_labels=analysis.nerve_labels, muscles_not_assessable=na_muscles,
                      vertebral_levels=vertebrae)
        written.update({f"qc_{p.stem}": f"qc/{p.name}" for p in qc})
        _step(on_step, "report")
        key = key_images(tmp / "key_images.png", analysis.findings, t1=t1, fluid=fluid,
                         muscle_labels=analysis.muscle_labels, nerve_labels=analysis.nerve_labels,
                         fluid_role=choice.fluid.role if choice.fluid is not None else "t2fs")
        if key is not None:
            written["key_images"] = "key_images.png"
        html = render_html(analysis.findings, analysis.protocol, key_images=key, qc_images=qc,
                           exam_info=analysis.exam_info)
        (tmp / "report.html").write_text(html)
        written["report_html"] = "report.html"
        if pdf:
            _step(on_step, "pdf")
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                printed = write_pdf(tmp / "report.html", tmp / "report.pdf")
            for w in caught:
                _step(on_step, "warning", message=str(w.message))
            if printed is not None:
                written["report_pdf"] = "report.pdf"
    analysis.timings["write"] = time.perf_counter() - t
    return {name: out_dir / rel for name, rel in written.items()}


def analyze_exam(exam_dir: str | Path, out_dir: str | Path, *, pdf: bool = True,
                 on_step: StepCallback | None = None, **options: Any) -> ExamAnalysis:
    """:func:`analyze` then :func:`write_outputs` into ``out_dir``; ``options`` as for :func:`analyze`.

    An ``out_dir`` that is, contains or lies inside an input (exam folder, protocol, landmarks, labels) is
    refused before the analysis (OutputError, :func:`nervemuscle.outputs.refuse_overlap`).
    """
    refuse_overlap(out_dir, [exam_dir, *(v for k, v in options.items()
                                         if k in ("protocol", "landmarks", "labels", "label_names")
                                         and isinstance(v, (str, Path)))])
    analysis = analyze(exam_dir, on_step=on_step, **options)
    write_outputs(analysis, out_dir, pdf=pdf, on_step=on_step)
    return analysis
