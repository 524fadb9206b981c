"""The `Volume`: a voxel array that always carries its affine to world RAS+ millimetres."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from nervemuscle.errors import BadInputError


@dataclass
class Volume:
    """A 3-D image with its geometry.

    Parameters
    ----------
    data : (I, J, K) ndarray
        Voxel values (scaled, i.e. after RescaleSlope/Intercept).
    affine : (4, 4) ndarray
        Maps voxel indices ``(i, j, k, 1)`` to world ``(x, y, z, 1)`` in mm, RAS+.
    metadata : dict
        Source metadata (DICOM attributes, sidecar JSON, provenance). JSON-serialisable.
    """

    data: np.ndarray
    affine: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.affine = np.asarray(self.affine, dtype=np.float64)
        if self.affine.shape != (4, 4):
            raise ValueError(f"affine must be 4x4, got {self.affine.shape}")
        if self.data.ndim != 3:
            raise ValueError(f"data must be 3-D (I, J, K), got {self.data.ndim}-D")

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.data.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> np.ndarray:
        """Voxel size along i, j, k in mm."""
        return np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0))

    @property
    def orientation(self) -> str:
        """Axis codes such as ``'RAS'`` or ``'LPI'`` (nibabel ``aff2axcodes``)."""
        return "".join(nib.aff2axcodes(self.affine))

    def world_to_voxel(self, points: np.ndarray) -> np.ndarray:
        """Map (N, 3) world mm to continuous voxel indices."""
        inv = np.linalg.inv(self.affine)
        pts = np.asarray(points, dtype=float)
        return pts @ inv[:3, :3].T + inv[:3, 3]

    def voxel_to_world(self, indices: np.ndarray) -> np.ndarray:
        """Map (N, 3) voxel indices to world mm."""
        idx = np.asarray(indices, dtype=float)
        return idx @ self.affine[:3, :3].T + self.affine[:3, 3]

    def with_data(self, data: np.ndarray, **metadata: Any) -> "Volume":
        """Same geometry, new voxel values (e.g. a filter output or a label map)."""
        return replace(self, data=data, metadata={**self.metadata, **metadata})

    def to_nifti(self) -> nib.Nifti1Image:
        img = nib.Nifti1Image(self.data, self.affine)
        img.header.set_xyzt_units("mm", "sec")
        img.set_qform(self.affine, code=1)
        img.set_sform(self.affine, code=1)
        return img

    def save(self, path: str | Path) -> None:
        """Write NIfTI (``.nii`` or ``.nii.gz``); the affine is stored exactly in qform and sform."""
        nib.save(self.to_nifti(), str(path))

    @classmethod
    def load(cls, path: str | Path, metadata: dict[str, Any] | None = None) -> "Volume":
        """Read a NIfTI file; 4-D images with one volume are squeezed.

        The header is checked before any voxel data is read (:func:`nervemuscle.io.nifti.read_header`: size
        limit, geometry), so a hostile file cannot exhaust memory.
        """
        from nervemuscle.io.nifti import read_header

        path = Path(path)
        read_header(path)
        try:
            img = nib.load(str(path))
            data = np.asanyarray(img.dataobj)
        except Exception as exc:  # nibabel raises many types for corrupt files
            raise BadInputError(f"unreadable NIfTI ({exc.__class__.__name__}: {exc})", path) from None
        if data.ndim == 4 and data.shape[3] == 1:
            data = data[..., 0]
        if data.ndim != 3:
            raise BadInputError(f"expected a 3-D image, got shape {data.shape}", path)
        affine = img.get_best_affine() if hasattr(img, "get_best_affine") else img.affine
        return cls(data=data, affine=affine, metadata=dict(metadata or {}, source=str(path)))


def block_mean(data: np.ndarray, factors: tuple[int, int, int]) -> np.ndarray:
    """Mean over ``factors``-sized blocks (float32); the far edges are padded by repeating the last voxel."""
    padded_shape = [-(-n // f) * f for n, f in zip(data.shape, factors)]
    padded = np.pad(data.astype(np.float32, copy=False), [(0, p - n) for p, n in zip(padded_shape, data.shape)],
                    mode="edge")
    blocks = padded.reshape(padded_shape[0] // factors[0], factors[0], padded_shape[1] // factors[1], factors[1],
                            padded_shape[2] // factors[2], factors[2])
    return blocks.mean(axis=(1, 3, 5))


def block_affine(affine: np.ndarray, factors: tuple[int, int, int]) -> np.ndarray:
    """Affine of :func:`block_mean`'s output: voxel ``i`` is the centre of input voxels ``f i .. f i + f - 1``."""
    scale = np.diag([*map(float, factors), 1.0])
    scale[:3, 3] = [(f - 1) / 2 for f in factors]
    return affine @ scale
