"""Virtual radiologists: structured reads of phantom exams, so a reader study runs without patients.

A virtual reader grades what the exam's ground truth contains, the way a person applying the protocol's
scales would: the quantity behind each scale is *perceived* with noise and a reader-specific tendency, then
graded with the protocol's thresholds; the overall impression follows the protocol's summary rules from the
reader's own grades. Ratios and the fat fraction are perceived with log-normal noise (a normal muscle's 5% fat
is not mistaken for 10% any more often than a 40% one for 80%), the volume loss with additive noise.

The noise levels (:data:`PERCEPTION_SD`) were set so that two virtual readers agree on each exam's severity
about as well as the two readers of the ALS/MMN neurography study agreed on their per-patient scores
(Radiology 2019: linearly weighted kappa 0.73 nerve, 0.61 muscle; docs/clinical-reference section 2): on the
demo cohort (78 exams, seed 2015), highest root grade 0.72, highest muscle grade 0.59 (docs/phantom.md;
``tests/test_virtual_readers.py`` checks a band). These are simulated observers with independent errors per
cell: they know the truth up to that noise and never miss a structure, and with about 100 graded cells per
exam and the "any cell >= 1" rule they call about 4 in 10 normal exams abnormal.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np

from nervemuscle.grading import grade, summarize
from nervemuscle.reader.forms import IMPRESSION_SCALE, OVERALL_ITEM, impression

#: Standard deviation of the perception noise per scale: log units for ratios, absolute for fractions.
PERCEPTION_SD = {"nerve_t2": 0.075, "nerve_calibre": 0.075, "muscle_edema": 0.11, "muscle_fat": 0.30,
                 "muscle_atrophy": 0.075}
#: Columns of a reads table (as exported by the reader app, read by ``nervemuscle cohort --reads``).
READ_COLUMNS = ("exam_id", "reader", "item", "scale", "grade", "submitted_at")


@dataclass(frozen=True)
class VirtualReader:
    """One simulated radiologist.

    ``tendency`` shifts every perceived quantity towards abnormal (positive) or normal (negative): in log units
    for ratios and the fat fraction, and half of it as an absolute fraction for the volume loss.
    """

    name: str
    tendency: float = 0.0
    seed: int = 0


#: A panel of virtual readers: neutral, then alternately more and less inclined to call abnormal.
READER_PANEL = (VirtualReader("virtual_reader_1", 0.0, seed=1), VirtualReader("virtual_reader_2", 0.04, seed=2),
                VirtualReader("virtual_reader_3", -0.04, seed=3), VirtualReader("virtual_reader_4", 0.08, seed=4))
#: The demo's two readers.
DEFAULT_READERS = READER_PANEL[:2]


def _perceive_ratio(value: float, reader: VirtualReader, scale: str, rng: np.random.Generator) -> float:
    return float(value * np.exp(reader.tendency + rng.normal(0.0, PERCEPTION_SD[scale])))


def _perceive_fraction(value: float, reader: VirtualReader, scale: str, rng: np.random.Generator) -> float:
    return float(value + 0.5 * reader.tendency + rng.normal(0.0, PERCEPTION_SD[scale]))


def read_exam(truth: dict[str, Any], reader: VirtualReader, protocol: dict[str, Any]) -> dict[tuple[str, str], int]:
    """One reader's grades of one exam: ``{(item, scale): grade}`` in the reader app's vocabulary.

    Roots outside the field of view and muscles outside it are not graded. Deterministic for a given
    reader seed and exam id.
    """
    rng = np.random.default_rng([reader.seed, *truth["exam_id"].encode()])
    nerve_p, muscle_p = protocol["nerve"], protocol["muscle"]
    grades: dict[tuple[str, str], int] = {}
    nerves, muscles = [], []
    for root in truth["nerves"]:
        if not root["visible"]:
            continue
        item = f"{root['segment']}_{root['side']}"
        t2 = grade(_perceive_ratio(root["t2_ratio"] / root["normal_t2_ratio"], reader, "nerve_t2", rng),
                   nerve_p["t2_thresholds"])
        calibre = grade(_perceive_ratio(root["csa_mm2"] / nerve_p["csa_reference_mm2"][root["segment"]], reader,
                                        "nerve_calibre", rng), nerve_p["thickening_thresholds"])
        grades[(item, "nerve_t2")], grades[(item, "nerve_calibre")] = t2, calibre
        nerves.append({"grade": max(t2, calibre)})
    for muscle in truth["muscles"]:
        if not muscle["in_fov"]:
            continue
        item = f"{muscle['name']}_{muscle['side']}"
        seen = {
            "edema_grade": grade(_perceive_ratio(muscle["t2_ratio"], reader, "muscle_edema", rng),
                                 muscle_p["edema_thresholds"]),
            "fat_grade": grade(_perceive_ratio(muscle["fat_fraction"], reader, "muscle_fat", rng),
                               muscle_p["fat_thresholds"]),
            "atrophy_grade": grade(_perceive_fraction(muscle["volume_loss"], reader, "muscle_atrophy", rng),
                                   muscle_p["atrophy_thresholds"]),
        }
        grades[(item, "muscle_edema")] = seen["edema_grade"]
        grades[(item, "muscle_fat")] = seen["fat_grade"]
        grades[(item, "muscle_atrophy")] = seen["atrophy_grade"]
        muscles.append(seen)
    summary = summarize(nerves, muscles)
    overall = impression(summary["nerve_abnormal"], summary["muscle_abnormal"])
    if overall is not None:
        grades[(OVERALL_ITEM, IMPRESSION_SCALE)] = overall
    return grades


def simulate_reads(truths: Iterable[dict[str, Any]], protocol: dict[str, Any],
                   readers: Iterable[VirtualReader] = DEFAULT_READERS) -> str:
    """Reads of every exam by every reader as the reads CSV (:data:`READ_COLUMNS`), submission times one
    minute apart from 2026-01-05 09:00 UTC (each reader's exams in exam-id order)."""
    truths = sorted(truths, key=lambda t: t["exam_id"])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(READ_COLUMNS)
    start = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
    for reader in readers:
        for k, truth in enumerate(truths):
            submitted = (start + timedelta(minutes=k)).isoformat()
            for (item, scale), g in read_exam(truth, reader, protocol).items():
                writer.writerow([truth["exam_id"], reader.name, item, scale, g, submitted])
    return out.getvalue()
