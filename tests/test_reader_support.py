"""Helpers shared by the reader-app tests (exam folders, findings, login) and tests of the exam scanner."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from nervemuscle.anatomy import MUSCLES, ROOTS, SIDES, muscle_label, root_label
from nervemuscle.errors import BadInputError
from nervemuscle.reader.db import WriteTurn
from nervemuscle.reader.display import display_copy, preview_copy, preview_factors, prune_cache
from nervemuscle.reader.exams import discover_exams, resolve_inside
from nervemuscle.volume import Volume, block_mean

PASSWORD = "correct horse battery"


def exam_affine(shape, spacing=(0.8, 0.8, 3.0)):
    aff = np.diag([*spacing, 1.0])
    aff[:3, 3] = -np.array(shape) * np.array(spacing) / 2
    return aff


def synthetic_slab(shape, rng):
    """T1, T2 fat-sat and labels of a crude axial neck-shoulder slab: fat rim, muscles, two bright roots."""
    i, j = np.indices(shape[:2], dtype=float)
    x, y = (i / shape[0] - 0.5) * 2, (j / shape[1] - 0.5) * 2  # -1..1, x to the patient's left (RAS: +x right)

    def ellipse(cx, cy, rx, ry):
        return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 < 1

    body = ellipse(0, 0, 0.95, 0.6)
    lab = np.where(body, 1, 0)  # subcutaneous fat
    lab[ellipse(0, 0, 0.85, 0.5)] = 10  # soft tissue
    for side, sx in (("right", 1), ("left", -1)):
        lab[ellipse(0.72 * sx, 0.0, 0.12, 0.35)] = muscle_label("deltoid", side)
        lab[ellipse(0.35 * sx, -0.3, 0.3, 0.12)] = muscle_label("trapezius", side)
        lab[ellipse(0.4 * sx, 0.25, 0.22, 0.1)] = muscle_label("pectoralis_major", side)
        lab[ellipse(0.18 * sx, 0.02, 0.05, 0.08)] = muscle_label("anterior_scalene", side)
        lab[ellipse(0.25 * sx, 0.0, 0.035, 0.035)] = root_label("C6", side)
    lab[ellipse(0, -0.05, 0.08, 0.1)] = 6  # spinal cord
    t1_lut, t2_lut = np.full(60, 400.0), np.full(60, 250.0)  # muscle
    for code, a, b in ((0, 5, 5), (1, 900, 80), (6, 500, 600), (10, 450, 300)):
        t1_lut[code], t2_lut[code] = a, b
    t1_lut[40:], t2_lut[40:] = 700, 1100  # roots
    t2_lut[muscle_label("deltoid", "left")] = 600  # an edematous muscle
    t1, t2 = t1_lut[lab], t2_lut[lab]
    k = np.abs(np.linspace(-1, 1, shape[2]))[None, None, :]
    fade = 1 - 0.3 * k
    t1 = t1[..., None] * fade + rng.normal(0, 15, shape)
    t2 = t2[..., None] * fade + rng.normal(0, 15, shape)
    labels = np.repeat(lab[..., None], shape[2], axis=2).astype(np.int16)
    return t1.astype(np.float32), t2.astype(np.float32), labels


def write_exam(root: Path, name: str, *, shape=(64, 64, 24), layout: str = "roles", labels: bool = True,
               findings: dict | None = None, descrip: str | None = None, clinical: dict | None = None) -> Path:
    """An exam folder with T1 and T2 fat-sat images of :func:`synthetic_slab` and its label map."""
    folder = root / name
    (folder / "series").mkdir(parents=True)
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    t1, t2, lab = synthetic_slab(shape, rng)
    aff = exam_affine(shape)
    files = {}
    for role, data in (("t1", t1), ("t2fs", t2)):
        fname = f"{role}.nii.gz" if layout == "roles" else f"series_{len(files) + 1:02d}.nii.gz"
        Volume(data, aff).save(folder / "series" / fname)
        files[fname] = role
    if descrip:
        img = nib.load(folder / "series" / next(iter(files)))
        img.header["descrip"] = descrip.encode()
        nib.save(img, folder / "series" / "tmp.nii.gz")
        (folder / "series" / "tmp.nii.gz").replace(folder / "series" / next(iter(files)))
    if layout == "sidecar":
        (folder / "series.json").write_text(json.dumps(files))
    if labels:
        (folder / "labels").mkdir()
        Volume(lab, aff).save(folder / "labels" / "segmentation.nii.gz")
    if findings is not None:
        (folder / "findings.json").write_text(json.dumps(findings))
    if clinical is not None:
        (folder / "clinical.json").write_text(json.dumps(clinical))
    return folder


def make_findings(exam_id: str, root_grade: int = 0, muscle_grade: int = 0) -> dict:
    """A schema-valid findings.json with the same grade on every root (T2 and calibre) and muscle scale."""
    nerves = [{"segment": r, "side": s, "csa_mm2": 12.0, "t2_ratio": 1.2, "grade": root_grade,
               "thickening_grade": root_grade, "t2_grade": root_grade} for r in ROOTS for s in SIDES]
    muscles = [{"name": m, "side": s, "volume_ml": 50.0, "t2_ratio": 1.0, "fat_fraction": 0.05,
                "edema_grade": muscle_grade, "atrophy_grade": muscle_grade, "fat_grade": muscle_grade}
               for m in MUSCLES for s in SIDES]
    return {"schema_version": 1, "software": {"name": "nervemuscle", "version": "test"}, "exam_id": exam_id,
            "protocol": {"name": "nervemuscle-default", "version": 1}, "sequences": [],
            "summary": {"abnormal": bool(root_grade or muscle_grade), "nerve_abnormal": root_grade > 0,
                        "muscle_abnormal": muscle_grade > 0, "muscle_atrophy": muscle_grade > 0,
                        "muscle_edema": muscle_grade > 0, "nerve_severity": "none", "muscle_severity": "none"},
            "nerves": nerves, "muscles": muscles, "not_assessable": []}


def login(client, username: str, password: str = PASSWORD):
    """Log in through the form (double-submit CSRF); returns the response of the POST."""
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token},
                       follow_redirects=False)


def csrf(client) -> dict:
    """Header carrying the logged-in session's CSRF token."""
    return {"X-CSRF-Token": client.get("/api/me").json()["csrf_token"]}


