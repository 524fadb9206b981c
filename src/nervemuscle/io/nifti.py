"""NIfTI exams: a folder of ``.nii``/``.nii.gz`` files with optional BIDS/dcm2niix JSON sidecars."""
from __future__ import annotations

import gzip
import io
import json
import re
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

from nervemuscle.errors import BadInputError
from nervemuscle.io.limits import MAX_HEADER_BYTES, check_voxels
from nervemuscle.volume import Volume

#: Sidecar fields given in seconds by dcm2niix/BIDS; converted to ms in ``Series.attributes``.
SECONDS_FIELDS = ("RepetitionTime", "EchoTime", "InversionTime")
_CS_FIELDS = ("ScanningSequence", "SequenceVariant", "ScanOptions", "ImageType")


def is_nifti(path: Path) -> bool:
    """True for ``.nii`` and ``.nii.gz`` file names."""
    return path.name.lower().endswith((".nii", ".nii.gz"))


def nifti_stem(path: Path) -> str:
    """File name without ``.nii``/``.nii.gz``."""
    return re.sub(r"\.nii(\.gz)?$", "", path.name, flags=re.I)


def _cs_tokens(value) -> list[str]:
    """A CS attribute from a sidecar: lists kept; dcm2niix joins with '_' (GE ``*_GEMS`` tokens rejoined)."""
    if isinstance(value, list):
        return [str(v) for v in value]
    parts = re.split(r"[\\_]", str(value)) if "\\" in str(value) or "_" in str(value) else [str(value)]
    out: list[str] = []
    for part in parts:
        if part == "GEMS" and out:
            out[-1] += "_GEMS"
        elif part:
            out.append(part)
    return out


def sidecar_attributes(sidecar: dict) -> dict:
    """Series attributes from a sidecar: times in ms, CS attributes as token lists."""
    out = {k: v for k, v in sidecar.items() if isinstance(v, (str, int, float, bool, list)) and k not in SECONDS_FIELDS}
    for name in SECONDS_FIELDS:
        value = sidecar.get(name)
        if isinstance(value, list):  # multi-echo sidecars list several
            value = value[0] if value else None
        if isinstance(value, (int, float)):
            out[name] = float(value) * 1000.0
    for name in _CS_FIELDS:
        if name in sidecar:
            out[name] = _cs_tokens(sidecar[name])
    return out


def read_sidecar(nifti_path: Path) -> dict:
    """The JSON sidecar next to a NIfTI file (``{}`` when absent)."""
    path = nifti_path.with_name(nifti_stem(nifti_path) + ".json")
    if not path.is_file():  # absent, or not a regular file (a FIFO would block; load_exam warns about it)
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BadInputError(f"unreadable JSON sidecar ({exc})", path) from None
    if not isinstance(data, dict):
        raise BadInputError("JSON sidecar is not an object", path)
    return data


def _open(path: Path):
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def read_header(path: Path) -> nib.Nifti1Header:
    """The NIfTI-1 or NIfTI-2 header of ``path``, read on its own (at most 544 bytes decompressed) and checked
    before any voxel data is read.

    Raises
    ------
    BadInputError
        Not a NIfTI header; an unsupported data type; more than 4 dimensions; an image size below 1 or above
        :func:`nervemuscle.io.limits.max_voxels`; a ``vox_offset`` beyond the header limit; an uncompressed file
        shorter than its declared data; no usable voxel size (``pixdim`` 0, negative or not finite without an
        sform) or a non-finite or singular sform/qform.
    """
    try:
        with _open(path) as fh:
            raw = fh.read(544)
    except (OSError, EOFError, zlib.error) as exc:
        raise BadInputError(f"unreadable NIfTI ({exc.__class__.__name__}: {exc})", path) from None
    sizes = {int.from_bytes(raw[:4], "little"), int.from_bytes(raw[:4], "big")}
    klass = nib.Nifti1Header if 348 in sizes else nib.Nifti2Header if 540 in sizes else None
    if klass is None or len(raw) < klass.sizeof_hdr:
        raise BadInputError("unreadable NIfTI (no NIfTI-1 or NIfTI-2 header)", path)
    try:
        header = klass.from_fileobj(io.BytesIO(raw[:klass.sizeof_hdr]), check=False)
        dtype = header.get_data_dtype()
    except Exception as exc:  # nibabel raises several types for invalid headers
        raise BadInputError(f"unreadable NIfTI header ({exc.__class__.__name__}: {exc})", path) from None
    dim = [int(v) for v in header["dim"]]
    if not 3 <= dim[0] <= 7 or any(n > 1 for n in dim[5:dim[0] + 1]):
        raise BadInputError(f"expected a 3-D image (or 4-D: the first volume is used), the header declares "
                            f"dim {dim[:dim[0] + 1] if 0 <= dim[0] <= 7 else dim}", path)
    check_voxels(tuple(dim[1:4]), path)
    offset = float(header["vox_offset"])
    if not 0 <= offset <= MAX_HEADER_BYTES:
        raise BadInputError(f"vox_offset {offset:g} outside 0..{MAX_HEADER_BYTES} bytes", path)
    if not path.name.lower().endswith(".gz"):
        need = int(offset) + int(np.prod(dim[1:4], dtype=np.int64)) * dtype.itemsize
        size = path.stat().st_size
        if size < need:
            raise BadInputError(f"truncated NIfTI: the header declares {need} bytes, the file holds {size}", path)
    _check_geometry(header, path)
    return header


