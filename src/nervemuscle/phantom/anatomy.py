"""Geometry of the neck-shoulder phantom in continuous world coordinates (mm, RAS+).

Frame: x to the patient's right, y anterior, z superior; x = 0 is the midline, y = 0 the front of
the vertebral canal region, z = 0 near the C7/T1 disc. Structures are analytic solids
(:mod:`nervemuscle.phantom.shapes`) painted in order: a later structure overwrites an earlier one
where they overlap, so the label of a point is that of the last solid containing it.

Sizes follow clinical-reference.md sections 2, 4 and 7: root CSAs near the protocol references, roots
leave the foramina, pass between anterior and middle scalene and run inferolaterally to join into
trunks (upper C5-C6, middle C7, lower C8-T1) that continue under the clavicle toward the axilla.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from nervemuscle.anatomy import MUSCLES, ROOTS, SIDES, TISSUE_LABELS, muscle_label, root_label
from nervemuscle.phantom.shapes import Difference, Ellipsoid, Extrusion, Tube, Union, box, resample_curve

T = TISSUE_LABELS
SIGN = {"right": 1.0, "left": -1.0}
#: Extraforaminal arc length at which a root ends and its trunk begins (mm from the foramen).
ROOT_LABEL_END_MM = 45.0


@dataclass(frozen=True)
class BodyParams:
    """Seed-drawn body size and pose (all lengths mm)."""

    width: float = 1.0          # lateral scale of torso and shoulders
    height: float = 1.0         # scale of vertebral spacing
    fat_mm: float = 9.0         # subcutaneous fat thickness
    shoulder_drop: dict = field(default_factory=lambda: {"left": 0.0, "right": 0.0})   # mm, + = lower
    y_shift: float = 0.0        # antero-posterior position of the body in the scanner
    root_jitter: dict = field(default_factory=dict)   # (segment, side) -> (3,) mm offset of mid-course


@dataclass
class RootModel:
    """One root: centerline from the cord to the trunk, arc length and radius profile.

    ``s_foramen`` is the arc length (mm) of the foramen exit; extraforaminal distances are
    ``s - s_foramen``.
    """

    segment: str
    side: str
    curve: np.ndarray
    s: np.ndarray
    radius: np.ndarray
    s_foramen: float

    def extraforaminal(self, lo: float, hi: float) -> np.ndarray:
        """Centerline points whose distance from the foramen is within ``[lo, hi]`` mm."""
        d = self.s - self.s_foramen
        return self.curve[(d >= lo) & (d <= hi)]

    def tube(self, s_range: tuple[float, float] | None = None) -> Tube:
        return Tube(self.curve, self.s, self.radius, s_range)


@dataclass
class Anatomy:
    """Ordered solids ``[(label, shape), ...]`` plus the root models."""

    structures: list
    roots: dict
    landmarks: dict


def foramen_z(segment: str, height: float) -> float:
    """z of the neural foramen of a root (C5 exits at C4/5 ... T1 at T1/2)."""
    return {"C5": 57.0, "C6": 39.0, "C7": 21.0, "C8": 3.0, "T1": -15.5}[segment] * height


def _ext(axis, knots, cu, cv, au, av, **kw) -> Extrusion:
    return Extrusion(axis, np.asarray(knots, float), cu, cv, au, av, **kw)


def _body(p: BodyParams) -> Union:
    w = p.width
    y0 = p.y_shift
    parts = [
        _ext("z", [-45, 10, 40, 160], 0.0, np.array([-8, -6, -5, -5]) + y0, [62 * w, 60 * w, 57, 55], [60, 58, 55, 54]),
        _ext(
            "z",
            [-150, -60, -30, -8, 8, 22, 38],
            0.0,
            np.array([-6, -6, -7, -8, -8, -7, -6]) + y0,
            np.array([138, 138, 148, 160, 150, 108, 60]) * w,
            [100, 100, 98, 86, 72, 62, 55],
            power=3.0,
        ),
    ]
    for side in SIDES:
        m, dz = SIGN[side], p.shoulder_drop[side]
        parts.append(Ellipsoid(np.array([m * 158 * w, -8 + y0, -28 - dz]), np.array([50.0, 52.0, 36.0])))
        parts.append(_ext("z", [-150, -30 - dz], m * 166 * w, -8 + y0, 46.0, 50.0))
    return Union(parts)


def _shell(body: Union, depth: float, thickness: float, clip: tuple) -> Difference:
    """Layer of ``thickness`` mm starting ``depth`` mm under the skin, cut to a box."""
    outer = Union([replace(part, clip=clip) for part in body.peeled(depth).parts])
    return Difference(outer, body.peeled(depth + thickness))


def _side(m: float, lo: float, hi: float) -> tuple[float, float]:
    """x range (lo, hi) on the right side mirrored to the side of sign ``m``."""
    return (lo, hi) if m > 0 else (-hi, -lo)


def _root_controls(segment: str, side: str, p: BodyParams) -> tuple[np.ndarray, int]:
    """Control points of a root centerline and the index of the foramen point."""
    m, h, w = SIGN[side], p.height, p.width
    zf = foramen_z(segment, h)
    k = ROOTS.index(segment)
    trunk_point = {  # where the root joins its trunk
        "C5": (60, 9, 8), "C6": (62, 9, 6), "C7": (66, 7, -4), "C8": (64, 4, -14), "T1": (62, 3, -15),
    }[segment]
    jitter = np.asarray(p.root_jitter.get((segment, side), (0.0, 0.0, 0.0)))
    mid = np.array([40.0, 5.0, zf - 10 - 2 * k]) + jitter
    if segment == "T1":
        mid = np.array([40.0, 1.0, zf - 3.0]) + jitter
    pts = np.array(
        [
            [6.5, -14.0 + p.y_shift, zf + 6.0],
            [10.0, -10.0 + p.y_shift, zf + 2.0],
            [15.0, -6.0 + p.y_shift, zf],           # foramen exit
            [27.0, 0.0 + p.y_shift, zf - 3.0],
            mid + [0, p.y_shift, 0],
            np.array(trunk_point) * [w, 1, h] + [0, p.y_shift, 0],
        ]
    )
    pts[:, 0] *= m
    return pts, 2


def _trunk_controls(side: str, p: BodyParams) -> dict[str, np.ndarray]:
    m, w, h, y0 = SIGN[side], p.width, p.height, p.y_shift
    drop = p.shoulder_drop[side]
    out = {}
    for name, start, dy, dz in (("upper", (61, 9, 7), 2, 0), ("middle", (66, 7, -4), 0, -4), ("lower", (63, 3, -15), -2, -8)):
        pts = np.array(
            [
                [start[0] * w, start[1] + y0, start[2] * h],
                [88 * w, 12 + dy + y0, -30 + dz - drop / 2],
                [118 * w, 8 + dy + y0, -58 + dz - drop],
                [140 * w, 4 + dy + y0, -82 + dz - drop],
            ]
        )
        pts[:, 0] *= m
        out[name] = pts
    return out


def root_radius_profile(s: np.ndarray, s_foramen: float, r0: float, lesion: dict | None) -> np.ndarray:
    """Radius along a root: thinner intradural part, ganglion bulge at the foramen, then ``r0``.

    ``lesion``: ``{"kind": "diffuse", "factor": f}`` scales the extraforaminal CSA by ``f``;
    ``{"kind": "focal", "peak": p, "center": c, "half_width": w}`` multiplies the CSA by
    ``1 + (p - 1) g`` with ``g`` a raised cosine centred ``c`` mm from the foramen.
    """
    d = s - s_foramen
    area = np.where(d < -4, 0.6, 1.0) * np.pi * r0**2
    area = area * (1 + 0.5 * np.exp(-0.5 * ((d - 1.0) / 2.0) ** 2))        # dorsal root ganglion
    if lesion and lesion["kind"] == "diffuse":
        area = area * np.where(d >= -2.0, lesion["factor"], 1.0)
    elif lesion and lesion["kind"] == "focal":
        area = area * (1 + (lesion["peak"] - 1) * fusiform_weight(d, lesion["center"], lesion["half_width"]))
    return np.sqrt(area / np.pi)


def fusiform_weight(d: np.ndarray, center: float, half_width: float) -> np.ndarray:
    """Raised cosine 0..1..0 over ``center +- half_width``."""
    u = np.clip((d - center) / half_width, -1.0, 1.0)
    return 0.5 * (1 + np.cos(np.pi * u))


def _graded_muscles(p: BodyParams, body: Union, side: str, muscle_scale: dict) -> list:
    """Solids of the graded muscles of one side, ``[(name, shape), ...]`` in painting order.

    ``muscle_scale[name]`` (default 1) scales cross-sectional areas (extrusions) or layer thickness (shells).
    """
    w, h, y0, fat = p.width, p.height, p.y_shift, p.fat_mm
    m, drop = SIGN[side], p.shoulder_drop[side]
    k = {name: muscle_scale.get(name, 1.0) for name in MUSCLES}
    out: list = []
    out.append(("trapezius",
         _shell(body, fat, 11.0 * k["trapezius"], box(x=_side(m, 4, 150 * w), y=(-200, y0 - 14), z=(-110, 200)))))
    out.append(("pectoralis_major",
         _shell(body, fat, 16.0 * k["pectoralis_major"],
                box(x=_side(m, 14, 300), y=(28 + y0, 300), z=(-125, -26 - drop)))))
    r = np.sqrt
    # scalenes: columns from the cervical transverse processes to the first rib
    out.append(("anterior_scalene",
         _ext("z", np.array([-30, 0, 30, 60, 74]) * h, m * np.array([48, 42, 35, 30, 28]) * w,
              np.array([23, 19, 15, 13, 12]) + y0, np.array([6, 7, 7, 6, 5]) * r(k["anterior_scalene"]),
              np.array([5, 6, 5.5, 5, 4]) * r(k["anterior_scalene"]))))
    out.append(("middle_scalene",
         _ext("z", np.array([-24, 0, 30, 60, 82]) * h, m * np.array([56, 48, 40, 34, 31]) * w,
              np.array([-1, -5, -7, -7, -7]) + y0, np.array([9, 9, 8, 7, 6]) * r(k["middle_scalene"]),
              np.array([7, 7, 6.5, 6, 5]) * r(k["middle_scalene"]))))
    ang = -m * np.deg2rad(22)   # scapular plane: lateral border more anterior
    out.append(("subscapularis",
         _ext("z", [-130, -60, -28, -10 - drop], m * np.array([96, 100, 106, 112]) * w,
              np.array([-39, -39, -37, -31]) + y0, np.array([30, 40, 36, 22]) * r(k["subscapularis"]),
              np.array([9, 11, 10, 7]) * r(k["subscapularis"]), angle=ang)))
    out.append(("infraspinatus",
         _ext("z", [-130, -60, -30 - drop], m * np.array([92, 98, 106]) * w, np.array([-62, -62, -59]) + y0,
              np.array([30, 40, 36]) * r(k["infraspinatus"]), np.array([8, 10, 8]) * r(k["infraspinatus"]),
              angle=ang)))
    sup = np.array([78, 100, 125, 148]) * w
    out.append(("supraspinatus",
         Extrusion("x", sup if m > 0 else -sup[::-1], *(
             v if m > 0 else v[::-1] for v in (
                 np.array([-58, -50, -34, -18.0]) + y0, np.array([-4, -6, -11, -19.0]) - drop,
                 np.array([13, 15, 11, 7.0]) * r(k["supraspinatus"]),
                 np.array([10, 11, 9, 6.0]) * r(k["supraspinatus"]))))))
    hc = np.array([m * 158 * w, -8 + y0, -30 - drop])
    t = k["deltoid"]
    out.append(("deltoid", Union([
        Difference(Ellipsoid(hc + [m * 4, 0, -6], np.array([27 + 22 * t, 29 + 22 * t, 30 + 22 * t]),
                             clip=box(x=_side(m, 136 * w, 400), z=(-400, -8 - drop))),
                   Ellipsoid(hc, np.array([27.0, 27.0, 29.0]))),
        Difference(_ext("z", [-150, -40 - drop], m * 166 * w, -8 + y0, 14 + 26 * t, 16 + 26 * t,
                        clip=box(x=_side(m, 150 * w, 400))),
                   _ext("z", [-150, -40 - drop], m * 166 * w, -8 + y0, 14.0, 14.0)),
    ])))
    return out


def build_anatomy(p: BodyParams, root_csa: dict, root_lesions: dict, muscle_scale: dict) -> Anatomy:
    """Assemble the painted solids of one subject.

    Parameters
    ----------
    p : BodyParams
    root_csa : dict[(segment, side)] -> float
        Normal extraforaminal CSA of each root (mm²).
    root_lesions : dict[(segment, side)] -> dict or None
        Lesion description for :func:`root_radius_profile`.
    muscle_scale : dict[(muscle, side)] -> float
        Cross-sectional area factor (1 - atrophy) applied to the muscle's shape.
    """
    w, h, y0 = p.width, p.height, p.y_shift
    body = _body(p)
    S: list = []
    add = S.append
    add((T["skin"], body))
    add((T["subcutaneous_fat"], body.peeled(1.6)))
    add((T["intermuscular_fat"], body.peeled(p.fat_mm)))
    # chest wall and mediastinum (muscle-like soft tissue), lungs inside
    add((T["soft_tissue"], _ext("z", [-150, -60, -22, 0, 8], 0.0, np.array([0, 0, 0, -2, -3]) + y0,
                                np.array([130, 126, 100, 64, 44]) * w, [88, 84, 70, 54, 40])))
    lungs = []
    for side in SIDES:
        m = SIGN[side]
        lungs.append(_ext("z", [-150, -60, -25, -5, 12 * h], m * np.array([64, 62, 50, 40, 36]) * w,
                          np.array([6, 6, 6, 4, 2]) + y0, np.array([52, 50, 36, 20, 3]) * w, [66, 64, 44, 26, 4]))
    add((T["lung"], Union(lungs)))
    # posterior neck and back muscles (splenius, semispinalis, erector spinae), levator scapulae
    add((T["paraspinal_muscle"], _ext("z", [-150, -30, 0, 40, 160], 0.0, np.array([-70, -66, -52, -36, -34]) + y0,
                                       np.array([44, 48, 50, 46, 42]) * w, [26, 28, 26, 17, 16])))
    for side in SIDES:
        m = SIGN[side]
        add((T["paraspinal_muscle"], _ext("z", [-150, -20, 30, 160], m * 24.0, np.array([-62, -56, -44, -40]) + y0,
                                           [20, 20, 18, 17], [24, 22, 16, 15])))
        add((T["soft_tissue"], _ext("z", [-20, 20, 60, 100], m * np.array([62, 52, 42, 36]) * w,
                                    np.array([-30, -26, -22, -20]) + y0, [10, 11, 10, 9], [12, 13, 12, 10])))
    # graded muscles; the space an atrophic muscle vacates is taken by fat
    for side in SIDES:
        m = SIGN[side]
        scale = {name: muscle_scale.get((name, side), 1.0) for name in MUSCLES}
        normal = dict(_graded_muscles(p, body, side, {}))
        for name, shape in _graded_muscles(p, body, side, scale):
            if scale[name] < 1.0:
                add((T["intermuscular_fat"], normal[name]))
            add((muscle_label(name, side), shape))
        # neck soft tissue: sternocleidomastoid (muscle-like, ungraded)
        add((T["soft_tissue"], _ext("z", [-40, 0, 40, 100], m * np.array([20, 32, 44, 48]) * w,
                                    np.array([48, 40, 30, 20]) + y0, [9, 11, 12, 11], [6, 6, 7, 7])))
    # bones
    _add_spine(S, p)
    for side in SIDES:
        m, drop = SIGN[side], p.shoulder_drop[side]
        hc = np.array([m * 158 * w, -8 + y0, -30 - drop])
        for label, shrink in ((T["cortical_bone"], 0.0), (T["marrow"], 1.8)):
            add((label, Ellipsoid(hc, np.array([24.0, 24.0, 26.0])).peeled(shrink)))
            add((label, _ext("z", [-150, -38 - drop], m * 164 * w, -8 + y0, 12.0, 12.0).peeled(shrink)))
            add((label, Ellipsoid(hc + [-m * 30, -4, 0], np.array([6.0, 14.0, 18.0])).peeled(shrink)))   # glenoid
            add((label, _ext("z", [-150, -60, -28, -8 - drop], m * np.array([94, 99, 108, 114]) * w,
                             np.array([-51, -51, -49, -43]) + y0, np.array([32, 42, 38, 24]), 3.0,
                             angle=-m * np.deg2rad(22)).peeled(shrink * 0.5)))   # scapular blade
            spine_x = np.array([80, 110, 140, 165]) * w
            add((label, Extrusion("x", spine_x if m > 0 else -spine_x[::-1], *(
                v if m > 0 else v[::-1] for v in (np.array([-66, -60, -42, -16.0]) + y0,
                                                   np.array([-20, -16, -10, -2.0]) - drop,
                                                   np.array([8, 7, 8, 13.0]), np.array([4, 4, 5, 5.0]))))
                           .peeled(shrink)))   # scapular spine and acromion
            clav = resample_curve(np.array([[m * 20, 48 + y0, -42], [m * 60, 38 + y0, -22],
                                            [m * 110 * w, 14 + y0, -8 - drop], [m * 152 * w, -4 + y0, -4 - drop]]), 0.5)
            add((label, Tube(clav[0], clav[1], np.full(len(clav[1]), 7.0 - 1.4 * shrink))))
            rib = resample_curve(np.array([[m * 18, -14 + y0, -12 * h], [m * 40, -6 + y0, -14 * h],
                                           [m * 58, 14 + y0, -24], [m * 50, 40 + y0, -38], [m * 24, 52 + y0, -48]]), 0.5)
            add((label, Tube(rib[0], rib[1], np.full(len(rib[1]), 5.0 - shrink))))
    # vessels (flow voids)
    for side in SIDES:
        m, drop = SIGN[side], p.shoulder_drop[side]
        add((T["artery"], _ext("z", [-50, 160], m * 24.0, 22 + y0, 3.5, 3.5)))                       # carotid
        add((T["vein"], _ext("z", [-48, 160], m * 36.0 * w, 24 + y0, 7.5, 5.0)))                        # jugular
        add((T["artery"], _ext("z", [-14 * h, 160], m * 23.0, -2 + y0, 2.2, 2.2)))                     # vertebral
        sa = resample_curve(np.array([[m * 14, 22 + y0, -60], [m * 28, 16 + y0, -26], [m * 46, 14 + y0, -14 * h],
                                      [m * 66 * w, 16 + y0, -28], [m * 92 * w, 18 + y0, -44 - drop / 2],
                                      [m * 122 * w, 16 + y0, -70 - drop]]), 0.5)
        add((T["artery"], Tube(sa[0], sa[1], np.full(len(sa[1]), 4.5))))
        sv = resample_curve(np.array([[m * 14, 38 + y0, -62], [m * 42, 34 + y0, -34], [m * 72 * w, 28 + y0, -36],
                                      [m * 100 * w, 26 + y0, -52 - drop / 2], [m * 126 * w, 24 + y0, -76 - drop]]), 0.5)
        add((T["vein"], Tube(sv[0], sv[1], np.full(len(sv[1]), 6.0))))
    # airway and oesophagus
    add((0, _ext("z", [-60, 160], 0.0, 30 + y0, 9.5, 8.5)))
    add((T["soft_tissue"], _ext("z", [-150, 160], -3.0, 14 + y0, 8.0, 4.0)))
    # plexus: roots then trunks
    roots = {}
    for side in SIDES:
        for seg in ROOTS:
            pts, i_for = _root_controls(seg, side, p)
            curve, s = resample_curve(pts, 0.25)
            s_for = float(s[np.argmin(np.linalg.norm(curve - pts[i_for], axis=1))])
            r0 = np.sqrt(root_csa[(seg, side)] / np.pi)
            radius = root_radius_profile(s, s_for, r0, root_lesions.get((seg, side)))
            roots[(seg, side)] = RootModel(seg, side, curve, s, radius, s_for)
            add((T["intermuscular_fat"], Tube(curve, s, np.full(len(s), 4.2), (s_for - 8.0, s_for + 4.0))))
        for name, pts in _trunk_controls(side, p).items():
            curve, s = resample_curve(pts, 0.5)
            radius = np.full(len(s), {"upper": 2.9, "middle": 2.5, "lower": 2.6}[name])
            add((T["nerve_trunk"], Tube(curve, s, radius)))
        for seg in ROOTS:
            rm = roots[(seg, side)]
            add((root_label(seg, side), rm.tube((0.0, rm.s_foramen + ROOT_LABEL_END_MM))))
            add((T["nerve_trunk"], rm.tube((rm.s_foramen + ROOT_LABEL_END_MM, rm.s[-1]))))
    landmarks = {"c4_z": 66.0 * h, "axilla_z": -80.0 - max(p.shoulder_drop.values()), "y_center": -5.0 + y0,
                 "vertebrae": vertebra_centers(p)}
    return Anatomy(S, roots, landmarks)


#: Vertebral body centres (name, z mm before the height scale) of the classic spine.
SPINE_LEVELS = (("C3", 84), ("C4", 66), ("C5", 48), ("C6", 30), ("C7", 12), ("T1", -6), ("T2", -25), ("T3", -44),
                ("T4", -63), ("T5", -82), ("T6", -101), ("T7", -120), ("T8", -139))


def vertebra_centers(p: BodyParams) -> dict[str, list[float]]:
    """World centre (mm) of each vertebral body of the classic spine."""
    return {name: [0.0, 1.0 + p.y_shift + (0.0 if name.startswith("C") else 4.0), zc * p.height]
            for name, zc in SPINE_LEVELS}


def _add_spine(S: list, p: BodyParams) -> None:
    h, y0 = p.height, p.y_shift
    for name, zc in SPINE_LEVELS:
        zc *= h
        cerv = name.startswith("C")
        half = (6.5 if cerv else 8.0) * h
        a, b = (9.0, 8.0) if cerv else (13.0, 11.0)
        body = _ext("z", [zc - half, zc + half], 0.0, 1.0 + y0 + (0 if cerv else 4), a, b)
        S.append((T["cortical_bone"], body))
        S.append((T["marrow"], body.peeled(1.2)))
        S.append((T["disc"], _ext("z", [zc - 9.0 * h - (1.0 if not cerv else 0), zc - half],
                                  0.0, 1.0 + y0 + (0 if cerv else 4), a - 0.5, b - 0.5)))
        arch = _ext("z", [zc - half, zc + half], 0.0, -19.0 + y0, 21.0, 15.0, clip=box(y=(-100, y0 - 9)))
        S.append((T["cortical_bone"], arch))
        spinous = _ext("z", [zc - half, zc + half], 0.0, -40.0 + y0, 4.5, 14.0)
        S.append((T["cortical_bone"], spinous))
        S.append((T["marrow"], spinous.peeled(1.5)))
        tp_len = 30.0 if cerv else 34.0
        for m in (1.0, -1.0):
            knots = np.array([8.0, tp_len]) * m
            knots.sort()
            S.append((T["cortical_bone"], Extrusion("x", knots, -3.0 + y0 - (0 if cerv else 8), zc - 1.0, 5.5, 4.5)))
    S.append((T["csf"], _ext("z", [-150, 160], 0.0, -16.0 + y0, 12.0, 7.5)))
    S.append((T["spinal_cord"], _ext("z", [-150, -20, 10, 160], 0.0, -15.5 + y0, [5.0, 5.0, 6.5, 6.5], [4.0, 4.0, 4.5, 4.5])))