def unique_pg_database(base_url: str):
    """Create a throw-away database on the PostgreSQL server of ``base_url``; returns (url, drop)."""
    from sqlalchemy import create_engine, text

    name = f"nm_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = base_url.rsplit("/", 1)[0] + "/" + name

    def drop(engine=None):
        if engine is not None:
            engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url, drop


# ---------------------------------------------------------------- tests of the exam scanner

def test_scan_roles_and_sidecar_layouts(tmp_path):
    write_exam(tmp_path / "cohort", "ALS_001", findings=make_findings("ALS_001"))
    write_exam(tmp_path / "cohort", "MMN_002", layout="sidecar", labels=False)
    (tmp_path / "cohort" / "clinical.csv").write_text("id,diagnosis\nALS_001,ALS\nMMN_002,MMN\n")
    exams = discover_exams(tmp_path / "cohort")
    assert [e.exam_id for e in exams] == ["ALS_001", "MMN_002"]
    assert [(s.role, s.kind) for s in exams[0].series] == [("t1", "image"), ("t2fs", "image"),
                                                           ("segmentation", "labels")]
    assert [s.role for s in exams[1].series] == ["t1", "t2fs"]
    assert exams[1].clinical["diagnosis"] == "MMN" and exams[0].findings["exam_id"] == "ALS_001"
    assert exams[0].series[0].shape == (64, 64, 24)


def test_scan_reads_the_nervemuscle_ingest_series_json(tmp_path):
    folder = write_exam(tmp_path, "P1", layout="sidecar")
    files = json.loads((folder / "series.json").read_text())
    (folder / "series.json").unlink()
    ingest = {"exam": "P1", "n_series": 2, "patient": {}, "series": [
        {"file": name, "role": role, "number": k, "description": role} for k, (name, role) in enumerate(files.items())]}
    (folder / "series" / "series.json").write_text(json.dumps(ingest))
    (exam,) = discover_exams(folder)
    assert [(s.role, s.path.name) for s in exam.series if s.kind == "image"] == [
        ("t1", "series_01.nii.gz"), ("t2fs", "series_02.nii.gz")]


