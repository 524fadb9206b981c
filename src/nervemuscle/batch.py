"""Analyse every exam under a folder with Dask distributed: resumable, failure-tolerant, gathered to Parquet.

Exam discovery (walking ``root`` top-down, never below an exam, skipping hidden folders and ``out``):

1. a folder with a ``dicom/`` sub-folder is an exam whose input is that ``dicom/`` folder (phantom layout
   ``<exam>/dicom/<series>/*.dcm``);
2. a folder that directly holds image files (``*.dcm``, ``*.ima``, ``*.nii``, ``*.nii.gz`` or files without
   suffix that start like DICOM) is an exam;
3. a folder whose sub-folders are all leaves (no sub-folders of their own), at least one holding image files,
   is one exam with a series per sub-folder, unless their DICOM files belong to more than one
   StudyInstanceUID: then each sub-folder is an exam (a cohort of flat exam folders).

Outputs in ``out``: ``<exam>/`` (what :func:`nervemuscle.pipeline.analyze_exam` writes) with
``<exam>/.done.json`` (hash of the input file list + sizes + mtimes, protocol hash, status);
``failures.csv`` (exam, error_type, reason); ``worker_deaths.csv`` (exams whose worker died and that Dask ran
again, when any); ``findings.parquet`` (one row per exam: summary);
``nerves.parquet`` and ``muscles.parquet`` (one row per exam and root / muscle).
An exam whose input hash and protocol hash match its ``.done.json`` is skipped, including exams that
failed with an expected error (bad input, not assessable); unexpected errors are retried. A failed exam's
output folder holds only its ``.done.json`` (findings of earlier inputs are removed).
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from nervemuscle._version import __version__
from nervemuscle.errors import BadInputError, NerveMuscleError, OutputError
from nervemuscle.findings import protocol_sha256
from nervemuscle.outputs import refuse_overlap, write_text_atomic
from nervemuscle.protocol import load_protocol

IMAGE_SUFFIXES = (".dcm", ".ima", ".nii", ".nii.gz")
DONE_FILE = ".done.json"
FAILURE_COLUMNS = ["exam", "error_type", "reason"]
#: Dask config for the local cluster's workers. Dask's nanny sets ``MALLOC_TRIM_THRESHOLD_=65536`` by default,
#: which also fixes glibc's mmap threshold at 128 kB: every large numpy temporary is then mmap'ed and page-faulted
#: afresh (warm 2D exams: 4.5 -> 6.3 CPU s, a third of it system time). Unset, the workers allocate as
#: ``nervemuscle analyze`` does.
LOCAL_WORKER_CONFIG = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}


@dataclass(frozen=True)
class ExamTask:
    """One exam to analyse: its name (relative path under the batch root) and input folder."""

    name: str
    input_dir: Path


@dataclass
class BatchResult:
    """Counts of one batch run and where its outputs are."""

    analysed: int
    skipped: int
    failed: int
    out: Path
    failures: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    per_exam: dict[str, dict[str, Any]] = field(default_factory=dict)


def _is_image_file(path: Path) -> bool:
    """A ``.dcm``/``.ima``/NIfTI file, or a file without suffix that has the DICOM preamble ``DICM``."""
    name = path.name.lower()
    if not path.is_file() or name.startswith("."):
        return False
    if name.endswith(IMAGE_SUFFIXES):
        return True
    if "." in name:
        return False
    with open(path, "rb") as fh:
        return fh.read(132)[128:132] == b"DICM"


def _has_images(folder: Path) -> bool:
    return any(_is_image_file(p) for p in folder.iterdir())


def _is_leaf(folder: Path) -> bool:
    return not any(p.is_dir() for p in folder.iterdir())


def _study_uid(folder: Path) -> str | None:
    """StudyInstanceUID of the first DICOM file in ``folder`` (``None`` when there is none)."""
    import pydicom

    for path in sorted(folder.iterdir()):
        if _is_image_file(path) and not path.name.lower().endswith((".nii", ".nii.gz")):
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["StudyInstanceUID"], force=True)
            except Exception:  # noqa: BLE001 - an unreadable file is the analysis's problem, not discovery's
                continue
            return str(ds.get("StudyInstanceUID", "")) or None
    return None


def discover_exams(root: str | Path, *, exclude: Iterable[Path] = ()) -> list[ExamTask]:
    """Exams under ``root`` by the discovery rule of this module, sorted by name."""
    root = Path(root).absolute()
    if not root.is_dir():
        raise BadInputError("batch root folder not found", root)
    excluded = {Path(p).absolute() for p in exclude}
    tasks: list[ExamTask] = []

    def visit(folder: Path) -> None:
        subdirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")
                         and p.absolute() not in excluded)
        name = folder.relative_to(root).as_posix() if folder != root else folder.name
        if (folder / "dicom").is_dir():
            tasks.append(ExamTask(name, folder / "dicom"))
        elif _has_images(folder) or (subdirs and all(_is_leaf(d) for d in subdirs)
                                     and any(_has_images(d) for d in subdirs)
                                     and len({_study_uid(d) for d in subdirs} - {None}) <= 1):
            tasks.append(ExamTask(name, folder))
        else:
            for d in subdirs:
                visit(d)

    visit(root)
    return sorted(tasks, key=lambda t: t.name)


def input_hash(folder: str | Path) -> str:
    """SHA-256 over every file under ``folder``: relative path, size and modification time (ns)."""
    folder = Path(folder)
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        st = path.stat()
        h.update(f"{path.relative_to(folder).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def read_done(exam_out: Path) -> dict[str, Any] | None:
    """The ``.done.json`` record of an exam's output folder, or ``None``."""
    try:
        return json.loads((exam_out / DONE_FILE).read_text())
    except (OSError, ValueError):
        return None


