"""``analyze_muscles``: segmentation, measurements and grades of the shoulder-girdle muscles of one exam.

References (also returned in :attr:`MuscleAnalysis.reference`):

* **T2 ratio.** Each muscle's mean fluid-series signal over its in-plane core is first corrected for
  fatty infiltration (the suppressed fat leaves water signal ``(1 - FF)`` plus the residual fat signal
  ``FF * S_fat``; we divide that out, so the ratio is a water-signal ratio). The reference normal
  muscle signal is the median of the corrected muscle signals that lie within
  :data:`NORMAL_SPREAD` of the lower quartile of all of them: normal muscle is the darkest muscle
  on a fluid-sensitive series, so the reference stays right as long as a quarter of the muscles
  are unaffected (a minority of edematous muscles cannot pull it up).
* **Atrophy.** See :func:`nervemuscle.muscle.grading.volume_losses`; the reference volume of each
  muscle is the volume the registered atlas (normal anatomy, scaled to the exam's body width, at each
  shoulder's height) puts inside this exam's field of view, calibrated per muscle for body width
  on normal calibration subjects (:mod:`nervemuscle.muscle.atlas`).
* **Fat fraction.** Dixon when given, else T1 signal (:mod:`nervemuscle.muscle.fat`), with the T1
  reference muscle signal = median T1 signal of the muscles without edema and the edema effect on
  T1-weighted signal divided out (two passes: fat fraction -> T2 ratios -> fat fraction -> T2 ratios).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nervemuscle.anatomy import MUSCLES, SIDES, muscle_item, muscle_label
from nervemuscle.errors import NotAssessableError
from nervemuscle.muscle import atlas, tissue
from nervemuscle.muscle.external import onnx_labels, relabel
from nervemuscle.muscle.fat import (ADIPOSE_FAT_FRACTION, NORMAL_MUSCLE_FAT_FRACTION, dixon_fat_fraction,
                                    t1_fat_fraction)
from nervemuscle.muscle.grading import assess_atrophy, grade_muscle
from nervemuscle.muscle.grid import resample_to, world_points
from nervemuscle.muscle.measure import (axial_csa_mm2, inplane_core, label_means, partial_volumes_ml,
                                        voxel_volume_mm3)
from nervemuscle.muscle.segment import (PERTURBATIONS, atlas_fit, fit_atlas, parcellate, registration_sample,
                                       volume_stability)
from nervemuscle.volume import Volume

#: Corrected muscle signals within this factor of the lower quartile count as normal (T2 reference).
NORMAL_SPREAD = 1.15
#: A muscle with fewer voxels than this on the analysis grid is not assessable.
MIN_VOXELS = 200
#: ... or with less volume than this fraction of its reference volume (mostly outside the field of view).
MIN_REFERENCE_FRACTION = 0.15
#: Quality gate: a muscle whose segmented volume varies by more than this coefficient of variation when
#: the atlas registration is perturbed within its uncertainty is not assessable (its extent is decided
#: by the atlas, not by the image; see :func:`nervemuscle.muscle.segment.volume_stability`).
MAX_VOLUME_CV = 0.25
#: Atlas fit (:func:`nervemuscle.muscle.segment.atlas_fit`) from which the exam's anatomy counts as the
#: atlas's own: its segmented volumes are then taken at face value for grading. Below it (another anatomy:
#: segmentation errors of 20-60% seen on the external check exams) each volume carries its segmentation
#: CV as uncertainty, and atrophy is graded only where the loss exceeds it. Exams of the atlas's family
#: fit at 0.86-0.91, the external exams at 0.39-0.42; any value between gives the same decisions there.
MIN_ATLAS_FIT = 0.7
#: Floor of the fat-fraction uncertainty (SD) of the T1 estimate: noise, partial volume and the spread of
#: normal muscles' T1 signal around the exam's reference.
MIN_FAT_FRACTION_SD = 0.02


@dataclass
class MuscleAnalysis:
    """Result of :func:`analyze_muscles` (``muscles`` items follow findings.schema.json)."""

    muscles: list[dict[str, Any]]
    not_assessable: list[dict[str, str]]
    label_map: Volume
    reference_signal: float | None
    reference: dict[str, Any] = field(default_factory=dict)
    #: Fraction of the graded muscles that were assessable (segmented and passing the quality gate).
    assessed_fraction: float = 0.0


def _codes() -> list[tuple[str, str, int]]:
    return [(m, s, muscle_label(m, s)) for m in MUSCLES for s in SIDES]


def _base_image(t1: Volume | None, fluid: Volume | None, dixon: dict[str, Volume] | None) -> tuple[Volume, str]:
    if t1 is not None:
        return t1, "t1"
    for role in ("dixon_in", "dixon_fat"):
        if dixon and role in dixon:
            return dixon[role], role
    raise NotAssessableError("muscle analysis needs a T1-weighted or Dixon series")


def t2_reference(signals: dict[int, float | None]) -> float | None:
    """Normal-muscle signal from per-muscle (fat-corrected) fluid signals (see module notes)."""
    values = np.array([v for v in signals.values() if v is not None and v > 0])
    if values.size == 0:
        return None
    low = np.percentile(values, 25)
    return float(np.median(values[values <= low * NORMAL_SPREAD]))


def _echo_time_ms(vol: Volume) -> float | None:
    """Echo time in ms from the volume's metadata: phantom ``te_ms``, ``nervemuscle.io`` attributes
    (ms), or a top-level ``EchoTime`` (BIDS sidecars give seconds, DICOM milliseconds)."""
    meta = vol.metadata
    if meta.get("te_ms"):
        return float(meta["te_ms"])
    attributes = meta.get("attributes")
    if isinstance(attributes, dict) and attributes.get("EchoTime"):
        return float(attributes["EchoTime"])
    te = meta.get("EchoTime")
    if te:
        te = float(te)
        return te * 1000.0 if te < 1.0 else te
    return None


def _signals(label_map: Volume, base: Volume, fluid: Volume | None, tissues: tissue.Tissues, codes: list[int],
             assessable: dict[int, bool], protocol: dict, *, dixon: dict[str, Volume] | None,
             te_ratio: float | None, adipose_fluid_signal: float | None) -> dict[str, Any]:
    """Fat fractions, T2 ratios and references of every muscle (two passes, see module notes)."""
    lab = label_map.data
    core = inplane_core(lab)
    t1_means = label_means(base.data, lab, codes, core=core)
    fluid_means = None
    if fluid is not None:
        fluid_means = label_means(fluid.data, resample_to(label_map, fluid, order=0).data, codes)
    if dixon is not None:
        grid = dixon["dixon_water"]
        adipose = resample_to(base.with_data(tissues.adipose.astype(np.uint8)), grid, order=0).data > 0
        ff = dixon_fat_fraction(grid.data, resample_to(dixon["dixon_fat"], grid, order=1).data,
                                resample_to(label_map, grid, order=0).data, codes, adipose=adipose)
    ratios: dict[int, float | None] = {c: None for c in codes}
    corrected: dict[int, float | None] = {c: None for c in codes}
    reference_signal, fat_fluid, t1_muscle = None, None, None
    for _ in range(2):
        normal = [t1_means[c] for c in codes if assessable[c] and t1_means[c] is not None
                  and (ratios[c] is None or ratios[c] < protocol["muscle"]["edema_thresholds"][0])]
        t1_muscle = float(np.median(normal)) if normal else tissues.muscle_signal
        if dixon is None:
            factors = {c: ratios[c] ** te_ratio for c in codes if ratios[c] and te_ratio}
            ff = t1_fat_fraction(t1_means, muscle_signal=t1_muscle, adipose_signal=tissues.adipose_signal,
                                 water_factors=factors)
        if fluid_means is None:
            break
        fat_fluid = (adipose_fluid_signal - (1 - ADIPOSE_FAT_FRACTION) * (reference_signal or 0.0)) \
            / ADIPOSE_FAT_FRACTION
        for c in codes:
            f = ff[c] or 0.0
            ok = fluid_means[c] is not None and assessable[c] and f < 0.9
            corrected[c] = (fluid_means[c] - f * fat_fluid) / (1.0 - f) if ok else None
        reference_signal = t2_reference(corrected)
        ratios = {c: (corrected[c] / reference_signal if reference_signal and corrected[c] is not None else None)
                  for c in codes}
    return {"t1_means": t1_means, "fluid_means": fluid_means or {}, "ff": ff, "ratios": ratios,
            "reference_signal": reference_signal, "fat_fluid": fat_fluid, "t1_muscle": t1_muscle,
            "adipose_signal": tissues.adipose_signal}


def inplane_edge_labels(label_map: Volume) -> set[int]:
    """Labels that reach the first or last row or column of the image (cut by the in-plane field of view)."""
    d = label_map.data
    edges = np.concatenate([d[0].ravel(), d[-1].ravel(), d[:, 0].ravel(), d[:, -1].ravel()])
    return {int(c) for c in np.unique(edges) if c}


def fat_fraction_sd(ff: dict[int, float | None], ratios: dict[int, float | None], assessable: dict[int, bool],
                    protocol: dict) -> float:
    """Uncertainty (SD) of a T1 fat-fraction estimate: the robust spread (1.4826 x MAD) of the estimates of
    the exam's muscles without edema, at least :data:`MIN_FAT_FRACTION_SD`.

    Those muscles are mostly normal, so their spread is what the estimate varies by for the same tissue.
    """
    edema = protocol["muscle"]["edema_thresholds"][0]
    values = np.array([f for c, f in ff.items() if f is not None and assessable[c]
                       and (ratios.get(c) is None or ratios[c] < edema)])
    if values.size < 3:
        return MIN_FAT_FRACTION_SD
    return float(max(MIN_FAT_FRACTION_SD, 1.4826 * np.median(np.abs(values - np.median(values)))))


def remove_foreign_tissue(label_map: Volume, t1: Volume, fluid_on_t1: np.ndarray, found: dict[str, Any]) -> Volume:
    """Drop normal-looking muscle voxels from the territory of an edematous or fatty muscle.

    An atrophic muscle leaves room in its atlas territory that neighbouring normal muscle can occupy.
    Where the muscle itself is abnormal, that neighbour tissue can be told apart: a voxel whose T1
    signal is that of pure normal muscle (between 0.9 x and normal muscle + 10% of the muscle-to-fat
    difference) is removed when the muscle is edematous (mean raw fluid signal >= 1.25 x the reference)
    and the voxel's fluid signal is below halfway to the muscle's mean, or when the muscle is fatty
    (fat fraction >= 0.2) and the voxel's T1 signal is below halfway to the muscle's mean.
    """
    lab = label_map.data
    m, a, ref = found["t1_muscle"], found["adipose_signal"], found["reference_signal"]
    n = int(lab.max()) + 1
    fluid_cut = np.full(n, -np.inf)
    t1_cut = np.full(n, -np.inf)
    for c, mean in found["fluid_means"].items():
        if mean is not None and c < n and mean >= 1.25 * ref:
            fluid_cut[c] = 0.5 * (ref + mean)
    for c, f in found["ff"].items():
        if f is not None and c < n and f >= 0.2 and found["t1_means"][c] is not None:
            t1_cut[c] = 0.5 * (m + found["t1_means"][c])
    data = t1.data
    normal_t1 = (data >= 0.9 * m) & (data <= m + 0.1 * (a - m))
    foreign = normal_t1 & (lab > 0) & ((fluid_on_t1 < fluid_cut[lab]) | (data < t1_cut[lab]))
    return label_map.with_data(np.where(foreign, 0, lab).astype(lab.dtype))


def analyze_muscles(t1: Volume | None, fluid: Volume | None, protocol: dict, *,
                    dixon: dict[str, Volume] | None = None, labels: Volume | None = None,
                    label_names: dict[int, str] | None = None, onnx_model: str | None = None) -> MuscleAnalysis:
    """Segment, measure and grade the 16 shoulder-girdle muscles of one exam.

    Parameters
    ----------
    t1 : Volume or None
        T1-weighted series: the analysis grid (else Dixon in-phase).
    fluid : Volume or None
        Fluid-sensitive series (T2 FS or STIR) for the T2 ratios; ``None`` leaves them not assessable.
    protocol : dict
        The grading protocol (:func:`nervemuscle.protocol.load_protocol`).
    dixon : dict, optional
        ``dixon_water``, ``dixon_fat`` (``dixon_in``, ``dixon_opp``) volumes: fat fraction from Dixon.
    labels, label_names : Volume, dict, optional
        A user label map (any grid) and its code -> name mapping, used instead of the built-in
        segmentation.
    onnx_model : str, optional
        Path of an ONNX segmentation model (see :mod:`nervemuscle.muscle.external`).

    Returns
    -------
    MuscleAnalysis
    """
    base, base_role = _base_image(t1, fluid, dixon)
    tissues = tissue.classify(base)
    sample = registration_sample(base, tissues)
    transform, fitted_atlas = fit_atlas(base, tissues, sample=sample)
    if labels is not None:
        label_map, source = relabel(labels, label_names, base), "user label map"
    elif onnx_model is not None:
        images = [base] + ([fluid] if fluid is not None else [])
        label_map, source = onnx_labels(onnx_model, images, label_names), f"ONNX model {onnx_model}"
    else:
        label_map, source = parcellate(base, tissues, transform, fitted_atlas), "atlas parcellation of T1 muscle tissue"
    codes = [c for _, _, c in _codes()]
    stability: dict[int, float | None] = {c: None for c in codes}
    fit = None
    if labels is None and onnx_model is None:
        stability = volume_stability(base, tissues, transform, fitted_atlas, label_map, codes)
        fit = atlas_fit(sample, transform, fitted_atlas)
    uncertain_anatomy = fit is not None and fit < MIN_ATLAS_FIT
    ref_volumes = atlas.expected_volumes_ml(fitted_atlas, world_points(base), voxel_volume_mm3(base) / 1000.0,
                                            transform)
    te_ratio = None
    if fluid is not None and _echo_time_ms(base) and _echo_time_ms(fluid):
        te_ratio = _echo_time_ms(base) / _echo_time_ms(fluid)
    use_dixon = bool(dixon and "dixon_water" in dixon and "dixon_fat" in dixon)
    adipose_fluid_signal = None
    if fluid is not None:
        adipose_fluid = resample_to(base.with_data(tissues.adipose.astype(np.uint8)), fluid, order=0).data > 0
        adipose_fluid_signal = float(np.median(fluid.data[adipose_fluid])) if adipose_fluid.any() else 0.0

    def measure(label_map: Volume) -> dict[str, Any]:
        volumes = partial_volumes_ml(label_map, base.data, codes, label_means(base.data, label_map.data, codes),
                                     tissues.adipose_signal)
        min_ml = MIN_VOXELS * voxel_volume_mm3(label_map) / 1000.0
        assessable = {c: volumes[c] >= min_ml and volumes[c] >= MIN_REFERENCE_FRACTION * ref_volumes[(m, s)]
                      and (stability[c] or 0.0) <= MAX_VOLUME_CV for m, s, c in _codes()}
        signals = _signals(label_map, base, fluid, tissues, codes, assessable, protocol,
                           dixon=dixon if use_dixon else None, te_ratio=te_ratio,
                           adipose_fluid_signal=adipose_fluid_signal)
        return {"volumes": volumes, "assessable": assessable, **signals}

    found = measure(label_map)
    if labels is None and onnx_model is None and fluid is not None and found["reference_signal"]:
        label_map = remove_foreign_tissue(label_map, base, resample_to(fluid, base, order=1).data, found)
        found = measure(label_map)
    volumes, assessable, ratios, ff = found["volumes"], found["assessable"], found["ratios"], found["ff"]
    reference_signal = found["reference_signal"]
    csa = axial_csa_mm2(label_map, codes)
    if use_dixon:
        fat_method = "dixon: mean fat signal / pure-fat signal of subcutaneous adipose tissue (FF 0.95)"
    else:
        fat_method = (f"{base_role} signal: linear water/fat mixture calibrated on normal muscle "
                      f"(FF {NORMAL_MUSCLE_FAT_FRACTION}) and subcutaneous fat (FF {ADIPOSE_FAT_FRACTION})"
                      + (", edema effect divided out" if te_ratio else ""))

    named = {(m, s): (volumes[c] if assessable[c] else None) for m, s, c in _codes()}
    edge_labels = inplane_edge_labels(label_map)
    atrophy = assess_atrophy(named, {(m, s): stability[c] for m, s, c in _codes()},
                             protocol["muscle"]["atrophy_thresholds"],
                             expected_ml=None if uncertain_anatomy else ref_volumes,
                             cut={(m, s) for m, s, c in _codes() if c in edge_labels})
    ff_sd = fat_fraction_sd(ff, found["ratios"], assessable, protocol) if not use_dixon else None
    muscles, not_assessable = [], []
    for m, s, c in _codes():
        label = muscle_item(m, s)
        if not assessable[c]:
            if volumes[c] == 0:
                why = "not found in the field of view"
            elif (stability[c] or 0.0) > MAX_VOLUME_CV:
                why = (f"segmentation not reliable: its volume varies by {100 * stability[c]:.0f}% (CV) when the "
                       f"atlas registration is perturbed within its uncertainty (limit {100 * MAX_VOLUME_CV:.0f}%)")
            else:
                why = f"only {volumes[c]:.1f} ml segmented (outside the field of view or failed segmentation)"
            not_assessable.append({"item": label, "reason": why})
            continue
        a = atrophy[(m, s)]
        item = {"name": m, "side": s, "volume_ml": round(volumes[c], 2),
                "csa_mm2": None if csa[c] is None else round(csa[c], 1),
                "t2_ratio": None if ratios[c] is None else round(float(ratios[c]), 3),
                "fat_fraction": None if ff[c] is None else round(ff[c], 3), "fat_method": fat_method,
                "fat_fraction_sd": None if ff_sd is None or ff[c] is None else round(ff_sd, 3),
                "volume_loss": None if a.loss is None else round(a.loss, 3),
                "volume_expected_ml": round(ref_volumes[(m, s)], 1) if ref_volumes.get((m, s)) else None,
                "asymmetry_index": None if a.asymmetry_index is None else round(a.asymmetry_index, 3),
                "atrophy_reference": a.reference, "atrophy_grade": a.grade,
                "segmentation_confidence": None if stability[c] is None else round(max(0.0, 1.0 - stability[c]), 3)}
        graded = grade_muscle(item, protocol["muscle"])
        if a.reason:
            not_assessable.append({"item": f"{label} atrophy", "reason": a.reason})
        if graded["fat_grade"] is None and item["fat_fraction"] is not None:
            not_assessable.append({"item": f"{label} fat", "reason": (
                f"fat fraction {item['fat_fraction']:.2f} +- {item['fat_fraction_sd'] or 0:.2f} straddles the "
                f"first fat-grade threshold {protocol['muscle']['fat_thresholds'][0]}")})
        muscles.append(graded)

    reference = {
        "segmentation": source,
        "atlas_transform": {k: round(v, 3) for k, v in transform.__dict__.items()},
        "atlas_fat_mm": fitted_atlas.fat_mm,
        "t2_reference": "median fat-corrected fluid signal of the muscles within "
                        f"{NORMAL_SPREAD} x the lower quartile of all muscles (water signal of normal muscle)",
        "t2_reference_signal": reference_signal,
        "fluid_fat_signal": found["fat_fluid"],
        "t1_muscle_signal": found["t1_muscle"],
        "t1_adipose_signal": tissues.adipose_signal,
        "atrophy_reference": "by atlas fit (nervemuscle.muscle.grading.assess_atrophy): anatomy like the atlas's "
                             "-> geometric mean of the expected volume (registered atlas calibrated for body "
                             "width) and the contralateral muscle; otherwise the contralateral muscle only "
                             "(asymmetry index), graded only when the loss minus its segmentation CV agrees, "
                             "and bilateral symmetric atrophy is not detected",
        "quality_gate": f"volume CV <= {MAX_VOLUME_CV} over {len(PERTURBATIONS)} perturbed atlas registrations",
        "atlas_fit": None if fit is None else round(fit, 3),
        "atlas_fit_note": None if fit is None else (
            f"below {MIN_ATLAS_FIT}: anatomy unlike the atlas's; atrophy against the contralateral muscle only, "
            "within the segmentation CV" if uncertain_anatomy else
            f"at least {MIN_ATLAS_FIT}: anatomy like the atlas's; atrophy against the expected volume and the "
            "contralateral muscle"),
        "reference_volumes_ml": {f"{m}_{s}": round(v, 1) for (m, s), v in ref_volumes.items()},
        "csa_level": "axial plane through the muscle centroid",
    }
    n_missing = sum(1 for m, s, c in _codes() if not assessable[c])
    return MuscleAnalysis(muscles, not_assessable, label_map, reference_signal, reference,
                          assessed_fraction=len(muscles) / max(len(muscles) + n_missing, 1))
