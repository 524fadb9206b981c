"""``nervemuscle simulate exam|cohort``: the digital brachial-plexus phantom on disk."""
from __future__ import annotations

import os
from pathlib import Path

import typer

from nervemuscle.errors import BadInputError


def _check_choice(value, allowed, option: str):
    if value is not None and value not in allowed:
        raise BadInputError(f"{option} must be one of {', '.join(allowed)}, got {value!r}")


ANATOMY_HELP = ("Anatomy family: classic (the original phantom), adult (adult-scale anatomy from published "
                "dimensions, docs/phantom.md) or mixed (family drawn per exam from its seed).")


def register(app: typer.Typer) -> None:
    sim = typer.Typer(help="Simulate phantom exams with exact ground truth (truth.json).", no_args_is_help=True)
    app.add_typer(sim, name="simulate")

    @sim.command("exam")
    def exam(
        out: Path = typer.Argument(..., help="Output folder; the exam goes to OUT/<exam_id>/."),
        phenotype: str = typer.Option("als", help="normal, als or mmn."),
        seed: int = typer.Option(0, help="Subject seed (deterministic)."),
        kind: str = typer.Option("2d", help="2d (axial T1 + T2 FS), 3d (T1 + 3D STIR) or dixon (2d + 3D Dixon)."),
        vendor: str = typer.Option(None, help="siemens, ge or philips (default: drawn from the seed)."),
        snr: float = typer.Option(None, help="Normal-muscle SNR (default per series, 25 on 2D TSE)."),
        bias: float = typer.Option(0.0, help="Bias-field amplitude (0.2 = about +-20%)."),
        field: float = typer.Option(3.0, "--field", help="Field strength in T (1.5 or 3)."),
        anatomy: str = typer.Option("classic", help=ANATOMY_HELP),
    ) -> None:
        """Simulate one exam: DICOM series, label maps and truth.json."""
        from nervemuscle.phantom import ANATOMY_CHOICES, EXAM_KINDS, PHENOTYPES, simulate_exam
        from nervemuscle.phantom.dicom_writer import VENDORS

        _check_choice(phenotype, PHENOTYPES, "--phenotype")
        _check_choice(kind, tuple(EXAM_KINDS), "--kind")
        _check_choice(vendor, VENDORS, "--vendor")
        _check_choice(field, (1.5, 3.0), "--field")
        _check_choice(anatomy, ANATOMY_CHOICES, "--anatomy")
        path = simulate_exam(out, phenotype, seed, kind=kind, vendor=vendor, snr=snr, bias=bias, field_strength=field,
                             anatomy=anatomy)
        typer.echo(str(path))

    @sim.command("cohort")
    def cohort(
        out: Path = typer.Argument(..., help="Output folder (exams + clinical.csv)."),
        als: int = typer.Option(60, "--als", help="Number of ALS exams."),
        mmn: int = typer.Option(8, "--mmn", help="Number of MMN exams."),
        controls: int = typer.Option(0, "--controls", help="Number of healthy controls."),
        seed: int = typer.Option(0, help="Cohort seed (deterministic)."),
        kind: str = typer.Option("2d", help="2d, 3d or dixon."),
        workers: int = typer.Option(os.cpu_count() or 1, help="Parallel processes."),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
        anatomy: str = typer.Option("classic", help=ANATOMY_HELP),
    ) -> None:
        """Simulate the virtual ALS/MMN/control cohort in parallel and write clinical.csv."""
        from nervemuscle.phantom import ANATOMY_CHOICES, EXAM_KINDS, simulate_cohort

        _check_choice(kind, tuple(EXAM_KINDS), "--kind")
        _check_choice(anatomy, ANATOMY_CHOICES, "--anatomy")
        for name, n in (("--als", als), ("--mmn", mmn), ("--controls", controls)):
            if n < 0:
                raise BadInputError(f"{name} must be >= 0, got {n}")
        path = simulate_cohort(out, n_als=als, n_mmn=mmn, n_controls=controls, seed=seed, kind=kind,
                               workers=workers, progress=progress, anatomy=anatomy)
        typer.echo(str(path))

    @sim.command("reads")
    def reads(
        cohort_dir: Path = typer.Argument(..., help="Simulated cohort folder (exam folders with truth.json)."),
        out: Path = typer.Option(..., "--out", "-o", help="reads.csv to write (the reader app's export format)."),
        readers: int = typer.Option(2, "--readers", help="Number of virtual readers (1-4)."),
    ) -> None:
        """Structured reads of the cohort by virtual radiologists (for `nervemuscle cohort --reads`)."""
        from nervemuscle.outputs import write_text_atomic
        from nervemuscle.phantom.readers import READER_PANEL, simulate_reads
        from nervemuscle.phantom.truth import load_truths
        from nervemuscle.protocol import default_protocol

        if not 1 <= readers <= len(READER_PANEL):
            raise BadInputError(f"--readers must be 1-{len(READER_PANEL)}, got {readers}")
        truths = load_truths(cohort_dir)
        if not truths:
            raise BadInputError("no exam folder with a truth.json (simulate a cohort first)", cohort_dir)
        write_text_atomic(out, simulate_reads(truths.values(), default_protocol(), READER_PANEL[:readers]))
        typer.echo(f"{len(truths)} exams read by {readers} virtual reader(s) -> {out}")
