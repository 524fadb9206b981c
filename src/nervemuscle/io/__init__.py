"""Study ingestion: DICOM / NIfTI exams into classified RAS+ series (see docs/geometry.md)."""
from nervemuscle.io.classify import classify_series
from nervemuscle.io.exam import load_exam, write_ingest
from nervemuscle.io.series import ROLES, Exam, Series

__all__ = ["Exam", "ROLES", "Series", "classify_series", "load_exam", "write_ingest"]
