"""Reader app API: authentication, authorisation, blinding, CSRF, import, reads, audit, export, agreement."""
from __future__ import annotations

import csv
import io
import json
import sys

import nibabel as nib
import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from nervemuscle.cli import main
from nervemuscle.reader import auth
from nervemuscle.reader.app import ReaderSettings, create_app
from nervemuscle.reader.models import AuditEntry, User
from test_reader_support import PASSWORD, csrf, login, make_findings, seed_study, write_exam

EXAMS = ("ALS_001", "MMN_002", "CTL_003")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    base = tmp_path_factory.mktemp("reader")
    data = base / "data"
    write_exam(data / "cohort", "ALS_001", findings=make_findings("ALS_001", root_grade=1, muscle_grade=2),
               descrip="ALS, Mr Smith")
    write_exam(data / "cohort", "MMN_002", findings=make_findings("MMN_002"), layout="sidecar")
    write_exam(data / "cohort", "CTL_003", labels=False, shape=(160, 64, 24))  # 160 > 128: served with a preview
    (data / "cohort" / "clinical.csv").write_text("id,diagnosis,age\nALS_001,ALS,61\nMMN_002,MMN,44\nCTL_003,control,50\n")
    (base / "outside").mkdir()
    write_exam(base / "outside", "SECRET_9")
    db_url = f"sqlite:///{base / 'reader.db'}"
    for name, role in (("admin", "admin"), ("r1", "reader"), ("r2", "reader"), ("r3", "reader")):
        sys.stdin = io.StringIO(PASSWORD + "\n")
        try:
            assert main(["users", "add", name, "--role", role, "--password-stdin", "--db", db_url]) == 0
        finally:
            sys.stdin = sys.__stdin__
    app = create_app(ReaderSettings(db_url=db_url, data_root=data, max_upload_bytes=64 * 1024))
    return {"app": app, "base": base, "db_url": db_url}


def client_for(env, username=None):
    client = TestClient(env["app"])
    if username:
        assert login(client, username).status_code == 303
    return client


@pytest.fixture(scope="module")
def study(env):
    """Admin imports the cohort and creates a blinded session for r1 and r2."""
    admin = client_for(env, "admin")
    h = csrf(admin)
    assert admin.post("/api/admin/exams/import", json={"path": "cohort"}, headers=h).json()["imported"] == sorted(EXAMS)
    r = admin.post("/api/admin/sessions", json={"name": "Study A", "exam_ids": list(EXAMS), "readers": ["r1", "r2"]},
                   headers=h)
    assert r.status_code == 201, r.text
    return {"admin": admin, "h": h, "session_id": r.json()["id"]}


def test_cli_users_add_refuses_short_password_and_duplicates(env, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    assert main(["users", "add", "x", "--role", "reader", "--password-stdin", "--db", env["db_url"]]) == 2
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["users", "add", "r1", "--role", "reader", "--password-stdin", "--db", env["db_url"]]) == 2
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["users", "add", "y", "--role", "boss", "--password-stdin", "--db", env["db_url"]]) == 2


def test_passwords_are_argon2_hashed(env):
    with env["app"].state.sessions() as db:
        hashes = db.scalars(select(User.password_hash)).all()
    assert all(h.startswith("$argon2id$") and PASSWORD not in h for h in hashes)


