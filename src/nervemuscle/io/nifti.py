"""NIfTI exams: a folder of ``.nii``/``.nii.gz`` files with optional BIDS/dcm2niix JSON sidecars."""
from __future__ import annotations

import json
import re
from pathlib import Path

import nibabel as nib
import numpy as np

from nervemuscle.errors import BadInputError
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


def read_nifti(path: Path) -> tuple[Volume, list[str]]:
    """A 3-D volume from a NIfTI file; of a 4-D file the first volume is kept (with a warning)."""
    try:
        img = nib.load(str(path))
        shape = img.shape
        data = np.asanyarray(img.dataobj[..., 0] if len(shape) == 4 else img.dataobj)
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise BadInputError(f"unreadable NIfTI ({exc.__class__.__name__}: {exc})", path) from None
    warnings = [f"4-D image with {shape[3]} volumes: the first is used"] if len(shape) == 4 and shape[3] > 1 else []
    if data.ndim != 3:
        raise BadInputError(f"expected a 3-D image, got shape {shape}", path)
    return Volume(data, img.affine, {"source": str(path)}), warnings
