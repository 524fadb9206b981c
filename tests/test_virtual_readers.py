"""Virtual radiologists (nervemuscle.phantom.readers): the protocol's scales applied to the truth, the noise
that makes two readers agree as in the literature, and reads the cohort analysis accepts."""
import pytest

from nervemuscle.cli import main
from nervemuscle.errors import EXIT_BAD_INPUT
from nervemuscle.phantom import exam_truth, make_subject
from nervemuscle.phantom.cohort import subject_seed
from nervemuscle.phantom.readers import DEFAULT_READERS, PERCEPTION_SD, VirtualReader, read_exam, simulate_reads
from nervemuscle.protocol import default_protocol
from nervemuscle.reader.forms import allowed_grades, automated_grades, impression
from nervemuscle.stats.agreement import kappa_with_bootstrap
from nervemuscle.stats.clinical import load_reads

PROTOCOL = default_protocol()


def cohort_truths(n_als: int, n_mmn: int, n_controls: int, seed: int = 2015) -> list[dict]:
    """Ground truth of a virtual cohort (no images), subject seeds as ``simulate_cohort`` draws them."""
    truths = []
    for group, (phenotype, prefix, n) in enumerate((("als", "ALS", n_als), ("mmn", "MMN", n_mmn),
                                                    ("normal", "CTRL", n_controls))):
        for i in range(n):
            truth = exam_truth(make_subject(phenotype, subject_seed(seed, group, i)), ["t1_axial", "t2fs_axial"])
            truths.append({**truth, "exam_id": f"{prefix}-{i + 1:03d}"})
    return truths


@pytest.fixture(scope="module")
def truths():
    return cohort_truths(n_als=14, n_mmn=4, n_controls=6)


def test_a_reader_without_perception_noise_reads_the_truth(truths, monkeypatch):
    monkeypatch.setattr("nervemuscle.phantom.readers.PERCEPTION_SD", {k: 0.0 for k in PERCEPTION_SD})
    exact = VirtualReader("exact")
    vocabulary = allowed_grades(PROTOCOL)
    for truth in truths:
        grades = read_exam(truth, exact, PROTOCOL)
        assert all(key in vocabulary and 0 <= g <= vocabulary[key] for key, g in grades.items())
        # the truth has the findings.json layout: its grades in the read vocabulary are what the reader says
        assert grades == automated_grades(truth)
        summary = truth["summary"]
        assert grades[("overall", "impression")] == impression(summary["nerve_abnormal"], summary["muscle_abnormal"])


def test_reads_are_deterministic_and_skip_what_is_outside_the_field_of_view(truths):
    truth = truths[0]
    reader = DEFAULT_READERS[1]
    assert read_exam(truth, reader, PROTOCOL) == read_exam(truth, reader, PROTOCOL)
    hidden = {**truth, "nerves": [{**n, "visible": n["segment"] != "T1"} for n in truth["nerves"]]}
    items = {item for item, _ in read_exam(hidden, reader, PROTOCOL)}
    assert not any(item.startswith("T1_") for item in items) and "C5_left" in items


@pytest.mark.slow
def test_two_virtual_readers_agree_about_as_well_as_published_readers(truths):
    """Exam-level severity (highest root grade, highest muscle grade), linearly weighted kappa between the two
    default readers; the Radiology 2019 readers: 0.73 nerve, 0.61 muscle. Bands are wide: 24 exams."""
    reads = [{t["exam_id"]: read_exam(t, r, PROTOCOL) for t in truths} for r in DEFAULT_READERS]
    for scales, low, high in ((("nerve_t2", "nerve_calibre"), 0.45, 0.95),
                              (("muscle_edema", "muscle_fat", "muscle_atrophy"), 0.35, 0.9)):
        severity = [[max([g for (_, scale), g in reads[k][t["exam_id"]].items() if scale in scales] or [0])
                     for t in truths] for k in range(2)]
        kappa = kappa_with_bootstrap(*severity, [t["exam_id"] for t in truths], 4, "linear", n_boot=10)["kappa"]
        assert low < kappa < high, (scales, kappa)
    # and they are not the truth: each disagrees with it on some cells
    for k in range(2):
        assert sum(reads[k][t["exam_id"]] != automated_grades(t) for t in truths) >= 3


def test_simulated_reads_are_a_valid_reads_table(truths, tmp_path):
    path = tmp_path / "reads.csv"
    path.write_text(simulate_reads(truths[:3], PROTOCOL))
    reads = load_reads(path)
    assert set(reads["reader"]) == {"virtual_reader_1", "virtual_reader_2"}
    assert set(reads["exam_id"]) == {t["exam_id"] for t in truths[:3]}
    per_exam = reads.groupby(["reader", "exam_id"]).size()
    assert (per_exam == 10 * 2 + 16 * 3 + 1).all()  # every root, muscle and the overall impression


def test_cli_simulate_reads_refuses_a_folder_without_truth(tmp_path, capsys):
    assert main(["simulate", "reads", str(tmp_path), "-o", str(tmp_path / "reads.csv")]) == EXIT_BAD_INPUT
    assert "no exam folder with a truth.json" in capsys.readouterr().err
    assert not (tmp_path / "reads.csv").exists()