def test_scan_refuses_bad_folders_naming_the_file(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInputError, match="no exam folders"):
        discover_exams(tmp_path / "empty")
    bad = tmp_path / "bad" / "series"
    bad.mkdir(parents=True)
    (bad / "t1.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(BadInputError, match=r"t1\.nii\.gz: unreadable NIfTI"):
        discover_exams(tmp_path / "bad")
    pacs = tmp_path / "pacs" / "PAT1" / "dicom" / "1"  # a DICOM export, not converted yet
    pacs.mkdir(parents=True)
    (pacs / "IM0001").write_bytes(bytes(128) + b"DICM" + bytes(64))
    with pytest.raises(BadInputError, match=r"pacs: DICOM files but no NIfTI series: .*nervemuscle ingest"):
        discover_exams(tmp_path / "pacs")


def test_resolve_inside_refuses_traversal_and_symlinks(tmp_path):
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    assert resolve_inside(root, "a") == (root / "a").resolve()
    for escape in ("../", "a/../../x", str(tmp_path)):
        with pytest.raises(BadInputError, match="outside the data root"):
            resolve_inside(root, escape)
    (root / "link").symlink_to(tmp_path)
    with pytest.raises(BadInputError, match="outside the data root"):
        resolve_inside(root, "link")


def test_display_copy_drops_header_text_keeps_geometry_and_values(tmp_path):
    folder = write_exam(tmp_path, "E1", descrip="ALS patient Smith")
    source = nib.load(folder / "series" / "t1.nii.gz")
    copy = display_copy(folder / "series" / "t1.nii.gz", tmp_path / "cache")
    img = nib.load(copy)
    assert copy.suffix == ".nii" and img.header["descrip"].tobytes().strip(b"\x00") == b""
    assert not img.header.extensions
    np.testing.assert_array_equal(img.affine, source.affine)
    data = source.get_fdata()  # float32 series -> int16 with slope/intercept, within one grey step
    assert source.get_data_dtype() == np.float32 and img.get_data_dtype() == np.int16
    np.testing.assert_allclose(img.get_fdata(), data, atol=(data.max() - data.min()) / 65534)
    assert display_copy(folder / "series" / "t1.nii.gz", tmp_path / "cache") == copy  # made once
    assert list((tmp_path / "cache").iterdir()) == [copy]  # no temporary file left behind


def test_display_copy_of_labels_is_exact_uint8(tmp_path):
    labels = np.zeros((6, 5, 4), np.int16)
    labels[1:3, 2:4, 1] = 45
    labels[4, 0, 3] = 21
    nib.save(nib.Nifti1Image(labels, np.diag([0.8, 0.8, 3.0, 1.0])), tmp_path / "labels.nii.gz")
    img = nib.load(display_copy(tmp_path / "labels.nii.gz", tmp_path / "cache"))
    assert img.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asanyarray(img.dataobj), labels)


