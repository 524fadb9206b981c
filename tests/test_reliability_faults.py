"""Faults during a run: a full disk (file-size limit), a kill while writing, SIGTERM, FIFOs in a batch, files
and folders the user may not read. Each ends with the documented exit code, no half-written output, and the
input untouched (docs/reliability.md)."""
from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from io_fixtures import write_series
from test_reliability_catalogue import snapshot

CLI = [sys.executable, "-c", "import sys; from nervemuscle.cli import main; sys.exit(main())"]


def run(args: list[str], *, timeout: float = 120, fsize: int | None = None, user: int | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess:
    def limit() -> None:
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(CLI + args, capture_output=True, text=True, timeout=timeout, preexec_fn=limit,
                          user=user, cwd=cwd, env=env)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name or ".old-" in p.name)


@pytest.mark.parametrize("command", ["ingest", "analyze"])
def test_disk_full_is_exit_4_and_leaves_nothing(tmp_path, command):
    write_series(tmp_path / "exam", shape=(64, 64, 12))
    before = snapshot(tmp_path / "exam")
    extra = ["--no-pdf"] if command == "analyze" else []
    result = run([command, str(tmp_path / "exam"), "-o", str(tmp_path / "out"), *extra], fsize=4096)
    assert result.returncode == 4, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and str(tmp_path / "out") in line and "File too large" in line, result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []
    assert snapshot(tmp_path / "exam") == before


def test_kill_during_write_keeps_the_old_output_and_the_next_run_cleans_up(tmp_path):
    write_series(tmp_path / "exam", shape=(256, 256, 40))
    assert run(["ingest", str(tmp_path / "exam"), "-o", str(tmp_path / "out")]).returncode == 0
    old = snapshot(tmp_path / "out")
    proc = subprocess.Popen(CLI + ["ingest", str(tmp_path / "exam"), "-o", str(tmp_path / "out")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not leftovers(tmp_path) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if not leftovers(tmp_path):
        pytest.skip("the run finished before it could be killed")
    assert snapshot(tmp_path / "out") == old  # the previous output is whole
    result = run(["ingest", str(tmp_path / "exam"), "-o", str(tmp_path / "out")])
    assert result.returncode == 0 and leftovers(tmp_path) == []  # the dead run's temp folder is gone


def test_sigterm_removes_the_temp_folder_and_exits_130(tmp_path):
    write_series(tmp_path / "exam", shape=(256, 256, 40))
    proc = subprocess.Popen(CLI + ["ingest", str(tmp_path / "exam"), "-o", str(tmp_path / "out")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not leftovers(tmp_path) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the run finished before SIGTERM")
    assert proc.returncode == 130 and err.strip() == "interrupted"
    assert leftovers(tmp_path) == [] and not (tmp_path / "out").exists()


def test_fifo_in_a_batch_does_not_hang(tmp_path):
    write_series(tmp_path / "root" / "e1")
    write_series(tmp_path / "root" / "e2", seed=3)
    os.mkfifo(tmp_path / "root" / "e2" / "IM_fifo")
    result = run(["analyze-batch", str(tmp_path / "root"), "-o", str(tmp_path / "out"), "--workers", "1"],
                 timeout=240)
    assert result.returncode == 0, result.stderr
    assert all((tmp_path / "out" / e / "findings.json").is_file() for e in ("e1", "e2"))


def run_as_nobody(args: list[str], err_file: Path) -> int:
    """``main(args)`` in a forked child that first drops to ``nobody`` when root (root reads every file); the
    child uses the modules already imported here (the interpreter's own files may be closed to nobody)."""
    from nervemuscle.cli import main

    pid = os.fork()
    if pid == 0:  # child
        code = 70
        try:
            fd = os.open(err_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
            os.dup2(fd, 2)
            sys.stderr = os.fdopen(2, "w", buffering=1)
            from nervemuscle import cli
            cli.err_console.file = sys.stderr
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            code = main(args)
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


@pytest.mark.parametrize("what", ["file", "folder", "exam"])
def test_unreadable_input_is_exit_2_naming_it(what):
    work = Path(tempfile.mkdtemp(prefix="nm-perm-"))
    try:
        work.chmod(0o777)
        paths = write_series(work / "exam" / "s1", shape=(16, 16, 5))
        write_series(work / "exam" / "s2", shape=(16, 16, 5), series_number=2, seed=4)
        for p in work.rglob("*"):
            p.chmod(0o755 if p.is_dir() else 0o644)
        from nervemuscle.cli import main
        assert main(["ingest", str(work / "exam"), "-o", str(work / "warm")]) == 0  # imports what the child needs
        target = {"file": paths[2], "folder": work / "exam" / "s2", "exam": work / "exam"}[what]
        target.chmod(0)
        code = run_as_nobody(["ingest", str(work / "exam"), "-o", str(work / "out")], work / "err.txt")
        err = (work / "err.txt").read_text().strip()
        assert code == 2, err
        assert "\n" not in err and str(target) in err and "Permission denied" in err, err
        assert not (work / "out").exists()
    finally:
        subprocess.run(["chmod", "-R", "u+rwX", str(work)], check=False)
        subprocess.run(["rm", "-rf", str(work)], check=False)


def _die_once(task, marker_dir: str) -> dict:
    """A batch task whose first run kills its worker process (as the OOM killer would)."""
    marker = Path(marker_dir) / task.name
    if not marker.exists():
        marker.write_text("died once")
        os._exit(1)
    return {"exam": task.name, "status": "ok"}


def test_worker_deaths_that_dask_retried_are_recorded(tmp_path, capsys):
    from distributed import Client, LocalCluster

    from nervemuscle.batch import ExamTask, map_exams, write_worker_deaths

    tasks = [ExamTask("e1", tmp_path), ExamTask("e2", tmp_path)]
    (tmp_path / "markers").mkdir()
    (tmp_path / "markers" / "e2").write_text("never dies")
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=50) as cluster, Client(cluster) as client:
        records = map_exams(client, _die_once, tasks, str(tmp_path / "markers"), progress=False)
    deaths = {r["exam"]: r["worker_deaths"] for r in records}
    assert deaths["e1"] == 1 and all(r["status"] == "ok" for r in records)  # e2 counts too if it was queued there
    path = write_worker_deaths(tmp_path, records)
    assert path.read_text().startswith("exam,worker_deaths,status\ne1,1,ok\n")
    assert "warning: e1: a worker holding it died 1 time(s)" in capsys.readouterr().err
