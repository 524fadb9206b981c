"""Muscle labels brought by the user: a label map with a name mapping, or an ONNX segmentation model.

Names are matched to nervemuscle muscles after normalisation: lower case, spaces and hyphens to
``_``, and the side given as ``left``/``right``/``l``/``r`` either as suffix or prefix (``deltoid_left``,
``Deltoid L``, ``left-deltoid``). Names that are not graded muscles are ignored.

ONNX models: the input is ``(1, C, I, J, K)`` float32 with C = number of input volumes (T1 first,
then the fluid series resampled onto the T1 grid when the model asks for two channels), each
z-scored over its non-zero voxels (nnU-Net's MR normalisation). The output is either class scores
``(1, L, I, J, K)`` (argmax is taken) or class indices ``(1, 1, I, J, K)`` / ``(1, I, J, K)``. Class
index -> name comes from ``label_names`` if given, else from the model's metadata property
``labels`` (JSON ``{"name": index}`` as in nnU-Net's dataset.json, or ``{"index": "name"}``), else the
indices are taken to be nervemuscle codes.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from nervemuscle.anatomy import MUSCLES, SIDES, muscle_label
from nervemuscle.errors import BadInputError
from nervemuscle.muscle.grid import resample_to
from nervemuscle.volume import Volume

_SIDE_WORDS = {"left": "left", "l": "left", "lt": "left", "right": "right", "r": "right", "rt": "right"}


def canonical_muscle(name: str) -> tuple[str, str] | None:
    """``(muscle, side)`` for a label name such as ``"Deltoid L"``; ``None`` if it is no graded muscle."""
    tokens = [t for t in re.split(r"[\s_\-]+", name.strip().lower()) if t]
    if len(tokens) < 2:
        return None
    for side_tok, rest in ((tokens[-1], tokens[:-1]), (tokens[0], tokens[1:])):
        side = _SIDE_WORDS.get(side_tok)
        muscle = "_".join(rest)
        if side and muscle in MUSCLES:
            return muscle, side
    return None


def relabel(labels: Volume, label_names: dict[int, str] | None, target: Volume) -> Volume:
    """A user label map converted to nervemuscle muscle codes on the grid of ``target``.

    Parameters
    ----------
    labels : Volume
        Integer label map, any grid (nearest-neighbour resampled).
    label_names : dict or None
        Code -> name; ``None`` means the codes already are nervemuscle codes.
    target : Volume
        Grid of the result.
    """
    data = np.rint(labels.data).astype(np.int64)
    if data.min() < 0:
        raise BadInputError("label map has negative values", labels.metadata.get("source"))
    lut = np.zeros(int(data.max()) + 1, dtype=np.uint8)
    if label_names is None:
        codes = {muscle_label(m, s) for m in MUSCLES for s in SIDES}
        for c in codes:
            if c < lut.size:
                lut[c] = c
    else:
        for code, name in label_names.items():
            hit = canonical_muscle(name)
            if hit and 0 <= int(code) < lut.size:
                lut[int(code)] = muscle_label(*hit)
    if not lut.any():
        raise BadInputError("label map holds none of the graded muscles under the given names",
                            labels.metadata.get("source"))
    mapped = labels.with_data(lut[data])
    return resample_to(mapped, target, order=0)


def _zscore(data: np.ndarray) -> np.ndarray:
    data = data.astype(np.float32)
    fg = data[data != 0]
    if fg.size < 2 or fg.std() == 0:
        return data
    return (data - fg.mean()) / fg.std()


def _model_label_names(session) -> dict[int, str] | None:
    meta = session.get_modelmeta().custom_metadata_map
    if "labels" not in meta:
        return None
    raw = json.loads(meta["labels"])
    try:
        return {int(k): str(v) for k, v in raw.items()}
    except ValueError:
        return {int(v): str(k) for k, v in raw.items()}


def onnx_labels(model_path: str | Path, images: list[Volume], label_names: dict[int, str] | None = None) -> Volume:
    """Segment with an ONNX model on the grid of ``images[0]``; returns nervemuscle codes (see module notes)."""
    import onnxruntime as ort

    path = Path(model_path)
    if not path.is_file():
        raise BadInputError("ONNX model not found", path)
    try:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for bad files
        raise BadInputError(f"unreadable ONNX model ({exc.__class__.__name__})", path) from None
    inp = session.get_inputs()[0]
    channels = inp.shape[1] if len(inp.shape) == 5 and isinstance(inp.shape[1], int) else 1
    if channels > len(images):
        raise BadInputError(f"model wants {channels} input channels, {len(images)} series available", path)
    grid = images[0]
    stack = [_zscore(resample_to(v, grid, order=1).data) for v in images[:channels]]
    x = np.stack(stack)[None].astype(np.float32)
    try:
        out = session.run(None, {inp.name: x})[0]
    except Exception as exc:
        raise BadInputError(f"ONNX model failed on input {x.shape} ({exc.__class__.__name__}: {exc})", path) from None
    out = np.asarray(out)
    if out.ndim == 5 and out.shape[1] > 1:
        classes = out[0].argmax(axis=0)
    else:
        classes = np.rint(out.reshape(out.shape[-3:]))
    if classes.shape != grid.shape:
        raise BadInputError(f"model output shape {classes.shape} differs from the input grid {grid.shape}", path)
    names = label_names if label_names is not None else _model_label_names(session)
    return relabel(grid.with_data(classes.astype(np.int32)), names, grid)
