"""DICOM MR series: find files, read headers, group and split series, check slice geometry, build RAS+ volumes.

Every image frame (a classic single-frame file or one frame of an enhanced multi-frame file) becomes a
:class:`Frame`. Frames are grouped by SeriesInstanceUID and split when they mix geometry (orientation, matrix,
pixel spacing), echo time, image type or diffusion weighting. Slices are sorted along the slice normal and the
spacing is checked; the affine is built from ImagePositionPatient / ImageOrientationPatient / PixelSpacing and
converted from DICOM LPS to RAS (docs/geometry.md).
"""
from __future__ import annotations

import os
import stat
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from nervemuscle.errors import BadInputError
from nervemuscle.io.limits import check_voxels, max_voxels
from nervemuscle.volume import Volume

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4.1"
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_PIXEL_DATA = 0x7FE00010
_NATIVE_SYNTAXES = {ExplicitVRLittleEndian: "<", ImplicitVRLittleEndian: "<", ExplicitVRBigEndian: ">"}
#: Slice positions closer than this (mm) are duplicates.
DUPLICATE_TOLERANCE_MM = 0.01
#: Allowed deviation of one slice step from the median step: max(absolute mm, relative fraction).
SPACING_TOLERANCE = (0.02, 0.02)
_SERIES_ATTRIBUTES = ("Manufacturer", "ManufacturerModelName", "ScanningSequence", "SequenceVariant", "ScanOptions",
                      "SequenceName", "ImageType", "RepetitionTime", "EchoTime", "InversionTime", "MRAcquisitionType",
                      "MagneticFieldStrength", "SliceThickness", "SpacingBetweenSlices", "FlipAngle",
                      "EchoTrainLength", "ProtocolName", "PulseSequenceName", "Modality", "BodyPartExamined",
                      "PatientPosition")
_PATIENT_ATTRIBUTES = ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "PatientAge", "StudyDate",
                       "StudyTime", "StudyInstanceUID", "AccessionNumber", "InstitutionName")


@dataclass
class Frame:
    """One 2-D image of a DICOM file and the header values needed to place and group it."""

    path: Path
    index: int | None          # frame number in an enhanced multi-frame file, None for a single-frame file
    header: pydicom.Dataset    # the file's dataset (pixel data deferred)
    position: np.ndarray       # ImagePositionPatient, LPS mm
    orientation: np.ndarray    # ImageOrientationPatient (6,)
    pixel_spacing: tuple[float, float]
    rows: int
    columns: int
    slope: float
    intercept: float
    echo_time: float | None
    image_type: tuple[str, ...]
    diffusion: tuple | None    # (b-value, gradient direction) when diffusion-weighted
    slice_thickness: float | None
    spacing_between_slices: float | None


@dataclass
class SeriesFrames:
    """The frames of one (possibly split) series, sorted along the slice normal."""

    uid: str
    frames: list[Frame]
    split_note: str


def scan_files(root: Path) -> tuple[list[Path], list[Path]]:
    """Regular files below ``root`` (any nesting, any names, symbolic links to files followed), sorted, and the
    entries that are not regular files (FIFOs, sockets, devices, broken links): these are never opened, as
    reading a FIFO blocks for ever.

    Raises
    ------
    BadInputError
        A folder below ``root`` cannot be listed (e.g. no read permission): its files would silently be missing.
    """
    def unreadable(exc: OSError) -> None:
        raise BadInputError(f"cannot read the folder ({exc.strerror or exc})", exc.filename)

    files, others = [], []
    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            try:
                regular = stat.S_ISREG(os.stat(path).st_mode)
            except OSError:
                regular = False
            (files if regular else others).append(path)
    return files, others


def list_files(root: Path) -> list[Path]:
    """All regular files below ``root`` (:func:`scan_files`), sorted."""
    return scan_files(root)[0]


