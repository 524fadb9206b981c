"""The ``adult`` anatomy family: an adult-scale neck-shoulder region built from published dimensions.

Built independently of the ``classic`` family (:mod:`nervemuscle.phantom.anatomy`): its own solids
(:mod:`nervemuscle.phantom.solids`: oriented superquadrics, oval sweeps along 3-D curves, star-shaped
body sections), its own layout and its own numbers, whose sources are listed in docs/phantom.md
("The adult family"). It returns the same :class:`~nervemuscle.phantom.anatomy.Anatomy` contract
(ordered labelled solids, root models, landmarks), so acquisition, pathology and ground truth are shared.

Frame: RAS+ mm, x to the patient's right, y anterior, z superior; x = 0 midline, z = 0 the centre of the
C7/T1 disc, y = 0 the posterior wall of the C7/T1 vertebral bodies. What differs from ``classic``:
vertebrae C1-T4 (C2 with the dens) on a lordotic curve with pedicles, articular pillars, laminae,
spinous and transverse processes (foramina transversaria) and open intervertebral foramina; oval roots
leaving the foramina behind the vertebral arteries, with small veins beside them; humeral head and
shaft, scapula with spine, acromion, glenoid and coracoid, S-shaped clavicles, first and second ribs,
lung apices rising above the first ribs; muscles at adult volumes (deltoid several hundred ml) that run
out of the axial field of view (deltoid, pectoralis, infraspinatus, subscapularis below it); a field of
view whose top is drawn anywhere from C2 to C5; lymph nodes, fascicular texture and acquisition
artefacts (:mod:`nervemuscle.phantom.artefacts`).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from nervemuscle.anatomy import MUSCLES, ROOTS, SIDES, TISSUE_LABELS, muscle_label, root_label
from nervemuscle.phantom.anatomy import ROOT_LABEL_END_MM, Anatomy, RootModel, root_radius_profile
from nervemuscle.phantom.artefacts import ImageEffects, draw_effects
from nervemuscle.phantom.solids import Cut, Group, Minus, StarBody, Superquadric, SweptOval, Within, smooth_curve

T = TISSUE_LABELS
SIGN = {"right": 1.0, "left": -1.0}

#: Vertebral bodies: height, disc below, upper endplate width and depth, canal width and depth (mm).
#: Cervical from Panjabi et al. 1991 (Spine 16:861) and Gilad & Nissan 1986 (Spine 11:154); thoracic
#: from Panjabi et al. 1991 (Spine 16:888); rounded, see docs/phantom.md.
VERTEBRAE = {
    "C2": (20.0, 5.0, 16.0, 15.5, 24.0, 15.5),
    "C3": (14.0, 5.5, 16.0, 15.5, 24.0, 14.5),
    "C4": (14.0, 5.5, 16.5, 15.8, 24.5, 14.0),
    "C5": (14.0, 5.5, 17.0, 16.0, 25.0, 14.0),
    "C6": (14.0, 5.5, 18.5, 16.5, 25.0, 14.0),
    "C7": (15.0, 5.0, 20.0, 16.5, 24.0, 14.5),
    "T1": (16.0, 4.0, 23.0, 16.0, 21.0, 15.0),
    "T2": (17.5, 4.0, 24.5, 17.0, 18.0, 15.0),
    "T3": (18.0, 4.0, 25.5, 18.5, 17.0, 15.0),
    "T4": (18.5, 4.0, 26.0, 19.5, 16.0, 15.0),
}
LEVEL_NAMES = tuple(VERTEBRAE)
#: Levels a field of view can start from (its top at the body centre of one of them, or between).
FOV_TOP_LEVELS = ("C2", "C3", "C4", "C5")
#: Root -> vertebra below its foramen (C5 exits at C4/5 ... T1 at T1/2).
ROOT_FORAMEN = {"C5": ("C4", "C5"), "C6": ("C5", "C6"), "C7": ("C6", "C7"), "C8": ("C7", "T1"), "T1": ("T1", "T2")}


@dataclass(frozen=True)
class AdultBody:
    """Seed-drawn body of an adult-family subject (lengths mm, factors dimensionless)."""

    size: float = 1.0            # overall linear scale (about 0.9 small woman .. 1.1 large man)
    width: float = 1.0           # extra lateral scale of trunk and shoulder girdle
    spine: float = 1.0           # vertebral heights scale
    muscle: float = 1.0          # muscle bulk (cross-section scale)
    fat_mm: float = 10.0         # subcutaneous fat, mean over the trunk
    fat_posterior: float = 1.0   # posterior/anterior fat ratio (nape fat pad)
    lordosis_mm: float = 8.0     # anterior bulge of the mid-cervical spine
    shoulder_z: dict = field(default_factory=lambda: {"left": 0.0, "right": 0.0})   # + = higher
    shift: tuple = (0.0, 0.0)    # patient position in the scanner (x, y), mm
    fov_top: float = 3.5         # 2 = C2 body centre ... 5 = C5 body centre
    root_ovality: dict = field(default_factory=dict)   # (segment, side) -> a/b of the root section
    root_jitter: dict = field(default_factory=dict)    # (segment, side) -> (3,) mm
    nodes: tuple = ()            # lymph nodes: ((x, y, z), (a, b, c)) in the frame before shift
    effects: ImageEffects | None = None   # artefact strengths; junction_z relative to the T1 body, nodes unset


def draw_body(rng: np.random.Generator) -> AdultBody:
    """Draw an adult body: size, width, fat, posture and field-of-view placement."""
    size = float(rng.uniform(0.9, 1.1))
    nodes = []
    for _ in range(int(rng.integers(2, 7))):
        side = float(rng.choice([-1.0, 1.0]))
        centre = (side * rng.uniform(30, 75), rng.uniform(-25, 30), rng.uniform(-15, 70))
        semi = tuple(float(v) for v in rng.uniform([3.0, 2.5, 4.0], [6.0, 4.5, 8.0]))
        nodes.append((tuple(float(v) for v in centre), semi))
    return AdultBody(
        size=size,
        width=float(rng.uniform(0.93, 1.08)),
        spine=float(rng.uniform(0.94, 1.06)),
        muscle=float(rng.uniform(0.85, 1.15)),
        fat_mm=float(rng.uniform(4.0, 24.0)),
        fat_posterior=float(rng.uniform(0.9, 1.6)),
        lordosis_mm=float(rng.uniform(2.0, 14.0)),
        shoulder_z={"left": float(rng.uniform(-8, 8)), "right": float(rng.uniform(-8, 8))},
        shift=(float(rng.uniform(-8, 8)), float(rng.uniform(-10, 10))),
        fov_top=float(rng.uniform(2.0, 5.0)),
        root_ovality={(seg, s): float(rng.uniform(1.15, 1.45)) for seg in ROOTS for s in SIDES},
        root_jitter={(seg, s): tuple(float(v) for v in rng.normal(0.0, [2.5, 1.5, 2.0])) for seg in ROOTS for s in SIDES},
        nodes=tuple(nodes),
        effects=draw_effects(rng, 8.0, (), int(rng.integers(2**31))),
    )


@dataclass
class AdultAnatomy(Anatomy):
    """:class:`~nervemuscle.phantom.anatomy.Anatomy` plus the subject's tissue details and artefacts."""

    effects: ImageEffects | None = None


