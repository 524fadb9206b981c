"""Run every ``benchmarks/bench_*.py`` (or those named on the command line), print a table, write results.json.

Usage: ``python -m benchmarks [TOPIC ...] [--out benchmarks/results.json]``. Each module's ``run()`` returns a
dict of measured numbers; a benchmark that raises is recorded with its error and the others still run.
Results of benchmarks not run this time are kept from the previous ``results.json``.

``python -m benchmarks eval_NAME [ARGS ...]`` runs the accuracy evaluation ``benchmarks/eval_NAME.py`` with its
own arguments (those named in ``EVALUATIONS``).
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


def discover() -> list[str]:
    """Topic names of the ``bench_<topic>.py`` modules next to this file, sorted."""
    return sorted(p.stem[len("bench_"):] for p in HERE.glob("bench_*.py"))


def machine() -> dict:
    """CPU model, core count and RAM of this machine (from /proc where available)."""
    info = {"python": platform.python_version(), "platform": platform.platform(), "cores": os.cpu_count()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal"))
        info["ram_gib"] = round(mem_kb / 1024**2, 1)
    except (OSError, StopIteration, ValueError):
        pass
    return info


def run_one(topic: str) -> dict:
    """Import ``benchmarks.bench_<topic>`` and return ``{"ok", "seconds", "results" | "error"}``."""
    t0 = time.perf_counter()
    try:
        results = importlib.import_module(f"benchmarks.bench_{topic}").run()
        return {"ok": True, "seconds": round(time.perf_counter() - t0, 1), "results": results}
    except Exception as exc:  # noqa: BLE001 - one failing benchmark must not hide the others
        traceback.print_exc()
        return {"ok": False, "seconds": round(time.perf_counter() - t0, 1),
                "error": f"{exc.__class__.__name__}: {exc}"}


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items()) + "}"
    return str(value)


def table(all_results: dict) -> str:
    """Plain-text table: one line per measured number (benchmark, metric, value)."""
    rows = [("benchmark", "metric", "value")]
    for topic, entry in all_results.items():
        if not entry.get("ok"):
            rows.append((topic, "ERROR", entry.get("error", "")))
            continue
        for key, value in entry["results"].items():
            rows.append((topic, key, _fmt(value)))
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    return "\n".join(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]}" for r in rows)


#: Accuracy evaluations run as ``python -m benchmarks NAME [ARGS]``: modules with their own ``main(argv)``.
EVALUATIONS = ("eval_external", "eval_generalization", "eval_muscle_methods")


def write_results(results: dict, out: Path) -> None:
    """Merge ``{topic: entry}`` into the results file ``out`` (other topics kept), atomically."""
    previous = json.loads(out.read_text()).get("benchmarks", {}) if out.exists() else {}
    doc = {"machine": machine(), "benchmarks": dict(sorted({**previous, **results}.items()))}
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".results.", suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump(doc, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, out)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in EVALUATIONS:
        return importlib.import_module(f"benchmarks.{argv[0]}").main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("topics", nargs="*", help=f"benchmarks to run (default: all of {', '.join(discover())})")
    parser.add_argument("--out", type=Path, default=HERE / "results.json", help="results file")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.topics) - set(discover()))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(discover())}; "
                     f"evaluations (first argument, own options): {', '.join(EVALUATIONS)}")
    topics = args.topics or discover()
    results = {}
    for topic in topics:
        print(f"running bench_{topic} ...", file=sys.stderr, flush=True)
        results[topic] = run_one(topic)
    write_results(results, args.out)
    print(table(results))
    print(f"\nwritten {args.out}")
    return 0 if all(r["ok"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
