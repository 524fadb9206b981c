"""Display copies of series for the web viewer: small integers, no header text, and a reduced-size preview.

Both are made once per file version and kept in a cache folder under a name hashed from the source path, size
and mtime; each is written to a temporary file and renamed, so concurrent requests never see half a file.
"""
from __future__ import annotations

import hashlib
import math
import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import nibabel as nib
import numpy as np

from nervemuscle.volume import block_affine, block_mean

#: Largest preview size along any axis (voxels).
PREVIEW_MAX_SIZE = 128
#: Name prefix of a copy being written (cache names are hexadecimal hashes, so they never start with it).
_TEMP_PREFIX = "tmp"


def _cached(path: Path, cache_dir: Path, kind: str) -> Path:
    st = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{kind}".encode()).hexdigest()[:32]
    return cache_dir / f"{key}.nii"


def _save_atomic(img: nib.Nifti1Image, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_TEMP_PREFIX, suffix=".nii", dir=target.parent)
    os.close(fd)
    try:
        nib.save(img, tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def display_copy(path: str | Path, cache_dir: str | Path) -> Path:
    """Uncompressed small-integer NIfTI of ``path`` for the viewer, made once per file version.

    Integer data whose range fits are stored as uint8 or int16 unchanged; other data (float series) as int16
    with ``scl_slope``/``scl_inter`` (65,535 grey levels over the data range: display resolution, values shown
    by the viewer stay in the original units). Same voxel order and affine (qform and sform). The header is
    made new, keeping only geometry and units: free text (``descrip``, ``aux_file``, ``db_name``,
    ``intent_name``, ``data_type``), intent parameters, calibration range and extensions are dropped, as readers
    must not learn the diagnosis from any header field or a DICOM extension. No gzip: Niivue would inflate it
    in JavaScript, which costs more than moving the raw bytes.
    """
    path = Path(path)
    target = _cached(path, Path(cache_dir), "display")
    if target.exists():
        return target
    img = nib.load(str(path))
    header = img.header.copy()
    slope, inter = header.get_slope_inter()
    if img.get_data_dtype().kind in "iub" and slope in (None, 1.0) and inter in (None, 0.0):
        data = np.asanyarray(img.dataobj)
        lo, hi = (int(data.min()), int(data.max())) if data.size else (0, 0)
        dtype = np.uint8 if 0 <= lo and hi <= 255 else np.int16 if -32768 <= lo and hi <= 32767 else np.float32
    else:
        data = np.nan_to_num(np.asarray(img.get_fdata(dtype=np.float32)), nan=0.0, posinf=0.0, neginf=0.0)
        dtype = np.int16
    out = nib.Nifti1Image(data, img.affine)  # a new header: nothing of the source's is carried over but
    out.header.set_xyzt_units(*header.get_xyzt_units())  # the geometry and units
    out.set_qform(img.affine, int(header["qform_code"]) or 1)
    out.set_sform(img.affine, int(header["sform_code"]) or 1)
    out.set_data_dtype(dtype)  # nibabel chooses scl_slope/scl_inter for float -> int16
    return _save_atomic(out, target)


def preview_factors(shape: tuple[int, ...], max_size: int = PREVIEW_MAX_SIZE) -> tuple[int, int, int]:
    """Integer reduction per spatial axis that brings every axis to at most ``max_size`` voxels."""
    return tuple(max(1, math.ceil(n / max_size)) for n in shape[:3])


def preview_copy(path: str | Path, cache_dir: str | Path) -> Path:
    """Reduced-size display copy of a 3D image shown while the full one loads (``preview_factors`` block means).

    Same data type, scaling and world space as :func:`display_copy` (a voxel of the preview covers the block of
    full-resolution voxels it averages). Returns the display copy itself when no axis exceeds the preview size.
    """
    path = Path(path)
    full = display_copy(path, cache_dir)
    target = _cached(path, Path(cache_dir), "preview")
    if target.exists():
        return target
    img = nib.load(str(full))
    factors = preview_factors(img.shape)
    if img.ndim != 3 or factors == (1, 1, 1):
        return full
    raw = np.asanyarray(img.dataobj.get_unscaled())
    reduced = np.rint(block_mean(raw, factors)).astype(img.get_data_dtype())
    affine = block_affine(img.affine, factors)
    header = img.header.copy()
    out = nib.Nifti1Image(reduced, affine, header=header)
    out.set_qform(affine, int(header["qform_code"]) or 1)
    out.set_sform(affine, int(header["sform_code"]) or 1)
    out.header.set_slope_inter(img.dataobj.slope, img.dataobj.inter)  # the raw integers keep their scaling
    return _save_atomic(out, target)


def prune_cache(cache_dir: str | Path, sources: Iterable[str | Path], temp_age_s: float = 3600.0) -> int:
    """Delete what in ``cache_dir`` belongs to no current version of ``sources`` (the series of the database):
    copies of replaced or changed files, and temporary files older than ``temp_age_s`` (left by a crash; a
    younger one may be another server process's copy in progress). Returns the number of files removed.
    """
    cache_dir = Path(cache_dir)
    if not cache_dir.is_dir():
        return 0
    keep = set()
    for source in map(Path, sources):
        try:
            keep |= {_cached(source, cache_dir, kind).name for kind in ("display", "preview")}
        except OSError:  # the series file is gone: its copies go too
            continue
    removed = 0
    for f in cache_dir.glob("*.nii"):
        is_temporary = f.name.startswith(_TEMP_PREFIX)
        if f.name in keep or (is_temporary and time.time() - f.stat().st_mtime < temp_age_s):
            continue
        f.unlink(missing_ok=True)
        removed += 1
    return removed
