"""Write a phantom series as classic MR Image Storage DICOM, one file per slice, vendor-flavoured headers.

Geometry: voxel ``(i, j, k)`` of a :class:`~nervemuscle.volume.Volume` becomes column ``i``, row ``j``
of slice ``k``. ImageOrientationPatient holds the directions of increasing column and row index,
ImagePositionPatient the centre of the first pixel of each slice, both converted from RAS+ to LPS.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, PYDICOM_IMPLEMENTATION_UID, generate_uid

RAS_TO_LPS = np.array([-1.0, -1.0, 1.0])

#: SeriesDescription, ScanningSequence, SequenceVariant, ScanOptions, SequenceName per vendor and role.
VENDOR_SERIES = {
    "siemens": {
        "manufacturer": "SIEMENS", "model": "MAGNETOM Prisma",
        "t1": ("t1_tse_tra", "SE", "SK\\SP\\OSP", "", "*tse2d1_3"),
        "t2fs": ("t2_tse_tra_fs", "SE", "SK\\SP\\OSP", "FS", "*tse2d1_15"),
        "stir": ("t2_stir_spc_cor_iso", "SE\\IR", "SK\\SP\\MP\\OSP", "IR", "*spcir_150"),
        "dixon": ("t2_tse_dixon_tra", "SE", "SK\\SP\\OSP", "", "*tse3d1_21"),
    },
    "ge": {
        "manufacturer": "GE MEDICAL SYSTEMS", "model": "SIGNA Premier",
        "t1": ("Ax T1 FSE", "SE", "SK", "FAST_GEMS\\EDR_GEMS", "fse-xl_208"),
        "t2fs": ("Ax T2 FSE FS", "SE", "SK", "FAST_GEMS\\EDR_GEMS\\FS", "fse-xl_208"),
        "stir": ("3D STIR CUBE", "SE\\IR", "SK\\MP", "FAST_GEMS\\EDR_GEMS\\IR_GEMS", "Cube"),
        "dixon": ("Ax FSE IDEAL", "SE", "SK", "FAST_GEMS\\EDR_GEMS", "fse-xl_208"),
    },
    "philips": {
        "manufacturer": "Philips Medical Systems", "model": "Ingenia",
        "t1": ("T1W_TSE", "SE", "SK", "", "TSE"),
        "t2fs": ("T2W_TSE_SPAIR", "SE", "SK", "FS", "TSE"),
        "stir": ("3D_NerveVIEW", "IR", "SK\\MP", "IR", "TSE"),
        "dixon": ("mDIXON_TSE", "SE", "SK", "", "TSE"),
    },
}
VENDORS = tuple(VENDOR_SERIES)

#: Dixon image roles -> (ImageType value 4, Siemens suffix, GE prefix, Philips suffix)
DIXON_NAMES = {
    "water": ("WATER", "_W", "WATER: ", "_W"),
    "fat": ("FAT", "_F", "FAT: ", "_F"),
    "in": ("IN_PHASE", "_in", "InPhase: ", "_IP"),
    "opp": ("OUT_PHASE", "_opp", "OutPhase: ", "_OP"),
}


def series_description(vendor: str, role: str, image_role: str | None = None) -> str:
    """Vendor-style SeriesDescription, e.g. Siemens 't2_tse_tra_fs', GE 'WATER: Ax FSE IDEAL'."""
    base = VENDOR_SERIES[vendor][role][0]
    if role != "dixon" or image_role is None:
        return base
    _, s_suffix, g_prefix, p_suffix = DIXON_NAMES[image_role]
    return {"siemens": base + s_suffix, "ge": g_prefix + base, "philips": base + p_suffix}[vendor]


def deterministic_uid(*parts) -> str:
    """A DICOM UID derived from ``parts`` (same parts -> same UID)."""
    return generate_uid(entropy_srcs=[str(p) for p in parts])


def _ds(value: float) -> str:
    """DICOM DS string (at most 16 characters)."""
    text = f"{value:.10g}"
    return text if len(text) <= 16 else f"{value:.8e}"


def write_series(volume, directory: str | Path, *, series_number: int, description: str, vendor: str,
                 role: str, acquisition, patient: dict, study_uid: str, frame_uid: str, series_uid: str,
                 image_role: str | None = None, field_strength: float = 3.0) -> list[Path]:
    """Write ``volume`` as one DICOM file per slice into ``directory`` (``IM_0001.dcm`` ...).

    The scaled float voxel values are stored as uint16 with RescaleSlope/RescaleIntercept.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    vs = VENDOR_SERIES[vendor]
    _, scanning, variant, options, seqname = vs[role]
    aff = volume.affine
    sp = volume.spacing
    row_dir = aff[:3, 0] / sp[0] * RAS_TO_LPS      # direction of increasing column index (along a row)
    col_dir = aff[:3, 1] / sp[1] * RAS_TO_LPS
    data = np.asarray(volume.data, np.float64)
    vmax = float(max(data.max(), 1e-6))
    slope = vmax / 32000.0
    pixels = np.clip(np.rint(data / slope), 0, 65535).astype(np.uint16)

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MRImageStorage
    ds.Modality = "MR"
    ds.Manufacturer = vs["manufacturer"]
    ds.ManufacturerModelName = vs["model"]
    ds.PatientName = patient["name"]
    ds.PatientID = patient["id"]
    ds.PatientSex = patient.get("sex", "O")
    ds.PatientAge = f"{int(patient.get('age', 50)):03d}Y"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = frame_uid
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20260101"
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
    ds.StudyID = "1"
    ds.AccessionNumber = patient["id"][:16]
    ds.StudyDescription = "MR BRACHIAL PLEXUS BILATERAL"
    ds.BodyPartExamined = "BRACHIALPLEXUS"
    ds.SeriesNumber = int(series_number)
    ds.SeriesDescription = description
    ds.ProtocolName = description
    ds.ImageType = ["DERIVED", "PRIMARY", "DIXON", DIXON_NAMES[image_role][0]] if role == "dixon" \
        else ["ORIGINAL", "PRIMARY", "M", "NORM"]
    ds.ScanningSequence = scanning
    ds.SequenceVariant = variant
    ds.ScanOptions = options
    ds.SequenceName = seqname
    ds.MRAcquisitionType = acquisition.mode
    ds.RepetitionTime = _ds(acquisition.tr_ms)
    ds.EchoTime = _ds(acquisition.te_ms)
    ti = acquisition.ti_at(field_strength)
    if ti is not None:
        ds.InversionTime = _ds(ti)
    ds.EchoTrainLength = 15 if acquisition.mode == "2D" else 80
    ds.FlipAngle = _ds(acquisition.flip_angle_deg)
    ds.MagneticFieldStrength = _ds(field_strength)
    ds.ImagingFrequency = _ds(42.577478 * field_strength)
    ds.ImagedNucleus = "1H"
    ds.PatientPosition = "HFS"
    ds.SliceThickness = _ds(acquisition.thickness_mm)
    ds.SpacingBetweenSlices = _ds(float(sp[2]))
    ds.PixelSpacing = [_ds(float(sp[1])), _ds(float(sp[0]))]   # row spacing (along j), column spacing (along i)
    ds.ImageOrientationPatient = [_ds(float(v)) for v in np.concatenate([row_dir, col_dir])]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(volume.shape[1]), int(volume.shape[0])
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = "0"
    ds.RescaleSlope = _ds(slope)
    ds.RescaleType = "US"
    ds.WindowCenter = _ds(vmax * 0.35)
    ds.WindowWidth = _ds(vmax * 0.7)
    normal = np.cross(row_dir, col_dir)
    chunks = _constant_chunks(ds)
    paths = []
    for k in range(volume.shape[2]):
        pos = (aff[:3, :3] @ np.array([0.0, 0.0, k]) + aff[:3, 3]) * RAS_TO_LPS
        uid = deterministic_uid(series_uid, k)
        var = Dataset()
        var.SOPInstanceUID = uid
        var.InstanceNumber = k + 1
        var.ImagePositionPatient = [_ds(float(v)) for v in pos]
        var.SliceLocation = _ds(float(pos @ normal))
        var.PixelData = np.ascontiguousarray(pixels[:, :, k].T).tobytes()
        var["PixelData"].VR = "OW"
        meta.MediaStorageSOPInstanceUID = uid
        path = directory / f"IM_{k + 1:04d}.dcm"
        path.write_bytes(_assemble(meta, chunks, var))
        paths.append(path)
    return paths


#: Per-slice elements; the rest of the header is encoded once per series.
_SLICE_TAGS = (0x00080018, 0x00200013, 0x00200032, 0x00201041, 0x7FE00010)


def _encode(ds: Dataset) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    write_dataset(fp, ds)
    return fp.getvalue()


def _constant_chunks(ds: Dataset) -> list[bytes]:
    """Encoded runs of constant elements between the per-slice tags (in tag order)."""
    bounds = (0, *_SLICE_TAGS, 0xFFFFFFFF)
    chunks = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        part = Dataset()
        for elem in ds:
            if lo < elem.tag < hi:
                part.add(elem)
        chunks.append(_encode(part))
    return chunks


def _assemble(meta: FileMetaDataset, chunks: list[bytes], var: Dataset) -> bytes:
    """Preamble, file meta, then constant chunks interleaved with the per-slice elements."""
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    write_file_meta_info(fp, meta, enforce_standard=True)
    parts = [b"\0" * 128, b"DICM", fp.getvalue(), chunks[0]]
    for tag, chunk in zip(_SLICE_TAGS, chunks[1:]):
        one = Dataset()
        one.add(var[tag])
        parts += [_encode(one), chunk]
    return b"".join(parts)
