"""``nervemuscle serve`` started as a real process: it migrates a fresh SQLite database, answers on its port,
keeps everything behind the login, lets an account made with ``nervemuscle users add`` in, and stops cleanly."""
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from nervemuscle.cli import main
from nervemuscle.errors import EXIT_BAD_INPUT

COMMAND = str(Path(sys.executable).with_name("nervemuscle"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(proc: subprocess.Popen, url: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"serve exited with {proc.returncode}: {proc.communicate()[1]}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    pytest.fail(f"serve did not answer on {url} within {timeout_s} s")


def child_pids(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def running(pid: int) -> bool:
    """Process ``pid`` exists and has not exited (a zombie waiting for its reaper has)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture(params=[1, 2], ids=["1-worker", "2-workers"])
def server(tmp_path, request):
    """(base URL, db URL, process) of ``nervemuscle serve --workers N`` on a free loopback port with a temp
    SQLite DB."""
    db = f"sqlite:///{tmp_path / 'reader.db'}"
    subprocess.run([COMMAND, "users", "add", "ada", "--role", "reader", "--password-stdin", "--db", db],
                   input="correct horse battery\n", text=True, check=True, capture_output=True, timeout=60)
    port = free_port()
    proc = subprocess.Popen([COMMAND, "serve", "--db", db, "--host", "127.0.0.1", "--port", str(port),
                             "--data-root", str(tmp_path), "--workers", str(request.param)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(proc, f"{base}/login")
        yield base, db, proc, request.param
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_serve_answers_behind_the_login_and_stops_cleanly(server):
    base, db, proc, workers = server
    children = child_pids(proc.pid)
    if workers > 1:  # uvicorn's supervisor and its worker processes (they share the database)
        assert len(children) >= workers
    with httpx.Client(base_url=base, timeout=10.0) as client:
        login = client.get("/login")
        assert login.status_code == 200 and 'name="csrf_token"' in login.text
        assert client.get("/api/me").status_code == 401
        page = client.get("/worklist", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"] == "/login"

        token = re.search(r'name="csrf_token" value="([^"]+)"', login.text).group(1)
        wrong = client.post("/login", data={"username": "ada", "password": "nope", "csrf_token": token})
        assert wrong.status_code == 401
        token = re.search(r'name="csrf_token" value="([^"]+)"', wrong.text).group(1)
        ok = client.post("/login", data={"username": "ada", "password": "correct horse battery",
                                         "csrf_token": token}, follow_redirects=False)
        assert ok.status_code == 303 and ok.headers["location"] == "/worklist"
        me = client.get("/api/me")
        assert me.status_code == 200 and me.json()["username"] == "ada" and me.json()["role"] == "reader"

    proc.send_signal(signal.SIGTERM)
    # uvicorn finishes its graceful shutdown, then re-raises the signal so the exit status reports it; with
    # workers, its supervisor stops them and exits 0
    assert proc.wait(timeout=15) == (-signal.SIGTERM if workers == 1 else 0)
    # the workers end with their supervisor (they are also sent SIGTERM when it dies, PR_SET_PDEATHSIG); allow
    # them a moment to finish exiting
    deadline = time.monotonic() + 5.0
    while any(running(c) for c in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(running(c) for c in children)
    out, err = proc.communicate()
    assert f"nervemuscle reader on {base}" in out and db in out
    assert "Traceback" not in err


def test_serve_refuses_a_missing_data_root(tmp_path, capsys):
    code = main(["serve", "--db", f"sqlite:///{tmp_path / 'r.db'}", "--data-root", str(tmp_path / "nope")])
    assert code == EXIT_BAD_INPUT
    assert "nope: data root is not a folder" in capsys.readouterr().err
    assert not (tmp_path / "r.db").exists()


def test_serve_refuses_a_port_in_use_and_workers_on_an_in_memory_database(tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["serve", "--db", f"sqlite:///{tmp_path / 'r.db'}", "--data-root", str(tmp_path),
                     "--port", str(port)])
    assert code == EXIT_BAD_INPUT
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in capsys.readouterr().err
    assert main(["serve", "--db", "sqlite://", "--data-root", str(tmp_path), "--workers", "2"]) == EXIT_BAD_INPUT
    assert "--workers > 1 needs a database file or server" in capsys.readouterr().err
