"""Small valid MR DICOM series written with pydicom, for the ingestion tests and the loading benchmark."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4.1"

#: ImageOrientationPatient of the standard planes and one double-oblique plane (row cosine, column cosine).
ORIENTATIONS = {
    "axial": (1, 0, 0, 0, 1, 0),
    "coronal": (1, 0, 0, 0, 0, -1),
    "sagittal": (0, 1, 0, 0, 0, -1),
}


def oblique_orientation(deg_a: float = 17.0, deg_b: float = 11.0) -> tuple[float, ...]:
    """A double-oblique orientation: axial rotated about z by ``deg_a`` and about the row axis by ``deg_b``."""
    a, b = np.deg2rad(deg_a), np.deg2rad(deg_b)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    m = rz @ rx
    return tuple(np.round(np.concatenate([m[:, 0], m[:, 1]]), 8))


def pattern(rows: int, columns: int, slices: int, seed: int = 0) -> np.ndarray:
    """(slices, rows, columns) int16 test image: a gradient that differs along every axis plus noise."""
    rng = np.random.default_rng(seed)
    k, r, c = np.meshgrid(np.arange(slices), np.arange(rows), np.arange(columns), indexing="ij")
    return (100 * k + 3 * r + c + rng.integers(0, 50, size=k.shape)).astype(np.int16)


def _base(series_uid: str, study_uid: str, sop_class: str, header: dict) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.Modality = "MR"
    ds.PatientName = "Test^Phantom"
    ds.PatientID = "NM-TEST-001"
    ds.PatientBirthDate = "19600101"
    ds.PatientSex = "O"
    ds.StudyDate = "20260101"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = generate_uid()
    ds.Manufacturer = "SIEMENS"
    ds.MagneticFieldStrength = 3
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    for key, value in header.items():
        setattr(ds, key, value)
    return ds


def _file_meta(ds: Dataset) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta


def _save(ds: Dataset, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def slice_positions(orientation, origin, slice_step: float, n: int) -> np.ndarray:
    """LPS ImagePositionPatient of ``n`` slices stacked along the normal of ``orientation``."""
    iop = np.asarray(orientation, float)
    normal = np.cross(iop[:3], iop[3:])
    return np.asarray(origin, float) + np.arange(n)[:, None] * slice_step * normal


def write_series(directory, *, orientation="axial", shape=(24, 20, 6), pixel_spacing=(0.8, 0.7),
                 slice_step: float = 3.0, origin=(-10.5, 22.25, 40.0), positions=None, pixels=None,
                 series_number: int = 1, description: str = "t1_tse_ax", header: dict | None = None,
                 slope: float | None = None, intercept: float | None = None, series_uid: str | None = None,
                 file_names=None, shuffle: bool = True, compress: bool = False, seed: int = 0) -> list[Path]:
    """Write a classic MR Image Storage series, one file per slice.

    Parameters
    ----------
    orientation : str or 6 floats
        A key of :data:`ORIENTATIONS` or an ImageOrientationPatient.
    shape : (rows, columns, slices)
    positions : (slices, 3) array, optional
        ImagePositionPatient per file (default: evenly stacked along the normal).
    pixels : (slices, rows, columns) int16 array, optional
    header : dict, optional
        Extra or overriding attributes (e.g. ScanningSequence, RepetitionTime).
    file_names : list of str, optional
        Relative file names (may contain sub-folders); default ``IM<random>``.
    shuffle : bool
        Write files in a random order (the loader must sort by position, not by name).
    compress : bool
        Store RLE Lossless compressed.

    Returns
    -------
    list of Path
        Written files in slice order.
    """
    directory = Path(directory)
    rows, columns, slices = shape
    iop = ORIENTATIONS[orientation] if isinstance(orientation, str) else tuple(orientation)
    positions = slice_positions(iop, origin, slice_step, slices) if positions is None else np.asarray(positions)
    pixels = pattern(rows, columns, len(positions), seed) if pixels is None else pixels
    series_uid = series_uid or generate_uid()
    study_uid = generate_uid()
    rng = np.random.default_rng(seed + 1)
    defaults = {"SeriesNumber": series_number, "SeriesDescription": description, "ScanningSequence": "SE",
                "SequenceVariant": ["SK", "SP", "OSP"], "ScanOptions": "", "MRAcquisitionType": "2D",
                "SequenceName": "*tse2d1_3", "RepetitionTime": 600, "EchoTime": 12, "ImageType":
                ["ORIGINAL", "PRIMARY", "M", "ND"], "SliceThickness": abs(slice_step),
                "PixelSpacing": list(pixel_spacing), "ImageOrientationPatient": list(iop), "Rows": rows,
                "Columns": columns}
    names = file_names or [f"IM{rng.integers(1e9):09d}" for _ in range(len(positions))]
    order = rng.permutation(len(positions)) if shuffle else np.arange(len(positions))
    paths = [directory / names[i] for i in range(len(positions))]
    for i in order:
        ds = _base(series_uid, study_uid, MR_IMAGE_STORAGE, {**defaults, **(header or {})})
        ds.SOPInstanceUID = generate_uid()
        ds.InstanceNumber = int(i + 1)
        ds.ImagePositionPatient = [float(f"{v:.6f}") for v in positions[i]]
        if slope is not None:
            ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = slope, intercept or 0, "US"
        _file_meta(ds)
        ds.PixelData = pixels[i].tobytes()
        if compress:
            ds.compress(pydicom.uid.RLELossless)
        _save(ds, paths[i])
    return paths


def write_enhanced(path, *, orientation="coronal", shape=(20, 16, 5), pixel_spacing=(0.9, 0.6),
                   slice_step: float = 2.5, origin=(30.0, -12.5, 55.0), echo_times=(12.0,),
                   series_number: int = 5, description: str = "enhanced_t1", slope: float = 2.0,
                   intercept: float = -100.0, seed: int = 3) -> tuple[Path, np.ndarray]:
    """Write an Enhanced MR Image Storage file (frames in reverse slice order, per-frame functional groups).

    Returns the path and the stored (frames, rows, columns) int16 pixels in frame order.
    """
    path = Path(path)
    rows, columns, slices = shape
    iop = ORIENTATIONS[orientation] if isinstance(orientation, str) else tuple(orientation)
    positions = slice_positions(iop, origin, slice_step, slices)
    frames = [(te, k) for te in echo_times for k in reversed(range(slices))]
    base = pattern(rows, columns, slices * len(echo_times), seed)
    pixels = np.stack([base[i] for i in range(len(frames))])
    uid = generate_uid()
    ds = _base(uid, generate_uid(), ENHANCED_MR_IMAGE_STORAGE,
               {"SeriesNumber": series_number, "SeriesDescription": description, "Rows": rows, "Columns": columns,
                "ImageType": ["ORIGINAL", "PRIMARY", "M", "NONE"], "EchoPulseSequence": "SPIN",
                "InversionRecovery": "NO", "MRAcquisitionType": "2D", "NumberOfFrames": len(frames),
                "PulseSequenceName": "tse2d1", "InstanceNumber": 1})
    ds.SOPInstanceUID = generate_uid()
    shared = Dataset()
    orient = Dataset()
    orient.ImageOrientationPatient = list(iop)
    measures = Dataset()
    measures.PixelSpacing = list(pixel_spacing)
    measures.SliceThickness = slice_step
    timing = Dataset()
    timing.RepetitionTime = 550
    shared.PlaneOrientationSequence = Sequence([orient])
    shared.PixelMeasuresSequence = Sequence([measures])
    shared.MRTimingAndRelatedParametersSequence = Sequence([timing])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame = []
    for te, k in frames:
        item = Dataset()
        plane = Dataset()
        plane.ImagePositionPatient = [float(f"{v:.6f}") for v in positions[k]]
        scaling = Dataset()
        scaling.RescaleSlope, scaling.RescaleIntercept, scaling.RescaleType = slope, intercept, "US"
        echo = Dataset()
        echo.EffectiveEchoTime = te
        ftype = Dataset()
        ftype.FrameType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
        item.PlanePositionSequence = Sequence([plane])
        item.PixelValueTransformationSequence = Sequence([scaling])
        item.MREchoSequence = Sequence([echo])
        item.MRImageFrameTypeSequence = Sequence([ftype])
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    _file_meta(ds)
    ds.PixelData = pixels.tobytes()
    _save(ds, path)
    return path, pixels
