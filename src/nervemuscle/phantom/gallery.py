"""PNG gallery of phantom images for docs/phantom.md (``python -m nervemuscle.phantom.gallery docs/img``;
``... docs/img --families [INGESTED_EXAM ...]`` for the anatomy families side by side).

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




def _canonical(data: np.ndarray, affine: np.ndarray):
    """(array indexed x, y, z ascending in RAS+, voxel sizes, affine) of a volume."""
    import nibabel as nib

    img = nib.as_closest_canonical(nib.Nifti1Image(np.asarray(data, np.float32), affine))
    return np.asarray(img.dataobj), np.asarray(img.header.get_zooms()[:3], float), img.affine


def _radiological(slab: np.ndarray) -> np.ndarray:
    """Axial (x, y) slice -> image with patient right on the left and anterior up."""
    return slab[::-1, ::-1].T


def _external_t1(folder: Path):
    """The axial T1 of an ingested exam folder (``nervemuscle ingest`` output): (canonical array, zooms, affine)."""
    import json

    import nibabel as nib

    info = json.loads((folder / "series.json").read_text())
    entry = next(e for e in info["series"] if e.get("role") == "t1")
    img = nib.load(str(folder / entry["file"]))
    return _canonical(np.asarray(img.dataobj), img.affine)


def render_family_gallery(out_dir: str | Path, external: list[Path] | tuple = ()) -> list[Path]:
    """Anatomy families side by side: ``phantom_families_axial.png`` (axial T1 at four heights of a classic
    subject, two adult subjects and each ingested ``external`` exam folder) and ``phantom_families_coronal.png``
    (coronal reformat of the T1 through the spinal canal and 3-D STIR MIPs through the plexus)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nervemuscle.phantom.acquisition import acquire
    from nervemuscle.phantom.subject import make_subject

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for family, phenotype, seed in (("classic", "normal", 1), ("adult", "normal", 1), ("adult", "mmn", 4)):
        s = make_subject(phenotype, seed, anatomy=family)
        t1, _ = acquire(s, "t1_axial")
        stir, _ = acquire(s, "stir_3d")
        rows.append((f"{family} {phenotype} seed {seed}", _canonical(t1.data, t1.affine),
                     _canonical(stir.data, stir.affine)))
    for folder in external:
        rows.append((f"external {Path(folder).name}", _external_t1(Path(folder)), None))
    paths = []
    fig, axes = plt.subplots(len(rows), 4, figsize=(16, 3.0 * len(rows)))
    for r, (caption, (data, zooms, _), _stir) in enumerate(rows):
        nz = data.shape[2]
        for c, frac in enumerate((0.85, 0.6, 0.35, 0.1)):
            k = int(round(frac * (nz - 1)))
            img = _radiological(data[:, :, k])
            axes[r, c].imshow(img, cmap="gray", vmin=0, vmax=float(np.percentile(data, 99.5)),
                              aspect=zooms[1] / zooms[0], interpolation="bilinear")
            axes[r, c].set_title(f"{caption} | axial T1, slice {k + 1}/{nz}" if c == 0 else f"slice {k + 1}/{nz}",
                                 fontsize=8)
            axes[r, c].axis("off")
    fig.tight_layout()
    fig.savefig(out_dir / "phantom_families_axial.png", dpi=70)
    plt.close(fig)
    paths.append(out_dir / "phantom_families_axial.png")

    phantoms = [r for r in rows if r[2] is not None]
    others = [r for r in rows if r[2] is None]
    ncol = max(len(phantoms), len(others))
    fig, axes = plt.subplots(3 if others else 2, ncol, figsize=(4.6 * ncol, 4.0 * (3 if others else 2)), squeeze=False)
    for a in axes.ravel():
        a.axis("off")
    cells = [(0, c, r) for c, r in enumerate(phantoms)] + [(2, c, r) for c, r in enumerate(others)]
    for row, c, (caption, (data, zooms, aff), stir) in cells:
        j = int(np.argmin(np.abs(aff[1, 1] * np.arange(data.shape[1]) + aff[1, 3] - 0.0)))
        if stir is None:       # an external exam: no known frame, a plane 10 mm in front of the slab centre
            j = data.shape[1] // 2 + int(round(10 / zooms[1]))
        cor = data[::-1, j, :].T[::-1]
        axes[row, c].imshow(cor, cmap="gray", vmin=0, vmax=float(np.percentile(data, 99.5)),
                            aspect=zooms[2] / zooms[0], interpolation="bilinear")
        axes[row, c].set_title(f"{caption}\ncoronal reformat of the axial T1", fontsize=8)
        if stir is not None:
            sd, sz, saff = stir
            ks = [int(np.clip(round((yy - saff[1, 3]) / saff[1, 1]), 0, sd.shape[1] - 1)) for yy in (-8.0, 14.0)]
            mip = sd[::-1, min(ks):max(ks) + 1, :].max(axis=1).T[::-1]
            axes[1, c].imshow(mip, cmap="gray", vmin=0, vmax=float(np.percentile(sd, 99.7)), interpolation="bilinear")
            axes[1, c].set_title(f"{caption}\n3-D STIR coronal MIP, y -8..14 mm", fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "phantom_families_coronal.png", dpi=70)
    plt.close(fig)
    paths.append(out_dir / "phantom_families_coronal.png")

    # adult artefacts: T2 fat-sat as acquired beside its noise-free image (no shading, ghosts or noise)
    s = make_subject("normal", 1, anatomy="adult")
    t2, _ = acquire(s, "t2fs_axial")
    clean, _ = acquire(s, "t2fs_axial", noise_free=True)
    fx = s.anatomy.effects
    ks = [int(np.clip(round(t2.world_to_voxel(np.array([[0.0, 0.0, zz]]))[0, 2]), 0, t2.shape[2] - 1))
          for zz in (fx.junction_z, s.anatomy.landmarks["vertebrae"]["C6"][2])]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    vmax = float(np.percentile(t2.data, 99.5))
    for r, k in enumerate(ks):
        for c, (vol, title) in enumerate(((t2, "T2 fat-sat as acquired"), (clean, "noise-free (tissue only)"))):
            axes[r, c].imshow(vol.data[:, :, k].T, cmap="gray", vmin=0, vmax=vmax, interpolation="bilinear")
            where = "neck-chest junction" if r == 0 else "C6"
            axes[r, c].set_title(f"adult normal seed 1, {title}, {where} (slice {k + 1})", fontsize=8)
            axes[r, c].axis("off")
    fig.tight_layout()
    fig.savefig(out_dir / "phantom_adult_artefacts.png", dpi=70)
    plt.close(fig)
    paths.append(out_dir / "phantom_adult_artefacts.png")
    return paths


if __name__ == "__main__":
    # python -m nervemuscle.phantom.gallery OUT [--families [INGESTED_EXAM_DIR ...]]
    args = sys.argv[1:]
    out = args[0] if args else "docs/img"
    if "--families" in args:
        paths = render_family_gallery(out, [Path(a) for a in args[args.index("--families") + 1:]])
    else:
        paths = render_gallery(out)
    for p in paths:
        print(p)
