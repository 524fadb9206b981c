"""Key images in the style of the seed paper's figure: axial T1 and fat-suppressed T2 at the plexus
level and at the shoulder level, abnormal roots and muscles outlined and named."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from nervemuscle.anatomy import label_names as default_label_names  # noqa: E402
from nervemuscle.report.qc import (  # noqa: E402
    axial_display, axial_extent, canonical, display_window, labels_on_slice, plane_display,
)
from nervemuscle.volume import Volume  # noqa: E402

#: Muscles that define the shoulder level (glenohumeral joint): the largest summed area of these.
SHOULDER_MUSCLES = ("deltoid", "infraspinatus", "subscapularis", "supraspinatus")
ABNORMAL_COLOR = "#ff3030"
NORMAL_COLOR = "#40c0ff"

ROLE_TITLES = {"stir": "STIR", "t2fs": "T2 fat-sat", "dixon_water": "Dixon water", "t1": "T1",
               "dixon_in": "Dixon in-phase"}


def abnormal_structures(findings: dict[str, Any], names: dict[int, str] | None = None) -> dict[int, str]:
    """Label codes of roots and muscles with any grade >= 1, mapped to a short caption.

    ``names`` maps label codes to ``"<structure>_<side>"`` (default: :func:`nervemuscle.anatomy.label_names`).
    """
    code_of = {v: k for k, v in (names or default_label_names()).items()}
    out: dict[int, str] = {}
    for n in findings.get("nerves", []):
        if (n.get("grade") or 0) >= 1 and f"{n['segment']}_{n['side']}" in code_of:
            out[code_of[f"{n['segment']}_{n['side']}"]] = f"{n['segment']} {n['side'][0].upper()}"
    for m in findings.get("muscles", []):
        grades = [m.get(k) or 0 for k in ("edema_grade", "atrophy_grade", "fat_grade")]
        if max(grades) >= 1 and f"{m['name']}_{m['side']}" in code_of:
            out[code_of[f"{m['name']}_{m['side']}"]] = f"{m['name'].replace('_', ' ')} {m['side'][0].upper()}"
    return out


def level_z(labels: Volume | None, codes: set[int] | None = None) -> float | None:
    """World z (mm) of the axial slice with the largest area of ``codes`` (any label if ``None``)."""
    if labels is None:
        return None
    data = np.asarray(labels.data)
    mask = np.isin(data, list(codes)) if codes else data > 0
    if not mask.any():
        return None
    lab = canonical(labels.with_data(mask.astype(np.uint8)))
    k = int(np.argmax(lab.data.reshape(-1, lab.shape[2]).sum(axis=0)))
    return float(lab.voxel_to_world(np.array([[lab.shape[0] / 2, lab.shape[1] / 2, k]]))[0, 2])


def _slice_at(volume: Volume, z: float) -> int:
    centre = volume.voxel_to_world(np.array([[volume.shape[0] / 2, volume.shape[1] / 2, 0]]))[0]
    k = volume.world_to_voxel(np.array([[centre[0], centre[1], z]]))[0, 2]
    return int(np.clip(np.round(k), 0, volume.shape[2] - 1))


def _panel(ax, image: Volume, overlays: list[Volume], z: float, abnormal: dict[int, str], title: str) -> None:
    img = canonical(image)
    k = _slice_at(img, z)
    extent = axial_extent(img)
    plane = axial_display(img.data, k).astype(float)
    vmin, vmax = display_window(np.asarray(img.data, dtype=float))
    ax.imshow(plane, cmap="gray", vmin=vmin, vmax=vmax, extent=extent, interpolation="bilinear")
    sy = img.spacing[1]
    sx = img.spacing[0]
    for labels in overlays:
        lab = plane_display(labels_on_slice(labels, img, k))
        for code in np.unique(lab[lab > 0]):
            region = lab == code
            is_abnormal = int(code) in abnormal
            ax.contour(region.astype(float), levels=[0.5], extent=extent, origin="upper",
                       colors=[ABNORMAL_COLOR if is_abnormal else NORMAL_COLOR],
                       linewidths=1.4 if is_abnormal else 0.5)
            if is_abnormal:
                rows, cols = np.nonzero(region)
                ax.annotate(abnormal[int(code)], xy=(cols.mean() * sx, rows.mean() * sy),
                            xytext=(cols.mean() * sx, max(rows.min() * sy - 12, 4)), color=ABNORMAL_COLOR,
                            fontsize=7, ha="center", arrowprops={"arrowstyle": "->", "color": ABNORMAL_COLOR,
                                                                 "lw": 0.8})
    ax.text(0.02, 0.5, "R", transform=ax.transAxes, color="yellow", fontsize=9, va="center")
    ax.set_title(f"{title}\nz = {img.voxel_to_world(np.array([[0, 0, k]]))[0, 2]:.0f} mm", fontsize=9)
    ax.set_axis_off()


def key_images(path: str | Path, findings: dict[str, Any], *, t1: Volume | None, fluid: Volume | None,
               muscle_labels: Volume | None, nerve_labels: Volume | None, fluid_role: str = "t2fs",
               names: dict[int, str] | None = None) -> Path | None:
    """Write the 2 x 2 key-image figure (rows: plexus level, shoulder level; columns: T1, fluid series).

    Returns the PNG path, or ``None`` when there is no image to show.
    """
    names = names or default_label_names()
    abnormal = abnormal_structures(findings, names)
    code_of = {v: k for k, v in names.items()}
    shoulder_codes = {code for name, code in code_of.items() if name.rsplit("_", 1)[0] in SHOULDER_MUSCLES}
    plexus = level_z(nerve_labels)
    shoulder = level_z(muscle_labels, shoulder_codes) or level_z(muscle_labels)
    columns = [(t1, "Axial T1"), (fluid, f"Axial {ROLE_TITLES.get(fluid_role, fluid_role)}")]
    columns = [(vol, title) for vol, title in columns if vol is not None]
    rows = [(z, name) for z, name in ((plexus, "plexus level"), (shoulder, "shoulder level")) if z is not None]
    if not columns or not rows:
        return None
    overlays = [v for v in (nerve_labels, muscle_labels) if v is not None]
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(4.2 * len(columns), 4.0 * len(rows)),
                             squeeze=False)
    for r, (z, level) in enumerate(rows):
        for c, (vol, title) in enumerate(columns):
            _panel(axes[r, c], vol, overlays, z, abnormal, f"{title}, {level}")
    fig.text(0.5, 0.005, "red: abnormal (grade >= 1); blue: normal; patient right on the left",
             ha="center", fontsize=8)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    path = Path(path)
    fig.savefig(path, dpi=110, facecolor="white")
    plt.close(fig)
    return path
