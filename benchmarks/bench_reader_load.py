"""Reader web app under load on loopback, and exam delivery to first render in Chromium.

* 20 concurrent readers (threads, one httpx client each) against the app served by uvicorn (SQLite, a
  separate process, as ``nervemuscle serve``); each makes a bounded number of API calls (worklist, read, autosave)
  -> p50/p95/max latency, paced (readers pause between requests) and back to back (saturation).
  Reference in the same run: the same clients fetching a static file from the same server (framework floor),
  and the CPU seconds of the clients (they share the machine's cores with the server) and of the server.
* A 256x256x120 T1 + T2 fat-sat exam opened in headless Chromium (Niivue, SwiftShader WebGL), fresh browser
  context each repeat: time from navigation start until both panes are drawn (the viewer's own WebGL-fence
  timing), first with the reduced-size previews, then at full resolution. Reference: downloading the two
  display copies (uncompressed int16) with httpx.

Targets (issue 8): API p95 <= 50 ms; first render <= 2 s.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np

from nervemuscle.volume import Volume

PASSWORD = "benchmark-password"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]


def write_exam(folder: Path, shape: tuple[int, int, int], seed: int) -> None:
    """T1 and T2 fat-sat volumes (float32, ellipse in noise) in the ``series/<role>.nii.gz`` layout."""
    (folder / "series").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    i, j = np.indices(shape[:2])
    body = (((i - shape[0] / 2) / (0.45 * shape[0])) ** 2 + ((j - shape[1] / 2) / (0.3 * shape[1])) ** 2 < 1)
    aff = np.diag([0.8, 0.8, 3.0, 1.0])
    for role, level in (("t1", 600.0), ("t2fs", 300.0)):
        data = (rng.normal(20, 5, shape) + level * body[..., None]).astype(np.float32)
        Volume(data, aff).save(folder / "series" / f"{role}.nii.gz")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served(db_url: str, data_root: Path, workers: int = 1):
    """``nervemuscle serve --workers N`` in a child process on a free loopback port; yields (base URL, process id)."""
    port = free_port()
    command = str(Path(sys.executable).with_name("nervemuscle"))
    proc = subprocess.Popen([command, "serve", "--db", db_url, "--data-root", str(data_root), "--host", "127.0.0.1",
                             "--port", str(port), "--workers", str(workers)], stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/login", timeout=2)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("nervemuscle serve did not start") from None
                time.sleep(0.1)
        yield base, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def login(base: str, username: str) -> httpx.Client:
    """A logged-in client with the session's CSRF header."""
    import re

    client = httpx.Client(base_url=base, timeout=60)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
    r = client.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token})
    if r.status_code != 303:
        raise RuntimeError(f"login of {username} failed: {r.status_code}")
    client.headers["X-CSRF-Token"] = client.get("/api/me").json()["csrf_token"]
    return client


def prepare_study(folder: Path, n_readers: int, exam_shapes: list[tuple[int, int, int]]) -> tuple[str, Path]:
    """Exams E000.. on disk and a database with users admin + r00..; returns (db URL, data root)."""
    from nervemuscle.reader.auth import add_user
    from nervemuscle.reader.db import make_engine, migrate, session_factory

    data = folder / "data"
    for k, shape in enumerate(exam_shapes):
        write_exam(data / "cohort" / f"E{k:03d}", shape, seed=k)
    db_url = f"sqlite:///{folder / 'reader.db'}"
    engine = make_engine(db_url)
    migrate(engine)
    with session_factory(engine).begin() as db:
        add_user(db, "admin", "admin", PASSWORD)
        for r in range(n_readers):
            add_user(db, f"r{r:02d}", "reader", PASSWORD)
    engine.dispose()
    return db_url, data


def create_reading_session(base: str, n_readers: int, n_exams: int) -> None:
    """As admin: import the cohort and give every reader every exam."""
    admin = login(base, "admin")
    admin.post("/api/admin/exams/import", json={"path": "cohort"}).raise_for_status()
    admin.post("/api/admin/sessions", json={"name": "load", "exam_ids": [f"E{k:03d}" for k in range(n_exams)],
                                            "readers": [f"r{r:02d}" for r in range(n_readers)]}).raise_for_status()
    admin.close()