# --- spine -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Vertebra:
    name: str
    center: np.ndarray      # body centre, world mm
    axes: np.ndarray        # rows: lateral, anterior, cranial (tilted with the curve)
    height: float
    disc: float
    width: float
    depth: float
    canal_w: float
    canal_d: float

    def at(self, lu: float, lv: float, lw: float) -> np.ndarray:
        """World point of local (lateral, anterior, cranial) coordinates from the body centre."""
        return self.center + self.axes.T @ np.array([lu, lv, lw], float)


def spine_layout(body: AdultBody) -> dict[str, Vertebra]:
    """Vertebrae C2-T4 on a lordotic/kyphotic curve; z = 0 at the C7/T1 disc centre."""
    k = body.size * body.spine
    dims = {n: (h * k, d * k, w * body.size, dp * body.size, cw * body.size, cd * body.size)
            for n, (h, d, w, dp, cw, cd) in VERTEBRAE.items()}
    names = list(dims)
    z = {}
    i7 = names.index("C7")
    z["C7"] = dims["C7"][1] / 2 + dims["C7"][0] / 2
    for i in range(i7 - 1, -1, -1):
        up, lo = names[i], names[i + 1]
        z[up] = z[lo] + dims[lo][0] / 2 + dims[up][1] + dims[up][0] / 2
    for i in range(i7 + 1, len(names)):
        up, lo = names[i - 1], names[i]
        z[lo] = z[up] - dims[up][0] / 2 - dims[up][1] - dims[lo][0] / 2
    z_top = z["C2"]
    sx, sy = body.shift

    def y_wall(zz):
        zz = np.asarray(zz, float)
        cerv = body.lordosis_mm * np.sin(np.pi * np.clip(zz / z_top, 0.0, 1.0))
        return np.where(zz >= 0, cerv, 0.16 * zz) + sy

    out = {}
    for n in names:
        h, d, w, dp, cw, cd = dims[n]
        zc = z[n]
        dy = float((y_wall(zc + 1.0) - y_wall(zc - 1.0)) / 2.0)
        wv = np.array([0.0, dy, 1.0]) / np.hypot(dy, 1.0)
        vv = np.array([0.0, 1.0, -dy]) / np.hypot(dy, 1.0)
        axes = np.array([[1.0, 0.0, 0.0], vv, wv])
        center = np.array([sx, float(y_wall(zc)) + dp / 2, zc])
        out[n] = Vertebra(n, center, axes, h, d, w, dp, cw, cd)
    return out


def _sweep(points, a, b, *, up=(0.0, 0.0, 1.0), step: float = 0.5, s_range=None) -> SweptOval:
    """An oval sweep through control points; ``a``/``b`` given at the control points (interpolated)."""
    curve, s = smooth_curve(points, step)
    pts = np.asarray(points, float)
    knots = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    knots = knots / knots[-1] * s[-1]
    av = np.interp(s, knots, np.broadcast_to(np.asarray(a, float), (len(pts),)))
    bv = np.interp(s, knots, np.broadcast_to(np.asarray(b, float), (len(pts),)))
    return SweptOval(curve, s, av, bv, up, s_range)


def _bone(add, solid, cortex: float = 1.3) -> None:
    """Cortical shell with marrow inside (``cortex`` mm)."""
    add((T["cortical_bone"], solid))
    add((T["marrow"], solid.grown(-cortex)))


