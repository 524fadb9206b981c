"""Nerve analysis: find roots C5-T1 on both sides, measure CSA and T2 signal, grade.

Steps (:func:`analyze_nerves`): spinal canal centre line on the fluid image; a RAS-aligned 1.5 mm working
grid around the canal; multi-scale Hessian tubularity there; root exits beside the canal on a regular ladder
of levels one vertebral height apart, named by the foramen each rung belongs to when the vertebrae are counted
(:mod:`nervemuscle.nerve.vertebrae`), else C5..T1 from the top (a level missed on one side is searched again at its
predicted height; an exit far off the usual foramen depth is searched again at that depth); each root
tracked from its exit inferolaterally; then CSA and signal measured on planes perpendicular to the
centerline over the extraforaminal segment ``protocol.nerve.measure_from_foramen_mm``, only where no other
root is close enough to blur into the plane (C8 and T1 converge into the lower trunk); grades.

On thick 2D slices the radius comes from the well-resolved in-plane direction and the root is taken as
round (:mod:`nervemuscle.nerve.csa`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

from nervemuscle.anatomy import ROOTS, SIDES, root_label
from nervemuscle.errors import NotAssessableError
from nervemuscle.nerve.csa import centerline_tangents, cross_sections, psf_covariance
from nervemuscle.nerve.grading import asymmetry, grade_root, normal_nerve_ratio, root_pattern
from nervemuscle.nerve.hessian import tubularity
from nervemuscle.nerve.landmarks import (align_exit_depths, canal_centre, detect_canal, find_exit_near,
                                         find_exit_peaks, level_heights, levels_beyond, load_landmarks,
                                         name_levels, side_sign, validate_landmarks)
from nervemuscle.nerve.reference import choose_reference, reference_candidates
from nervemuscle.nerve.rasterize import rasterize_tubes
from nervemuscle.nerve.sampling import resample_to_ras_grid, world_box
from nervemuscle.nerve.tracking import arc_length, minimal_path, resample_polyline, track
from nervemuscle.nerve.vertebrae import (count_vertebrae, exits_match_foramina, ladder_at_foramina,
                                         root_foramen_heights)
from nervemuscle.volume import Volume

__all__ = ["NerveAnalysis", "analyze_nerves", "load_landmarks"]

#: Working-grid step (mm) and tubular-filter scales (mm) used for detection.
WORK_STEP_MM = 1.5
SIGMAS_MM = (1.0, 1.6, 2.4)
#: Lateral distance (mm) from the canal axis at which a root is taken to leave its foramen.
FORAMEN_LATERAL_MM = 15.0
#: Region around the canal (mm, relative to the canal centre) searched for roots.
ROI_LATERAL_MM = 75.0
ROI_AP_MM = (-20.0, 50.0)
#: Tracking limits: a root's direction keeps at least this lateral component and at most this posterior one.
MIN_LATERAL_COMPONENT = 0.3
MAX_POSTERIOR_COMPONENT = 0.5
#: Lateral reach (mm from the exit) below which step-wise tracking is replaced by a minimal path.
PATH_LATERAL_MM = 35.0
#: A root exit must be at least this bright relative to muscle (normal roots are ~1.2-1.6x on T2 FS / STIR).
ROOT_MIN_SIGNAL = 1.1
#: Quality gates of the per-plane measurements over the extraforaminal segment: cross-sections closer to
#: another root than twice ROOT_RADIUS_MM plus NEIGHBOUR_PSF_WIDTHS widths of the PSF are not measured; at
#: least MIN_PLANES cross-sections (1 mm apart) must be measured; largest CSA interquartile range relative to
#: the median; the mean CSA is trimmed by TRIM_PERCENT at both ends (planes where a neighbour slips into the
#: half-maximum region).
ROOT_RADIUS_MM = 2.5
NEIGHBOUR_PSF_WIDTHS = 1.5
MIN_PLANES = 5
MAX_CSA_SPREAD = 0.6
#: Planes whose CSA is more than this factor above or below the root's lower-quartile CSA are left out.
MAX_PLANE_FACTOR = 3.0
TRIM_PERCENT = 15
#: Planes whose blurred peak keeps at least this fraction of the contrast give the root signal when there
#: are 5 or more of them (thin roots lying between thick slices need large, error-prone corrections).
MILD_PEAK_FRACTION = 0.6
#: A level's exit searched near its predicted height needs at least this fraction of the median tubularity
#: of the exits found as peaks, and signal above muscle.
PREDICTED_EXIT_MIN_RESPONSE = 0.3
#: How each normal-muscle reference is measured (findings ``nerve_reference.muscle_reference_method``).
MUSCLE_REFERENCE_METHODS = {
    "paraspinal": "histogram mode of paraspinal muscle signal (box behind the canal at the root levels, air and "
                  "the darkest multi-Otsu class of log signal removed, 1 mm smoothing)",
    "shoulder": "normal shoulder-girdle muscle signal from the muscle analysis (paraspinal box outside the field "
                "of view)",
}
#: Spacing (mm along the centerline) of the cross-sections and so of the CSA profile in findings.
PROFILE_STEP_MM = 1.0
#: Canal (dural sac) radius (mm) blanked in the tubularity map.
CANAL_RADIUS_MM = 9.0


@dataclass
class NerveAnalysis:
    """Result of :func:`analyze_nerves` (see the findings.json "nerves" items)."""

    roots: list[dict]
    not_assessable: list[dict]
    label_map: Volume
    landmarks: dict
    reference: dict = field(default_factory=dict)


def _working_grid(fluid: Volume, canal: dict) -> Volume:
    lo, hi = world_box(fluid)
    centre = canal_centre(canal, 0.5 * (lo[2] + hi[2]))
    roi_lo = np.array([centre[0] - ROI_LATERAL_MM, centre[1] + ROI_AP_MM[0], lo[2]])
    roi_hi = np.array([centre[0] + ROI_LATERAL_MM, centre[1] + ROI_AP_MM[1], hi[2]])
    return resample_to_ras_grid(fluid, np.maximum(lo, roi_lo), np.minimum(hi, roi_hi), WORK_STEP_MM)


def _blank_canal(response: Volume, canal: dict) -> None:
    aff = response.affine
    shape = response.shape
    xs = aff[0, 3] + aff[0, 0] * np.arange(shape[0])
    ys = aff[1, 3] + aff[1, 1] * np.arange(shape[1])
    zs = aff[2, 3] + aff[2, 2] * np.arange(shape[2])
    centre = canal_centre(canal, zs)
    dist2 = (xs[:, None, None] - centre[None, None, :, 0]) ** 2 + (ys[None, :, None] - centre[None, None, :, 1]) ** 2
    response.data[dist2 <= CANAL_RADIUS_MM**2] = 0.0


def _lateral_distance(canal: dict, points: np.ndarray, side: str) -> np.ndarray:
    centre = canal_centre(canal, points[:, 2])
    return side_sign(side) * (points[:, 0] - centre[:, 0])


def _trace_root(response: Volume, canal: dict, seed: np.ndarray, side: str, min_response: float) -> np.ndarray:
    """Centerline through ``seed``: tracked medially to the foramen and laterally into the interscalene region."""
    sign = side_sign(side)
    outward = np.array([sign, 0.5, -0.25])

    def lateral_enough(point: np.ndarray, direction: np.ndarray) -> bool:
        return _lateral_distance(canal, point[None], side)[0] >= FORAMEN_LATERAL_MM - 4.0

    def heads_out(point: np.ndarray, direction: np.ndarray) -> bool:
        # roots run laterally (and forwards) from the foramen into the interscalene region
        return sign * direction[0] >= MIN_LATERAL_COMPONENT and direction[1] >= -MAX_POSTERIOR_COMPONENT

    # patience: on thick slices a root running between two slices fades for a few mm
    lateral = track(response, seed, outward, min_response=min_response, max_length_mm=70.0, keep_going=heads_out,
                    patience=6)
    lateral_reach = _lateral_distance(canal, lateral[-1:], side)[0] - _lateral_distance(canal, seed[None], side)[0]
    if lateral_reach < PATH_LATERAL_MM:
        # step-wise tracking gave up early: cheapest path to the interscalene region instead
        box_lo = seed + np.array([0.0, -15.0, -45.0])
        box_hi = seed + np.array([sign * (PATH_LATERAL_MM + 10.0), 30.0, 10.0])
        target = _lateral_distance(canal, seed[None], side)[0] + PATH_LATERAL_MM

        def is_end(points: np.ndarray) -> np.ndarray:
            return _lateral_distance(canal, points, side) >= target

        path = minimal_path(response, seed, box_lo, box_hi, is_end)
        if path is not None:
            lateral = path
    medial = track(response, seed, -outward, min_response=min_response, max_length_mm=25.0,
                   keep_going=lateral_enough)
    line = np.concatenate([medial[::-1], lateral[1:]]) if len(medial) > 1 else lateral
    return resample_polyline(line, PROFILE_STEP_MM)


def _start_at_foramen(line: np.ndarray, canal: dict, side: str) -> np.ndarray | None:
    """Cut the centerline where it reaches the foramen (lateral distance FORAMEN_LATERAL_MM)."""
    lateral = _lateral_distance(canal, line, side)
    if lateral[0] > FORAMEN_LATERAL_MM:
        return line  # tracked part starts lateral of the foramen; measured from its first point
    beyond = np.nonzero(lateral >= FORAMEN_LATERAL_MM)[0]
    if len(beyond) == 0:
        return None
    k = beyond[0]
    a, b = lateral[k - 1], lateral[k]
    t = (FORAMEN_LATERAL_MM - a) / (b - a) if b != a else 0.0
    start = line[k - 1] + t * (line[k] - line[k - 1])
    return resample_polyline(np.concatenate([start[None], line[k:]]), PROFILE_STEP_MM)


def _measure(fluid: Volume, line: np.ndarray, window: tuple[float, float], neighbours: cKDTree | None,
             clearance_mm: float) -> tuple[dict | None, str]:
    """CSA and signal over the extraforaminal window, on planes at least ``clearance_mm`` from the other
    roots' centerlines (``neighbours``); ``(None, reason)`` when not measurable."""
    s = arc_length(line)
    sel = (s >= window[0]) & (s <= window[1])
    in_window = sel.copy()
    if sel.sum() < 0.5 * (window[1] - window[0]):
        return None, (f"root traced for {s[-1]:.0f} mm only; the {window[0]:.0f}-{window[1]:.0f} mm segment "
                      "is not measurable")
    if neighbours is not None:
        clear = sel & (neighbours.query(line)[0] >= clearance_mm)
        if clear.sum() < MIN_PLANES:
            return None, (f"another root lies within {clearance_mm:.0f} mm along the {window[0]:.0f}-"
                          f"{window[1]:.0f} mm segment (only {clear.sum()} clear cross-sections)")
        sel = clear
    cs = cross_sections(fluid, line[sel], tangents=centerline_tangents(line)[sel])
    good = np.isfinite(cs.csa_mm2) & np.isfinite(cs.signal)
    if good.sum() < MIN_PLANES:
        return None, (f"only {good.sum()} of {sel.sum()} cross-sections measurable (the root's cross-section "
                      "merges with a neighbour or is not a bright disc)")
    csa, sig, fraction = cs.csa_mm2[good], cs.signal[good], cs.peak_fraction[good]
    where = np.nonzero(sel)[0][good]  # index on the centerline of each measured plane
    # a plane several times the root's lower-quartile CSA has a vessel, muscle or the foraminal sleeve merged
    # in (merging only adds area; the lower quartile stays on the root while up to 3/4 of the planes merge)
    low_quartile = np.percentile(csa, 25)
    plausible = (csa <= MAX_PLANE_FACTOR * low_quartile) & (csa >= low_quartile / MAX_PLANE_FACTOR)
    if plausible.sum() < MIN_PLANES:
        return None, (f"only {plausible.sum()} of {len(csa)} cross-sections are the root alone (the others "
                      "merge with a larger bright structure)")
    csa, sig, fraction, where = csa[plausible], sig[plausible], fraction[plausible], where[plausible]
    q1, median, q3 = np.percentile(csa, [25, 50, 75])
    if (q3 - q1) > MAX_CSA_SPREAD * median:
        return None, f"cross-sections inconsistent along the root (CSA interquartile range {q3 - q1:.1f} mm2)"
    # the signal is deblurred by 1 / peak_fraction: prefer planes where that correction is mild
    mild = fraction >= MILD_PEAK_FRACTION
    sig = sig[mild] if mild.sum() >= 5 else sig
    low, high = np.percentile(csa, [TRIM_PERCENT, 100 - TRIM_PERCENT])
    kept = (csa >= low) & (csa <= high)
    csa_mean = float(np.mean(csa[kept]))
    running = np.array([np.median(csa[max(0, i - 2): i + 3]) for i in range(len(csa))])
    profile = np.full(len(line), np.nan)
    profile[where] = csa
    window_idx = np.nonzero(in_window)[0]
    return {"csa_mm2": csa_mean, "csa_max_mm2": float(running.max()),
            "focal_swelling_index": float(running.max() / median),
            "csa_profile_mm2": [None if not np.isfinite(v) else round(float(v), 2) for v in profile[window_idx]],
            "csa_profile_start_mm": round(float(s[window_idx[0]]), 1),
            "signal": float(np.median(sig)), "radius_mm": float(np.sqrt(csa_mean / np.pi))}, ""


