"""Small version of benchmarks/bench_reader_load.py: 20 concurrent readers against ``nervemuscle serve``
(a real server on loopback, one process or two sharing the SQLite database), bounded requests, no timing
asserts: nothing fails or is lost."""
from __future__ import annotations

import pytest

from benchmarks.bench_reader_load import api_load, create_reading_session, login, prepare_study, served


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_twenty_concurrent_readers(tmp_path, workers):
    db_url, data = prepare_study(tmp_path, n_readers=20, exam_shapes=[(32, 32, 8), (32, 32, 8)])
    with served(db_url, data, workers) as (base, _pid):
        create_reading_session(base, n_readers=20, n_exams=2)
        result = api_load(base, n_readers=20, n_requests=6)
        assert result["requests"] == 120 and result["errors"] == 0
        assert result["api_p95_ms"] >= result["api_p50_ms"] > 0
        admin = login(base, "admin")
        rows = admin.get("/api/admin/sessions/1/export?include_drafts=true").text.splitlines()
        admin.close()
    # the third of six requests of each reader is an autosave of one grade: 20 graded cells in all
    assert len(rows) - 1 == 20