def _add_vertebrae(add, vert: dict[str, Vertebra]) -> None:
    names = list(vert)
    for i, n in enumerate(names):               # discs first: bodies overwrite their edges
        v = vert[n]
        if i + 1 < len(names):
            below = vert[names[i + 1]]
            c = (v.at(0, 0, -v.height / 2) + below.at(0, 0, below.height / 2)) / 2
            add((T["disc"], Superquadric(c, [v.width / 2 - 0.8, v.depth / 2 - 0.8, v.disc / 2 + 0.6], v.axes, 2.3, 6.0)))
    for n in names:
        v = vert[n]
        cerv = n.startswith("C")
        hw, cw, cd = v.width / 2, v.canal_w / 2, v.canal_d
        _bone(add, Superquadric(v.center, [hw, v.depth / 2, v.height / 2], v.axes, 2.4, 8.0))
        if n == "C2":   # dens, up to the level of the atlas
            _bone(add, Superquadric(v.at(0, 1.0, v.height / 2 + 8.0), [5.0, 5.5, 9.5], v.axes, 2.0, 2.6), 1.0)
        back = -v.depth / 2
        for m in (1.0, -1.0):
            ph = (6.5 if cerv else 8.5) * v.height / 14.0
            # pedicle: from the body's posterolateral corner back to the pillar (upper half of the body)
            _bone(add, Superquadric(v.at(m * (cw + 2.6), back - 3.0, 1.5), [2.6, 4.5, ph / 2], v.axes, 2.2, 4.0), 0.9)
            # articular pillar (lateral mass), the posterior wall of the foramina
            pillar = [5.0, 5.5, v.height / 2 + 2.0] if cerv else [4.0, 5.0, v.height / 2 + 1.0]
            _bone(add, Superquadric(v.at(m * (cw + 4.0), back - 11.0, -1.0), pillar, v.axes, 2.2, 3.0), 1.0)
            # lamina to the midline
            _bone(add, _sweep([v.at(m * (cw + 2.0), back - 14.0, -1.0), v.at(m * cw * 0.55, back - cd - 2.0, -1.5),
                               v.at(0, back - cd - 4.0, -2.0)], v.height * 0.32, 2.4, up=tuple(v.axes[2])), 0.8)
            if cerv and n != "C2":   # transverse process: anterior and posterior bars around the foramen transversarium
                _bone(add, _sweep([v.at(m * (hw - 1.0), back + 9.0, -1.0), v.at(m * (cw + 12.0), back + 8.0, -2.0),
                                   v.at(m * (cw + 15.0), back + 8.5, -3.0)], 2.6, 2.2, up=tuple(v.axes[2])), 0.7)
                _bone(add, _sweep([v.at(m * (cw + 3.0), back - 5.0, -1.0), v.at(m * (cw + 12.0), back - 2.5, -2.0),
                                   v.at(m * (cw + 15.5), back - 4.0, -3.0)], 2.6, 2.4, up=tuple(v.axes[2])), 0.7)
            elif not cerv:           # thoracic transverse process, posterolateral, meets its rib
                _bone(add, _sweep([v.at(m * (cw + 3.0), back - 10.0, 0.0), v.at(m * (cw + 20.0), back - 18.0, 1.0)],
                                  4.5, 4.0, up=tuple(v.axes[2])), 1.0)
        # spinous process: short and bifid-ish in the neck, long and steep in the thorax
        length = {"C2": 26, "C7": 34}.get(n, 22 if cerv else 36) * v.height / 14.0 * (0.75 if not cerv else 1.0)
        drop = 0.35 if cerv else 0.9
        root = v.at(0, back - cd - 4.0, -2.0)
        tip = v.at(0, back - cd - 4.0 - length, -2.0 - drop * length)
        _bone(add, _sweep([root, (root + tip) / 2, tip], [4.5, 3.5, 4.5], [3.2, 2.8, 3.8], up=tuple(v.axes[2])), 1.0)
    # atlas (C1): anterior arch in front of the dens, lateral masses, posterior arch
    c2 = vert["C2"]
    lvl = c2.height / 2 + 10.0
    _bone(add, _sweep([c2.at(-9.0, c2.depth / 2 - 2.0, lvl), c2.at(0, c2.depth / 2 + 3.5, lvl), c2.at(9.0, c2.depth / 2 - 2.0, lvl)],
                      5.0, 2.6, up=tuple(c2.axes[2])), 0.8)
    for m in (1.0, -1.0):
        _bone(add, Superquadric(c2.at(m * (c2.canal_w / 2 + 3.0), -c2.depth / 2 + 2.0, lvl), [6.0, 8.0, 7.0], c2.axes, 2.2, 2.6))
        _bone(add, _sweep([c2.at(m * (c2.canal_w / 2 + 3.0), -c2.depth / 2 - 4.0, lvl), c2.at(m * 10.0, -c2.depth / 2 - 18.0, lvl),
                           c2.at(0, -c2.depth / 2 - 22.0, lvl)], 4.0, 2.6, up=tuple(c2.axes[2])), 0.8)


def _canal(vert: dict[str, Vertebra], z_lo: float, z_hi: float):
    """CSF sac and cord along the canal (sweeps through the canal centre of each vertebra)."""
    names = list(vert)
    pts = [vert[n].at(0, -vert[n].depth / 2 - vert[n].canal_d / 2, 0) for n in names]
    pts = [pts[0] + np.array([0, 0, z_hi - pts[0][2]])] + pts + [pts[-1] + np.array([0, 0, z_lo - pts[-1][2]])]
    cw = [vert[names[0]].canal_w] + [vert[n].canal_w for n in names] + [vert[names[-1]].canal_w]
    cd = [vert[names[0]].canal_d] + [vert[n].canal_d for n in names] + [vert[names[-1]].canal_d]
    csf = _sweep(pts, np.array(cw) * 0.42, np.array(cd) * 0.42, up=(1.0, 0.0, 0.0), step=1.0)
    # cord: cervical enlargement C4-T1 (Kameyama et al. 1996: transverse 12-13 mm at C5-C6, AP 7-8 mm)
    zs = np.array([p[2] for p in pts])
    width = np.interp(zs, [-80, -10, 20, 60, 100, 160], [8.5, 9.5, 12.5, 12.8, 11.5, 11.0])
    apd = np.interp(zs, [-80, 0, 60, 160], [6.5, 7.0, 7.8, 8.0])
    cord = _sweep(pts, width / 2, apd / 2, up=(1.0, 0.0, 0.0), step=1.0)
    return csf, cord


# --- roots -------------------------------------------------------------------------------------------

def _root_points(seg: str, side: str, vert: dict[str, Vertebra], body: AdultBody, junction: np.ndarray) -> tuple[np.ndarray, int]:
    """Control points of a root from the cord to its trunk junction; index of the foramen point."""
    m = SIGN[side]
    upper, lower = (vert[n] for n in ROOT_FORAMEN[seg])
    zf = (upper.at(0, 0, -upper.height / 2)[2] + lower.at(0, 0, lower.height / 2)[2]) / 2
    v = upper if seg != "T1" else lower
    cw = v.canal_w / 2
    wall = v.center[1] - v.depth / 2
    cx = v.center[0]
    jit = np.asarray(body.root_jitter.get((seg, side), (0.0, 0.0, 0.0)))
    k = ROOTS.index(seg)
    pts = np.array([
        [cx + m * 4.5, wall - v.canal_d / 2, zf + 7.0],                       # rootlets leave the cord
        [cx + m * (cw - 2.0), wall - 3.5, zf + 2.5],
        [cx + m * (cw + 5.0), wall - 2.0, zf],                                # foramen
        [cx + m * (cw + 15.0), wall + 1.5, zf - 3.5 - 0.4 * k],               # over the transverse process
        [cx + m * (cw + 29.0), wall + 5.0, zf - 9.0 - 1.2 * k] + jit * [m, 1, 1],   # interscalene
        junction,
    ])
    return pts, 2


