"""``nervemuscle cohort``: pool findings.json files with the clinical table into the study table and report."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def cohort(
        findings_root: Path = typer.Argument(..., readable=False,
                                             help="Folder searched recursively for findings.json."),
        clinical: Path = typer.Option(..., "--clinical", readable=False,
                                      help="clinical.csv: id, diagnosis (ALS|MMN|control), optional age, sex, alsfrs_r, ..."),
        out: Path = typer.Option(..., "--out", "-o", help="Output folder (table.csv, results.json, report.html, report.pdf)."),
        reads: Optional[Path] = typer.Option(None, "--reads", readable=False,
                                             help="reads.csv exported by the reader app (agreement analysis)."),
        pdf: bool = typer.Option(True, "--pdf/--no-pdf", help="Also print the report to PDF with Chromium."),
    ) -> None:
        """Group proportions with CIs, ALS vs MMN tests, correlations, accuracy, agreement and the paper table."""
        from nervemuscle.outputs import refuse_overlap
        from nervemuscle.stats.report import (format_paper_comparison, format_reader_agreement, group_table_rows,
                                              run_cohort)

        refuse_overlap(out, [findings_root, clinical, reads])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the same warnings are in results["warnings"], printed below
            results = run_cohort(findings_root, clinical, out, reads_csv=reads, pdf=pdf)
        for warning in results["warnings"]:
            typer.echo(f"warning: {warning}", err=True)
        rows = group_table_rows(results)
        groups = list(results["groups"])
        header = f"{'Finding':<26}" + "".join(f"{g:>18}" for g in groups)
        p_col = next((c for c in rows[0] if c.startswith("Fisher p")), None)
        typer.echo(header + (f"  {p_col}" if p_col else ""))
        for row in rows:
            typer.echo(f"{row['Finding']:<26}" + "".join(f"{row[g + ' k/n (%)']:>18}" for g in groups)
                       + (f"  {row[p_col]:>8}" if p_col else ""))
        typer.echo("")
        typer.echo(format_paper_comparison(results))
        if results["agreement"]:
            typer.echo("\n" + format_reader_agreement(results))
        typer.echo(f"\nwrote {out / 'table.csv'}, results.json, report.html" + (", report.pdf" if (out / "report.pdf").exists() else ""))