def has_dicm_magic(path: Path) -> bool:
    """True when ``path`` carries the DICOM Part 10 preamble marker ('DICM' at byte 128)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


_DEFLATED_UID = pydicom.uid.DeflatedExplicitVRLittleEndian.encode()


def _check_deflated(path: Path) -> None:
    """Refuse a Deflated Explicit VR file whose data set would inflate beyond the voxel limit in bytes.

    pydicom inflates such a data set whole in memory, so a small file could expand to gigabytes (a zip bomb);
    here it is inflated in bounded steps first and dropped. Other files cost one 4 kB read.
    """
    with open(path, "rb") as fh:
        head = fh.read(4096)
        if head[128:132] != b"DICM" or _DEFLATED_UID not in head:
            return
        meta_length = int.from_bytes(head[140:144], "little") if head[132:140] == b"\x02\x00\x00\x00UL\x04\x00" else 0
        fh.seek(144 + meta_length)
        inflater, limit, size = zlib.decompressobj(-zlib.MAX_WBITS), 4 * max_voxels() + 2**24, 0
        while chunk := fh.read(2**20):
            while chunk:
                size += len(inflater.decompress(chunk, 2**24))
                chunk = inflater.unconsumed_tail
                if size > limit:
                    raise BadInputError(f"deflated data set inflates beyond {limit} bytes (the voxel limit): "
                                        "not read", path)


def read_header(path: Path) -> pydicom.Dataset | None:
    """Header of a DICOM file with the pixel data deferred, or None when the file is not DICOM.

    Raises
    ------
    BadInputError
        A file with the DICOM signature whose header cannot be parsed (truncated or corrupt), or a file that
        cannot be read at all (permissions, I/O error): skipping it would later look like a missing slice.
    """
    try:
        _check_deflated(path)
        return pydicom.dcmread(path, defer_size=4096)
    except InvalidDicomError:
        return None
    except BadInputError:
        raise
    except OSError as exc:
        if exc.errno is not None:
            raise BadInputError(f"cannot read the file ({exc.strerror or exc})", path) from None
        damaged: Exception = exc
    except Exception as exc:  # pydicom raises many types for damaged files
        damaged = exc
    if has_dicm_magic(path):
        raise BadInputError(f"truncated or corrupt DICOM header ({damaged.__class__.__name__}: {damaged})", path)
    return None


def _value(ds: pydicom.Dataset, keyword: str):
    """An attribute's value; text VRs (DS, IS, CS) not yet converted by pydicom come back as raw ``bytes``.

    pydicom's value conversion costs about 0.1 ms per element; parsing the few numbers we need from the raw
    bytes keeps header reading of a 300-file series well under a second.
    """
    tag = pydicom.datadict.tag_for_keyword(keyword)
    if tag is None or tag not in ds:
        return None
    elem = ds.get_item(tag, keep_deferred=True)
    if isinstance(elem, pydicom.dataelem.RawDataElement) and elem.value is not None:
        if elem.VR in ("DS", "IS", "CS"):
            return elem.value
        if elem.VR == "UI":  # a UID is ASCII digits and dots; anything else is kept visible, not fatal
            return elem.value.rstrip(b"\x00 ").decode("ascii", "replace")
        if elem.VR == "US" and len(elem.value) == 2:
            return int.from_bytes(elem.value, "little" if elem.is_little_endian else "big")
    return ds[tag].value


def _float(value, default: float | None = None) -> float | None:
    if isinstance(value, bytes):
        value = value.strip(b" \x00").split(b"\\")[0]
    try:
        return default if value is None or value in ("", b"") else float(value)
    except (TypeError, ValueError):
        return default


def _multi(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, bytes):
        return [v.strip() for v in value.decode("ascii", "replace").strip(" \x00").split("\\")]
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return [str(v) for v in value]
    return [str(value)] if str(value) else []


def _item(ds: pydicom.Dataset, frame: pydicom.Dataset | None, sequence: str) -> pydicom.Dataset | None:
    """Functional-group macro ``sequence`` for a frame: per-frame first, then shared."""
    for group in (frame, (ds.get("SharedFunctionalGroupsSequence") or [None])[0]):
        if group is not None and sequence in group and len(group[sequence].value):
            return group[sequence].value[0]
    return None


def _require(value, name: str, path: Path):
    if value is None:
        raise BadInputError(f"missing {name}, cannot place the image in space", path)
    return value


#: Largest allowed deviation of an ImageOrientationPatient direction cosine from unit length, and of the two
#: cosines' dot product from 0 (the stored values carry about 6 decimals).
ORIENTATION_TOLERANCE = 1e-3


def check_frame(frame: Frame) -> Frame:
    """Refuse a frame whose geometry or scaling would silently give wrong sizes or values.

    Raises
    ------
    BadInputError
        ImageOrientationPatient not two orthogonal unit vectors (within :data:`ORIENTATION_TOLERANCE`),
        PixelSpacing not positive, or a non-finite position, orientation, spacing, slice thickness or
        rescale slope/intercept.
    """
    where = f" of frame {frame.index + 1}" if frame.index is not None else ""
    row, col = frame.orientation[:3], frame.orientation[3:]
    values = [*frame.position, *frame.orientation, *frame.pixel_spacing, frame.slope, frame.intercept]
    if not np.all(np.isfinite(values)):
        raise BadInputError(f"ImagePositionPatient, ImageOrientationPatient, PixelSpacing or Rescale values{where} "
                            "are not finite numbers", frame.path)
    tol = ORIENTATION_TOLERANCE
    if abs(np.linalg.norm(row) - 1) > tol or abs(np.linalg.norm(col) - 1) > tol or abs(float(row @ col)) > tol:
        raise BadInputError(f"ImageOrientationPatient{where} {np.round(frame.orientation, 6).tolist()} is not two "
                            "orthogonal unit vectors: the image cannot be placed in space", frame.path)
    if min(frame.pixel_spacing) <= 0:
        raise BadInputError(f"PixelSpacing{where} {list(frame.pixel_spacing)} is not positive", frame.path)
    if frame.slope == 0:
        raise BadInputError(f"RescaleSlope{where} is 0 (every value would be the intercept)", frame.path)
    return frame


def frames_of(path: Path, ds: pydicom.Dataset) -> list[Frame]:
    """The image frames of one MR file (classic or enhanced multi-frame), each checked (:func:`check_frame`).

    Raises
    ------
    BadInputError
        No pixel data, missing or invalid geometry (Rows/Columns below 1, see :func:`check_frame`), or more
        voxels than :func:`nervemuscle.io.limits.max_voxels` in the file.
    """
    return [check_frame(f) for f in _frames_of(path, ds)]


def _frames_of(path: Path, ds: pydicom.Dataset) -> list[Frame]:
    if "PixelData" not in ds and "FloatPixelData" not in ds:
        raise BadInputError("no pixel data (the file is truncated or has no PixelData element)", path)
    rows = int(_require(_value(ds, "Rows"), "Rows", path))
    columns = int(_require(_value(ds, "Columns"), "Columns", path))
    check_voxels((int(ds.get("NumberOfFrames", 1) or 1), rows, columns), path, "NumberOfFrames x Rows x Columns is")
    if "PerFrameFunctionalGroupsSequence" not in ds:
        bvalue = _float(_value(ds, "DiffusionBValue"))
        direction = tuple(np.round(_float_list(_value(ds, "DiffusionGradientOrientation"), 3), 3)) or None
        return [Frame(path=path, index=None, header=ds,
                      position=np.array(_float_list(_require(_value(ds, "ImagePositionPatient"),
                                                             "ImagePositionPatient", path), 3)),
                      orientation=np.array(_float_list(_require(_value(ds, "ImageOrientationPatient"),
                                                                "ImageOrientationPatient", path), 6)),
                      pixel_spacing=tuple(_float_list(_require(_value(ds, "PixelSpacing"), "PixelSpacing", path), 2)),
                      rows=rows, columns=columns,
                      slope=_float(_value(ds, "RescaleSlope"), 1.0),
                      intercept=_float(_value(ds, "RescaleIntercept"), 0.0),
                      echo_time=_float(_value(ds, "EchoTime")), image_type=tuple(_multi(_value(ds, "ImageType"))),
                      diffusion=(bvalue, direction) if bvalue else None,
                      slice_thickness=_float(_value(ds, "SliceThickness")),
                      spacing_between_slices=_float(_value(ds, "SpacingBetweenSlices")))]
    frames = []
    for index, group in enumerate(ds.PerFrameFunctionalGroupsSequence):
        plane = _item(ds, group, "PlanePositionSequence")
        orient = _item(ds, group, "PlaneOrientationSequence")
        measures = _item(ds, group, "PixelMeasuresSequence")
        scaling = _item(ds, group, "PixelValueTransformationSequence")
        echo = _item(ds, group, "MREchoSequence")
        ftype = _item(ds, group, "MRImageFrameTypeSequence")
        diff = _item(ds, group, "MRDiffusionSequence")
        bvalue = _float(diff.get("DiffusionBValue")) if diff is not None else None
        direction = None
        if diff is not None and "DiffusionGradientDirectionSequence" in diff and diff.DiffusionGradientDirectionSequence:
            direction = tuple(np.round(_float_list(
                diff.DiffusionGradientDirectionSequence[0].get("DiffusionGradientOrientation"), 3), 3)) or None
        where = f"frame {index + 1}"
        frames.append(Frame(
            path=path, index=index, header=ds,
            position=np.array(_float_list(_require(plane and plane.get("ImagePositionPatient"),
                                                   f"ImagePositionPatient of {where}", path), 3)),
            orientation=np.array(_float_list(_require(orient and orient.get("ImageOrientationPatient"),
                                                      f"ImageOrientationPatient of {where}", path), 6)),
            pixel_spacing=tuple(_float_list(_require(measures and measures.get("PixelSpacing"),
                                                     f"PixelSpacing of {where}", path), 2)),
            rows=rows, columns=columns,
            slope=_float(scaling.get("RescaleSlope"), 1.0) if scaling else 1.0,
            intercept=_float(scaling.get("RescaleIntercept"), 0.0) if scaling else 0.0,
            echo_time=_float(echo.get("EffectiveEchoTime")) if echo else None,
            image_type=tuple(_multi(ftype.get("FrameType"))) if ftype else tuple(_multi(ds.get("ImageType"))),
            diffusion=(bvalue, direction) if bvalue else None,
            slice_thickness=_float(measures.get("SliceThickness")) if measures else None,
            spacing_between_slices=_float(measures.get("SpacingBetweenSlices")) if measures else None))
    return frames


def _float_list(value, n: int) -> list[float]:
    if value is None:
        return []
    if isinstance(value, bytes):
        value = value.strip(b" \x00").split(b"\\")
    values = [float(v) for v in value]
    if len(values) != n:
        raise ValueError(f"expected {n} values, got {len(values)}")
    return values


def _split_groups(uid: str, frames: list[Frame]) -> list[SeriesFrames]:
    """Split one SeriesInstanceUID into groups of uniform geometry, echo time, image type and diffusion."""
    def geometry(f: Frame):
        return (tuple(np.round(f.orientation, 3)), f.rows, f.columns, tuple(np.round(f.pixel_spacing, 4)))

    keys = {
        "ori": geometry,
        "te": lambda f: None if f.echo_time is None else round(f.echo_time, 3),
        "type": lambda f: f.image_type,
        "dwi": lambda f: f.diffusion,
    }
    groups: dict[tuple, list[Frame]] = {}
    for frame in frames:
        groups.setdefault(tuple(key(frame) for key in keys.values()), []).append(frame)
    if len(groups) == 1:
        return [SeriesFrames(uid, frames, "")]
    # rank each varying dimension; order: geometry by first appearance, the others sorted
    varying = [d for d, name in enumerate(keys) if len({k[d] for k in groups}) > 1]
    ranks = []
    for d in range(len(keys)):
        values = list(dict.fromkeys(k[d] for k in groups))
        if d != 0:
            values = sorted(values, key=lambda v: (v is None, v if isinstance(v, float) else str(v)))
        ranks.append({v: i + 1 for i, v in enumerate(values)})
    names = list(keys)
    out = []
    for key, members in groups.items():
        suffix = "".join(f".{names[d]}{ranks[d][key[d]]}" for d in varying)
        note = "split by " + ", ".join(names[d] for d in varying)
        out.append(SeriesFrames(uid + suffix, members, note))
    return sorted(out, key=lambda g: g.uid)


def sort_and_check(group: SeriesFrames) -> tuple[list[Frame], np.ndarray, list[str]]:
    """Sort frames along the slice normal and check the spacing.

    Returns
    -------
    frames : list of Frame
        Sorted by position along the normal (ascending).
    step : (3,) ndarray
        LPS vector from one slice to the next, in mm.
    warnings : list of str

    Raises
    ------
    BadInputError
        Duplicate slice positions, a missing slice, inconsistent spacing or slices off a straight line.
    """
    frames = group.frames
    iop = frames[0].orientation
    normal = np.cross(iop[:3], iop[3:])
    positions = np.array([f.position for f in frames])
    distance = positions @ normal
    order = np.argsort(distance, kind="stable")
    frames = [frames[i] for i in order]
    positions, distance = positions[order], distance[order]
    if len(frames) == 1:
        f = frames[0]
        thickness = f.spacing_between_slices or f.slice_thickness
        warnings = [] if thickness else ["single slice without SliceThickness: 1 mm assumed"]
        return frames, normal * (thickness or 1.0), warnings
    steps = np.diff(distance)
    dup = np.flatnonzero(steps < DUPLICATE_TOLERANCE_MM)
    if dup.size:
        a, b = frames[dup[0]], frames[dup[0] + 1]
        raise BadInputError(f"duplicate slice at position {distance[dup[0]]:.2f} mm along the slice normal "
                            f"(same as {_frame_name(a)}) in series {group.uid}", b.path)
    median = float(np.median(steps))
    tolerance = max(SPACING_TOLERANCE[0], SPACING_TOLERANCE[1] * median)
    bad = np.flatnonzero(np.abs(steps - median) > tolerance)
    if bad.size:
        i = bad[0]
        ratio = steps[i] / median
        kind = ("missing slice" if abs(ratio - round(ratio)) * median <= tolerance and round(ratio) >= 2
                else "inconsistent slice spacing")
        raise BadInputError(f"{kind}: step of {steps[i]:.3f} mm after {_frame_name(frames[i])} where the series "
                            f"{group.uid} has {median:.3f} mm", frames[i + 1].path)
    step = (positions[-1] - positions[0]) / (len(frames) - 1)
    expected = positions[0] + np.arange(len(frames))[:, None] * step
    off_line = np.linalg.norm(positions - expected, axis=1)
    if off_line.max() > tolerance:
        i = int(off_line.argmax())
        raise BadInputError(f"slice positions are not on a straight line ({off_line[i]:.3f} mm off) in series "
                            f"{group.uid}", frames[i].path)
    return frames, step, []


def _frame_name(frame: Frame) -> str:
    return frame.path.name + (f" frame {frame.index + 1}" if frame.index is not None else "")


def frame_affine(first: Frame, step: np.ndarray) -> np.ndarray:
    """RAS+ affine of voxel (i=column, j=row, k=slice) from the first frame and the LPS slice step."""
    row_cos, col_cos = first.orientation[:3], first.orientation[3:]
    row_spacing, col_spacing = first.pixel_spacing  # DICOM: (between rows, between columns)
    lps = np.eye(4)
    lps[:3, 0] = row_cos * col_spacing
    lps[:3, 1] = col_cos * row_spacing
    lps[:3, 2] = step
    lps[:3, 3] = first.position
    return LPS_TO_RAS @ lps


def _native_layout(ds: pydicom.Dataset, path: Path, n_frames: int) -> tuple[np.dtype, int | bytes] | None:
    """``(dtype, file offset or in-memory bytes)`` of uncompressed pixel data, or None when not applicable.

    Raises
    ------
    BadInputError
        The pixel data is shorter than Rows x Columns x frames, or longer (more than one pad byte): the header
        does not describe the data (e.g. BitsAllocated 8 on 16-bit data).
    """
    endian = _NATIVE_SYNTAXES.get(ds.file_meta.get("TransferSyntaxUID"))
    bits, stored = int(_value(ds, "BitsAllocated") or 0), int(_value(ds, "BitsStored") or 0)
    signed = int(_value(ds, "PixelRepresentation") or 0) == 1
    if endian is None or int(_value(ds, "SamplesPerPixel") or 1) != 1 or bits not in (8, 16, 32) or \
            (signed and stored != bits):
        return None
    raw = ds.get_item(_PIXEL_DATA, keep_deferred=True)
    if not isinstance(raw, pydicom.dataelem.RawDataElement):
        return None
    dtype = np.dtype(f"{endian}{'i' if signed else 'u'}{bits // 8}")
    need = n_frames * int(_value(ds, "Rows")) * int(_value(ds, "Columns")) * dtype.itemsize
    have = len(raw.value) if raw.value is not None else min(raw.length, os.path.getsize(path) - raw.value_tell)
    if have < need:
        raise BadInputError(f"truncated pixel data ({max(have, 0)} of {need} bytes)", path)
    declared = len(raw.value) if raw.value is not None else raw.length
    if declared > need + 1:  # one pad byte makes an odd length even
        raise BadInputError(f"pixel data holds {declared} bytes, but {n_frames} frame(s) of Rows x Columns at "
                            f"BitsAllocated {bits} need {need}: BitsAllocated, Rows, Columns or NumberOfFrames "
                            "is wrong", path)
    return dtype, raw.value if raw.value is not None else raw.value_tell


def _read_native_into(path: Path, dtype: np.dtype, source: int | bytes, out: np.ndarray) -> None:
    """Fill ``out`` (native byte order, C-contiguous) with pixel data at ``source`` of ``path``."""
    if isinstance(source, bytes):
        out[...] = np.frombuffer(source, dtype=dtype, count=out.size).reshape(out.shape)
        return
    with open(path, "rb") as fh:
        fh.seek(source)
        if fh.readinto(memoryview(out).cast("B")) != out.nbytes:
            raise BadInputError("truncated pixel data", path)
    if not dtype.isnative:
        out.byteswap(inplace=True)


def read_pixels(path: Path, ds: pydicom.Dataset) -> np.ndarray:
    """All frames of one file as ``(frames, rows, columns)``; compressed syntaxes decode via pylibjpeg."""
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    layout = _native_layout(ds, path, n_frames)
    if layout is not None:
        data = np.empty((n_frames, int(_value(ds, "Rows")), int(_value(ds, "Columns"))), layout[0].newbyteorder("="))
        _read_native_into(path, *layout, data)
        return data
    try:
        data = pydicom.dcmread(path).pixel_array
    except Exception as exc:
        raise BadInputError(f"cannot decode pixel data ({exc.__class__.__name__}: {exc})", path) from None
    if data.ndim != (3 if n_frames > 1 else 2):
        raise BadInputError(f"unsupported pixel layout {data.shape} (colour or multi-sample images)", path)
    return data.reshape(n_frames, *data.shape[-2:])


def stack_pixels(frames: list[Frame], workers: int = 4) -> np.ndarray:
    """Stored values of sorted frames as ``(k, rows, columns)``.

    Uncompressed single-frame files are read straight into one preallocated array by a thread pool (file reads
    release the GIL); other files (compressed, multi-frame) are decoded whole by pydicom, once per file.
    """
    first = frames[0]
    layouts = [_native_layout(f.header, f.path, 1) if f.index is None else None for f in frames]
    if all(layouts) and len({layout[0] for layout in layouts}) == 1:
        out = np.empty((len(frames), first.rows, first.columns), dtype=layouts[0][0].newbyteorder("="))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(lambda k: _read_native_into(frames[k].path, *layouts[k], out[k]), range(len(frames))))
        return out
    headers = {f.path: f.header for f in frames}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        arrays = dict(zip(headers, pool.map(lambda p: read_pixels(p, headers[p]), headers)))
    return np.stack([arrays[f.path][f.index or 0] for f in frames])


def build_volume(frames: list[Frame], step: np.ndarray) -> Volume:
    """Stack sorted frames into a RAS+ :class:`Volume` (i=column, j=row, k=slice), rescaled."""
    check_voxels((len(frames), frames[0].rows, frames[0].columns), frames[0].path, "the series' slices x Rows x "
                 "Columns are")
    stack = stack_pixels(frames)  # (k, rows, columns)
    slopes = np.array([f.slope for f in frames])
    intercepts = np.array([f.intercept for f in frames])
    if np.any(slopes != 1) or np.any(intercepts != 0):
        stack = (stack * slopes[:, None, None] + intercepts[:, None, None]).astype(np.float32)
    return Volume(stack.transpose(2, 1, 0), frame_affine(frames[0], step))


def series_attributes(frames: list[Frame]) -> dict:
    """JSON-serialisable acquisition attributes (times in ms) of a group of frames."""
    ds = frames[0].header
    out: dict = {}
    for name in _SERIES_ATTRIBUTES:
        value = ds.get(name)
        if value is None or value == "":
            continue
        if isinstance(value, pydicom.multival.MultiValue):
            out[name] = [str(v) for v in value]
        elif isinstance(value, (pydicom.valuerep.DSfloat, pydicom.valuerep.IS, float, int)):
            out[name] = float(value) if not isinstance(value, (pydicom.valuerep.IS, int)) else int(value)
        else:
            out[name] = str(value)
    for name in ("ScanningSequence", "SequenceVariant", "ScanOptions", "ImageType"):
        if name in out and isinstance(out[name], str):
            out[name] = [out[name]]
    if frames[0].index is not None:
        out.update(_enhanced_attributes(ds, frames[0]))
    out["ImageType"] = list(frames[0].image_type)
    if frames[0].echo_time is not None:
        out["EchoTime"] = frames[0].echo_time
    if frames[0].diffusion:
        out["DiffusionBValue"] = frames[0].diffusion[0]
    out["SOPClassUID"] = str(ds.get("SOPClassUID", ""))
    out["TransferSyntaxUID"] = str(ds.file_meta.get("TransferSyntaxUID", ""))
    return out


def _enhanced_attributes(ds: pydicom.Dataset, frame: Frame) -> dict:
    """Classic-style attributes from the enhanced MR macros (EchoPulseSequence, InversionRecovery, ...)."""
    group = ds.PerFrameFunctionalGroupsSequence[frame.index]
    out: dict = {}
    scanning = {"SPIN": ["SE"], "GRADIENT": ["GR"], "BOTH": ["SE", "GR"]}.get(str(ds.get("EchoPulseSequence", "")), [])
    if str(ds.get("InversionRecovery", "")) == "YES":
        scanning.append("IR")
    if ds.get("EchoPlanarPulseSequence") == "YES":
        scanning.append("EP")
    if scanning:
        out["ScanningSequence"] = scanning
    timing = _item(ds, group, "MRTimingAndRelatedParametersSequence")
    if timing is not None and timing.get("RepetitionTime") is not None:
        out["RepetitionTime"] = float(timing.RepetitionTime)
    modifier = _item(ds, group, "MRModifierSequence")
    if modifier is not None and modifier.get("InversionTimes"):
        out["InversionTime"] = float(_multi(modifier.InversionTimes)[0])
    if ds.get("PulseSequenceName"):
        out.setdefault("SequenceName", str(ds.PulseSequenceName))
    if frame.slice_thickness:
        out["SliceThickness"] = frame.slice_thickness
    return out


def text_of(ds: pydicom.Dataset, name: str) -> str:
    """An informational attribute as text; ``""`` when absent or damaged (pydicom converts it on first access)."""
    try:
        value = ds.get(name)
    except MALFORMED_VALUE_ERRORS:
        return ""
    return "" if value is None else str(value)


def patient_of(ds: pydicom.Dataset) -> dict:
    """Patient and study identifiers of a dataset (strings; absent or damaged ones left out)."""
    return {name: text for name in _PATIENT_ATTRIBUTES if (text := text_of(ds, name))}


def read_dicom_files(paths: list[Path], workers: int = 4) -> tuple[list[tuple[Path, pydicom.Dataset]], int, list[str]]:
    """Headers of the MR image files among ``paths``.

    Returns
    -------
    headers : list of (path, dataset)
    n_ignored : int
        Files skipped: not DICOM, DICOMDIR, or not an MR image.
    warnings : list of str
    """
    with ThreadPoolExecutor(max_workers=workers) as pool:
        datasets = list(pool.map(read_header, paths))
    headers, skipped_other = [], {}
    n_not_dicom = 0
    for path, ds in zip(paths, datasets):
        if ds is None:
            n_not_dicom += 1
            continue
        sop = text_of(ds.file_meta, "MediaStorageSOPClassUID") or text_of(ds, "SOPClassUID")
        if sop in (MR_IMAGE_STORAGE, ENHANCED_MR_IMAGE_STORAGE) or (not sop and text_of(ds, "Modality") == "MR"):
            headers.append((path, ds))
        else:
            label = f"{text_of(ds, 'Modality') or '?'} {pydicom.uid.UID(sop).name if sop else 'unknown SOP class'}"
            skipped_other[label] = skipped_other.get(label, 0) + 1
    warnings = [f"skipped {n} non-MR-image DICOM file(s): {label}" for label, n in sorted(skipped_other.items())]
    if n_not_dicom:
        warnings.insert(0, f"skipped {n_not_dicom} non-DICOM file(s)")
    return headers, n_not_dicom + sum(skipped_other.values()), warnings


#: What pydicom raises when it converts a damaged element's value on first access (it parses lazily).
MALFORMED_VALUE_ERRORS = (ValueError, TypeError, NotImplementedError, KeyError, IndexError, OverflowError,
                          struct.error, EOFError)


def group_series(headers: list[tuple[Path, pydicom.Dataset]]) -> list[SeriesFrames]:
    """Frames grouped by SeriesInstanceUID and split into uniform groups.

    Raises
    ------
    BadInputError
        A file whose geometry cannot be read: missing or malformed attributes (see :func:`frames_of`).
    """
    by_uid: dict[str, list[Frame]] = {}
    for path, ds in headers:
        try:
            frames = frames_of(path, ds)
            uid = str(_value(ds, "SeriesInstanceUID") or f"no-uid-{_value(ds, 'SeriesNumber') or 0}")
        except MALFORMED_VALUE_ERRORS as exc:
            raise BadInputError(f"malformed geometry attribute ({exc.__class__.__name__}: {exc})", path) from None
        by_uid.setdefault(uid, []).extend(frames)
    return [g for uid, frames in by_uid.items() for g in _split_groups(uid, frames)]
