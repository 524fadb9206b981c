"""``nervemuscle demo`` end to end on a tiny virtual cohort: simulate, analyse with Dask, pool, compare
with the phantom truth; a re-run reuses every step."""
import json

import pytest

from nervemuscle.cli import main


@pytest.mark.slow
def test_tiny_demo_runs_the_whole_study_and_reuses_work(tmp_path, capsys):
    args = ["demo", "--out", str(tmp_path / "demo"), "--als", "2", "--mmn", "1", "--controls", "1", "--workers", "2"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    study = tmp_path / "demo" / "study"
    assert (study / "report.html").is_file() and (study / "table.csv").is_file()
    agreement = json.loads((study / "truth_agreement.json").read_text())
    assert agreement["exams"] == 4
    assert agreement["summary"]["muscle_edema"]["accuracy"]["n"] == 4
    assert agreement["roots"]["n"] >= 30 and agreement["roots"]["csa_median_abs_rel_error"] < 0.10
    assert "Automated findings vs phantom ground truth (4 exams" in printed
    # the virtual readers' reads feed the agreement analysis of the cohort report
    assert (tmp_path / "demo" / "cohort" / "reads.csv").is_file()
    results = json.loads((study / "results.json").read_text())
    assert results["agreement"]["readers"] == ["virtual_reader_1", "virtual_reader_2"]
    assert "virtual_reader_1 vs virtual_reader_2:" in printed and "virtual_reader_1 vs automated:" in printed
    assert main(args) == 0
    again = capsys.readouterr().out
    assert "reusing simulated cohort" in again and "analysed 0, reused 4, failed 0" in again
