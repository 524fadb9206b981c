"""Vertebral levels along the spinal canal: discs and bodies found in front of the canal, named by counting
from an anchor vertebra, and the root levels they give (root Cn leaves between C(n-1) and Cn, C8 between C7
and T1, T1 between T1 and T2).

* Discs: the vertebral bodies lie in front of the dural sac. Along the canal centre line
  (:func:`nervemuscle.landmarks.detect_canal`) the mean signal of a small column in front of the canal
  alternates body / disc / body; on T2 fat-sat and STIR the discs are brighter than the fat-suppressed
  marrow, on T1 darker. The disc heights are the peaks (T2/STIR) or troughs (T1) of that profile one
  vertebral height apart; the bodies lie between consecutive discs.
* C2 from above: the C2 body with the dens rising from it is much taller than any vertebra below (about
  20 mm of body plus 15 mm of dens against 14-16 mm), with no disc above it. When the column above the most
  cranial disc holds no disc, not even a faint one, over more than :data:`TALL_BODY_FACTOR` times the median
  disc spacing, that body is C2 (the dens must be in the field of view).
* T1 from below: T1 is the first vertebra with ribs; the first ribs leave its transverse processes and
  ring the lung apex (pleural cupula), which reaches the neck of the first rib behind. On any sequence the
  bone and the air within that ring give no signal, so beside the vertebra (lateral
  :data:`INLET_LATERAL_MM`, in front of the canal :data:`INLET_AP_MM`) the fraction of signal voids jumps
  from near zero at C7 to a large part of the box at T1 on both sides. The most cranial body where both
  sides reach :data:`INLET_VOID_FRACTION` is T1 when the body above it is clear. Only bodies between two
  found discs, or cut by the end of the series, are judged (a longer stretch without a disc is not counted).

When neither anchor is found, or the two disagree, the levels are returned unnamed: roots are then not named
by counting (:func:`root_foramen_heights` returns None) and never guessed. The analysis also drops the count
when the root exits are out of phase with the counted foramina (:func:`exits_match_foramina`).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage, signal

from nervemuscle.anatomy import ROOTS
from nervemuscle.nerve.landmarks import canal_centre
from nervemuscle.nerve.sampling import sample_world, world_box
from nervemuscle.volume import Volume

#: Vertebrae that can be named, cranial to caudal.
VERTEBRA_NAMES: tuple[str, ...] = ("C2", "C3", "C4", "C5", "C6", "C7", "T1", "T2", "T3", "T4", "T5")
#: Root -> (vertebra above, vertebra below) of the foramen it leaves by.
ROOT_FORAMEN: dict[str, tuple[str, str]] = {"C5": ("C4", "C5"), "C6": ("C5", "C6"), "C7": ("C6", "C7"),
                                            "C8": ("C7", "T1"), "T1": ("T1", "T2")}
#: Column sampled for the body/disc profile: mm in front of the canal centre (the sac radius up to mid-body
#: depth of an adult cervical body) and half-width (mm) either side of the midline.
BODY_AP_MM = (10.0, 20.0)
BODY_HALF_WIDTH_MM = 4.0
#: Profile step (mm) and smoothing (mm) along z.
PROFILE_STEP_MM = 1.0
PROFILE_SIGMA_MM = 1.5
#: Consecutive discs are one vertebral height apart (adult C2-T4 body + disc: about 16-25 mm).
DISC_SPACING_MM = (13.0, 28.0)
#: A disc peak must stand out of the profile by this fraction of the profile's range.
DISC_PROMINENCE = 0.15
#: A cranial column taller than this factor times the median disc spacing is C2 with the dens (about 20 mm of
#: body and 15 mm of dens against 16-21 mm spacing): the dens must be in the field of view.
TALL_BODY_FACTOR = 1.6
#: Root exits lie at their foramen, at the level of the disc (a few mm below it as the roots run
#: inferolaterally); a ladder of exits out of phase with the discs by more than this fraction of the disc
#: spacing means the profile's peaks are not discs (or the exits are not roots) and nothing is named.
MAX_EXIT_PHASE = 0.3
#: Thoracic-inlet box beside the vertebra: lateral mm from the canal axis, anterior mm from the canal centre.
INLET_LATERAL_MM = (40.0, 75.0)
INLET_AP_MM = (0.0, 40.0)
#: Signal void: below this fraction of the vertebral column's median signal (air and cortical bone; fat
#: suppressed on STIR stays above it).
VOID_LEVEL = 0.15
#: A body holds first ribs when both sides reach INLET_VOID_FRACTION; it is T1 only when the body above is
#: clear (below CLEAR_ABOVE_VOID on both sides); a body cut by the field of view is judged when at least
#: PARTIAL_BODY_MM of it is seen.
INLET_VOID_FRACTION = 0.05
CLEAR_ABOVE_VOID = 0.02
PARTIAL_BODY_MM = 8.0


def body_profile(image: Volume, canal: dict, *, step_mm: float = PROFILE_STEP_MM,
                 ap_mm: tuple[float, float] = BODY_AP_MM,
                 half_width_mm: float = BODY_HALF_WIDTH_MM) -> tuple[np.ndarray, np.ndarray]:
    """Mean signal of the column in front of the canal as a function of height.

    Parameters
    ----------
    image : Volume
        Any series of the exam (RAS+ affine).
    canal : dict
        Canal centre line from :func:`nervemuscle.nerve.landmarks.detect_canal` (on the same exam).

    Returns
    -------
    z_mm, profile : ndarray
        Heights (world mm, ascending) inside the series and the smoothed column mean at each.
    """
    lo, hi = world_box(image)
    zs = np.arange(lo[2], hi[2] + 1e-6, step_mm)
    centre = canal_centre(canal, zs)
    dx = np.arange(-half_width_mm, half_width_mm + 1e-6, 1.0)
    dy = np.arange(ap_mm[0], ap_mm[1] + 1e-6, 1.0)
    gx, gy = np.meshgrid(dx, dy, indexing="ij")
    pts = np.stack([centre[:, None, None, 0] + gx[None], centre[:, None, None, 1] + gy[None],
                    np.broadcast_to(zs[:, None, None], (len(zs),) + gx.shape)], axis=-1)
    values = sample_world(image, pts).reshape(len(zs), -1)
    count = np.isfinite(values).sum(axis=1)
    profile = np.nansum(values, axis=1) / np.maximum(count, 1)
    good = count > 0.5 * values.shape[1]
    zs, profile = zs[good], profile[good]
    return zs, ndimage.gaussian_filter1d(profile, PROFILE_SIGMA_MM / step_mm) if len(zs) else profile


def find_discs(z_mm: np.ndarray, profile: np.ndarray, *, discs_bright: bool = True,
               spacing_mm: tuple[float, float] = DISC_SPACING_MM, prominence: float = DISC_PROMINENCE) -> np.ndarray:
    """Heights (mm, cranial first) of the intervertebral discs on a body profile (:func:`body_profile`).

    Discs are the peaks (``discs_bright``, T2 fat-sat / STIR) or troughs (T1) at least ``spacing_mm[0]``
    apart standing out by ``prominence`` of the profile range. The run of discs kept is the longest one
    whose consecutive gaps all lie within ``spacing_mm`` (a gap beyond it means a disc was missed, and
    counting across it would be wrong).
    """
    if len(profile) < 5:
        return np.empty(0)
    step = float(np.median(np.diff(z_mm)))
    p = profile if discs_bright else -profile
    span = float(p.max() - p.min())
    if span <= 0:
        return np.empty(0)
    peaks, _ = signal.find_peaks(p, distance=max(int(spacing_mm[0] / step), 1), prominence=prominence * span)
    z = np.sort(z_mm[peaks])[::-1]
    if len(z) < 2:
        return z
    ok = (-np.diff(z) >= spacing_mm[0]) & (-np.diff(z) <= spacing_mm[1])
    best, start = (0, 0), 0
    for i in range(len(ok) + 1):
        if i == len(ok) or not ok[i]:
            if i - start > best[1] - best[0]:
                best = (start, i)
            start = i + 1
    return z[best[0]: best[1] + 1]


def inlet_void_fraction(image: Volume, canal: dict, z_mm: np.ndarray, tissue: float, *, half_height_mm: float = 3.0,
                        step_mm: float = 2.0, lateral_mm: tuple[float, float] = INLET_LATERAL_MM,
                        ap_mm: tuple[float, float] = INLET_AP_MM) -> np.ndarray:
    """Fraction of enclosed signal voids (bone, lung) in the thoracic-inlet box beside the vertebra, per side.

    At each height the axial section (mean over ``half_height_mm`` either side, smoothed at 2 mm) is
    thresholded at :data:`VOID_LEVEL` of ``tissue`` (the vertebral column's median signal,
    :func:`body_profile`); voids connected to the section's border (air around a narrow neck) are left out.
    Returns an array ``(len(z_mm), 2)`` (left, right); NaN where the box leaves the series.
    """
    lo, hi = world_box(image)
    xs = np.arange(lo[0], hi[0] + 1e-6, step_mm)
    ys = np.arange(lo[1], hi[1] + 1e-6, step_mm)
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    out = np.full((len(z_mm), 2), np.nan)
    if tissue <= 0:
        return out
    for i, z in enumerate(np.asarray(z_mm, float)):
        dz = np.arange(-half_height_mm, half_height_mm + 1e-6, 1.0)
        pts = np.stack([np.broadcast_to(gx[None], (len(dz),) + gx.shape),
                        np.broadcast_to(gy[None], (len(dz),) + gx.shape),
                        np.broadcast_to((z + dz)[:, None, None], (len(dz),) + gx.shape)], axis=-1)
        stack = sample_world(image, pts)
        inside_fov = np.isfinite(stack)
        if not inside_fov.any():
            continue
        count = inside_fov.sum(axis=0)
        section = np.where(count > 0, np.nansum(stack, axis=0) / np.maximum(count, 1), np.nan)
        void = ndimage.gaussian_filter(np.nan_to_num(section, nan=0.0), 2.0 / step_mm) < VOID_LEVEL * tissue
        lab, _ = ndimage.label(void)
        border = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
        enclosed = void & ~np.isin(lab, border[border > 0])
        c = canal_centre(canal, z)
        anterior = (gy - c[1] >= ap_mm[0]) & (gy - c[1] <= ap_mm[1])
        for s, sign in enumerate((-1.0, 1.0)):
            lateral = sign * (gx - c[0])
            inside = anterior & (lateral >= lateral_mm[0]) & (lateral <= lateral_mm[1]) & np.isfinite(section)
            if inside.sum():
                out[i, s] = float(enclosed[inside].mean())
    return out


def count_vertebrae(image: Volume, canal: dict, *, discs_bright: bool = True) -> dict:
    """Discs and bodies along the canal, named by counting from C2 (dens) or T1 (first ribs).

    Parameters
    ----------
    image : Volume
        T2 fat-sat / STIR (``discs_bright``) or T1 series, RAS+ affine.
    canal : dict
        Canal centre line (:func:`nervemuscle.nerve.landmarks.detect_canal`).

    Returns
    -------
    dict
        ``{"discs_z_mm": [...], "bodies_z_mm": [...], "anchor": "C2" | "T1" | "C2+T1" | None, "reason": str,
        "bodies": {name: z}, "discs": {"C4/C5": z, ...},
        "inlet_void": [{"z_mm", "left", "right"}, ...]}``, cranial
        first; ``bodies`` and ``discs`` are empty when no anchor is found or the two anchors disagree
        (``reason`` says why).
    """
    z, profile = body_profile(image, canal)
    discs = find_discs(z, profile, discs_bright=discs_bright)
    bodies = 0.5 * (discs[:-1] + discs[1:]) if len(discs) >= 2 else np.empty(0)
    out = {"discs_z_mm": np.round(discs, 2).tolist(), "bodies_z_mm": np.round(bodies, 2).tolist(),
           "anchor": None, "reason": "", "bodies": {}, "discs": {}, "inlet_void": []}
    if len(discs) < 3:
        out["reason"] = f"only {len(discs)} intervertebral discs found along the canal"
        return out
    spacing = float(np.median(-np.diff(discs)))
    anchors: dict[str, int] = {}  # anchor -> index in VERTEBRA_NAMES of bodies[0], the body below discs[0]
    notes = []
    # C2 from above: a tall column (body with dens) above the most cranial disc, without even a faint disc in it
    column = z > discs[0] + 0.4 * spacing
    p = profile if discs_bright else -profile
    faint = signal.find_peaks(p[column], prominence=0.5 * DISC_PROMINENCE * float(p.max() - p.min()))[0]
    if z[-1] - discs[0] >= TALL_BODY_FACTOR * spacing and len(faint) == 0:
        anchors["C2"] = VERTEBRA_NAMES.index("C3")
        notes.append(f"C2: {z[-1] - discs[0]:.0f} mm without a disc above the most cranial disc "
                     f"(body with dens; other levels {spacing:.0f} mm)")
    # T1 from below: the most cranial body with first ribs / lung apex beside it on both sides; a body cut by
    # the field of view counts from its visible part (at least PARTIAL_BODY_MM of it, and the series ending
    # within one disc spacing: a longer stretch without a disc is not a body that can be counted)
    index = list(range(len(bodies)))
    heights = list(bodies)
    if PARTIAL_BODY_MM <= z[-1] - discs[0] <= DISC_SPACING_MM[1]:
        index.insert(0, -1)
        heights.insert(0, 0.5 * (discs[0] + min(z[-1], discs[0] + spacing)))
    if PARTIAL_BODY_MM <= discs[-1] - z[0] <= DISC_SPACING_MM[1]:
        index.append(len(bodies))
        heights.append(0.5 * (discs[-1] + max(z[0], discs[-1] - spacing)))
    void = inlet_void_fraction(image, canal, np.array(heights), float(np.median(profile)))
    out["inlet_void"] = [{"z_mm": round(float(h), 2), "left": round(float(v[0]), 3), "right": round(float(v[1]), 3)}
                         for h, v in zip(heights, void)]
    both = np.nan_to_num(np.nanmin(void, axis=1), nan=0.0) if len(void) else np.empty(0)
    ribbed = np.nonzero(both >= INLET_VOID_FRACTION)[0]
    if len(ribbed) and ribbed[0] > 0:
        k = int(ribbed[0])
        above = float(np.nan_to_num(np.nanmax(void[k - 1]), nan=1.0))
        if above < CLEAR_ABOVE_VOID:
            anchors["T1"] = VERTEBRA_NAMES.index("T1") - index[k]
            notes.append(f"T1: first body with signal voids of the first ribs and lung apex beside it "
                         f"(void fraction {both[k]:.2f}; body above {above:.2f})")
    out["reason"] = "; ".join(notes)
    if len(set(anchors.values())) > 1:
        out["reason"] = "C2 and T1 anchors disagree (" + out["reason"] + "): levels not named"
        return out
    if not anchors:
        out["reason"] = "neither C2 (dens) nor T1 (first ribs) identified"
        return out
    out["anchor"] = "+".join(anchors)
    top_index = next(iter(anchors.values()))
    first_body = top_index - 1  # the body above discs[0]; bodies[i] lies below discs[i]
    for i, zd in enumerate(discs):
        above, below = first_body + i, first_body + i + 1
        if 0 <= above and below < len(VERTEBRA_NAMES):
            out["discs"][f"{VERTEBRA_NAMES[above]}/{VERTEBRA_NAMES[below]}"] = round(float(zd), 2)
    for i, zb in enumerate(bodies):
        if 0 <= first_body + i + 1 < len(VERTEBRA_NAMES):
            out["bodies"][VERTEBRA_NAMES[first_body + i + 1]] = round(float(zb), 2)
    return out


def root_foramen_heights(levels: dict) -> np.ndarray | None:
    """Heights (mm) of the foramina of C5..T1 from named discs (:func:`count_vertebrae`), or None.

    A foramen lies at the height of its disc; a disc outside the series is extrapolated along the
    straight line fitted to the named discs (height against disc index). None when fewer than two discs
    are named.
    """
    discs = levels.get("discs", {})
    names = [f"{a}/{b}" for a, b in zip(VERTEBRA_NAMES[:-1], VERTEBRA_NAMES[1:])]
    index = np.array([names.index(n) for n in discs])
    z = np.array(list(discs.values()))
    if len(z) < 2:
        return None
    slope, intercept = np.polyfit(index, z, 1)
    out = []
    for root in ROOTS:
        name = "/".join(ROOT_FORAMEN[root])
        out.append(discs[name] if name in discs else intercept + slope * names.index(name))
    return np.array(out, float)


def ladder_at_foramina(heights: np.ndarray, foramina: np.ndarray) -> np.ndarray:
    """Rungs of the root-exit ladder that belong to the foramina of C5..T1.

    ``heights`` are five consecutive ladder rungs from the root exits
    (:func:`nervemuscle.nerve.landmarks.level_heights`, cranial first) whatever roots they are; the ladder
    is extended one spacing at a time and each foramen (:func:`root_foramen_heights`) takes its nearest
    rung (the exits lie a few mm below their disc as the roots run inferolaterally). With fewer than two
    rungs the foramen heights are returned.
    """
    heights = np.asarray(heights, float)
    if len(heights) < 2:
        return np.asarray(foramina, float)
    d = (heights[0] - heights[-1]) / (len(heights) - 1)
    rungs = heights[0] - d * np.arange(-len(ROOTS), 2 * len(ROOTS))
    return np.array([rungs[np.argmin(np.abs(rungs - f))] for f in foramina])


def exits_match_foramina(heights: np.ndarray, foramina: np.ndarray) -> tuple[bool, str]:
    """Whether the root-exit ladder is in phase with the counted foramina.

    ``heights``: rungs chosen by :func:`ladder_at_foramina`; ``foramina``: :func:`root_foramen_heights`.
    Returns ``(True, "")`` when the median offset is within :data:`MAX_EXIT_PHASE` of the foramen spacing,
    else ``(False, reason)``.
    """
    spacing = float(np.median(np.abs(np.diff(foramina)))) if len(foramina) >= 2 else 0.0
    offset = float(np.median(np.asarray(heights) - np.asarray(foramina)))
    if spacing > 0 and abs(offset) <= MAX_EXIT_PHASE * spacing:
        return True, ""
    return False, (f"root exits lie {offset:+.0f} mm from the counted foramina (spacing {spacing:.0f} mm): "
                   "vertebrae and roots disagree, levels not named by counting")
