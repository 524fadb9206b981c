"""``nervemuscle ingest EXAM_DIR -o OUT_DIR``: DICOM/NIfTI exam -> one NIfTI per series + ``series.json``."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from nervemuscle.io import load_exam, write_ingest
from nervemuscle.io.series import parse_role_overrides
from nervemuscle.outputs import refuse_overlap


def register(app: typer.Typer) -> None:
    @app.command("ingest")
    def ingest(
        exam_dir: Path = typer.Argument(..., readable=False,
                                        help="Folder of DICOM files (any nesting) or NIfTI files (+ JSON)."),
        out_dir: Path = typer.Option(..., "-o", "--out", help="Output folder (replaced atomically)."),
        deidentify: bool = typer.Option(False, "--deidentify", help="Drop patient identifiers from the outputs."),
        role: Optional[List[str]] = typer.Option(None, "--role", help="Override a role: SERIES=ROLE, SERIES a "
                                                 "series number or NIfTI file stem (repeatable)."),
    ) -> None:
        """Read an exam, classify its series and write NIfTI files plus series.json."""
        refuse_overlap(out_dir, [exam_dir])
        exam = load_exam(exam_dir, role_overrides=parse_role_overrides(role))
        write_ingest(exam, out_dir, deidentify=deidentify)
        for s in exam.series:
            shape = "x".join(str(n) for n in s.volume.shape)
            typer.echo(f"{s.number if s.number is not None else '-':>4}  {s.role:<11} {shape:<13} "
                       f"{s.description[:40]:<40}  {s.role_reason}")
        for warning in exam.warnings:
            typer.echo(f"warning: {warning}", err=True)
        typer.echo(f"{len(exam.series)} series written to {out_dir} ({exam.n_ignored_files} file(s) ignored)")
