"""Loading and validating the cohort's clinical table and the radiologists' reads.

clinical.csv
    One row per exam. Required columns ``id`` (the exam id of findings.json) and ``diagnosis``
    (ALS, MMN or control, any case; stored as ``ALS``, ``MMN``, ``control``). Optional: ``age``
    (years, 0-120), ``sex`` (free text), ``alsfrs_r`` (integer 0-48), ``disease_duration_months``
    (>= 0), ``mrc_sum`` (>= 0), ``side`` (left, right or both). Other columns are kept untouched.

reads.csv
    Radiologist reads as exported by the reader web app, one grade per row. Required columns
    ``exam_id``, ``reader``, ``item`` (``C5_left`` ... ``T1_right`` for roots, ``deltoid_left`` ...
    for muscles, ``overall`` for the whole exam), ``scale`` (``nerve_t2``, ``nerve_calibre``,
    ``muscle_edema``, ``muscle_fat``, ``muscle_atrophy``, ``impression``) and ``grade`` (integer
    0-3). ``submitted_at`` is optional (ISO 8601); when a reader graded the same item and scale
    twice, the latest submission counts. Extra columns are ignored.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from nervemuscle.errors import BadInputError

DIAGNOSES = {"als": "ALS", "mmn": "MMN", "control": "control"}
READ_COLUMNS = ("exam_id", "reader", "item", "scale", "grade")

#: Optional numeric columns: (lowest, highest, must be integer).
NUMERIC_COLUMNS = {
    "age": (0, 120, False),
    "alsfrs_r": (0, 48, True),
    "disease_duration_months": (0, None, False),
    "mrc_sum": (0, None, False),
}


def _read_csv(path: Path, what: str) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except FileNotFoundError:
        raise BadInputError(f"{what} not found", path) from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise BadInputError(f"unreadable {what} ({exc.__class__.__name__}: {str(exc).splitlines()[0]})", path) from None
    df.columns = [c.strip().lower() for c in df.columns]
    return df.apply(lambda col: col.str.strip())


def _row(i: int) -> str:
    return f"row {i + 2}"  # header is line 1


def load_clinical(path: str | Path) -> pd.DataFrame:
    """Validated clinical table indexed by ``id`` (see the module docstring for the format).

    Raises
    ------
    BadInputError
        Naming the file, the row (line number), the column and the problem.
    """
    path = Path(path)
    df = _read_csv(path, "clinical table")
    missing = [c for c in ("id", "diagnosis") if c not in df.columns]
    if missing:
        raise BadInputError(f"missing required column(s) {', '.join(missing)}", path)
    if df.empty:
        raise BadInputError("no rows", path)
    for i, value in enumerate(df["id"]):
        if not value:
            raise BadInputError(f"{_row(i)}, column id: empty id", path)
    dup = df["id"][df["id"].duplicated()]
    if len(dup):
        i = int(dup.index[0])
        raise BadInputError(f"{_row(i)}, column id: duplicate id {dup.iloc[0]!r}", path)
    diagnosis = []
    for i, value in enumerate(df["diagnosis"]):
        norm = DIAGNOSES.get(value.lower())
        if norm is None:
            raise BadInputError(f"{_row(i)}, column diagnosis: {value!r} is not ALS, MMN or control", path)
        diagnosis.append(norm)
    df["diagnosis"] = diagnosis
    for column, (low, high, integer) in NUMERIC_COLUMNS.items():
        if column in df.columns:
            df[column] = _numeric_column(df[column], column, low, high, integer, path)
    if "side" in df.columns:
        for i, value in enumerate(df["side"]):
            if value and value.lower() not in ("left", "right", "both"):
                raise BadInputError(f"{_row(i)}, column side: {value!r} is not left, right or both", path)
        df["side"] = df["side"].str.lower()
    return df.set_index("id", drop=False)


def _numeric_column(values: pd.Series, column: str, low, high, integer: bool, path: Path) -> pd.Series:
    out = np.full(len(values), np.nan)
    for i, text in enumerate(values):
        if text == "" or text.lower() in ("na", "nan", "n/a"):
            continue
        try:
            v = float(text)
        except ValueError:
            raise BadInputError(f"{_row(i)}, column {column}: {text!r} is not a number", path) from None
        if not np.isfinite(v):
            raise BadInputError(f"{_row(i)}, column {column}: {text!r} is not a finite number", path)
        if integer and v != int(v):
            raise BadInputError(f"{_row(i)}, column {column}: {text!r} must be an integer", path)
        if (low is not None and v < low) or (high is not None and v > high):
            rng = f"{low}-{high}" if high is not None else f">= {low}"
            raise BadInputError(f"{_row(i)}, column {column}: {text!r} outside {rng}", path)
        out[i] = v
    return pd.Series(out, index=values.index)


def load_reads(path: str | Path) -> pd.DataFrame:
    """Validated radiologist reads, one row per (exam_id, reader, item, scale), latest submission kept."""
    path = Path(path)
    df = _read_csv(path, "reads table")
    missing = [c for c in READ_COLUMNS if c not in df.columns]
    if missing:
        raise BadInputError(f"missing required column(s) {', '.join(missing)}", path)
    for column in ("exam_id", "reader", "item", "scale"):
        empty = df.index[df[column] == ""]
        if len(empty):
            raise BadInputError(f"{_row(int(empty[0]))}, column {column}: empty", path)
    grades = np.empty(len(df), dtype=int)
    for i, text in enumerate(df["grade"]):
        if text not in ("0", "1", "2", "3"):
            raise BadInputError(f"{_row(i)}, column grade: {text!r} is not an integer 0-3", path)
        grades[i] = int(text)
    df["grade"] = grades
    df["scale"] = df["scale"].str.lower()
    order = pd.to_datetime(df["submitted_at"], errors="coerce", utc=True) if "submitted_at" in df.columns else None
    if order is not None:
        bad = df.index[order.isna() & (df["submitted_at"] != "")]
        if len(bad):
            i = int(bad[0])
            raise BadInputError(f"{_row(i)}, column submitted_at: {df['submitted_at'].iloc[i]!r} is not a date-time", path)
        df = df.assign(_order=order).sort_values("_order", kind="stable").drop(columns="_order")
    df = df.drop_duplicates(["exam_id", "reader", "item", "scale"], keep="last")
    return df[list(READ_COLUMNS)].reset_index(drop=True)
