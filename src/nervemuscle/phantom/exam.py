"""Simulate a whole exam on disk: DICOM series, label maps and ``truth.json``, written atomically."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from nervemuscle.outputs import atomic_output_dir
from nervemuscle.phantom.acquisition import ACQUISITIONS, acquire
from nervemuscle.phantom.dicom_writer import VENDORS, deterministic_uid, series_description, write_series
from nervemuscle.phantom.subject import make_subject, subject_rng
from nervemuscle.phantom.truth import exam_truth

#: Series of each exam kind (the paper's protocol is "2d").
EXAM_KINDS = {
    "2d": ("t1_axial", "t2fs_axial"),
    "3d": ("t1_axial", "stir_3d"),
    "dixon": ("t1_axial", "t2fs_axial", "dixon_3d"),
}


def _safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text.replace(": ", "_"))


def simulate_exam(out_dir, phenotype: str, seed: int, *, kind: str = "2d", vendor: str | None = None,
                  snr: float | None = None, bias: float = 0.0, field_strength: float = 3.0,
                  exam_id: str | None = None, patient: dict | None = None, anatomy: str = "classic") -> Path:
    """Simulate one exam of a virtual subject and write it under ``out_dir/<exam_id>/``.

    Parameters
    ----------
    out_dir : path
    phenotype : {"normal", "als", "mmn"}
    seed : int
    kind : {"2d", "3d", "dixon"}
        "2d": axial T1 TSE + axial T2 fat-sat; "3d": axial T1 + 3-D isotropic STIR; "dixon": "2d" plus
        a 3-D Dixon TSE (water, fat, in-phase, opposed-phase series).
    vendor : {"siemens", "ge", "philips"}, optional
        Header flavour; drawn from the seed when omitted.
    snr, bias : float
        Noise (normal-muscle SNR; default per series) and bias-field amplitude.
    field_strength : {1.5, 3.0}
    exam_id : str, optional
        Folder name and PatientID; default ``<PHENOTYPE>-<seed>``.
    patient : dict, optional
        ``name``, ``sex`` (M/F), ``age`` for the DICOM header.
    anatomy : {"classic", "adult", "mixed"}
        Anatomy family (``mixed``: drawn from phenotype and seed); recorded as ``anatomy_family`` in
        ``truth.json``.

    Returns
    -------
    Path of the exam folder (``dicom/``, ``labels/``, ``truth.json``).
    """
    if kind not in EXAM_KINDS:
        raise ValueError(f"kind must be one of {sorted(EXAM_KINDS)}, got {kind!r}")
    subject = make_subject(phenotype, seed, field_strength=field_strength, anatomy=anatomy)
    if vendor is None:
        vendor = VENDORS[int(subject_rng(phenotype, seed).integers(len(VENDORS)) + seed) % len(VENDORS)]
    if vendor not in VENDORS:
        raise ValueError(f"vendor must be one of {VENDORS}, got {vendor!r}")
    exam_id = exam_id or subject.id
    patient = {"name": f"PHANTOM^{exam_id}", "id": exam_id, **(patient or {})}
    final = Path(out_dir) / exam_id
    with atomic_output_dir(final) as tmp:
        study_uid = deterministic_uid("study", exam_id, phenotype, seed, kind)
        frame_uid = deterministic_uid("frame", exam_id, phenotype, seed)
        acquisitions = list(EXAM_KINDS[kind])
        series = []
        number = 2
        for name in acquisitions:
            acq = ACQUISITIONS[name]
            image, labels = acquire(subject, acq, snr=snr, bias=bias)
            images = image if isinstance(image, dict) else {None: image}
            for image_role, vol in images.items():
                desc = series_description(vendor, acq.role, image_role)
                folder = f"{number}_{_safe_name(desc)}"
                series_uid = deterministic_uid("series", exam_id, phenotype, seed, kind, number)
                write_series(vol, tmp / "dicom" / folder, series_number=number, description=desc, vendor=vendor,
                             role=acq.role, acquisition=acq, patient=patient, study_uid=study_uid,
                             frame_uid=frame_uid, series_uid=series_uid, image_role=image_role,
                             field_strength=field_strength)
                label_rel = f"labels/{folder}_labels.nii.gz"
                (tmp / "labels").mkdir(exist_ok=True)
                labels.save(tmp / label_rel)
                series.append({
                    "series_number": number, "description": desc,
                    "role": acq.role if image_role is None else f"dixon_{image_role}",
                    "acquisition": name, "series_instance_uid": series_uid,
                    "shape": list(vol.shape), "spacing_mm": [round(float(v), 6) for v in vol.spacing],
                    "slice_thickness_mm": acq.thickness_mm,
                    "affine": np.round(vol.affine, 6).tolist(), "labels": label_rel,
                })
                number += 1
        truth = {"exam_id": exam_id, "kind": kind, "vendor": vendor, "snr": snr, "bias": bias,
                 **exam_truth(subject, acquisitions), "series": series}
        (tmp / "truth.json").write_text(json.dumps(truth, indent=1))
    return final