def _trunk_paths(side: str, g: dict) -> dict[str, np.ndarray]:
    """Upper, middle and lower trunks: from their junctions under the clavicle toward the axilla."""
    m = SIGN[side]
    hh = g["head"][side]
    x0 = g["sx"]
    out = {}
    for name, j in g["junction"][side].items():
        drop = {"upper": 0.0, "middle": -4.0, "lower": -8.0}[name]
        dy = {"upper": 4.0, "middle": 0.0, "lower": -4.0}[name]
        out[name] = np.array([
            j,
            [x0 + m * 95 * g["w"], g["sy"] + 16 + dy, j[2] - 18 + drop / 2],
            [x0 + m * (abs(hh[0] - x0) - 45), hh[1] + 28 + dy, hh[2] - 40 + drop],
            [x0 + m * (abs(hh[0] - x0) - 30), hh[1] + 24 + dy, hh[2] - 90 + drop],
        ])
    return out


# --- body and muscles --------------------------------------------------------------------------------

def _trunk(body: AdultBody, zh: float, hx: float) -> StarBody:
    """Neck, shoulder tops and thorax (without the deltoid bulges and arms) as star-shaped sections;
    ``zh`` is the height of the humeral heads and ``hx`` their distance from the midline."""
    s, w = body.size, body.width
    f = body.fat_mm
    sx, sy = body.shift
    # knots: below the axilla, humeral heads, acromion (shoulder top), trapezius slope, neck base, neck
    z = np.array([-260 * s, zh - 50 * s, zh - 10 * s, zh + 22 * s, zh + 38 * s, zh + 60 * s, zh + 85 * s, zh + 130 * s,
                  max(170 * s, zh + 140 * s)])
    rx = np.array([140 * s * w, 140 * s * w, 150 * s * w, hx + 18 * s, hx - 15 * s, 110 * s * w, 64 * s, 58 * s, 58 * s]) \
        + f * np.array([1, 1, 1, 0.9, 0.8, 0.7, 0.5, 0.5, 0.5])
    ry = np.array([100, 104, 104, 80, 66, 66, 70, 68, 70.0]) * s + f * np.array([1, 1, 1, 0.9, 0.8, 0.7, 0.6, 0.5, 0.5])
    # the section centre moves forward in the chest: a first harmonic (sin theta) shifts the outline in y
    cy = np.array([8, 6, 4, -10, -14, -14, -14, -14, -12.0]) * s
    c4 = np.array([-8, -8, -9, -6, -2, -2, 0, 0, 0.0]) * s    # squarer chest, round neck
    c0 = (rx + ry) / 2 - c4                                   # r(0) = rx and r(90 deg) = ry exactly
    c2 = (rx - ry) / 2
    s1 = np.array([4, 4, 4, 2, 0, 2, 2, 2, 2.0]) * s + cy     # anterior side a little fuller
    cos = np.column_stack([c0, np.zeros_like(c0), c2, np.zeros_like(c0), c4])
    sin = np.column_stack([np.zeros_like(c0), s1, np.zeros_like(c0), np.zeros_like(c0), np.zeros_like(c0)])
    return StarBody(z, sx, sy, cos, sin)


def _fat_depth(body: AdultBody):
    """Subcutaneous fat thickness (mm) as a function of the polar angle: thicker over the nape and back."""
    f, post = body.fat_mm, body.fat_posterior

    def depth(theta):
        back = np.clip(-np.sin(theta), 0.0, 1.0)
        return f * (1.0 + (post - 1.0) * back)
    return depth


def shoulder_geometry(body: AdultBody, vert: dict[str, Vertebra]) -> dict:
    """Landmarks of the shoulder girdle per side (humeral head centre, glenoid, acromion, ...)."""
    s, w = body.size, body.width
    sx, sy = body.shift
    g = {"w": w * s, "sx": sx, "sy": sy, "head": {}, "junction": {}}
    t2 = vert["T2"].center[2]
    for side in SIDES:
        m = SIGN[side]
        zh = t2 - 4.0 * s + body.shoulder_z[side]
        g["head"][side] = np.array([sx + m * 168.0 * w * s, sy - 22.0 * s, zh])
        g["junction"][side] = {
            "upper": np.array([sx + m * 63.0 * w * s, sy + 9.0, vert["C6"].center[2] - 6.0 * s]),
            "middle": np.array([sx + m * 67.0 * w * s, sy + 7.0, vert["C7"].center[2] - 12.0 * s]),
            "lower": np.array([sx + m * 64.0 * w * s, sy + 4.0, vert["T1"].center[2] - 9.0 * s]),
        }
    return g


