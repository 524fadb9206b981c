"""Export exams and muscle label maps as an nnU-Net v2 raw dataset.

Layout (nnU-Net v2 ``dataset_format.md``)::

    Dataset501_ShoulderGirdle/
        dataset.json
        imagesTr/<case>_0000.nii.gz, <case>_0001.nii.gz, ...   one file per channel
        labelsTr/<case>.nii.gz

nnU-Net v2 needs consecutive class indices from 0, so the graded muscles are renumbered 1..16 in
:func:`nervemuscle.anatomy.label_names` order; ``dataset.json`` keeps the mapping back to the
nervemuscle codes under ``nervemuscle_codes``. Every other label becomes background. Channels that
are not on the label map's grid are resampled onto it (trilinear).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from nervemuscle.anatomy import MUSCLES, SIDES, muscle_label
from nervemuscle.errors import BadInputError, OutputError
from nervemuscle.muscle.grid import resample_to
from nervemuscle.outputs import atomic_output_dir
from nervemuscle.volume import Volume

_CASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")


def nnunet_classes() -> dict[str, int]:
    """Class name -> consecutive nnU-Net index, background first."""
    names = [f"{m}_{s}" for m in MUSCLES for s in SIDES]
    return {"background": 0, **{n: i + 1 for i, n in enumerate(names)}}


def to_nnunet_labels(labels: np.ndarray) -> np.ndarray:
    """Map nervemuscle muscle codes to consecutive nnU-Net classes (everything else 0)."""
    lut = np.zeros(max(int(labels.max()), 40) + 1, dtype=np.uint8)
    for i, (m, s) in enumerate((m, s) for m in MUSCLES for s in SIDES):
        lut[muscle_label(m, s)] = i + 1
    return lut[np.clip(labels.astype(np.int64), 0, lut.size - 1)]


def export_nnunet(exams: list[tuple[str, list[Volume], Volume]], out_dir: str | Path, dataset_id: int = 501,
                  name: str = "ShoulderGirdle") -> Path:
    """Write exams as ``out_dir/Dataset<id>_<name>`` in nnU-Net v2 raw format.

    Parameters
    ----------
    exams : list of (case_id, channels, labels)
        ``channels`` are the input images (same number and order for every case; the channel name
        is ``metadata["role"]`` of the first case's volumes, else ``channel<i>``); ``labels`` carries
        nervemuscle label codes.
    out_dir : path
        Parent folder (e.g. ``$nnUNet_raw``); created if needed.
    dataset_id, name : int, str
        nnU-Net dataset number (three digits) and name.

    Returns
    -------
    Path
        The dataset folder. It is written into a temporary sibling folder first and renamed, so a
        failure leaves nothing half-written; an existing dataset folder is replaced.
    """
    if not exams:
        raise BadInputError("no exams to export")
    if not 1 <= dataset_id <= 999:
        raise BadInputError(f"dataset_id must be 1..999, got {dataset_id}")
    n_channels = len(exams[0][1])
    for case, channels, _ in exams:
        if not _CASE_ID.match(case):
            raise BadInputError(f"case id {case!r} must be letters, digits, '_' or '-'")
        if len(channels) != n_channels or n_channels == 0:
            raise BadInputError(f"case {case}: {len(channels)} channels, expected {n_channels} (at least 1)")
    if len({case for case, _, _ in exams}) != len(exams):
        raise BadInputError("case ids must be unique")
    channel_names = {str(i): str(v.metadata.get("role") or f"channel{i}") for i, v in enumerate(exams[0][1])}

    out_dir = Path(out_dir)
    final = out_dir / f"Dataset{dataset_id:03d}_{name}"
    try:
        with atomic_output_dir(final, error="cannot create the dataset folder") as tmp:
            (tmp / "imagesTr").mkdir()
            (tmp / "labelsTr").mkdir()
            for case, channels, labels in exams:
                for i, image in enumerate(channels):
                    on_grid = resample_to(image, labels, order=1)
                    Volume(on_grid.data.astype(np.float32), labels.affine).save(tmp / "imagesTr" / f"{case}_{i:04d}.nii.gz")
                Volume(to_nnunet_labels(labels.data), labels.affine).save(tmp / "labelsTr" / f"{case}.nii.gz")
            dataset = {
                "channel_names": channel_names,
                "labels": nnunet_classes(),
                "numTraining": len(exams),
                "file_ending": ".nii.gz",
                "name": name,
                "description": "nervemuscle shoulder-girdle muscles (graded muscles, both sides)",
                "nervemuscle_codes": {n: muscle_label(*n.rsplit("_", 1)) for n in nnunet_classes() if n != "background"},
            }
            (tmp / "dataset.json").write_text(json.dumps(dataset, indent=2))
    except OSError as exc:
        raise OutputError(f"cannot write the nnU-Net dataset ({exc.strerror})", final) from None
    return final