def _check_geometry(header, path: Path) -> None:
    """Refuse headers whose affine would be a guess or meaningless (see :func:`read_header`)."""
    pixdim = np.asarray(header["pixdim"][1:4], float)
    sform_code, qform_code = int(header["sform_code"]), int(header["qform_code"])
    if sform_code > 0:
        affine, source = header.get_sform(), "sform"
    else:
        if not (np.all(np.isfinite(pixdim)) and np.all(pixdim > 0)):
            raise BadInputError(f"voxel size pixdim {pixdim.tolist()} is 0, negative or not finite and there is "
                                "no sform: the geometry is unknown", path)
        if qform_code > 0 and not np.all(np.isfinite([header[k] for k in ("quatern_b", "quatern_c", "quatern_d",
                                                                            "qoffset_x", "qoffset_y",
                                                                            "qoffset_z")])):
            raise BadInputError("qform holds values that are not finite", path)
        affine, source = header.get_best_affine(), "qform" if qform_code > 0 else "pixdim"
    if not np.all(np.isfinite(affine)):
        raise BadInputError(f"{source} holds values that are not finite", path)
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    if abs(np.linalg.det(affine[:3, :3])) < 1e-6 * max(float(np.prod(spacing)), 1e-30) or np.any(spacing < 1e-6):
        raise BadInputError(f"{source} is singular (zero or collinear axes, voxel size {np.round(spacing, 6).tolist()}"
                            " mm): the geometry is unknown", path)


def read_nifti(path: Path) -> tuple[Volume, list[str]]:
    """A 3-D volume from a NIfTI file; of a 4-D file the first volume is kept (with a warning).

    The header is checked first (:func:`read_header`), so memory stays bounded by the voxel limit. 64-bit
    integers become int32 when their values fit (NIfTI writers refuse int64).

    Raises
    ------
    BadInputError
        An invalid header (see :func:`read_header`), unreadable data, values out of the int32 range in a
        64-bit integer image, or NaN/infinite voxels (any statistic over them would be NaN).
    """
    header = read_header(path)
    try:
        img = nib.load(str(path))
        shape = img.shape
        data = np.asanyarray(img.dataobj[..., 0] if len(shape) == 4 else img.dataobj)
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise BadInputError(f"unreadable NIfTI ({exc.__class__.__name__}: {exc})", path) from None
    warnings = [f"4-D image with {shape[3]} volumes: the first is used"] if len(shape) == 4 and shape[3] > 1 else []
    if data.ndim != 3:
        raise BadInputError(f"expected a 3-D image, got shape {shape}", path)
    if data.dtype.kind in "iu" and data.dtype.itemsize == 8:
        if data.size and (data.min() < np.iinfo(np.int32).min or data.max() > np.iinfo(np.int32).max):
            raise BadInputError(f"{data.dtype} values outside the int32 range", path)
        data = data.astype(np.int32)
    elif data.dtype.kind == "c":
        raise BadInputError(f"complex voxel values ({header.get_data_dtype()}) are not supported", path)
    elif data.dtype.kind == "f":
        bad = int(data.size - np.count_nonzero(np.isfinite(data)))
        if bad:
            raise BadInputError(f"{bad} voxel(s) are NaN or infinite", path)
    return Volume(data, img.affine, {"source": str(path)}), warnings