def _muscle_solids(side: str, g: dict, body: AdultBody, trunk: StarBody, vert: dict, k: dict, deep: dict) -> list:
    """Graded muscles of one side, ``[(name, solid), ...]``; ``k[name]`` scales cross-sections (atrophy).

    ``deep["trunk"]`` and ``deep["limb"]`` (this side's shoulder cap and arm) are the regions under the
    subcutaneous fat; the muscles that reach the surface are kept inside them.
    """
    m = SIGN[side]
    s, mb = body.size, body.muscle
    sx, sy = g["sx"], g["sy"]
    hh = g["head"][side]
    hx = abs(hh[0] - sx)
    r = {n: np.sqrt(k.get(n, 1.0)) * mb for n in MUSCLES}
    fat = _fat_depth(body)

    def X(v):
        return sx + m * v

    def layer(thick, theta, z_range):
        outer = trunk.peeled(lambda th: fat(th) + 1.5, theta, z_range)
        return Minus(outer, [trunk.peeled(lambda th: fat(th) + 1.5 + thick, None, z_range)])

    out = []
    # trapezius: thin posterior layer of the trunk plus the thick upper fibres from the nape to the acromion
    th = (-88.0, -12.0) if m > 0 else (-168.0, -92.0)
    upper = _sweep([[X(10), sy - 72 * s, vert["C3"].center[2]], [X(45 * s), sy - 60 * s, vert["C6"].center[2]],
                    [X(95 * g["w"]), sy - 52 * s, hh[2] + 42], [X(hx - 15), hh[1] - 8, hh[2] + 34]],
                   np.array([14, 22, 22, 12.0]) * s * r["trapezius"], np.array([7, 9, 8, 5.0]) * s * r["trapezius"],
                   up=(0.0, 0.0, 1.0), step=1.0)
    out.append(("trapezius", Group([layer(7.0 * s * r["trapezius"] ** 2, th, (-260 * s, vert["C5"].center[2])),
                                    Within(upper, deep["trunk"])])))
    # pectoralis major: anterior chest layer below the clavicle plus the axillary fold to the humerus
    tp = (14.0, 88.0) if m > 0 else (92.0, 166.0)
    fold = _sweep([[X(70 * s), sy + 88 * s, hh[2] - 50], [X(115 * g["w"]), sy + 70 * s, hh[2] - 40],
                   [X(hx - 12), hh[1] + 32, hh[2] - 48]],
                  np.array([40, 34, 14.0]) * s * r["pectoralis_major"], np.array([9, 10, 6.0]) * s * r["pectoralis_major"],
                  up=(0.0, 0.0, 1.0), step=1.0)
    out.append(("pectoralis_major", Group([layer(14.0 * s * r["pectoralis_major"] ** 2, tp, (hh[2] - 150 * s, hh[2] - 14)),
                                           Within(fold, Group([deep["trunk"], deep["limb"]]))])))
    # scalenes: transverse-process tubercles to the first rib
    ant = [[X(vert["C4"].canal_w / 2 + 14), vert["C4"].center[1] + 3, vert["C4"].center[2]],
           [X(vert["C6"].canal_w / 2 + 15), vert["C6"].center[1] + 4, vert["C6"].center[2]],
           [X(43 * s), sy + 14 * s, vert["T1"].center[2] - 14 * s]]
    out.append(("anterior_scalene", _sweep(ant, np.array([5.0, 7.5, 6.5]) * r["anterior_scalene"],
                                           np.array([4.0, 5.5, 4.5]) * r["anterior_scalene"], up=(1.0, 0.0, 0.0))))
    mid = [[X(vert["C3"].canal_w / 2 + 13), vert["C3"].center[1] - 11, vert["C3"].center[2]],
           [X(vert["C5"].canal_w / 2 + 16), vert["C5"].center[1] - 12, vert["C5"].center[2]],
           [X(vert["C7"].canal_w / 2 + 22), vert["C7"].center[1] - 11, vert["C7"].center[2]],
           [X(56 * s), sy - 6 * s, vert["T1"].center[2] - 16 * s]]
    out.append(("middle_scalene", _sweep(mid, np.array([6.0, 9.0, 9.5, 7.0]) * r["middle_scalene"],
                                         np.array([5.0, 7.0, 7.5, 5.0]) * r["middle_scalene"], up=(1.0, 0.0, 0.0))))
    # rotator cuff on the scapula (the blade runs from the medial border to the glenoid, scapular plane ~35 deg)
    med_x, med_y = 72 * s, sy - 82 * s
    out.append(("supraspinatus", _sweep(
        [[X(med_x), med_y + 4, hh[2] + 26], [X(hx - 55), hh[1] - 30, hh[2] + 30], [X(hx - 20), hh[1] - 10, hh[2] + 26],
         [X(hx + 8), hh[1] - 2, hh[2] + 22]],
        np.array([13, 20, 16, 7.0]) * s * r["supraspinatus"], np.array([11, 17, 13, 5.0]) * s * r["supraspinatus"],
        up=(0.0, 0.0, 1.0), step=1.0)))
    out.append(("infraspinatus", Within(_sweep(
        [[X(med_x + 6), med_y + 2, hh[2] - 55], [X(hx - 60), hh[1] - 42, hh[2] - 40], [X(hx - 22), hh[1] - 32, hh[2] - 12],
         [X(hx + 4), hh[1] - 22, hh[2] + 2]],
        np.array([56, 58, 34, 10.0]) * s * r["infraspinatus"], np.array([13, 15, 12, 5.0]) * s * r["infraspinatus"],
        up=(0.0, 0.0, 1.0), step=1.0), deep["trunk"])))
    out.append(("subscapularis", _sweep(
        [[X(med_x + 10), med_y + 16, hh[2] - 55], [X(hx - 62), hh[1] - 14, hh[2] - 40], [X(hx - 30), hh[1] + 10, hh[2] - 14],
         [X(hx - 12), hh[1] + 20, hh[2] - 4]],
        np.array([48, 48, 30, 9.0]) * s * r["subscapularis"], np.array([12, 15, 12, 5.0]) * s * r["subscapularis"],
        up=(0.0, 0.0, 1.0), step=1.0)))
    # deltoid: a cap over the humeral head and upper shaft, open medially
    axis = [[hh[0] + m * 4, hh[1], hh[2] + 34], [hh[0] + m * 6, hh[1], hh[2]], [hh[0] + m * 4, hh[1] + 2, hh[2] - 60],
            [hh[0], hh[1] + 2, hh[2] - 115 * s]]
    t = r["deltoid"]
    outer = _sweep(axis, 27 + np.array([8, 18, 12, 2.0]) * s * t, 29 + np.array([9, 20, 13, 2.0]) * s * t,
                   up=(1.0, 0.0, 0.0), step=1.0)
    inner = _sweep(axis, [18, 28, 25, 20.0], [20, 30, 27, 22.0], up=(1.0, 0.0, 0.0), step=1.0)
    cut = [(np.array([-m, 0.0, 0.0]), -(m * sx + hx - 30.0))]     # keep the lateral part
    out.append(("deltoid", Within(Cut(Minus(outer, [inner]), cut), deep["limb"])))
    return out