def test_nothing_without_login(env, study):
    anon = client_for(env)
    for method, url in [("GET", "/api/me"), ("GET", "/api/worklist"), ("GET", "/api/reads/1"),
                        ("PUT", "/api/reads/1"), ("POST", "/api/reads/1/submit"),
                        ("GET", "/api/reads/1/series/1/t1.nii.gz"), ("GET", "/api/admin/users"),
                        ("POST", "/api/admin/users"), ("GET", "/api/admin/exams"), ("POST", "/api/admin/exams/import"),
                        ("POST", "/api/admin/exams/ALS_001/findings"), ("GET", "/api/admin/sessions"),
                        ("POST", "/api/admin/sessions"), ("GET", "/api/admin/sessions/1/progress"),
                        ("GET", "/api/admin/sessions/1/export"), ("GET", "/api/admin/sessions/1/agreement"),
                        ("GET", "/api/admin/reads/1/audit")]:
        assert anon.request(method, url).status_code == 401, url
    for page in ("/", "/worklist", "/read/1", "/admin", "/admin/sessions/1"):
        r = anon.get(page, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login", page
    assert anon.get("/login").status_code == 200


def test_session_cookie_flags(env):
    r = login(client_for(env), "r1")
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and auth.SESSION_COOKIE in cookie


def test_login_needs_csrf_and_right_password_and_is_rate_limited(env):
    c = client_for(env)
    assert c.post("/login", data={"username": "r3", "password": PASSWORD}).status_code == 403
    for _ in range(auth.MAX_FAILURES):
        assert login(c, "r3", "wrong password!").status_code == 401
    r = login(c, "r3")  # right password, but too many failures from this client within a minute
    assert r.status_code == 429 and r.headers["retry-after"] == "60"
    assert login(client_for(env), "admin").status_code == 303  # other user names are not affected


def test_logout_needs_csrf_and_ends_the_session(env):
    c = client_for(env, "r1")
    assert c.post("/logout", data={}).status_code == 403
    assert c.post("/logout", data={"csrf_token": csrf(c)["X-CSRF-Token"]}, follow_redirects=False).status_code == 303
    assert c.get("/api/me").status_code == 401


def test_reader_is_refused_admin_api_and_pages(env, study):
    r1 = client_for(env, "r1")
    h = csrf(r1)
    assert r1.get("/admin").status_code == 403
    assert r1.get(f"/admin/sessions/{study['session_id']}").status_code == 403
    for method, url in [("GET", "/api/admin/users"), ("GET", "/api/admin/exams"),
                        ("GET", f"/api/admin/sessions/{study['session_id']}/export"),
                        ("GET", f"/api/admin/sessions/{study['session_id']}/agreement")]:
        assert r1.request(method, url, headers=h).status_code == 403, url
    assert r1.post("/api/admin/exams/import", json={"path": "cohort"}, headers=h).status_code == 403
    assert r1.post("/api/admin/users", json={"username": "z", "role": "admin", "password": PASSWORD},
                   headers=h).status_code == 403


def test_import_refuses_paths_outside_the_data_root(env, study):
    admin, h = study["admin"], study["h"]
    for path in ("../outside", "cohort/../../outside/SECRET_9", str(env["base"] / "outside")):
        r = admin.post("/api/admin/exams/import", json={"path": path}, headers=h)
        assert r.status_code == 403 and "outside the data root" in r.json()["detail"], path
    assert admin.post("/api/admin/exams/import", json={"path": "nope"}, headers=h).status_code == 400
    exams = admin.get("/api/admin/exams").json()
    assert [e["exam_id"] for e in exams] == sorted(EXAMS)
    assert exams[0]["clinical"]["diagnosis"] == "ALS" and exams[0]["has_findings"]
    # re-importing replaces, not duplicates
    assert admin.post("/api/admin/exams/import", json={"path": "cohort/MMN_002"}, headers=h).json()["imported"] == ["MMN_002"]
    assert len(admin.get("/api/admin/exams").json()) == 3


def test_csrf_enforced_on_api_writes(env, study):
    admin = study["admin"]
    assert admin.post("/api/admin/exams/import", json={"path": "cohort"}).status_code == 403
    assert admin.post("/api/admin/exams/import", json={"path": "cohort"},
                      headers={"X-CSRF-Token": "forged"}).status_code == 403
    r1 = client_for(env, "r1")
    read_id = r1.get("/api/worklist").json()[0]["read_id"]
    assert r1.put(f"/api/reads/{read_id}", json={"grades": []}).status_code == 403
    assert r1.post(f"/api/reads/{read_id}/submit").status_code == 403


def test_oversized_and_invalid_uploads_refused(env, study):
    admin, h = study["admin"], study["h"]
    big = b"{" + b" " * (70 * 1024) + b"}"
    r = admin.post("/api/admin/exams/CTL_003/findings", files={"file": ("findings.json", big)}, headers=h)
    assert r.status_code == 413
    r = admin.post("/api/admin/exams/import", content=b'{"path": "' + b"a" * 70000 + b'"}',
                   headers={**h, "Content-Type": "application/json"})
    assert r.status_code == 413
    r = admin.post("/api/admin/exams/CTL_003/findings", files={"file": ("f.json", b'{"nerves": []}')}, headers=h)
    assert r.status_code == 422 and "not a valid findings.json" in r.json()["detail"]
    ok = json.dumps(make_findings("CTL_003")).encode()
    r = admin.post("/api/admin/exams/CTL_003/findings", files={"file": ("findings.json", ok)}, headers=h)
    assert r.status_code == 200 and r.json()["n_nerves"] == 10


def test_session_order_is_randomised_per_reader_with_stored_seed(env, study):
    admin = study["admin"]
    prog = admin.get(f"/api/admin/sessions/{study['session_id']}/progress").json()
    assert [r["reader"] for r in prog["readers"]] == ["r1", "r2"] and all(r["total"] == 3 for r in prog["readers"])
    r = admin.post("/api/admin/sessions", json={"name": "bad", "exam_ids": ["NOPE"], "readers": ["r1"]},
                   headers=study["h"])
    assert r.status_code == 422 and "NOPE" in r.json()["detail"]
    from nervemuscle.reader.models import Read
    with env["app"].state.sessions() as db:
        for reader in prog["readers"]:
            uid = db.scalar(select(User.id).where(User.username == reader["reader"]))
            reads = db.scalars(select(Read).where(Read.session_id == study["session_id"], Read.reader_id == uid)
                               .order_by(Read.position)).all()
            expected = np.random.default_rng(reader["seed"]).permutation(3)
            assert [r.exam_pk for r in reads] == [sorted(r.exam_pk for r in reads)[i] for i in expected]


def test_reader_sees_no_clinical_data_no_exam_ids_no_other_reads(env, study):
    r1, r2 = client_for(env, "r1"), client_for(env, "r2")
    work = r1.get("/api/worklist")
    assert [w["case"] for w in work.json()] == ["Case 1", "Case 2", "Case 3"]
    texts = [work.text, r1.get("/worklist").text]
    for w in work.json():
        read = r1.get(f"/api/reads/{w['read_id']}")
        assert set(read.json()) == {"read_id", "case", "session", "form", "comment", "grades", "submitted_at", "series",
                                     "label_names"}
        texts += [read.text, r1.get(f"/read/{w['read_id']}").text]
    for text in texts:
        for secret in ("ALS", "MMN", "CTL", "diagnosis", "clinical", "findings", "Smith", "r2"):
            assert secret not in text, secret
    other = r2.get("/api/worklist").json()[0]["read_id"]
    assert r1.get(f"/api/reads/{other}").status_code == 404
    assert r1.put(f"/api/reads/{other}", json={"grades": []}, headers=csrf(r1)).status_code == 404
    assert r1.get(f"/read/{other}").status_code == 200  # the empty page shell; its data API refuses


def test_series_served_blinded_and_only_for_own_exam(env, study):
    r1 = client_for(env, "r1")
    reads = [r1.get(f"/api/reads/{w['read_id']}").json() for w in r1.get("/api/worklist").json()]
    seen_descrip, previews = [], []
    for read in reads:
        for s in read["series"]:
            r = r1.get(s["url"])
            assert r.status_code == 200
            img = nib.Nifti1Image.from_bytes(r.content)
            assert list(img.shape) == s["shape"]
            seen_descrip.append(img.header["descrip"].tobytes().strip(b"\x00"))
            # a preview only for images with an axis > display.PREVIEW_MAX_SIZE (CTL_003's 160 x 64 x 24)
            assert (s["preview_url"] is not None) == (s["kind"] == "image" and s["shape"][0] == 160)
            if s["preview_url"]:
                small = nib.Nifti1Image.from_bytes(r1.get(s["preview_url"]).content)
                assert small.shape == (80, 64, 24) and small.get_data_dtype() == img.get_data_dtype()
                np.testing.assert_allclose(small.affine[:3, :3], img.affine[:3, :3] @ np.diag([2, 1, 1]))
                assert not small.header["descrip"].tobytes().strip(b"\x00")
                previews.append(s)
    assert seen_descrip and not any(seen_descrip)
    assert len(previews) == 2  # T1 and T2 fat-sat of CTL_003
    a, b = reads[0], reads[1]
    foreign = b["series"][0]["id"]
    assert r1.get(f"/api/reads/{a['read_id']}/series/{foreign}/t1.nii").status_code == 404
    assert r1.get(f"/api/reads/{a['read_id']}/series/{foreign}/t1.nii?preview=true").status_code == 404
    assert client_for(env).get(previews[0]["preview_url"]).status_code == 401
    assert {s["kind"] for r in reads for s in r["series"]} == {"image", "labels"}


def test_unreadable_series_is_a_500_without_its_path(tmp_path, caplog):
    app = create_app(ReaderSettings(db_url=f"sqlite:///{tmp_path / 'reader.db'}", data_root=tmp_path / "data"))
    seed_study(app, tmp_path / "data", ["r1"], n_exams=1)
    (tmp_path / "data" / "cohort" / "E000" / "series" / "t1.nii.gz").write_bytes(b"not a NIfTI file")
    reader = TestClient(app)
    assert login(reader, "r1").status_code == 303
    read = reader.get(f"/api/reads/{reader.get('/api/worklist').json()[0]['read_id']}").json()
    t1 = next(s for s in read["series"] if s["role"] == "t1")
    with caplog.at_level("ERROR", logger="nervemuscle.reader.api"):
        r = reader.get(t1["url"])
    assert r.status_code == 500 and r.json() == {"detail": "the series file could not be read (see the server log)"}
    assert "E000" in caplog.text and "t1.nii.gz" in caplog.text  # the log names the file, the reader never sees it


def _grade_all(client, read_id, grade, impression):
    read = client.get(f"/api/reads/{read_id}").json()
    grades = [{"item": item, "scale": scale["name"], "grade": min(grade, len(scale["choices"]) - 1)}
              for section in read["form"][:2] for item in section["items"] for scale in section["scales"]]
    grades.append({"item": "overall", "scale": "impression", "grade": impression})
    return client.put(f"/api/reads/{read_id}", json={"grades": grades, "comment": "ok"}, headers=csrf(client))


def test_autosave_validation_audit_submit_lock_export_agreement(env, study):
    r1, r2, admin = client_for(env, "r1"), client_for(env, "r2"), study["admin"]
    h1 = csrf(r1)
    read_id = r1.get("/api/worklist").json()[0]["read_id"]
    url = f"/api/reads/{read_id}"
    assert r1.put(url, json={"grades": [{"item": "L5_left", "scale": "nerve_t2", "grade": 1}]}, headers=h1).status_code == 422
    assert r1.put(url, json={"grades": [{"item": "C5_left", "scale": "nerve_t2", "grade": 4}]}, headers=h1).status_code == 422
    assert r1.put(url, json={"grades": [{"item": "C5_left", "scale": "nerve_t2", "grade": 2}]}, headers=h1).json()["saved"] == 1
    assert r1.put(url, json={"grades": [{"item": "C5_left", "scale": "nerve_t2", "grade": 2}]}, headers=h1).json()["saved"] == 0
    assert r1.put(url, json={"grades": [{"item": "C5_left", "scale": "nerve_t2", "grade": None}]}, headers=h1).json()["n_graded"] == 0
    assert r1.post(f"{url}/submit", headers=h1).status_code == 422  # no overall impression yet
    worklists = {name: c.get("/api/worklist").json() for name, c in (("r1", r1), ("r2", r2))}
    for name, c in (("r1", r1), ("r2", r2)):
        for i, w in enumerate(worklists[name]):
            assert _grade_all(c, w["read_id"], grade=1 if name == "r1" else i % 2, impression=3).status_code == 200
            if not (name == "r2" and i == 2):  # r2 leaves the last case as a draft
                assert c.post(f"/api/reads/{w['read_id']}/submit", headers=csrf(c)).status_code == 200
    assert r1.put(url, json={"grades": [{"item": "C5_left", "scale": "nerve_t2", "grade": 0}]}, headers=h1).status_code == 409
    assert r1.post(f"{url}/submit", headers=h1).status_code == 409
    assert r1.get(url).json()["submitted_at"]

    audit = admin.get(f"/api/admin/reads/{read_id}/audit").json()
    actions = [(a["action"], a["item"], a["old"], a["new"]) for a in audit]
    assert actions[:2] == [("grade", "C5_left", None, "2"), ("grade", "C5_left", "2", None)]
    assert actions[-1][0] == "submit" and ("comment", None, "", "ok") in actions
    with env["app"].state.sessions() as db:
        assert db.scalar(select(AuditEntry).where(AuditEntry.read_id == read_id, AuditEntry.user_id.is_(None))) is None

    sid = study["session_id"]
    rows = list(csv.DictReader(io.StringIO(admin.get(f"/api/admin/sessions/{sid}/export?format=csv").text)))
    assert list(rows[0]) == ["exam_id", "reader", "item", "scale", "grade", "submitted_at"]
    n_cells = 10 * 2 + 16 * 3 + 1
    assert len(rows) == 5 * n_cells  # r1: 3 submitted, r2: 2 submitted (its draft is left out)
    assert {r["exam_id"] for r in rows} == set(EXAMS) and all(r["submitted_at"] for r in rows)
    assert {(r["item"], r["scale"], r["grade"]) for r in rows if r["item"] == "overall"} == {("overall", "impression", "3")}
    drafts = admin.get(f"/api/admin/sessions/{sid}/export?format=json&include_drafts=true").json()
    assert len(drafts) == 6 * n_cells and sum(r["submitted_at"] == "" for r in drafts) == n_cells
    assert admin.get(f"/api/admin/sessions/{sid}/export?format=xml").status_code == 422

    from nervemuscle.stats.clinical import load_reads
    path = env["base"] / "reads.csv"
    path.write_text(admin.get(f"/api/admin/sessions/{sid}/export").text)
    assert len(load_reads(path)) == 5 * n_cells  # the cohort command's loader accepts the export

    progress = {r["reader"]: r for r in admin.get(f"/api/admin/sessions/{sid}/progress").json()["readers"]}
    assert (progress["r1"]["submitted"], progress["r2"]["submitted"], progress["r2"]["started"]) == (3, 2, 1)

    table = admin.get(f"/api/admin/sessions/{sid}/agreement").json()
    pairs = {(a["rater_a"], a["rater_b"]) for a in table}
    assert pairs == {("r1", "r2"), ("r1", "automated"), ("r2", "automated")}
    r1_auto = {a["scale"]: a for a in table if a["rater_b"] == "automated" and a["rater_a"] == "r1"}
    assert r1_auto["nerve_t2"]["n"] == 10 * 3  # three exams with findings (CTL_003's was uploaded)
    # r1 graded every root 1: kappa would be 0 whatever the agreement, so it is left out; exact agreement stays
    assert r1_auto["nerve_t2"]["kappa"] is None and 0 < r1_auto["nerve_t2"]["observed_agreement"] < 1
    assert all(0 <= a["observed_agreement"] <= 1 for a in table)
    page = admin.get(f"/admin/sessions/{sid}")
    assert page.status_code == 200 and "automated" in page.text and "Agreement" in page.text


def test_pages_render_for_their_roles(env, study):
    admin, r1 = study["admin"], client_for(env, "r1")
    assert "Import exams" in admin.get("/admin").text
    assert admin.get("/", follow_redirects=False).headers["location"] == "/admin"
    assert r1.get("/", follow_redirects=False).headers["location"] == "/worklist"
    page = r1.get(f"/read/{r1.get('/api/worklist').json()[0]['read_id']}").text
    assert "/static/vendor/niivue.umd.js" in page and 'name="csrf-token"' in page
    assert r1.get("/static/vendor/niivue.umd.js").status_code == 200


def test_security_headers_on_pages_api_static_and_errors(env, study):
    r1 = client_for(env, "r1")
    for r in (r1.get("/worklist"), r1.get("/api/worklist"), r1.get("/static/reader.css"), r1.get("/api/reads/999999")):
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "same-origin"
