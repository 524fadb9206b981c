"""PNG gallery of phantom images for docs/phantom.md (``python -m nervemuscle.phantom.gallery docs/img``).

Axial images are shown in radiological convention (patient right on the image left, anterior up);
coronal STIR as a thin-slab maximum intensity projection through the plexus, as read clinically.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

#: (phenotype, seed, caption) of the cases shown.
CASES = (
    ("normal", 1, "normal"),
    ("als", 4, "ALS: right C5/C6 T2 up; right deltoid edema + atrophy + fat"),
    ("mmn", 17, "MMN: right C6 focal fusiform thickening, C5-C8 diffuse/focal"),
)


def _axial_slice(vol, z: float) -> np.ndarray:
    k = int(round(vol.world_to_voxel(np.array([[0.0, 0.0, z]]))[0, 2]))
    return vol.data[:, :, int(np.clip(k, 0, vol.shape[2] - 1))].T


def _crop(vol, img: np.ndarray, x_range, y_range) -> np.ndarray:
    """Crop an axial (rows j, columns i) slice to world x/y ranges."""
    corners = vol.world_to_voxel(np.array([[x_range[0], y_range[0], 0], [x_range[1], y_range[1], 0]]))
    i0, i1 = sorted(np.clip(np.rint(corners[:, 0]).astype(int), 0, vol.shape[0]))
    j0, j1 = sorted(np.clip(np.rint(corners[:, 1]).astype(int), 0, vol.shape[1]))
    return img[j0:j1, i0:i1]


def render_gallery(out_dir: str | Path) -> list[Path]:
    """Write ``phantom_axial_roots.png``, ``phantom_axial_shoulder.png``, ``phantom_stir_mip.png`` and
    ``phantom_labels.png`` into ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nervemuscle.anatomy import TISSUE_LABELS
    from nervemuscle.phantom.acquisition import acquire
    from nervemuscle.phantom.subject import make_subject

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    subjects = [make_subject(ph, seed) for ph, seed, _ in CASES]
    series = []
    for s in subjects:
        t1, lab = acquire(s, "t1_axial")
        t2, _ = acquire(s, "t2fs_axial")
        series.append((t1, t2, lab))
    paths = []

    def _window(img, pct=99.5):
        return dict(cmap="gray", vmin=0, vmax=float(np.percentile(img, pct)), interpolation="bilinear")

    for name, z, xr, yr in (("phantom_axial_roots.png", 14.0, (-110, 110), (-95, 75)),
                            ("phantom_axial_shoulder.png", -32.0, (-200, 200), (-125, 110))):
        fig, axes = plt.subplots(len(CASES), 2, figsize=(9 if "roots" in name else 12, 3.3 * len(CASES)))
        for r, ((ph, seed, caption), (t1, t2, _)) in enumerate(zip(CASES, series)):
            for c, (vol, title) in enumerate(((t1, "T1 TSE"), (t2, "T2 TSE fat-sat"))):
                img = _crop(vol, _axial_slice(vol, z), xr, yr)
                axes[r, c].imshow(img, **_window(vol.data))
                axes[r, c].set_title(f"{title} | {caption}" if c == 0 else title, fontsize=8)
                axes[r, c].axis("off")
        fig.suptitle(f"Axial, z = {z:+.0f} mm (patient right on the left)", fontsize=10)
        fig.tight_layout()
        fig.savefig(out_dir / name, dpi=110)
        plt.close(fig)
        paths.append(out_dir / name)

    fig, axes = plt.subplots(1, len(CASES), figsize=(5.2 * len(CASES), 4.6))
    for c, ((ph, seed, caption), s) in enumerate(zip(CASES, subjects)):
        stir, stir_labels = acquire(s, "stir_3d")
        ks = stir.world_to_voxel(np.array([[0, -6.0, 0], [0, 14.0, 0]]))[:, 2]
        k0, k1 = sorted(np.clip(np.rint(ks).astype(int), 0, stir.shape[2] - 1))
        mip = stir.data[:, :, k0 : k1 + 1].max(axis=2).T
        muscle = float(np.median(stir.data[stir_labels.data == TISSUE_LABELS["paraspinal_muscle"]]))
        axes[c].imshow(mip, cmap="gray", vmin=0, vmax=5 * muscle, interpolation="bilinear")
        axes[c].set_title(f"3D STIR coronal MIP (y -6..14 mm)\n{caption}", fontsize=8)
        axes[c].axis("off")
    fig.tight_layout()
    fig.savefig(out_dir / "phantom_stir_mip.png", dpi=110)
    plt.close(fig)
    paths.append(out_dir / "phantom_stir_mip.png")

    t1, t2, lab = series[2]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for c, z in enumerate((14.0, -32.0)):
        base = _axial_slice(t1, z)
        labels = _axial_slice(lab, z)
        axes[c].imshow(base, **_window(t1.data))
        overlay = np.ma.masked_where(labels < 20, labels)
        axes[c].imshow(overlay, cmap="tab20", vmin=20, vmax=60, alpha=0.55, interpolation="nearest")
        axes[c].set_title(f"T1 with graded muscle (20-35) and root (40-49) labels, z = {z:+.0f} mm", fontsize=8)
        axes[c].axis("off")
    fig.tight_layout()
    fig.savefig(out_dir / "phantom_labels.png", dpi=110)
    plt.close(fig)
    paths.append(out_dir / "phantom_labels.png")
    return paths


if __name__ == "__main__":
    for p in render_gallery(sys.argv[1] if len(sys.argv) > 1 else "docs/img"):
        print(p)
