"""QC overlays: every segmentation drawn on the image it was made on, so a reader can check it at a glance.

Images are shown in radiological convention: axial slices with the patient's right on the viewer's left
and anterior at the top; coronal views with superior at the top. Geometry comes from the affines only.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from scipy import ndimage  # noqa: E402

from nervemuscle.anatomy import label_names  # noqa: E402
from nervemuscle.volume import Volume  # noqa: E402

#: Label codes are 0..59 (see ``nervemuscle.anatomy``); one stable colour per code.
N_LABEL_CODES = 64


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


def label_colormap() -> ListedColormap:
    """Colour per label code (0 transparent), muscles and roots from distinct qualitative palettes."""
    colors = np.zeros((N_LABEL_CODES, 4))
    tab = plt.get_cmap("tab20").colors
    for code in range(1, N_LABEL_CODES):
        colors[code, :3] = tab[(code * 7) % 20]
        colors[code, 3] = 1.0
    return ListedColormap(colors)


def plane_display(plane_ij: np.ndarray) -> np.ndarray:
    """An (I, J) axial plane of a canonical (RAS) array for display: anterior up, patient right on the left."""
    return plane_ij[::-1, ::-1].T


def axial_display(data3d: np.ndarray, k: int) -> np.ndarray:
    """Axial slice ``k`` of a canonical (RAS) array for display (see :func:`plane_display`)."""
    return plane_display(data3d[:, :, k])


def coronal_display(data2d_ik: np.ndarray) -> np.ndarray:
    """An (I, K) coronal plane of a canonical array displayed with superior up, patient right left."""
    return data2d_ik[::-1, ::-1].T


def display_window(image: np.ndarray) -> tuple[float, float]:
    """Robust grey-level window: 1st to 99.5th percentile of non-zero voxels."""
    values = image[image > 0] if np.any(image > 0) else image.ravel()
    lo, hi = np.percentile(values, [1.0, 99.5]) if values.size else (0.0, 1.0)
    return float(lo), float(max(hi, lo + 1e-6))


def labelled_slices(labels: np.ndarray, n: int) -> np.ndarray:
    """Up to ``n`` axial slice indices spread evenly over the slices that hold any label."""
    present = np.flatnonzero(labels.reshape(-1, labels.shape[2]).any(axis=0))
    if present.size == 0:
        return np.linspace(0, labels.shape[2] - 1, min(n, labels.shape[2])).round().astype(int)
    idx = np.linspace(0, present.size - 1, min(n, present.size)).round().astype(int)
    return present[np.unique(idx)]


def label_edges(labels2d: np.ndarray) -> np.ndarray:
    """Boolean mask of labelled pixels that touch a pixel of another label (4-neighbourhood)."""
    lab = np.asarray(labels2d)
    padded = np.pad(lab, 1, mode="edge")
    centre = padded[1:-1, 1:-1]
    differs = ((padded[:-2, 1:-1] != centre) | (padded[2:, 1:-1] != centre)
               | (padded[1:-1, :-2] != centre) | (padded[1:-1, 2:] != centre))
    return (lab > 0) & differs


def draw_labels(ax, labels2d: np.ndarray, extent, *, alpha: float = 0.35) -> None:
    """Each label region filled semi-transparently and outlined (opaque edge pixels), as one RGBA layer."""
    colors = label_colormap().colors
    codes = np.asarray(labels2d).astype(int) % N_LABEL_CODES
    rgba = np.asarray(colors)[codes].copy()
    rgba[..., 3] = np.where(codes > 0, alpha, 0.0)
    rgba[label_edges(codes), 3] = 1.0
    ax.imshow(rgba, extent=extent, interpolation="nearest", origin="upper")


def axial_extent(volume: Volume) -> tuple[float, float, float, float]:
    """imshow extent in mm of an axial display of a canonical volume (width along i, height along j)."""
    sx, sy = volume.spacing[0], volume.spacing[1]
    return (0.0, volume.shape[0] * sx, volume.shape[1] * sy, 0.0)


def _legend(fig, codes: np.ndarray) -> None:
    names = label_names()
    cmap = label_colormap()
    handles = [Patch(color=cmap(int(c) % N_LABEL_CODES), label=names.get(int(c), str(int(c)))) for c in codes]
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=min(6, len(handles)), fontsize=7, frameon=False)


def label_box(labels: np.ndarray, spacing: np.ndarray, margin_mm: float) -> tuple[slice, slice, slice]:
    """Index ranges of the labelled voxels' bounding box grown by ``margin_mm`` (whole array if unlabelled)."""
    idx = np.argwhere(labels > 0)
    if idx.size == 0:
        return tuple(slice(0, n) for n in labels.shape)  # type: ignore[return-value]
    grow = np.ceil(margin_mm / np.asarray(spacing)).astype(int)
    lo = np.maximum(idx.min(axis=0) - grow, 0)
    hi = np.minimum(idx.max(axis=0) + grow + 1, labels.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))  # type: ignore[return-value]