def test_preview_copy_is_the_block_mean_in_the_same_world_space(tmp_path):
    rng = np.random.default_rng(3)
    data = rng.normal(300, 40, (257, 130, 9)).astype(np.float32)  # float -> int16 with scl_slope
    affine = np.array([[0, 0.8, 0.1, -40], [-0.7, 0, 0, 60], [0, 0.05, 3.0, -20], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "t1.nii.gz")
    full = nib.load(display_copy(tmp_path / "t1.nii.gz", tmp_path / "cache"))
    small = nib.load(preview_copy(tmp_path / "t1.nii.gz", tmp_path / "cache"))
    assert preview_factors(full.shape) == (3, 2, 1) and small.shape == (86, 65, 9)
    assert small.get_data_dtype() == full.get_data_dtype() == np.int16
    values = full.get_fdata()
    # a preview voxel = mean of its 3 x 2 x 1 block, to within one grey step of the int16 scaling
    step = full.dataobj.slope
    np.testing.assert_allclose(small.get_fdata()[:85], block_mean(values[:255], (3, 2, 1)), atol=step)
    np.testing.assert_allclose(small.get_fdata()[10, 20, 4], values[30:33, 40:42, 4].mean(), atol=step)
    # its centre in world space is the centre of the block it averages (voxel 31, 40.5 of the full image)
    np.testing.assert_allclose(small.affine @ [10, 20, 4, 1], full.affine @ [31, 40.5, 4, 1], atol=1e-5)
    np.testing.assert_allclose(nib.affines.voxel_sizes(small.affine), nib.affines.voxel_sizes(affine) * [3, 2, 1])
    again = preview_copy(tmp_path / "t1.nii.gz", tmp_path / "cache")  # made once, no temporary file left
    assert nib.load(again).shape == small.shape and len(list((tmp_path / "cache").iterdir())) == 2


def test_preview_of_a_small_image_is_its_display_copy(tmp_path):
    nib.save(nib.Nifti1Image(np.zeros((128, 100, 20), np.int16), np.eye(4)), tmp_path / "a.nii.gz")
    assert preview_copy(tmp_path / "a.nii.gz", tmp_path / "c") == display_copy(tmp_path / "a.nii.gz", tmp_path / "c")


def test_prune_cache_keeps_current_copies_only(tmp_path):
    cache = tmp_path / "cache"
    a, b = tmp_path / "a.nii.gz", tmp_path / "b.nii.gz"
    for f in (a, b):
        nib.save(nib.Nifti1Image(np.zeros((130, 4, 3), np.int16), np.eye(4)), f)
    current = {display_copy(a, cache), preview_copy(a, cache)}
    old_b = {display_copy(b, cache), preview_copy(b, cache)}
    nib.save(nib.Nifti1Image(np.ones((130, 4, 3), np.int16), np.eye(4)), b)  # b changed: new copies
    os.utime(b, ns=(b.stat().st_atime_ns, b.stat().st_mtime_ns + 10**9))
    current |= {display_copy(b, cache), preview_copy(b, cache)}
    crashed, in_progress = cache / "tmpcrashed.nii", cache / "tmpwriting.nii"
    crashed.write_bytes(b"x")
    in_progress.write_bytes(b"x")
    os.utime(crashed, (time.time() - 7200, time.time() - 7200))
    gone = tmp_path / "gone.nii.gz"  # a series whose file was deleted: its copies go too
    nib.save(nib.Nifti1Image(np.zeros((3, 3, 3), np.int16), np.eye(4)), gone)
    gone_copy = display_copy(gone, cache)
    gone.unlink()
    assert prune_cache(cache, [a, b, gone]) == len(old_b) + 2
    assert set(cache.iterdir()) == current | {in_progress} and not gone_copy.exists()
    assert prune_cache(tmp_path / "no-cache-yet", [a]) == 0


_OTHER_PROCESS_TAKES_TURN = """import sys
from pathlib import Path
from nervemuscle.reader.db import WriteTurn
print(WriteTurn(Path(sys.argv[1]), timeout_s=float(sys.argv[2])).acquire())
"""


def test_write_turn_is_exclusive_across_processes(tmp_path):
    """``serve --workers``: SQLite writers of different processes queue on the ``.writelock`` file."""
    turn = WriteTurn(tmp_path / "db.writelock", timeout_s=0.2)

    def other_process_gets_it(timeout_s: float) -> bool:
        out = subprocess.run([sys.executable, "-c", _OTHER_PROCESS_TAKES_TURN, str(tmp_path / "db.writelock"),
                              str(timeout_s)], capture_output=True, text=True, timeout=60, check=True).stdout
        return out.strip() == "True"

    assert turn.acquire()
    assert not other_process_gets_it(0.2)
    turn.release()
    assert other_process_gets_it(0.2)  # (its turn ends with the process)
    assert turn.acquire()  # and this process's threads queue on the thread lock
    other_thread = []
    thread = threading.Thread(target=lambda: other_thread.append(turn.acquire()))
    thread.start()
    thread.join()
    assert other_thread == [False]
    turn.release()


def test_vendored_niivue_carries_the_gradient_patch():
    """viewer.js relies on the local ``skipGradientTexture`` option (see vendor/NIIVUE_VERSION)."""
    from importlib import resources

    bundle = resources.files("nervemuscle.reader").joinpath("static/vendor/niivue.umd.js").read_text()
    assert "this.gradientTexture=this.opts.skipGradientTexture?this.gradientTexture:" in bundle


class running_server:
    """Context manager: serve ``app`` with uvicorn on a free loopback port in a thread; yields the base URL."""

    def __init__(self, app):
        import socket
        import threading

        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    timeout_keep_alive=30))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        import time

        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


def http_login(base_url: str, username: str, password: str = PASSWORD):
    """An httpx client logged in to a running server, with the CSRF header set."""
    import httpx

    client = httpx.Client(base_url=base_url, timeout=30)
    assert login(client, username, password).status_code == 303
    client.headers.update(csrf(client))
    return client


def seed_study(app, data_root: Path, readers: list[str], n_exams: int, shape=(32, 32, 8)) -> int:
    """Users admin + ``readers``, ``n_exams`` exams imported, one blinded session; returns its id."""
    from nervemuscle.reader.auth import add_user

    with app.state.sessions.begin() as db:
        for name in ["admin", *readers]:
            add_user(db, name, "admin" if name == "admin" else "reader", PASSWORD)
    for i in range(n_exams):
        write_exam(data_root / "cohort", f"E{i:03d}", shape=shape, findings=make_findings(f"E{i:03d}", i % 3, i % 2))
    from fastapi.testclient import TestClient

    admin = TestClient(app)
    assert login(admin, "admin").status_code == 303
    h = csrf(admin)
    assert admin.post("/api/admin/exams/import", json={"path": "cohort"}, headers=h).status_code == 200
    r = admin.post("/api/admin/sessions", json={"name": "S", "exam_ids": [f"E{i:03d}" for i in range(n_exams)],
                                                "readers": readers}, headers=h)
    assert r.status_code == 201, r.text
    return r.json()["id"]