def _shoulder_bones(add, side: str, g: dict, body: AdultBody, vert: dict) -> None:
    m = SIGN[side]
    s = body.size
    sx, sy = g["sx"], g["sy"]
    hh = g["head"][side]
    hx = abs(hh[0] - sx)

    def X(v):
        return sx + m * v

    # humerus: head (radius ~24 mm, Iannotti et al. 1992) and shaft (outer diameter ~22 mm)
    _bone(add, Superquadric(hh, np.array([24.0, 24.0, 25.0]) * s))
    _bone(add, _sweep([hh + [m * 2, 0, -10], hh + [m * 4, 2, -60], hh + [m * 2, 2, -260 * s]], [15.0, 11.5, 11.0],
                      [15.0, 11.5, 11.0], up=(1.0, 0.0, 0.0), step=1.0), 3.0)
    # scapula: thin blade in the scapular plane, glenoid, spine with acromion, coracoid
    med = np.array([X(68 * s), sy - 84 * s, hh[2] + 20])
    glen = hh + np.array([-m * 31 * s, -8 * s, 0.0])
    # blade: a thin lens in the scapular plane (u along the plane, v cranial, w its normal)
    lat = np.array([X(hx - 40), hh[1] - 20, hh[2] - 40])
    u = np.array([lat[0] - med[0], lat[1] - med[1], 0.0])
    u /= np.linalg.norm(u)
    plane = np.array([u, [0.0, 0.0, 1.0], np.cross(u, [0.0, 0.0, 1.0])])
    centre = (med + lat) / 2 + [0.0, 0.0, -25.0 * s]
    add((T["cortical_bone"], Superquadric(centre, [np.linalg.norm(lat[:2] - med[:2]) / 2 + 6, 80.0 * s, 3.0], plane, 2.0, 2.0)))
    _bone(add, _sweep([glen + [m * 6, -4, 0], glen + [-m * 10, -10, 0]], [20.0, 14.0], [13.0, 9.0], up=(0.0, 0.0, 1.0)), 1.5)
    spine = _sweep([med + [0, 0, -22], [X(hx - 62), hh[1] - 52, hh[2] + 18], [X(hx - 25), hh[1] - 34, hh[2] + 30],
                    [X(hx + 2), hh[1] - 8, hh[2] + 32], [X(hx + 20), hh[1] + 10, hh[2] + 30]],
                   [3.0, 8.0, 7.0, 4.5, 4.5], [3.0, 6.0, 7.0, 14.0, 14.0], up=(0.0, 0.0, 1.0), step=1.0)
    _bone(add, spine, 1.2)
    _bone(add, _sweep([glen + [-m * 4, 8, 18], glen + [-m * 2, 30, 24], glen + [m * 4, 42, 14]], [6.0, 5.5, 4.5],
                      [6.0, 5.5, 4.5], up=(0.0, 0.0, 1.0)), 1.2)          # coracoid
    # clavicle: S-curve from the manubrium to the acromion (length ~150 mm)
    clav = _sweep([[X(24 * s), sy + 72 * s, hh[2] - 8], [X(60 * s), sy + 76 * s, hh[2] + 6],
                   [X(110 * g["w"]), sy + 52 * s, hh[2] + 22], [X(hx + 4), hh[1] + 16, hh[2] + 32]],
                  [8.0, 6.5, 6.0, 5.5], [9.0, 7.0, 6.5, 9.0], up=(0.0, 0.0, 1.0), step=1.0)
    _bone(add, clav, 1.8)
    # first and second ribs: from the T1/T2 transverse processes round to the manubrium
    for level, reach, dz in (("T1", 1.0, 0.0), ("T2", 1.22, -22.0)):
        v = vert[level]
        rib = _sweep([v.at(m * 12.0, -v.depth / 2 - 4.0, 0.0), v.at(m * 30.0, -v.depth / 2 - 16.0, 0.0),
                      [X(62 * reach * s), sy - 8 * s, v.center[2] - 10 + dz * 0.2],
                      [X(66 * reach * s), sy + 40 * s, v.center[2] - 28 + dz * 0.5],
                      [X(30 * s), sy + 78 * s, v.center[2] - 38 + dz]],
                     [3.5, 4.0, 4.0, 4.0, 4.0], [4.5, 7.0, 9.0, 8.0, 7.0], up=(0.0, 0.0, 1.0), step=1.0)
        _bone(add, rib, 1.2)