def analyze_one(task: ExamTask, out: str | Path, protocol: dict[str, Any], protocol_hash: str,
                in_hash: str) -> dict[str, Any]:
    """Worker function: analyse one exam into ``out/<exam>`` and record ``.done.json``; never raises.

    Returns ``{"exam", "status": "ok"|"failed", "error_type", "reason", "seconds", "cpu_seconds",
    "peak_rss_mb"}`` (``peak_rss_mb``: the worker process's peak so far).
    """
    import resource

    from nervemuscle.pipeline import analyze_exam

    exam_out = Path(out) / task.name
    t0, cpu0 = time.perf_counter(), time.process_time()
    record: dict[str, Any] = {"exam": task.name, "input_hash": in_hash, "protocol_sha256": protocol_hash,
                              "software_version": __version__}
    try:
        analyze_exam(task.input_dir, exam_out, protocol=protocol, pdf=False)
        record.update(status="ok", error_type="", reason="")
    except NerveMuscleError as exc:
        record.update(status="failed", error_type=exc.__class__.__name__, reason=str(exc).splitlines()[0],
                      retry=False)
    except Exception as exc:  # noqa: BLE001 - one exam's failure must not stop the batch
        last = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        where = f" at {Path(last.filename).name}:{last.lineno}" if last else ""
        record.update(status="failed", error_type=exc.__class__.__name__,
                      reason=(str(exc).splitlines() or [""])[0] + where, retry=True)
    record["seconds"] = round(time.perf_counter() - t0, 3)
    record["cpu_seconds"] = round(time.process_time() - cpu0, 3)
    record["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if record["status"] != "ok":
        shutil.rmtree(exam_out, ignore_errors=True)  # no stale findings of earlier inputs left behind
    if record["status"] == "ok" or not record.get("retry"):
        exam_out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(exam_out / DONE_FILE, json.dumps(record, indent=2, sort_keys=True) + "\n")
    else:
        (exam_out / DONE_FILE).unlink(missing_ok=True)
    return record


def _flatten(findings: dict[str, Any]) -> tuple[dict[str, Any], list[dict], list[dict]]:
    exam = findings["exam_id"]
    row = {"exam": exam, **findings["summary"],
           "n_roots_measured": sum(n.get("grade") is not None for n in findings["nerves"]),
           "n_roots_abnormal": sum((n.get("grade") or 0) >= 1 for n in findings["nerves"]),
           "n_muscles_measured": len(findings["muscles"]),
           "n_not_assessable": len(findings["not_assessable"]),
           "nerve_series_role": next((s["role"] for s in findings["sequences"] if "nerve" in s["used_for"]), None),
           "protocol_sha256": findings["protocol"]["sha256"], "software_version": findings["software"]["version"]}
    nerves = [{"exam": exam, **{k: v for k, v in n.items() if k != "centerline_mm"}} for n in findings["nerves"]]
    muscles = [{"exam": exam, **m} for m in findings["muscles"]]
    return row, nerves, muscles


def gather(out: str | Path, exams: Iterable[str]) -> dict[str, pd.DataFrame]:
    """Collect ``out/<exam>/findings.json`` of the finished exams into ``findings``/``nerves``/``muscles`` tables
    and write them as Parquet in ``out`` (atomically)."""
    out = Path(out)
    rows, nerves, muscles = [], [], []
    for name in sorted(exams):
        done = read_done(out / name)
        if not done or done.get("status") != "ok" or not (out / name / "findings.json").exists():
            continue
        findings = json.loads((out / name / "findings.json").read_text())
        row, n, m = _flatten(findings)
        row["exam"] = name
        rows.append(row)
        nerves += [{**x, "exam": name} for x in n]
        muscles += [{**x, "exam": name} for x in m]
    tables = {"findings": pd.DataFrame(rows), "nerves": pd.DataFrame(nerves), "muscles": pd.DataFrame(muscles)}
    for name, df in tables.items():
        fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{name}.", suffix=".parquet")
        os.close(fd)
        df.to_parquet(tmp, index=False)
        os.replace(tmp, out / f"{name}.parquet")
    return tables


def write_failures(out: Path, failures: list[dict[str, str]]) -> Path:
    """``out/failures.csv`` with one row per failed exam (header only when none failed)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FAILURE_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(sorted(failures, key=lambda f: f["exam"]))
    write_text_atomic(out / "failures.csv", buf.getvalue())
    return out / "failures.csv"


def write_worker_deaths(out: Path, records: list[dict[str, Any]]) -> Path | None:
    """``out/worker_deaths.csv`` (exam, worker_deaths, status) of this run's exams whose worker died at least
    once (Dask ran them again, see :func:`map_exams`); a warning line per exam on stderr. Nothing is written
    when none died (an earlier run's file is removed, so the file always describes the latest run)."""
    died = sorted((r for r in records if r.get("worker_deaths")), key=lambda r: r["exam"])
    path = out / "worker_deaths.csv"
    if not died:
        path.unlink(missing_ok=True)
        return None
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["exam", "worker_deaths", "status"])
    for r in died:
        writer.writerow([r["exam"], r["worker_deaths"], r.get("status", "")])
        sys.stderr.write(f"warning: {r['exam']}: a worker holding it died {r['worker_deaths']} time(s) (out of "
                         f"memory or killed); Dask ran it again: {r.get('status')}\n")
    write_text_atomic(path, buf.getvalue())
    return path


def map_exams(client, func: Callable[..., dict[str, Any]], tasks: list[ExamTask], *args: Any,
              progress: bool = True) -> list[dict[str, Any]]:
    """Run ``func(task, *args)`` for every task on the Dask ``client``; collect the records as they finish.

    A task whose worker dies is run again by Dask on another worker (up to ``distributed.scheduler.allowed-failures``
    times) and then recorded as failed (``error_type`` from the Dask exception); the others go on. Each record
    gets ``worker_deaths``: how many times a worker holding it (running or queued) died, from the scheduler's
    count, so that deaths Dask retried are not lost.
    """
    from distributed import as_completed
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    futures = {client.submit(func, task, *args, key=f"exam-{i}-{task.name}", pure=False): task
               for i, task in enumerate(tasks)}
    records = []
    columns = (TextColumn("[bold]analysing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
               TextColumn("{task.description}"))
    with Progress(*columns, disable=not progress, transient=False) as bar:
        job = bar.add_task("", total=len(futures))
        for future in as_completed(futures):
            task = futures[future]
            try:
                record = future.result()
            except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker: the worker process died
                record = {"exam": task.name, "status": "failed", "error_type": exc.__class__.__name__,
                          "reason": (str(exc).splitlines() or ["worker failed"])[0]}
            records.append(record)
            bar.update(job, advance=1, description=f"{task.name}: {record['status']}")
    deaths = client.run_on_scheduler(_worker_deaths, keys=[f.key for f in futures])
    names = {f.key: task.name for f, task in futures.items()}
    by_name = {names[k]: n for k, n in deaths.items()}
    for record in records:
        record["worker_deaths"] = by_name.get(record["exam"], 0)
    return records


def _worker_deaths(keys: list[str], dask_scheduler=None) -> dict[str, int]:
    """On the scheduler: for each task key, how many workers died while holding it (``TaskState.suspicious``)."""
    tasks = dask_scheduler.tasks
    return {k: int(tasks[k].suspicious) for k in keys if k in tasks and tasks[k].suspicious}


def _client(workers: int | None, scheduler: str | None):
    import dask
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            return Client(scheduler, timeout="20s"), None
        except OSError as exc:
            raise BadInputError(f"cannot reach the Dask scheduler ({exc})", scheduler) from None
    with dask.config.set(LOCAL_WORKER_CONFIG):
        cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=40)
    return Client(cluster), cluster


def analyze_batch(root: str | Path, out: str | Path, *, workers: int | None = None, scheduler: str | None = None,
                  protocol: dict[str, Any] | str | Path | None = None, progress: bool = True) -> BatchResult:
    """Analyse every exam under ``root`` into ``out`` with Dask distributed.

    Parameters
    ----------
    root : path
        Folder of exams (see the module docstring for the discovery rule).
    out : path
        Output folder (neither the root, nor containing it, nor inside an exam's input folder; it may lie
        elsewhere inside the root, where discovery skips it): one sub-folder per exam, ``failures.csv``,
        ``findings.parquet``, ``nerves.parquet``, ``muscles.parquet``.
    workers : int, optional
        Worker processes of the local cluster (1 thread each); default: CPU count.
    scheduler : str, optional
        Address of an existing Dask scheduler (``tcp://host:port``); then ``workers`` is ignored.
    protocol : dict or path, optional
        Grading protocol (dict) or YAML overriding the default.
    progress : bool
        Show a progress bar.

    Returns
    -------
    BatchResult
        ``analysed`` (newly analysed), ``skipped`` (unchanged since the last run), ``failed`` (all exams
        currently failing, as listed in ``failures.csv``).
    """
    t0 = time.perf_counter()
    out = Path(out).absolute()
    protocol = protocol if isinstance(protocol, dict) else load_protocol(protocol)
    p_hash = protocol_sha256(protocol)
    tasks = discover_exams(root, exclude=[out])
    if Path(root).resolve().is_relative_to(out.resolve()):
        raise OutputError(f"output folder is or contains the batch root {root}: its exam outputs would replace "
                          "the exams; choose another folder", out)
    refuse_overlap(out, [t.input_dir for t in tasks], working_folder=False)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the batch output folder ({exc.strerror or exc})", out) from None
    todo: list[tuple[ExamTask, str]] = []
    carried: list[dict[str, Any]] = []
    for task in tasks:
        h = input_hash(task.input_dir)
        done = read_done(out / task.name)
        if done and done.get("input_hash") == h and done.get("protocol_sha256") == p_hash:
            carried.append(done)
        else:
            todo.append((task, h))
    records: list[dict[str, Any]] = []
    if todo:
        client, cluster = _client(workers, scheduler)
        try:
            by_hash = {t.name: h for t, h in todo}
            records = map_exams(client, _analyze_task, [t for t, _ in todo], str(out), protocol, p_hash,
                                by_hash, progress=progress)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    failures = [r for r in records + carried if r.get("status") != "ok"]
    write_failures(out, failures)
    write_worker_deaths(out, records)
    gather(out, [t.name for t in tasks])
    return BatchResult(
        analysed=sum(r.get("status") == "ok" for r in records), skipped=len(carried), failed=len(failures),
        out=out, failures=[{k: str(f.get(k, "")) for k in FAILURE_COLUMNS} for f in failures],
        seconds=time.perf_counter() - t0, per_exam={r["exam"]: r for r in records},
    )


def _analyze_task(task: ExamTask, out: str, protocol: dict[str, Any], protocol_hash: str,
                  hashes: dict[str, str]) -> dict[str, Any]:
    return analyze_one(task, out, protocol, protocol_hash, hashes[task.name])
