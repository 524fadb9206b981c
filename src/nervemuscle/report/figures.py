"""Key images in the style of the seed paper's figure: axial T1 and fat-suppressed T2 at the plexus
level and at the shoulder level, abnormal roots and muscles outlined and named."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from nervemuscle.anatomy import label_names as default_label_names
from nervemuscle.report import raster
from nervemuscle.report.qc import axial_display, canonical, display_window, labels_on_slice, plane_display
from nervemuscle.volume import Volume

#: Muscles that define the shoulder level (glenohumeral joint): the largest summed area of these.
SHOULDER_MUSCLES = ("deltoid", "infraspinatus", "subscapularis", "supraspinatus")
ABNORMAL_RGB = raster.hex_rgb("#ff3030")
NORMAL_RGB = raster.hex_rgb("#40c0ff")

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


def _panel(image: Volume, window: tuple[float, float], overlays: list[Volume], z: float, abnormal: dict[int, str],
           width: int) -> tuple[np.ndarray, int]:
    """The axial slice of ``image`` nearest ``z`` with every label outlined (abnormal ones thick, red, named).

    Returns the (h, w, 3) uint8 panel and the slice index.
    """
    img = canonical(image)
    k = _slice_at(img, z)
    plane = axial_display(img.data, k)
    pixel_mm = (float(img.spacing[1]), float(img.spacing[0]))
    size = raster.panel_size(plane.shape, pixel_mm, width)
    rgb = raster.grey(plane, *window, size)
    names: list[tuple[str, float, float, float]] = []  # caption, centre x, centre y, top y (pixels)
    for labels in overlays:
        lab = raster.nearest(plane_display(labels_on_slice(labels, img, k)), size)
        rims = raster.edges(lab)
        for code in np.unique(lab[lab > 0]):
            region = lab == code
            if int(code) in abnormal:
                rgb[raster.thicken(rims & region)] = ABNORMAL_RGB
                rows, cols = np.nonzero(region)
                names.append((abnormal[int(code)], cols.mean(), rows.mean(), rows.min()))
            else:
                rgb[rims & region] = NORMAL_RGB
    image_out = Image.fromarray(rgb)
    draw = ImageDraw.Draw(image_out)
    mm = size[0] / (plane.shape[1] * pixel_mm[1])  # screen pixels per mm
    for caption, x, y, top in names:
        ty = max(top - 12 * mm, 10)
        draw.line([(x, ty + 6), (x, y)], fill=ABNORMAL_RGB, width=1)
        draw.text((x, ty), caption, fill=ABNORMAL_RGB, font=raster.font(11), anchor="md")
    return np.asarray(image_out), k


def key_images(path: str | Path, findings: dict[str, Any], *, t1: Volume | None, fluid: Volume | None,
               muscle_labels: Volume | None, nerve_labels: Volume | None, fluid_role: str = "t2fs",
               names: dict[int, str] | None = None, panel_width: int = 440) -> Path | None:
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
    windows = [display_window(np.asarray(vol.data, dtype=np.float32)) for vol, _ in columns]
    panels, captions = [], []
    for z, level in rows:
        for (vol, title), window in zip(columns, windows):
            panel, k = _panel(vol, window, overlays, z, abnormal, panel_width)
            z_k = canonical(vol).voxel_to_world(np.array([[0, 0, k]]))[0, 2]
            panels.append(panel)
            captions.append(f"{title}, {level}\nz = {z_k:.0f} mm")
    figure = raster.grid(panels, captions, len(columns),
                         footer="red: abnormal (grade >= 1); blue: normal; patient right on the left")
    return raster.save_png(figure, path)
