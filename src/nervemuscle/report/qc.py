"""QC overlays: every segmentation drawn on the image it was made on, so a reader can check it at a glance.

Images are shown in radiological convention: axial slices with the patient's right on the viewer's left
and anterior at the top; coronal views with superior at the top. Geometry comes from the affines only.
"""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from nervemuscle.anatomy import label_names
from nervemuscle.report import raster
from nervemuscle.volume import Volume


def canonical(volume: Volume) -> Volume:
    """The same image with its voxel axes permuted/flipped to the closest RAS+ order (no resampling)."""
    ornt = nib.orientations.io_orientation(volume.affine)
    data = nib.orientations.apply_orientation(volume.data, ornt)
    affine = volume.affine @ nib.orientations.inv_ornt_aff(ornt, volume.shape)
    return Volume(np.ascontiguousarray(data), affine, volume.metadata)


def resample_labels(labels: Volume, target: Volume) -> Volume:
    """Nearest-neighbour resampling of a label map onto ``target``'s grid through both affines."""
    if labels.shape == target.shape and np.allclose(labels.affine, target.affine, atol=1e-4):
        return target.with_data(np.asarray(labels.data))
    vox_to_vox = np.linalg.inv(labels.affine) @ target.affine
    data = ndimage.affine_transform(
        np.asarray(labels.data), vox_to_vox[:3, :3], offset=vox_to_vox[:3, 3],
        output_shape=target.shape, order=0, mode="constant", cval=0,
    )
    return target.with_data(data)


def labels_on_slice(labels: Volume, image: Volume, k: int) -> np.ndarray:
    """Nearest-neighbour labels at the voxel centres of axial slice ``k`` of ``image`` (shape ``image[:, :, k]``).

    Only the one plane is sampled, so this stays cheap for large 3-D label maps.
    """
    ii, jj = np.meshgrid(np.arange(image.shape[0]), np.arange(image.shape[1]), indexing="ij")
    ijk = np.stack([ii.ravel(), jj.ravel(), np.full(ii.size, k)], axis=1)
    src = np.floor(labels.world_to_voxel(image.voxel_to_world(ijk)) + 0.5).astype(np.int64)  # as scipy order=0
    inside = np.all((src >= 0) & (src < np.array(labels.shape)), axis=1)
    out = np.zeros(ii.size, dtype=np.asarray(labels.data).dtype)
    out[inside] = np.asarray(labels.data)[tuple(src[inside].T)]
    return out.reshape(ii.shape)


def plane_display(plane_ij: np.ndarray) -> np.ndarray:
    """An (I, J) axial plane of a canonical (RAS) array for display: anterior up, patient right on the left."""
    return plane_ij[::-1, ::-1].T


def axial_display(data3d: np.ndarray, k: int) -> np.ndarray:
    """Axial slice ``k`` of a canonical (RAS) array for display (see :func:`plane_display`)."""
    return plane_display(data3d[:, :, k])


def coronal_display(data2d_ik: np.ndarray) -> np.ndarray:
    """An (I, K) coronal plane of a canonical array displayed with superior up, patient right left."""
    return data2d_ik[::-1, ::-1].T


#: Voxels sampled (evenly strided) to set the display window of large images.
WINDOW_SAMPLE = 500_000


