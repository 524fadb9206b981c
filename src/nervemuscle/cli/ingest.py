"""``nervemuscle ingest EXAM_DIR -o OUT_DIR``: DICOM/NIfTI exam -> one NIfTI per series + ``series.json``."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from nervemuscle.errors import BadInputError
from nervemuscle.io import ROLES, load_exam, write_ingest
from nervemuscle.outputs import refuse_overlap


def parse_role_overrides(values: list[str]) -> dict[int, str]:
    """``["5=t2fs", "7=stir"]`` -> ``{5: "t2fs", 7: "stir"}``; BadInputError on malformed entries."""
    out: dict[int, str] = {}
    for value in values:
        number, sep, role = value.partition("=")
        if not sep or not number.strip().isdigit() or role.strip() not in ROLES:
            raise BadInputError(f"--role {value!r}: expected SERIES_NUMBER=ROLE with ROLE one of {', '.join(ROLES)}")
        out[int(number)] = role.strip()
    return out


def register(app: typer.Typer) -> None:
    @app.command("ingest")
    def ingest(
        exam_dir: Path = typer.Argument(..., help="Folder of DICOM files (any nesting) or NIfTI files (+ JSON)."),
        out_dir: Path = typer.Option(..., "-o", "--out", help="Output folder (replaced atomically)."),
        deidentify: bool = typer.Option(False, "--deidentify", help="Drop patient identifiers from the outputs."),
        role: Optional[List[str]] = typer.Option(None, "--role", help="Override a role: SERIES_NUMBER=ROLE "
                                                 "(repeatable)."),
    ) -> None:
        """Read an exam, classify its series and write NIfTI files plus series.json."""
        refuse_overlap(out_dir, [exam_dir])
        exam = load_exam(exam_dir, role_overrides=parse_role_overrides(role or []))
        write_ingest(exam, out_dir, deidentify=deidentify)
        for s in exam.series:
            shape = "x".join(str(n) for n in s.volume.shape)
            typer.echo(f"{s.number if s.number is not None else '-':>4}  {s.role:<11} {shape:<13} "
                       f"{s.description[:40]:<40}  {s.role_reason}")
        for warning in exam.warnings:
            typer.echo(f"warning: {warning}", err=True)
        typer.echo(f"{len(exam.series)} series written to {out_dir} ({exam.n_ignored_files} file(s) ignored)")
