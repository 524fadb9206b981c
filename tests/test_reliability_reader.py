"""Reader-app hardening: display copies and responses carry no exam-identifying text, series and read ids are
random, symlinks cannot reach outside the data root, CSP and no-store headers, X-Forwarded-For is not trusted,
and the workers of ``serve --workers`` end with a SIGKILLed supervisor (docs/reliability.md)."""
from __future__ import annotations

import os
import signal
import subprocess
import time

import httpx
import nibabel as nib
import numpy as np
import pytest
from fastapi.testclient import TestClient

from nervemuscle.reader.app import ReaderSettings, create_app
from nervemuscle.reader.auth import add_user
from nervemuscle.reader.display import display_copy, preview_copy
from test_reader_support import csrf, login, make_findings, seed_study, write_exam
from test_serve_cli import COMMAND, child_pids, free_port, running, wait_until_up

PLANTED = "ALS_patient_Smith"


def test_display_copies_keep_no_header_text_or_intent(tmp_path):
    img = nib.Nifti1Image(np.arange(200 * 30 * 8, dtype=np.int16).reshape(200, 30, 8), np.diag([0.5, 0.5, 3, 1]))
    hdr = img.header
    for field, size in (("descrip", 80), ("aux_file", 24), ("db_name", 18), ("data_type", 10), ("intent_name", 16)):
        hdr[field] = PLANTED.encode()[:size]
    hdr["intent_p1"], hdr["intent_p2"], hdr["intent_code"], hdr["cal_max"] = 4242.0, 7.0, 1001, 99.0
    hdr.extensions.append(nib.nifti1.Nifti1Extension(6, PLANTED.encode()))
    nib.save(img, tmp_path / "t1.nii.gz")
    display = display_copy(tmp_path / "t1.nii.gz", tmp_path / "cache")
    assert np.allclose(nib.load(display).affine, img.affine)  # geometry kept
    assert np.array_equal(np.asanyarray(nib.load(display).dataobj), img.get_fdata())
    for copy in (display, preview_copy(tmp_path / "t1.nii.gz", tmp_path / "cache")):
        raw = copy.read_bytes()
        assert PLANTED[:8].encode() not in raw and b"Smith" not in raw
        out = nib.load(copy).header
        assert float(out["intent_p1"]) == 0 and int(out["intent_code"]) == 0 and float(out["cal_max"]) == 0


@pytest.fixture
def study(tmp_path):
    data = tmp_path / "data"
    app = create_app(ReaderSettings(db_url=f"sqlite:///{tmp_path / 'r.db'}", data_root=data))
    session_id = seed_study(app, data, ["r1"], 6, shape=(16, 16, 4))
    reader = TestClient(app)
    assert login(reader, "r1").status_code == 303
    return app, reader, session_id, data


def test_series_and_read_ids_are_random_and_responses_name_no_exam(study):
    app, reader, _, _ = study
    work = reader.get("/api/worklist").json()
    read_ids = [r["read_id"] for r in work]
    series_ids = []
    for read_id in read_ids:
        response = reader.get(f"/api/reads/{read_id}")
        assert response.status_code == 200
        assert "E00" not in response.text and "cohort" not in response.text  # exam ids, folder names
        series_ids += [s["id"] for s in response.json()["series"]]
        for s in response.json()["series"]:
            copy = reader.get(s["url"])
            assert copy.status_code == 200 and b"E00" not in copy.content
    assert "E00" not in str(work)
    for ids in (read_ids, series_ids):
        assert len(set(ids)) == len(ids) and max(ids) > 10 * len(ids)  # not 1..n in creation order
        assert sorted(ids) != ids or len(ids) < 3


def test_a_symlinked_file_pointing_outside_the_data_root_is_refused(tmp_path):
    data = tmp_path / "data"
    write_exam(tmp_path / "outside", "SECRET", findings=make_findings("SECRET"))
    folder = write_exam(data, "E1", labels=False)
    (folder / "series" / "t1.nii.gz").unlink()
    (folder / "series" / "t1.nii.gz").symlink_to(tmp_path / "outside" / "SECRET" / "series" / "t1.nii.gz")
    app = create_app(ReaderSettings(db_url=f"sqlite:///{tmp_path / 'r.db'}", data_root=data))
    with app.state.sessions.begin() as db:
        add_user(db, "admin", "admin", "correct horse battery")
    admin = TestClient(app)
    assert login(admin, "admin", "correct horse battery").status_code == 303
    r = admin.post("/api/admin/exams/import", json={"path": "E1"}, headers=csrf(admin))
    assert r.status_code == 403 and "outside the data root" in r.json()["detail"]


def test_security_headers_on_json_and_html(study):
    _, reader, _, _ = study
    for path in ("/api/worklist", "/worklist", "/login"):
        r = reader.get(path)
        assert r.headers["cache-control"] == "no-store", path
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]
    html = reader.get("/worklist").text
    assert "<script>" not in html  # no inline script: the policy would block it


def test_forwarded_for_is_not_trusted_and_supervisor_kill_ends_the_workers(tmp_path):
    db = f"sqlite:///{tmp_path / 'reader.db'}"
    with create_app(ReaderSettings(db_url=db, data_root=tmp_path)).state.sessions.begin() as session:
        add_user(session, "ada", "reader", "correct horse battery")
    port = free_port()
    proc = subprocess.Popen([COMMAND, "serve", "--db", db, "--port", str(port), "--data-root", str(tmp_path),
                             "--workers", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(proc, f"{base}/login")
        statuses = []
        with httpx.Client(base_url=base, timeout=10) as client:
            for i in range(6):  # a new forged address each time: the throttle must still see one client
                page = client.get("/login")
                token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
                statuses.append(client.post("/login", data={"username": "ada", "password": "wrong",
                                                            "csrf_token": token},
                                            headers={"X-Forwarded-For": f"10.0.0.{i}"}).status_code)
        assert statuses == [401] * 5 + [429], statuses
        workers = child_pids(proc.pid)
        assert workers
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 15
        while any(running(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(running(w) for w in workers), "workers outlived the supervisor"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
