"""Two readers saving and submitting at the same time against a real uvicorn server lose nothing,
on SQLite (WAL) and on PostgreSQL (``NERVEMUSCLE_TEST_PG_URL``)."""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from nervemuscle.reader.app import ReaderSettings, create_app
from nervemuscle.reader.models import AuditEntry, Read, ReadGrade
from test_reader_support import http_login, running_server, seed_study, unique_pg_database

PG_URL = os.environ.get("NERVEMUSCLE_TEST_PG_URL")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def app(request, tmp_path):
    if request.param == "sqlite":
        url, drop = f"sqlite:///{tmp_path / 'reader.db'}", None
    else:
        if not PG_URL:
            pytest.skip("NERVEMUSCLE_TEST_PG_URL is not set")
        url, drop = unique_pg_database(PG_URL)
    application = create_app(ReaderSettings(db_url=url, data_root=tmp_path / "data"))
    yield application
    application.state.engine.dispose()
    if drop:
        drop()


def test_two_readers_saving_and_submitting_concurrently_lose_nothing(app, tmp_path):
    sid = seed_study(app, tmp_path / "data", ["r1", "r2"], n_exams=2)
    with running_server(app) as base:
        clients = {name: http_login(base, name) for name in ("r1", "r2")}
        reads = {name: [w["read_id"] for w in c.get("/api/worklist").json()] for name, c in clients.items()}
        form = clients["r1"].get(f"/api/reads/{reads['r1'][0]}").json()["form"]
        cells = [(item, s["name"], len(s["choices"]) - 1) for sec in form for item in sec["items"] for s in sec["scales"]]
        expected = {(name, rid, item, scale): (hash((name, rid, item)) % (top + 1))
                    for name in clients for rid in reads[name] for item, scale, top in cells}
        jobs = [(name, rid, [(item, scale) for item, scale, _ in cells[k::4]])
                for name in clients for rid in reads[name] for k in range(4)]
        start = threading.Barrier(len(jobs))

        def save(job):
            name, rid, chunk = job
            start.wait()
            codes = []
            for i in range(0, len(chunk), 3):  # several small autosaves per thread
                grades = [{"item": it, "scale": sc, "grade": expected[(name, rid, it, sc)]} for it, sc in chunk[i:i + 3]]
                codes.append(clients[name].put(f"/api/reads/{rid}", json={"grades": grades}).status_code)
            return codes

        with ThreadPoolExecutor(len(jobs)) as pool:
            assert all(code == 200 for codes in pool.map(save, jobs) for code in codes)

        # every read submitted twice at the same moment: exactly one submission wins
        submits = [(name, rid) for name in clients for rid in reads[name]] * 2
        go = threading.Barrier(len(submits))

        def submit(pair):
            go.wait()
            return pair, clients[pair[0]].post(f"/api/reads/{pair[1]}/submit").status_code

        with ThreadPoolExecutor(len(submits)) as pool:
            results = list(pool.map(submit, submits))
        for pair in set(submits):
            assert sorted(code for p, code in results if p == pair) == [200, 409]
        for c in clients.values():
            c.close()

    with app.state.sessions() as db:
        stored = {(r.reader.username, r.id, g.item, g.scale): g.grade
                  for r in db.scalars(select(Read).where(Read.session_id == sid)) for g in r.grades}
        assert stored == expected
        assert all(r.submitted_at is not None for r in db.scalars(select(Read)))
        grade_audits = db.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "grade"))
        submit_audits = db.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "submit"))
        assert grade_audits == len(expected) and submit_audits == 4
        assert db.scalar(select(func.count()).select_from(ReadGrade)) == len(expected)
