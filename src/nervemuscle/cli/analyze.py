"""``nervemuscle analyze`` (one exam) and ``nervemuscle analyze-batch`` (every exam under a folder, Dask)."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

from nervemuscle.errors import EXIT_BATCH_FAILURES, BadInputError, NerveMuscleError
from nervemuscle.io.series import parse_role_overrides

class StepReporter:
    """Progress of the pipeline steps: a rich status line on a terminal, JSON lines with ``--json-log``."""

    def __init__(self, *, json_log: bool, exam: str):
        self.json_log = json_log
        self.exam = exam
        self.console = Console(stderr=True, highlight=False)
        self.show = self.console.is_terminal and not json_log
        self.t0 = time.perf_counter()
        self.status = self.console.status("starting") if self.show else None

    def __enter__(self) -> "StepReporter":
        if self.status is not None:
            self.status.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.status is not None:
            self.status.__exit__(*exc)

    def __call__(self, step: str, info: dict[str, Any]) -> None:
        elapsed = round(time.perf_counter() - self.t0, 3)
        if self.json_log:
            sys.stderr.write(json.dumps({"exam": self.exam, "step": step, "elapsed_s": elapsed, **info}) + "\n")
            sys.stderr.flush()
        elif self.show:
            detail = ", ".join(f"{k}={v}" for k, v in info.items())
            self.console.log(f"{step} {detail}".strip())
            self.status.update(f"{step}...")
        elif step == "warning":
            self.console.print(f"warning: {info.get('message')}", markup=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    @app.command()
    def analyze(
        exam_dir: Path = typer.Argument(..., readable=False,
                                        help="Exam folder of DICOM or NIfTI series (phantom: <exam>/dicom)."),
        out: Path = typer.Option(..., "--out", "-o", help="Output folder (replaced atomically)."),
        protocol: Optional[Path] = typer.Option(None, "--protocol", readable=False,
                                                help="YAML overriding the default protocol."),
        landmarks: Optional[Path] = typer.Option(None, "--landmarks", readable=False,
                                                 help="Root landmarks file."),
        labels: Optional[Path] = typer.Option(None, "--labels", readable=False,
                                              help="External muscle label map (NIfTI)."),
        label_names: Optional[Path] = typer.Option(None, "--label-names", readable=False,
                                                   help="JSON {code: name} of --labels."),
        role: Optional[list[str]] = typer.Option(None, "--role", help="Force a series role: SERIES=ROLE, SERIES a "
                                            "series number or NIfTI file stem (repeatable)."),
        no_pdf: bool = typer.Option(False, "--no-pdf", help="Skip printing report.pdf."),
        json_log: bool = typer.Option(False, "--json-log", help="One JSON object per step on stderr."),
    ) -> None:
        """Analyse one exam: findings.json, report.html/pdf, QC overlays, series and label maps."""
        from nervemuscle.pipeline import analyze_exam

        if labels is not None and label_names is None:
            raise BadInputError("--labels needs --label-names (JSON {code: name})", labels)
        exam_name = exam_dir.resolve().parent.name if exam_dir.resolve().name == "dicom" else exam_dir.name
        reporter = StepReporter(json_log=json_log, exam=exam_name)
        with reporter:
            try:
                result = analyze_exam(exam_dir, out, protocol=protocol, landmarks=landmarks, labels=labels,
                                      label_names=label_names, role_overrides=parse_role_overrides(role) or None,
                                      pdf=not no_pdf,
                                      on_step=reporter)
            except NerveMuscleError as exc:
                if json_log:
                    reporter("error", {"error_type": exc.__class__.__name__, "message": str(exc),
                                       "exit_code": exc.exit_code})
                raise
            for note in result.exam_info.get("notes", []):  # also in report.html; here for the person at the console
                reporter("warning", {"message": note})
        reporter("done", {"out": str(out), "abnormal": result.findings["summary"]["abnormal"]})
        if not json_log:
            s = result.findings["summary"]
            typer.echo(f"{result.exam_id}: abnormal={s['abnormal']} nerve={s['nerve_abnormal']} "
                       f"muscle={s['muscle_abnormal']} -> {out}")

    @app.command("analyze-batch")
    def analyze_batch_cmd(
        root: Path = typer.Argument(..., readable=False,
                                    help="Folder of exams (see `nervemuscle.batch` for the discovery rule)."),
        out: Path = typer.Option(..., "--out", "-o", help="Output folder (resumable)."),
        workers: Optional[int] = typer.Option(None, "--workers", help="Local worker processes (default: CPUs)."),
        scheduler: Optional[str] = typer.Option(None, "--scheduler", help="Existing Dask scheduler tcp://HOST:PORT."),
        protocol: Optional[Path] = typer.Option(None, "--protocol", readable=False,
                                                help="YAML overriding the default protocol."),
    ) -> None:
        """Analyse every exam under ROOT with Dask; skips unchanged exams; failures go to OUT/failures.csv.

        Exits 0 when every exam has findings, 1 when the batch finished but some exams failed.
        """
        from nervemuscle.batch import analyze_batch

        result = analyze_batch(root, out, workers=workers, scheduler=scheduler, protocol=protocol,
                               progress=sys.stderr.isatty())
        typer.echo(f"analysed {result.analysed}, skipped {result.skipped} (unchanged), failed {result.failed} "
                   f"in {result.seconds:.1f} s -> {result.out}")
        if result.failed:
            typer.echo(f"failures: {result.out / 'failures.csv'}")
            raise typer.Exit(EXIT_BATCH_FAILURES)