def build_adult_anatomy(body: AdultBody, root_csa: dict, root_lesions: dict, muscle_scale: dict) -> Anatomy:
    """Assemble the painted solids of one adult-family subject.

    Parameters
    ----------
    body : AdultBody
    root_csa : dict[(segment, side)] -> float
        Normal extraforaminal CSA of each root (mm²); the section is an oval of that area.
    root_lesions : dict[(segment, side)] -> dict or None
        Lesions for :func:`~nervemuscle.phantom.anatomy.root_radius_profile` (the shared pathology model).
    muscle_scale : dict[(muscle, side)] -> float
        Cross-sectional area factor (1 - atrophy) of each graded muscle.

    Returns
    -------
    Anatomy
        ``landmarks`` has ``fov_top_z``, ``y_center``, ``c4_z`` and ``vertebrae`` (name -> body centre).
    """
    s = body.size
    sx, sy = body.shift
    vert = spine_layout(body)
    g = shoulder_geometry(body, vert)
    zh = float(np.mean([g["head"][sd][2] for sd in SIDES]))
    trunk = _trunk(body, zh, float(np.mean([abs(g["head"][sd][0] - sx) for sd in SIDES])))
    fat = _fat_depth(body)
    S: list = []
    add = S.append
    # skin and subcutaneous fat of trunk, shoulders and arms
    limbs = {}
    for side in SIDES:
        m = SIGN[side]
        hh = g["head"][side]
        reach = 58.0 * s * body.muscle + body.fat_mm * 0.9
        top = 38.0 * s * body.muscle + body.fat_mm * 0.6
        cap = Superquadric(hh + [m * 6, 2, -10], [reach + 2, reach + 4, top + 10])
        limbs[side] = (Cut(cap, [(np.array([0.0, 0.0, 1.0]), zh + 20.0 * s)]),     # the trunk covers the top
                       _sweep([hh + [m * 6, 2, -10], hh + [m * 4, 4, -90], hh + [m * 2, 4, -300 * s]],
                              [reach - 2, reach - 12, reach - 16], [reach, reach - 8, reach - 14], up=(1.0, 0.0, 0.0), step=1.0))
    add((T["skin"], Group([trunk, *[p for pair in limbs.values() for p in pair]])))
    add((T["subcutaneous_fat"], Group([trunk.peeled(1.6), *[p.grown(-1.6) for pair in limbs.values() for p in pair]])))
    deep_trunk = trunk.peeled(lambda th: fat(th) + 1.6)
    deep = Group([deep_trunk, *[p.grown(-1.6 - 0.9 * body.fat_mm) for pair in limbs.values() for p in pair]])
    add((T["intermuscular_fat"], deep))
    # chest wall and mediastinum, then the lungs with their apices above the first ribs
    t1 = vert["T1"].center[2]
    # thorax: a dome whose top reaches the first ribs near the spine and falls off laterally
    add((T["soft_tissue"], Superquadric([sx, sy + 14.0 * s, t1 - 165.0 * s], [136.0 * s * body.width, 82.0 * s, 168.0 * s])))
    for side in SIDES:
        m = SIGN[side]
        apex = np.array([sx + m * 48 * s * body.width, sy + 4 * s, t1 + 14 * s])
        add((T["lung"], _sweep([apex, apex + [m * 8, 2, -30 * s], apex + [m * 22, 6, -90 * s], apex + [m * 26, 8, -300 * s]],
                               np.array([1.0, 26, 48, 56]) * s * body.width, np.array([1.0, 30, 62, 70]) * s,
                               up=(1.0, 0.0, 0.0), step=1.0)))
    # deep neck and back muscles (reference muscle, label 14): erector/semispinalis/splenius columns
    for side in SIDES:
        m = SIGN[side]
        zs = [-260 * s, -60 * s, vert["T1"].center[2], vert["C6"].center[2], vert["C3"].center[2], 170 * s]
        col = _sweep([[sx + m * 26 * s, vert["T3"].center[1] - 55 * s, zs[0]], [sx + m * 27 * s, vert["T3"].center[1] - 52 * s, zs[1]],
                      [sx + m * 28 * s, vert["T1"].center[1] - 48 * s, zs[2]], [sx + m * 27 * s, vert["C6"].center[1] - 45 * s, zs[3]],
                      [sx + m * 24 * s, vert["C3"].center[1] - 42 * s, zs[4]], [sx + m * 24 * s, vert["C3"].center[1] - 40 * s, zs[5]]],
                     np.array([22, 22, 24, 26, 24, 22.0]) * s * body.muscle, np.array([22, 24, 26, 26, 24, 22.0]) * s * body.muscle,
                     up=(1.0, 0.0, 0.0), step=1.0)
        add((T["paraspinal_muscle"], col))
        # levator scapulae (ungraded, soft tissue) and sternocleidomastoid
        hh = g["head"][side]
        add((T["soft_tissue"], _sweep([[sx + m * 40 * s, vert["C3"].center[1] - 14, vert["C3"].center[2] + 10],
                                       [sx + m * 52 * s, vert["C6"].center[1] - 30, vert["C6"].center[2]],
                                       [sx + m * 70 * s, sy - 70 * s, hh[2] + 44]], [7.0, 10.0, 8.0], [6.0, 8.0, 6.0],
                                      up=(1.0, 0.0, 0.0))))
        add((T["soft_tissue"], _sweep([[sx + m * 58 * s, sy - 20 * s, 170 * s], [sx + m * 52 * s, sy + 20 * s, vert["C4"].center[2]],
                                       [sx + m * 36 * s, sy + 48 * s, vert["C7"].center[2]], [sx + m * 22 * s, sy + 66 * s, hh[2] + 2]],
                                      [9.0, 12.0, 10.0, 7.0], [6.0, 7.0, 7.0, 5.0], up=(1.0, 0.0, 0.0), step=1.0)))
        # longus colli in front of the vertebral bodies
        add((T["soft_tissue"], _sweep([vert[n].at(m * 7.0, vert[n].depth / 2 + 3.0, 0) for n in ("C2", "C4", "C6", "T1", "T3")],
                                      [5.0, 5.0, 5.0, 4.0, 3.0], [3.5, 3.5, 3.5, 3.0, 2.5], up=(1.0, 0.0, 0.0), step=1.0)))
    # graded muscles (atrophy leaves fat where the normal muscle was)
    for side in SIDES:
        scale = {n: muscle_scale.get((n, side), 1.0) for n in MUSCLES}
        containers = {"trunk": deep_trunk, "limb": Group([p.grown(-1.6 - 0.9 * body.fat_mm) for p in limbs[side]])}
        normal = dict(_muscle_solids(side, g, body, trunk, vert, {}, containers))
        for name, solid in _muscle_solids(side, g, body, trunk, vert, scale, containers):
            if scale[name] < 1.0:
                add((T["intermuscular_fat"], normal[name]))
            add((muscle_label(name, side), solid))
    # bones
    _add_vertebrae(add, vert)
    for side in SIDES:
        _shoulder_bones(add, side, g, body, vert)
    z_lo, z_hi = -260 * s, 170 * s
    csf, cord = _canal(vert, z_lo, z_hi)
    add((T["csf"], csf))
    add((T["spinal_cord"], cord))
    # airway, oesophagus, thyroid
    c6 = vert["C6"]
    trach = [[sx, vert[n].center[1] + vert[n].depth / 2 + 22 * s, vert[n].center[2]] for n in ("C3", "C6", "T1", "T3")]
    add((T["soft_tissue"], _sweep([[sx, c6.center[1] + c6.depth / 2 + 22 * s, c6.center[2] + 8], [sx, c6.center[1] + c6.depth / 2 + 20 * s, t1]],
                                  [26.0, 24.0], [12.0, 11.0], up=(1.0, 0.0, 0.0))))                    # thyroid
    add((0, _sweep(trach, [9.0, 9.0, 9.5, 10.0], [8.0, 8.0, 8.5, 9.0], up=(1.0, 0.0, 0.0), step=1.0)))
    add((T["soft_tissue"], _sweep([[sx - 3, p[1] - 15 * s, p[2]] for p in trach], 7.0, 4.0, up=(1.0, 0.0, 0.0), step=1.0)))
    # vessels
    for side in SIDES:
        m = SIGN[side]
        hh = g["head"][side]
        c6v = vert["C6"]
        va_x = lambda n: vert[n].center[0] + m * (vert[n].canal_w / 2 + 6.0)   # noqa: E731
        va_y = lambda n: vert[n].center[1] - vert[n].depth / 2 + 3.5          # noqa: E731
        vert_art = [[sx + m * 30 * s, sy + 18 * s, vert["T2"].center[2]], [va_x("C7"), va_y("C7") + 8, vert["C7"].center[2]],
                    [va_x("C6"), va_y("C6"), c6v.center[2]], [va_x("C4"), va_y("C4"), vert["C4"].center[2]],
                    [va_x("C2"), va_y("C2"), vert["C2"].center[2] + 8]]
        add((T["artery"], _sweep(vert_art, 2.0, 2.0, up=(1.0, 0.0, 0.0), step=0.5)))
        add((T["artery"], _sweep([[sx + m * 24 * s, sy + 36 * s, -120 * s], [sx + m * 26 * s, sy + 34 * s, vert["C7"].center[2]],
                                  [sx + m * 27 * s, sy + 30 * s, 170 * s]], 3.3, 3.3, up=(1.0, 0.0, 0.0), step=1.0)))   # carotid
        add((T["vein"], _sweep([[sx + m * 30 * s, sy + 52 * s, -60 * s], [sx + m * 38 * s, sy + 38 * s, vert["C7"].center[2]],
                                [sx + m * 40 * s, sy + 32 * s, 170 * s]], [8.0, 7.0, 6.0], [6.0, 5.0, 5.0], up=(1.0, 0.0, 0.0),
                               step=1.0)))                                                                  # internal jugular
        sub_a = [[sx + m * 14 * s, sy + 30 * s, -90 * s], [sx + m * 28 * s, sy + 20 * s, t1 - 16 * s],
                 [sx + m * 50 * s, sy + 10 * s, t1 - 8 * s], [sx + m * 78 * s * body.width, sy + 14 * s, t1 - 20 * s],
                 [hh[0] - m * 48, hh[1] + 32, hh[2] - 38], [hh[0] - m * 36, hh[1] + 28, hh[2] - 90]]
        add((T["artery"], _sweep(sub_a, [4.5, 4.2, 4.0, 3.8, 3.6, 3.4], [4.5, 4.2, 4.0, 3.8, 3.6, 3.4], up=(1.0, 0.0, 0.0), step=0.5)))
        sub_v = [[sx + m * 20 * s, sy + 54 * s, -80 * s], [sx + m * 40 * s, sy + 44 * s, t1 - 26 * s],
                 [sx + m * 80 * s * body.width, sy + 34 * s, t1 - 30 * s], [hh[0] - m * 46, hh[1] + 42, hh[2] - 42],
                 [hh[0] - m * 34, hh[1] + 38, hh[2] - 92]]
        add((T["vein"], _sweep(sub_v, [6.0, 6.0, 5.5, 5.0, 5.0], [5.0, 5.0, 5.0, 4.5, 4.5], up=(0.0, 0.0, 1.0), step=0.5)))
        # transverse cervical artery crossing the plexus
        add((T["artery"], _sweep([[sx + m * 40 * s, sy + 20 * s, t1 - 6 * s], [sx + m * 70 * s, sy + 4 * s, vert["C7"].center[2]],
                                  [sx + m * 100 * s, sy - 30 * s, vert["C7"].center[2] - 6], [sx + m * 120 * s, sy - 55 * s, t1 - 10]],
                                 1.4, 1.4, up=(1.0, 0.0, 0.0), step=0.5)))
    # lymph nodes (soft tissue in the label map; their signal is set by the image effects)
    nodes = tuple((tuple(float(v) for v in np.add(c, [sx, sy, 0.0]) * [1, 1, s]), semi) for c, semi in body.nodes)
    for centre, semi in nodes:
        add((T["soft_tissue"], Superquadric(centre, semi)))
    # plexus: fat sleeve, roots, small veins beside them, trunks
    roots = {}
    for side in SIDES:
        trunks = _trunk_paths(side, g)
        jn = g["junction"][side]
        for seg in ROOTS:
            junction = jn["upper"] if seg in ("C5", "C6") else jn["middle"] if seg == "C7" else jn["lower"]
            pts, i_for = _root_points(seg, side, vert, body, junction)
            trunk = trunks["upper" if seg in ("C5", "C6") else "middle" if seg == "C7" else "lower"]
            pts = np.vstack([pts, trunk[1]])       # the root's fibres go on in its trunk
            curve, sarc = smooth_curve(pts, 0.25)
            s_for = float(sarc[np.argmin(np.linalg.norm(curve - pts[i_for], axis=1))])
            r0 = np.sqrt(root_csa[(seg, side)] / np.pi)
            radius = root_radius_profile(sarc, s_for, r0, root_lesions.get((seg, side)))
            roots[(seg, side)] = RootModel(seg, side, curve, sarc, radius, s_for)
            add((T["intermuscular_fat"], SweptOval(curve, sarc, radius + 2.2, radius + 2.2, (0.0, 0.0, 1.0),
                                                   (s_for - 6.0, s_for + 30.0))))
            offset = np.cross(np.gradient(curve, axis=0), [0.0, 0.0, 1.0])
            offset /= np.maximum(np.linalg.norm(offset, axis=1, keepdims=True), 1e-9)
            vein = curve + (radius[:, None] + 2.4) * offset * -SIGN[side] + [0.0, 0.0, -1.0]
            add((T["vein"], SweptOval(vein, sarc, 1.0, 1.0, (0.0, 0.0, 1.0), (s_for + 4.0, s_for + 34.0))))
        for name, path in trunks.items():
            add((T["nerve_trunk"], _sweep(path, {"upper": 3.3, "middle": 2.8, "lower": 3.0}[name],
                                          {"upper": 2.5, "middle": 2.2, "lower": 2.3}[name], up=(0.0, 0.0, 1.0), step=0.5)))
        for seg in ROOTS:
            rm = roots[(seg, side)]
            e = np.sqrt(body.root_ovality.get((seg, side), 1.3))
            a, b = rm.radius * e, rm.radius / e
            add((root_label(seg, side), SweptOval(rm.curve, rm.s, a, b, (0.0, 0.0, 1.0), (0.0, rm.s_foramen + ROOT_LABEL_END_MM))))
            add((T["nerve_trunk"], SweptOval(rm.curve, rm.s, a, b, (0.0, 0.0, 1.0), (rm.s_foramen + ROOT_LABEL_END_MM, rm.s[-1]))))
    top_name = FOV_TOP_LEVELS[min(int(body.fov_top) - 2, 2)]
    frac = body.fov_top - int(body.fov_top)
    nxt = LEVEL_NAMES[LEVEL_NAMES.index(top_name) + 1]
    fov_top = (1 - frac) * vert[top_name].center[2] + frac * vert[nxt].center[2] + 10.0
    if body.fov_top >= 5.0:
        fov_top = vert["C5"].center[2] + 10.0
    landmarks = {
        "c4_z": float(vert["C4"].center[2]), "fov_top_z": float(fov_top), "y_center": float(sy + 5.0 * s),
        "vertebrae": {n: np.round(v.center, 3).tolist() for n, v in vert.items()},
    }
    effects = None
    if body.effects is not None:
        effects = replace(body.effects, junction_z=float(vert["T1"].center[2] + body.effects.junction_z), nodes=nodes)
    return AdultAnatomy(S, roots, landmarks, effects)