def analyze_nerves(fluid: Volume, protocol: dict, *, t1: Volume | None = None, landmarks: dict | None = None,
                   muscle_reference: float | None = None) -> NerveAnalysis:
    """Find, measure and grade the roots C5-T1 on both sides.

    Parameters
    ----------
    fluid : Volume
        T2 fat-sat (2D axial) or STIR (3D) image, RAS+ affine; roots bright.
    protocol : dict
        Grading protocol (:func:`nervemuscle.protocol.load_protocol`).
    t1 : Volume, optional
        Not needed by the current method (accepted for the pipeline's uniform call).
    landmarks : dict, optional
        ``{"roots": {"C5_left": [[x, y, z], ...]}}``: one point seeds tracking of that root, two or more
        points are its centerline from the foramen outwards (source "landmarks").
    muscle_reference : float, optional
        Signal of normal shoulder muscle on ``fluid`` from a muscle segmentation that passed its quality gate
        (pass None otherwise). It is one of the independent estimates that must agree with the paraspinal
        reference (:func:`nervemuscle.nerve.reference.choose_reference`); it is used itself only when the
        paraspinal muscles are outside the field of view. When the estimates disagree the T2 ratios and T2
        grades are not assessable (reason in ``not_assessable``); CSA grades stay.

    Returns
    -------
    NerveAnalysis
    """
    manual = validate_landmarks(landmarks)["roots"] if landmarks is not None else {}
    window = tuple(float(v) for v in protocol["nerve"]["measure_from_foramen_mm"])
    canal = detect_canal(fluid)
    work = _working_grid(fluid, canal)
    response_data, _ = tubularity(work.data, work.spacing, SIGMAS_MM)
    response = work.with_data(response_data)
    _blank_canal(response, canal)
    z_lo, z_hi = work.affine[2, 3], work.affine[2, 3] + WORK_STEP_MM * (work.shape[2] - 1)
    # two normal muscles differ by less than the protocol's edema grade-1 ratio (reference.REFERENCE_TOLERANCE)
    reference_choice = choose_reference(reference_candidates(fluid, canal, (z_lo, z_hi), shoulder=muscle_reference),
                                        tolerance=float(protocol["muscle"]["edema_thresholds"][0]))
    if reference_choice["value"] is None:
        raise NotAssessableError("paraspinal region outside the field of view and no muscle reference given: "
                                 "no reference for root signal")
    local_muscle = reference_choice["value"]
    exits = {side: find_exit_peaks(response, work, canal, side, min_signal=ROOT_MIN_SIGNAL * local_muscle)
             for side in SIDES}
    heights = level_heights(exits)
    vertebrae = count_vertebrae(fluid, canal)
    # The count names the roots only where the ladder cannot (root exits at more than five levels): on a 2D
    # classic-family exam at SNR 12 the count anchored one body off and misnamed every root that the
    # five-rung ladder names right, so an unambiguous ladder is kept and the count only recorded.
    ladder_ambiguous = bool(levels_beyond(exits, heights))
    foramina = root_foramen_heights(vertebrae) if ladder_ambiguous else None
    if vertebrae["anchor"] is not None and not ladder_ambiguous:
        vertebrae = {**vertebrae, "reason": vertebrae["reason"] + "; not used to name the roots: the root exits "
                     "form an unambiguous five-level ladder"}
    if foramina is not None:  # vertebrae counted: each root at the ladder rung of its own foramen
        rungs = ladder_at_foramina(heights, foramina)
        agree, disagreement = exits_match_foramina(rungs, foramina)
        if agree:
            heights = rungs
        else:
            foramina = None
            vertebrae = {**vertebrae, "anchor": None, "bodies": {}, "discs": {},
                         "reason": vertebrae["reason"] + "; " + disagreement}
    named = name_levels(exits, heights)
    found = [c["response"] for c in named.values()]
    for segment, z in zip(ROOTS, heights):  # a level found on one side only, or predicted from its neighbours
        for side in SIDES:
            if f"{segment}_{side}" not in named and found:
                near = find_exit_near(response, work, canal, side, float(z), min_signal=local_muscle,
                                      min_response=PREDICTED_EXIT_MIN_RESPONSE * float(np.median(found)))
                if near is not None:
                    named[f"{segment}_{side}"] = {**near, "predicted": True}
    named = align_exit_depths(named, response, work, canal, min_signal=local_muscle)
    beyond = levels_beyond(exits, heights)
    unnamed = None if not beyond or foramina is not None else (
        "root levels cannot be named: root exits at more than five consecutive levels (another at z = "
        + ", ".join(f"{z:.0f}" for z in beyond) + " mm) and no vertebra counted; a landmarks file names them")
    positive = response.data[response.data > 0]
    floor = 0.05 * float(np.percentile(positive, 99.5)) if positive.size else 0.0

    not_assessable: list[dict] = []
    traced: dict[tuple[str, str], tuple[np.ndarray, str]] = {}
    for segment in ROOTS:
        for side in SIDES:
            key = f"{segment}_{side}"
            points = np.asarray(manual.get(key, []), float)
            source = "landmarks" if len(points) else "automatic"
            if len(points) >= 2:
                traced[(segment, side)] = resample_polyline(points, PROFILE_STEP_MM), source
                continue
            seed = points[0] if len(points) == 1 else (
                np.asarray(named[key]["point_mm"]) if key in named and unnamed is None else None)
            if seed is None:
                not_assessable.append({"item": f"{segment} {side}",
                                       "reason": unnamed or "root exit not found in the field of view"})
                continue
            seed_response = float(named[key]["response"]) if key in named else floor * 3
            line = _trace_root(response, canal, seed, side, max(0.1 * seed_response, floor))
            line = _start_at_foramen(line, canal, side)
            if line is None:
                not_assessable.append({"item": f"{segment} {side}", "reason": "root could not be followed out of the foramen"})
                continue
            traced[(segment, side)] = line, source

    # a plane is measured only where no other root is near enough to blur into it
    clearance = 2.0 * ROOT_RADIUS_MM + NEIGHBOUR_PSF_WIDTHS * float(np.sqrt(np.linalg.eigvalsh(psf_covariance(fluid))[-1]))
    measured: dict[tuple[str, str], dict] = {}
    centerlines: dict[tuple[str, str], np.ndarray] = {}
    for (segment, side), (line, source) in traced.items():
        others = [other for k, (other, _) in traced.items() if k != (segment, side)]
        neighbours = cKDTree(np.concatenate(others)) if others else None
        values, reason = _measure(fluid, line, window, neighbours, clearance)
        if values is None:
            not_assessable.append({"item": f"{segment} {side}", "reason": reason})
            continue
        centerlines[(segment, side)] = line
        measured[(segment, side)] = {**values, "source": source}
    not_assessable.sort(key=lambda n: (ROOTS.index(n["item"].split()[0]), SIDES.index(n["item"].split()[1])))

    if reference_choice["assessable"]:
        ratios = {k: v["signal"] / local_muscle for k, v in measured.items()}
    else:
        ratios = {k: None for k in measured}
        not_assessable.append({"item": "nerve T2 signal", "reason": reference_choice["reason"]})
    normal_ratio, normal_method = normal_nerve_ratio(list(ratios.values()), protocol)
    roots = []
    for (segment, side), values in measured.items():
        other = measured.get((segment, "left" if side == "right" else "right"))
        grades = grade_root(segment, values["csa_mm2"], ratios[(segment, side)], normal_ratio, protocol)
        item = {
            "segment": segment,
            "side": side,
            "csa_mm2": round(values["csa_mm2"], 2),
            "csa_max_mm2": round(values["csa_max_mm2"], 2),
            "diameter_mm": round(2.0 * values["radius_mm"], 2),
            "t2_ratio": None if ratios[(segment, side)] is None else round(ratios[(segment, side)], 3),
            "asymmetry": None if other is None else round(asymmetry(values["csa_mm2"], other["csa_mm2"]), 3),
            **grades,
            "centerline_mm": np.round(centerlines[(segment, side)], 2).tolist(),
            "source": values["source"],
            "csa_profile_mm2": values["csa_profile_mm2"],
            "csa_profile_start_mm": values["csa_profile_start_mm"],
            "csa_profile_step_mm": PROFILE_STEP_MM,
            "focal_swelling_index": round(values["focal_swelling_index"], 3),
            "pattern": root_pattern(segment, grades["thickening_grade"], values["csa_max_mm2"],
                                    values["focal_swelling_index"], protocol),
        }
        roots.append(item)
    roots.sort(key=lambda r: (ROOTS.index(r["segment"]), SIDES.index(r["side"])))
    labels = rasterize_tubes(fluid, [(root_label(r["segment"], r["side"]), np.asarray(r["centerline_mm"]),
                                      0.5 * r["diameter_mm"]) for r in roots])
    found_landmarks = {
        "canal": {"centre_mm": canal["centre_mm"]},
        "foramina": {key: [round(v, 2) for v in c["point_mm"]] for key, c in named.items()},
        "foramina_predicted": sorted(key for key, c in named.items() if c.get("predicted")),
        "level_heights_mm": [round(float(z), 2) for z in heights],
        "levels_beyond_mm": [round(z, 2) for z in beyond],
        "foramen_lateral_mm": FORAMEN_LATERAL_MM,
        "vertebrae": {"anchor": vertebrae["anchor"], "note": vertebrae["reason"], "bodies_z_mm": vertebrae["bodies"],
                      "discs_z_mm": vertebrae["discs"], "unnamed_discs_z_mm": vertebrae["discs_z_mm"]},
    }
    reference = {"muscle_reference": round(float(local_muscle), 4), "muscle_reference_used": reference_choice["used"],
                 "muscle_reference_method": MUSCLE_REFERENCE_METHODS[reference_choice["used"]],
                 "muscle_reference_candidates": reference_choice["candidates"],
                 "muscle_reference_tolerance": reference_choice["tolerance"],
                 "t2_assessable": reference_choice["assessable"], "t2_reference_note": reference_choice["reason"],
                 "normal_nerve_ratio": round(normal_ratio, 4), "normal_nerve_method": normal_method,
                 "vertebral_levels": {"anchor": vertebrae["anchor"], "note": vertebrae["reason"],
                                      "bodies_z_mm": vertebrae["bodies"], "discs_z_mm": vertebrae["discs"],
                                      "roots_named_by": "vertebrae" if foramina is not None else "root-exit ladder"}}
    return NerveAnalysis(roots, not_assessable, labels, found_landmarks, reference)