def axial_mosaic(image: Volume, labels: Volume, path: str | Path, *, title: str, n_slices: int = 12,
                 crop_margin_mm: float | None = None) -> Path:
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
    ncols = min(4, len(slices))
    nrows = int(np.ceil(len(slices) / ncols))
    aspect = img_data.shape[1] * img.spacing[1] / max(img_data.shape[0] * img.spacing[0], 1e-6)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.0 * ncols, (3.0 * aspect + 0.35) * nrows + 1.0), squeeze=False)
    vmin, vmax = display_window(np.asarray(img_data, dtype=float))
    extent = (0.0, img_data.shape[0] * img.spacing[0], img_data.shape[1] * img.spacing[1], 0.0)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, k in zip(axes.ravel(), slices):
        z = img.voxel_to_world(np.array([[0, 0, k]]))[0, 2]
        ax.imshow(axial_display(img_data, k), cmap="gray", vmin=vmin, vmax=vmax, extent=extent,
                  interpolation="bilinear")
        draw_labels(ax, axial_display(lab_data, k), extent)
        ax.set_title(f"slice {k}  z={z:.0f} mm", fontsize=8)
        ax.text(0.02, 0.5, "R", transform=ax.transAxes, color="yellow", fontsize=8, va="center")
    fig.suptitle(title, fontsize=10)
    _legend(fig, np.unique(lab.data[lab.data > 0]))
    fig.tight_layout(rect=(0, 0.07, 1, 0.97))
    return _save(fig, path)


def coronal_mip(image: Volume, labels: Volume, path: str | Path, *, title: str, slab_margin_mm: float = 10.0,
                crop_margin_mm: float = 25.0) -> Path:
    """Coronal maximum-intensity projection of ``image`` over the slab that holds the labels, labels outlined.

    The slab spans the labels' antero-posterior extent plus ``slab_margin_mm`` (a thick-slab MIP of the
    plexus, so that CSF and vessels outside it do not hide the roots); the view is cropped to the labels
    plus ``crop_margin_mm``.
    """
    img = canonical(image)
    lab = canonical(resample_labels(labels, image))
    _, sj, _ = label_box(lab.data, img.spacing, slab_margin_mm)
    si, _, sk = label_box(lab.data, img.spacing, crop_margin_mm)
    mip = coronal_display(np.asarray(img.data, dtype=float)[si, sj, sk].max(axis=1))
    lab_mip = coronal_display(lab.data[si, sj, sk].max(axis=1))
    sx, sz = img.spacing[0], img.spacing[2]
    width, height = mip.shape[1] * sx, mip.shape[0] * sz
    extent = (0.0, width, height, 0.0)
    fig, ax = plt.subplots(figsize=(7, 7 * min(1.5, height / max(width, 1e-6)) + 1.0))
    vmin, vmax = display_window(mip)
    ax.imshow(mip, cmap="gray", vmin=vmin, vmax=vmax, extent=extent, interpolation="bilinear")
    draw_labels(ax, lab_mip, extent, alpha=0.3)
    ax.set_axis_off()
    ax.text(0.02, 0.5, "R", transform=ax.transAxes, color="yellow", fontsize=9, va="center")
    fig.suptitle(title, fontsize=10)
    _legend(fig, np.unique(lab.data[lab.data > 0]))
    fig.tight_layout(rect=(0, 0.08, 1, 0.97))
    return _save(fig, path)


def write_qc(out_dir: str | Path, *, t1: Volume | None, muscle_labels: Volume | None,
             fluid: Volume | None, nerve_labels: Volume | None) -> list[Path]:
    """All QC overlays of one exam into ``out_dir``: muscle labels on T1, root labels on the fluid series.

    Returns the PNG paths written (a segmentation that does not exist is skipped).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if t1 is not None and muscle_labels is not None:
        written.append(axial_mosaic(t1, muscle_labels, out_dir / "muscles_axial.png",
                                    title="Muscle segmentation on T1 (axial, patient right on the left)"))
    if fluid is not None and nerve_labels is not None:
        written.append(axial_mosaic(fluid, nerve_labels, out_dir / "nerves_axial.png", crop_margin_mm=20.0,
                                    title="Root segmentation on the fluid-sensitive series (axial, cropped)"))
        written.append(coronal_mip(fluid, nerve_labels, out_dir / "nerves_coronal_mip.png",
                                   title="Roots: coronal thick-slab MIP of the fluid-sensitive series"))
    return written


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    fig.savefig(path, dpi=110, facecolor="white")
    plt.close(fig)
    return path
