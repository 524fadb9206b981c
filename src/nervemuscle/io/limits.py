"""Size limits checked against header-declared sizes before any voxel data is read (bounded memory).

A header is only a claim: a 600-byte file can declare 1024^3 voxels, and a 1.5 MB ``.nii.gz`` of zeros can
decompress to gigabytes. Every reader compares what the header declares with :data:`MAX_VOXELS` (and, for
uncompressed data, with the file size) before allocating anything, so peak memory stays bounded by the limit
(docs/reliability.md gives the measured ceiling).
"""
from __future__ import annotations

import os
from pathlib import Path

from nervemuscle.errors import BadInputError

#: Most voxels one 3-D series may have: 2**27 = 512 x 512 x 512 (a 0.5 mm isotropic 256 mm cube), above any
#: clinical MR series. The environment variable ``NERVEMUSCLE_MAX_VOXELS`` overrides it.
DEFAULT_MAX_VOXELS = 2**27
#: Most bytes of NIfTI header and extensions before the voxel data (``vox_offset``).
MAX_HEADER_BYTES = 16 * 2**20


def max_voxels() -> int:
    """The voxel limit in force (:data:`DEFAULT_MAX_VOXELS` unless ``NERVEMUSCLE_MAX_VOXELS`` is set)."""
    value = os.environ.get("NERVEMUSCLE_MAX_VOXELS", "")
    return int(value) if value.isdigit() and int(value) > 0 else DEFAULT_MAX_VOXELS


def check_voxels(shape: tuple[int, ...], path: str | Path | None, what: str = "the header declares") -> int:
    """Number of voxels of ``shape``; BadInputError when a dimension is below 1 or the count exceeds the limit."""
    dims = [int(n) for n in shape]
    if any(n < 1 for n in dims):
        raise BadInputError(f"{what} an empty or negative image size {'x'.join(map(str, dims))}", path)
    count = 1
    for n in dims:
        count *= n
    if count > max_voxels():
        raise BadInputError(f"{what} {'x'.join(map(str, dims))} = {count} voxels, more than the limit of "
                            f"{max_voxels()} (NERVEMUSCLE_MAX_VOXELS); not read", path)
    return count