def fetch_all_series(base: str, reader: str) -> None:
    """Download every series (and preview) of ``reader``'s reads once (waits for the display copies the import
    started)."""
    client = login(base, reader)
    for w in client.get("/api/worklist").json():
        for s in client.get(f"/api/reads/{w['read_id']}").json()["series"]:
            for url in filter(None, (s["url"], s["preview_url"])):
                client.get(url).raise_for_status()
    client.close()


def reader_session(client: httpx.Client, n_requests: int, start: threading.Barrier, think_s: float = 0.0,
                   seed: int = 0) -> dict[str, list]:
    """One reader's bounded sequence of API calls; returns latencies (s) and status codes per kind.

    ``think_s`` > 0: the reader starts after a uniform 0-``think_s`` delay and pauses a uniform 0.5-1.5 x
    ``think_s`` after each response (a person reading); 0: all start together, back to back (a closed loop that measures the server at saturation).
    """
    out: dict[str, list] = {"api": [], "static": [], "codes": [], "worklist": [], "read": [], "autosave": []}
    rng = np.random.default_rng(seed)
    pauses = rng.uniform(0.5, 1.5, n_requests) * think_s
    start.wait()
    time.sleep(rng.uniform(0, think_s))  # readers do not start in step
    items = [f"{r}_{s}" for r in ("C5", "C6", "C7", "C8", "T1") for s in ("left", "right")]
    read_ids = [w["read_id"] for w in client.get("/api/worklist").json()]
    for n in range(n_requests):
        kind = n % 4
        t = time.perf_counter()
        if kind == 0:
            r = client.get("/api/worklist")
        elif kind == 1:
            r = client.get(f"/api/reads/{read_ids[n % len(read_ids)]}")
        elif kind == 2:
            r = client.put(f"/api/reads/{read_ids[n % len(read_ids)]}",
                           json={"grades": [{"item": items[n % 10], "scale": "nerve_t2", "grade": n % 4}]})
        else:
            r = client.get("/static/reader.css")
        elapsed = time.perf_counter() - t
        (out["static"] if kind == 3 else out["api"]).append(elapsed)
        if kind < 3:
            out[("worklist", "read", "autosave")[kind]].append(elapsed)
        out["codes"].append(r.status_code)
        if think_s:
            time.sleep(pauses[n])
    return out


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds so far of process ``pid`` and its children (the server's workers; Linux /proc)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    total = 0.0
    for p in [pid, *map(int, children)]:
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def api_load(base: str, n_readers: int, n_requests: int, think_s: float = 0.0, server_pid: int | None = None) -> dict:
    """``n_readers`` threads logged in as r00.. each making ``n_requests`` calls at the same time.

    Also reports the CPU seconds the clients (this process) and the server used while the readers ran.
    """
    with ThreadPoolExecutor(4) as pool:
        clients = list(pool.map(lambda r: login(base, f"r{r:02d}"), range(n_readers)))
        # not timed: each server process's first requests (SQLAlchemy statement cache, templates) after its start
        list(pool.map(lambda c: [c.get("/api/worklist").raise_for_status() for _ in range(3)], clients))
    start = threading.Barrier(n_readers)
    client_cpu0, server_cpu0 = time.process_time(), _cpu_s(server_pid) if server_pid else None
    t0 = time.perf_counter()
    with ThreadPoolExecutor(n_readers) as pool:
        results = list(pool.map(lambda rc: reader_session(rc[1], n_requests, start, think_s, seed=rc[0]),
                                enumerate(clients)))
    wall = time.perf_counter() - t0
    client_cpu = time.process_time() - client_cpu0
    server_cpu = _cpu_s(server_pid) - server_cpu0 if server_pid else None
    for c in clients:
        c.close()
    api = np.array([x for r in results for x in r["api"]]) * 1000
    static = np.array([x for r in results for x in r["static"]]) * 1000
    codes = [c for r in results for c in r["codes"]]
    per_kind = {f"{kind}_p95_ms": float(np.percentile([x for r in results for x in r[kind]], 95) * 1000)
                for kind in ("worklist", "read", "autosave")}
    return {"readers": n_readers, "think_s": think_s, "requests": len(codes), "errors": sum(c != 200 for c in codes),
            "api_p50_ms": float(np.percentile(api, 50)), "api_p95_ms": float(np.percentile(api, 95)),
            "api_max_ms": float(api.max()), "static_p95_ms": float(np.percentile(static, 95)) if static.size else None,
            "p95_ratio_api_to_static": float(np.percentile(api, 95) / np.percentile(static, 95)) if static.size else None,
            "throughput_rps": len(codes) / wall, "wall_s": wall, "client_cpu_s": client_cpu,
            "server_cpu_s": server_cpu, "server_cpu_ms_per_request": server_cpu / len(codes) * 1000 if server_pid else None,
            **per_kind}


def first_render(base: str, reader: str, repeats: int = 5) -> dict:
    """Navigation start (the reader's click) -> both panes drawn, as the viewer itself records it (``nmTiming``:
    a WebGL fence per viewer, i.e. the GPU has finished, not just Niivue's ``onImageLoaded``), in fresh Chromium
    contexts (no HTTP or code cache): ``first_drawn`` the first images (reduced-size previews of a large exam),
    ``full_drawn`` full resolution in both panes. Reference: the same volumes downloaded with httpx."""
    from playwright.sync_api import sync_playwright

    client = login(base, reader)
    reads = [client.get(f"/api/reads/{w['read_id']}").json() for w in client.get("/api/worklist").json()]
    read = max(reads, key=lambda r: np.prod(r["series"][0]["shape"]))  # the big exam
    images = [s for s in read["series"] if s["kind"] == "image"]
    t = time.perf_counter()
    n_bytes = sum(len(client.get(s["url"]).content) for s in images)
    download = time.perf_counter() - t
    n_preview_bytes = sum(len(client.get(s["preview_url"]).content) for s in images if s["preview_url"])
    client.close()
    runs = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for _ in range(repeats):
            context = browser.new_context(viewport={"width": 1500, "height": 900})
            page = context.new_page()
            page.goto(f"{base}/login")
            page.fill("input[name=username]", reader)
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url("**/worklist")
            page.goto(f"{base}/read/{read['read_id']}")
            page.wait_for_function("window.nmTiming && window.nmTiming.fullDrawn !== null", timeout=120000)
            runs.append(page.evaluate("window.nmTiming"))
            context.close()
        browser.close()
    first = [r["firstDrawn"] / 1000 for r in runs]
    full = [r["fullDrawn"] / 1000 for r in runs]
    return {"shape": read["series"][0]["shape"], "volume_bytes": n_bytes, "preview_bytes": n_preview_bytes,
            "first_drawn_s": first, "first_drawn_median_s": float(np.median(first)),
            "full_drawn_s": full, "full_drawn_median_s": float(np.median(full)),
            "script_start_s": [r["script"] / 1000 for r in runs],
            "browser_downloads_done_s": [max(r["downloaded"]) / 1000 for r in runs],
            "httpx_download_s": download, "full_drawn_to_download_ratio": float(np.median(full) / download)}


def run(n_readers: int = 20, n_requests: int = 24, big_shape: tuple[int, int, int] = (256, 256, 120),
        think_s: float = 0.5, workers: tuple[int, ...] = (1, 2)) -> dict:
    """Measured numbers of both parts (see the module docstring), the API with each number of server processes.

    ``api_paced_<n>w``: readers pause ``think_s`` (mean) between requests, about 36 requests/s offered by 20
    readers, several times what people grading cells generate; this is the issue's latency target.
    ``api_saturation_<n>w``: the same requests back to back, the server's capacity (its p95 is 20 requests queued).
    """
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        shapes = [big_shape, (64, 64, 24), (64, 64, 24)]
        db_url, data = prepare_study(Path(tmp), n_readers, shapes)
        for k, n in enumerate(workers):
            with served(db_url, data, n) as (base, pid):
                if k == 0:
                    create_reading_session(base, n_readers, len(shapes))
                    fetch_all_series(base, "r00")  # display copies made (as after an import), not timed
                out[f"api_paced_{n}w"] = api_load(base, n_readers, n_requests, think_s=think_s, server_pid=pid)
                out[f"api_saturation_{n}w"] = api_load(base, n_readers, n_requests, server_pid=pid)
                if k == 0:  # after the import's background work (display copies) has certainly finished
                    out["first_render"] = (first_render(base, "r00") if os.path.exists(CHROMIUM)
                                           else {"skipped": "no chromium"})
    return {**out, "cores": os.cpu_count(), "load_average_1min": os.getloadavg()[0]}


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
