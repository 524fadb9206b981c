"""``nervemuscle demo``: the whole study on the built-in virtual cohort (what ``make demo`` runs)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import typer


def run_demo(out: Path, *, n_als: int, n_mmn: int, n_controls: int, seed: int, kind: str, workers: int,
             anatomy: str = "classic") -> dict:
    """Simulate the cohort (once), analyse every exam with Dask (resumable), then pool the cohort with the
    reads of virtual radiologists (``cohort/reads.csv``, :mod:`nervemuscle.phantom.readers`).

    Each step reuses finished work, so a re-run only redoes what changed. The automated findings are also
    compared with the phantom's ground truth (``study/truth_agreement.json``). ``anatomy`` is the phantom's
    anatomy family (classic, adult or mixed); the families of the exams used are printed.
    """
    from nervemuscle.batch import analyze_batch
    from nervemuscle.outputs import write_text_atomic
    from nervemuscle.phantom import simulate_cohort
    from nervemuscle.phantom.readers import DEFAULT_READERS, simulate_reads
    from nervemuscle.phantom.truth import load_truths
    from nervemuscle.protocol import default_protocol
    from nervemuscle.stats import format_paper_comparison, format_reader_agreement, run_cohort
    from nervemuscle.stats.truth import format_truth_agreement, truth_agreement

    cohort_dir = out / "cohort"
    if not (cohort_dir / "clinical.csv").exists():
        typer.echo(f"[1/3] simulating {n_als} ALS + {n_mmn} MMN + {n_controls} control exams ({anatomy} anatomy) "
                   f"-> {cohort_dir}")
        simulate_cohort(cohort_dir, n_als=n_als, n_mmn=n_mmn, n_controls=n_controls, seed=seed, kind=kind,
                        workers=workers, progress=True, anatomy=anatomy)
    else:
        typer.echo(f"[1/3] reusing simulated cohort in {cohort_dir}")
    families: dict = {}
    for truth in load_truths(cohort_dir).values():
        family = truth.get("anatomy_family", "classic")
        families[family] = families.get(family, 0) + 1
    typer.echo("      phantom anatomy family: " + ", ".join(f"{name} ({n} exams)" for name, n in sorted(families.items())))
    typer.echo(f"[2/3] analysing every exam with {workers} Dask workers -> {out / 'findings'}")
    batch = analyze_batch(cohort_dir, out / "findings", workers=workers, progress=True)
    typer.echo(f"      analysed {batch.analysed}, reused {batch.skipped}, failed {batch.failed}")
    reads = cohort_dir / "reads.csv"  # the virtual radiologists' structured reads (phantom.readers)
    if not reads.exists():
        write_text_atomic(reads, simulate_reads(load_truths(cohort_dir).values(), default_protocol(), DEFAULT_READERS))
    typer.echo(f"[3/3] cohort statistics, with the reads of {len(DEFAULT_READERS)} virtual readers -> {out / 'study'}")
    results = run_cohort(out / "findings", cohort_dir / "clinical.csv", out / "study", reads_csv=reads)
    typer.echo("")
    typer.echo(format_paper_comparison(results))
    typer.echo("")
    typer.echo(format_reader_agreement(results))
    typer.echo("")
    agreement = truth_agreement(out / "findings", cohort_dir)
    write_text_atomic(out / "study" / "truth_agreement.json", json.dumps(agreement, indent=2))
    typer.echo(format_truth_agreement(agreement))
    typer.echo("")
    typer.echo(f"Study report: {(out / 'study' / 'report.html').resolve()}")
    return results


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        out: Path = typer.Option(Path("demo"), "--out", "-o", help="Working folder (reused between runs)."),
        als: int = typer.Option(60, help="Number of ALS exams (the paper had 60)."),
        mmn: int = typer.Option(8, help="Number of MMN exams (the paper had 8)."),
        controls: int = typer.Option(10, help="Number of healthy control exams."),
        seed: int = typer.Option(2015, help="Cohort seed (deterministic)."),
        kind: str = typer.Option("2d", help="Acquisition kind: 2d (axial T1 + T2 FS, as the paper), 3d, dixon."),
        workers: int = typer.Option(os.cpu_count() or 1, help="Parallel workers."),
        anatomy: str = typer.Option("classic", help="Phantom anatomy family: classic, adult or mixed (per exam)."),
    ) -> None:
        """Run the whole study on the virtual ALS/MMN/control cohort and print the paper's table."""
        from nervemuscle.errors import BadInputError
        from nervemuscle.phantom import ANATOMY_CHOICES

        if anatomy not in ANATOMY_CHOICES:
            raise BadInputError(f"--anatomy must be one of {', '.join(ANATOMY_CHOICES)}, got {anatomy!r}")
        run_demo(out, n_als=als, n_mmn=mmn, n_controls=controls, seed=seed, kind=kind, workers=workers, anatomy=anatomy)
