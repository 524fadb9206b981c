"""Geometry and voxel values of `nervemuscle.io` agree with dcm2niix (compared in world space, RAS+)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom.data
import pytest

from nervemuscle.io import load_exam
from io_fixtures import oblique_orientation, write_enhanced, write_series

DCM2NIIX = shutil.which("dcm2niix")
TEST_FILES = Path(pydicom.data.__file__).parent / "test_files"
pytestmark = pytest.mark.skipif(DCM2NIIX is None, reason="dcm2niix not installed")


def dcm2niix(src: Path, out: Path) -> list[Path]:
    """Convert ``src`` with dcm2niix (``-z y -b y``) and return the NIfTI files it wrote."""
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run([DCM2NIIX, "-z", "y", "-b", "y", "-f", "%s_%j", "-o", str(out), str(src)],
                   check=True, capture_output=True)
    return sorted(out.glob("*.nii.gz"))


def canonical(img: nib.Nifti1Image) -> tuple[np.ndarray, np.ndarray]:
    """Affine and scaled voxel values after reorienting to the closest RAS+ voxel axes."""
    img = nib.as_closest_canonical(img)
    return img.affine, np.asarray(img.get_fdata(dtype=np.float64)).squeeze()


def assert_same_as_dcm2niix(src: Path, tmp: Path) -> int:
    """Every series we load from ``src`` matches one dcm2niix output (affine 0.01 mm, voxels exactly)."""
    exam = load_exam(src)
    theirs = [canonical(nib.load(str(p))) for p in dcm2niix(src, tmp / "dcm2niix")]
    assert theirs, "dcm2niix wrote nothing"
    for series in exam.series:
        aff, data = canonical(series.volume.to_nifti())
        matches = [t for t in theirs if t[1].shape == data.shape and np.allclose(t[0], aff, atol=0.01)]
        assert matches, f"no dcm2niix image with the geometry of {series.uid}:\n{aff}\n" + \
            "\n".join(f"{t[1].shape}\n{t[0]}" for t in theirs)
        assert any(np.array_equal(t[1], data) for t in matches), f"voxel values differ for {series.uid}"
    return len(exam.series)


@pytest.mark.parametrize("name", ["MR_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm",
                                  "MR_small_RLE.dcm", "MR_small_jp2klossless.dcm"])
def test_pydicom_mr_small_matches_dcm2niix(tmp_path, name):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(TEST_FILES / name, src / name)
    assert assert_same_as_dcm2niix(src, tmp_path) == 1


def test_jpeg_ls_decodes_like_uncompressed(tmp_path):
    """Debian's dcm2niix has no JPEG-LS decoder: compare with the uncompressed twin file instead."""
    for name in ("MR_small.dcm", "MR_small_jpeg_ls_lossless.dcm"):
        (tmp_path / name).mkdir()
        shutil.copy(TEST_FILES / name, tmp_path / name / name)
    plain, jls = (load_exam(tmp_path / n).series[0].volume for n in ("MR_small.dcm", "MR_small_jpeg_ls_lossless.dcm"))
    np.testing.assert_array_equal(plain.affine, jls.affine)
    np.testing.assert_array_equal(plain.data, jls.data)


def test_pydicom_dicomdir_mr_series_match_dcm2niix(tmp_path):
    files = sorted(p for p in (TEST_FILES / "dicomdirtests" / "98892003").rglob("*") if p.is_file())
    assert len(files) >= 10
    for i, path in enumerate(files):  # single-slice localizers in several orientations: one file at a time
        src = tmp_path / f"in{i}"
        src.mkdir()
        shutil.copy(path, src / path.name)
        assert assert_same_as_dcm2niix(src, tmp_path / f"out{i}") == 1


@pytest.mark.parametrize("orientation", ["axial", "coronal", "sagittal", "oblique"])
def test_synthetic_series_match_dcm2niix(tmp_path, orientation):
    iop = oblique_orientation() if orientation == "oblique" else orientation
    write_series(tmp_path / "in" / "a" / "b", orientation=iop, slope=2.0, intercept=-1024.0)
    assert assert_same_as_dcm2niix(tmp_path / "in", tmp_path) == 1


def test_synthetic_compressed_series_matches_dcm2niix(tmp_path):
    write_series(tmp_path / "in", orientation=oblique_orientation(-25, 8), compress=True)
    assert assert_same_as_dcm2niix(tmp_path / "in", tmp_path) == 1


def test_enhanced_multiframe_matches_dcm2niix(tmp_path):
    write_enhanced(tmp_path / "in" / "enhanced.dcm")
    assert assert_same_as_dcm2niix(tmp_path / "in", tmp_path) == 1


def test_affine_places_known_voxels(tmp_path):
    """Independent of dcm2niix: voxel (i=column, j=row, k=slice) lands where the DICOM header says (LPS->RAS)."""
    iop = oblique_orientation()
    paths = write_series(tmp_path, orientation=iop, pixel_spacing=(0.8, 0.7), slice_step=3.0,
                         origin=(-10.5, 22.25, 40.0))
    vol = load_exam(tmp_path).series[0].volume
    row, col = np.array(iop[:3]), np.array(iop[3:])
    normal = np.cross(row, col)
    lps = np.array([-10.5, 22.25, 40.0]) + 5 * 0.7 * row + 7 * 0.8 * col + 2 * 3.0 * normal
    np.testing.assert_allclose(vol.voxel_to_world(np.array([[5, 7, 2]]))[0], lps * [-1, -1, 1], atol=1e-4)
    first = pydicom.dcmread(paths[2])
    assert vol.data[5, 7, 2] == first.pixel_array[7, 5]