def display_window(image: np.ndarray) -> tuple[float, float]:
    """Robust grey-level window: 1st to 99.5th percentile of non-zero voxels (of an even sample of about
    ``WINDOW_SAMPLE`` voxels for large images)."""
    flat = np.asarray(image).ravel()
    flat = flat[::max(1, flat.size // WINDOW_SAMPLE)]
    values = flat[flat > 0] if np.any(flat > 0) else flat
    lo, hi = np.percentile(values, [1.0, 99.5]) if values.size else (0.0, 1.0)
    return float(lo), float(max(hi, lo + 1e-6))


def labelled_slices(labels: np.ndarray, n: int) -> np.ndarray:
    """Up to ``n`` axial slice indices spread evenly over the slices that hold any label."""
    present = np.flatnonzero(labels.reshape(-1, labels.shape[2]).any(axis=0))
    if present.size == 0:
        return np.linspace(0, labels.shape[2] - 1, min(n, labels.shape[2])).round().astype(int)
    idx = np.linspace(0, present.size - 1, min(n, present.size)).round().astype(int)
    return present[np.unique(idx)]


def label_box(labels: np.ndarray, spacing: np.ndarray, margin_mm: float) -> tuple[slice, slice, slice]:
    """Index ranges of the labelled voxels' bounding box grown by ``margin_mm`` (whole array if unlabelled)."""
    idx = np.argwhere(labels > 0)
    if idx.size == 0:
        return tuple(slice(0, n) for n in labels.shape)  # type: ignore[return-value]
    grow = np.ceil(margin_mm / np.asarray(spacing)).astype(int)
    lo = np.maximum(idx.min(axis=0) - grow, 0)
    hi = np.minimum(idx.max(axis=0) + grow + 1, labels.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))  # type: ignore[return-value]


def legend_items(codes: np.ndarray, flagged: frozenset[int] = frozenset()) -> list[tuple[tuple[int, int, int], str]]:
    """(colour, name) of each label code present, for :func:`nervemuscle.report.raster.grid`'s legend; codes
    in ``flagged`` are named "... NOT ASSESSABLE" (segmented, but not graded: see the report)."""
    names = label_names()
    colors = raster.label_colors()
    return [(tuple(int(v) for v in colors[int(c) % raster.N_LABEL_CODES]),
             names.get(int(c), str(int(c))) + (" NOT ASSESSABLE" if int(c) in flagged else "")) for c in codes]


def overlay_panel(plane: np.ndarray, labels2d: np.ndarray, window: tuple[float, float], pixel_mm: tuple[float, float],
                  width: int, *, alpha: float = 0.35) -> np.ndarray:
    """One displayed plane with its labels filled and outlined: (h, w, 3) uint8 at ``width`` pixels, true aspect.

    Outlines are the edge voxels of the image grid (as a reader sees the segmentation voxels), enlarged.
    """
    size = raster.panel_size(plane.shape, pixel_mm, width)
    rim = raster.nearest(raster.edges(labels2d).astype(np.uint8), size) > 0
    return raster.blend_labels(raster.grey(plane, *window, size), raster.nearest(labels2d, size), rim, alpha=alpha)


def axial_mosaic(image: Volume, labels: Volume, path: str | Path, *, title: str, n_slices: int = 12,
                 crop_margin_mm: float | None = None, panel_width: int = 320,
                 flagged: frozenset[int] = frozenset()) -> Path:
    """Axial mosaic of ``labels`` (resampled to ``image``'s grid) over ``image``; PNG at ``path``.

    With ``crop_margin_mm`` the view is cropped in-plane to the labels' bounding box plus that margin
    (small structures such as roots stay visible).
    """
    img = canonical(image)
    lab = canonical(resample_labels(labels, image))  # whole volume: needed to find the labelled slices
    slices = labelled_slices(lab.data, n_slices)
    si, sj, _ = label_box(lab.data, img.spacing, crop_margin_mm) if crop_margin_mm is not None else \
        (slice(None), slice(None), None)
    img_data, lab_data = np.asarray(img.data)[si, sj], lab.data[si, sj]
    window = display_window(np.asarray(img_data, dtype=np.float32))
    pixel_mm = (float(img.spacing[1]), float(img.spacing[0]))  # displayed rows run along j, columns along i
    panels, captions = [], []
    for k in slices:
        z = img.voxel_to_world(np.array([[0, 0, k]]))[0, 2]
        panels.append(overlay_panel(axial_display(img_data, k), axial_display(lab_data, k), window, pixel_mm,
                                    panel_width))
        captions.append(f"slice {k}  z={z:.0f} mm")
    figure = raster.grid(panels, captions, min(4, len(panels)), title=title,
                         legend=legend_items(np.unique(lab.data[lab.data > 0]), flagged))
    return raster.save_png(figure, path)


def coronal_mip(image: Volume, labels: Volume, path: str | Path, *, title: str, slab_margin_mm: float = 10.0,
                crop_margin_mm: float = 25.0, width: int = 640, levels: dict[str, float] | None = None) -> Path:
    """Coronal maximum-intensity projection of ``image`` over the slab that holds the labels, labels outlined.

    The slab spans the labels' antero-posterior extent plus ``slab_margin_mm`` (a thick-slab MIP of the
    plexus, so that CSF and vessels outside it do not hide the roots); the view is cropped to the labels
    plus ``crop_margin_mm``. ``levels`` (vertebra name -> body height z, world mm) are written at the
    panel's right edge at their heights.
    """
    img = canonical(image)
    lab = canonical(resample_labels(labels, image))
    _, sj, _ = label_box(lab.data, img.spacing, slab_margin_mm)
    si, _, sk = label_box(lab.data, img.spacing, crop_margin_mm)
    mip = coronal_display(np.asarray(img.data, dtype=np.float32)[si, sj, sk].max(axis=1))
    lab_mip = coronal_display(lab.data[si, sj, sk].max(axis=1))
    pixel_mm = (float(img.spacing[2]), float(img.spacing[0]))
    _, h = raster.panel_size(mip.shape, pixel_mm, width)
    if h > 1.5 * width:  # very tall slabs: limit the height, keep the aspect
        width = int(width * 1.5 * width / h)
    panel = overlay_panel(mip, lab_mip, display_window(mip), pixel_mm, width, alpha=0.3)
    if levels:
        ks = np.arange(sk.start, sk.stop)[::-1]  # displayed rows, superior first
        row_z = img.voxel_to_world(np.stack([np.zeros_like(ks), np.zeros_like(ks), ks], axis=1))[:, 2]
        panel = vertebra_labels(panel, row_z, levels)
    figure = raster.grid([panel], [""], 1, title=title, legend=legend_items(np.unique(lab.data[lab.data > 0])))
    return raster.save_png(figure, path)


def vertebra_labels(panel: np.ndarray, row_z: np.ndarray, levels: dict[str, float]) -> np.ndarray:
    """``panel`` (h, w, 3 uint8) with each vertebra's name and a tick at its height on the right edge.

    ``row_z`` holds the world height of each displayed image row (superior first); levels outside them are
    left out.
    """
    image = Image.fromarray(panel)
    draw = ImageDraw.Draw(image)
    h, w = panel.shape[:2]
    lo, hi = float(min(row_z[0], row_z[-1])), float(max(row_z[0], row_z[-1]))
    for name, z in levels.items():
        if not lo <= z <= hi:
            continue
        y = (np.interp(z, row_z[::-1], np.arange(len(row_z))[::-1]) + 0.5) * h / len(row_z)
        draw.line([(w - 12, y), (w - 2, y)], fill=raster.YELLOW, width=2)
        draw.text((w - 14, y), name, fill=raster.YELLOW, font=raster.font(12), anchor="rm")
    return np.asarray(image)


def write_qc(out_dir: str | Path, *, t1: Volume | None, muscle_labels: Volume | None,
             fluid: Volume | None, nerve_labels: Volume | None,
             muscles_not_assessable: frozenset[int] = frozenset(),
             vertebral_levels: dict[str, float] | None = None) -> list[Path]:
    """All QC overlays of one exam into ``out_dir``: muscle labels on T1 (those in ``muscles_not_assessable``
    marked so in the legend), root labels on the fluid series (with the counted vertebrae,
    ``vertebral_levels`` name -> body height z, on the coronal MIP).

    Returns the PNG paths written (a segmentation that does not exist is skipped).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if t1 is not None and muscle_labels is not None:
        written.append(axial_mosaic(t1, muscle_labels, out_dir / "muscles_axial.png",
                                    title="Muscle segmentation on T1 (axial, patient right on the left)",
                                    flagged=muscles_not_assessable))
    if fluid is not None and nerve_labels is not None:
        written.append(axial_mosaic(fluid, nerve_labels, out_dir / "nerves_axial.png", crop_margin_mm=20.0,
                                    title="Root segmentation on the fluid-sensitive series (axial, cropped)"))
        written.append(coronal_mip(fluid, nerve_labels, out_dir / "nerves_coronal_mip.png",
                                   title="Roots: coronal thick-slab MIP of the fluid-sensitive series",
                                   levels=vertebral_levels))
    return written
