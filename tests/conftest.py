"""Fixtures shared by several test modules."""
import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def phantom_exam(tmp_path_factory):
    """``phantom_exam(phenotype, kind, seed) -> Path``: a phantom exam folder, simulated once per session."""
    from nervemuscle.phantom import simulate_exam

    def simulated(phenotype: str, kind: str, seed: int) -> Path:
        cache = tmp_path_factory.getbasetemp() / "phantom_cache" / f"{phenotype}_{kind}_{seed}"
        if not (cache / "done").exists():
            shutil.rmtree(cache, ignore_errors=True)
            exam = simulate_exam(cache / "exam", phenotype, seed, kind=kind)
            (cache / "done").write_text(str(exam))
        return Path((cache / "done").read_text())

    return simulated
