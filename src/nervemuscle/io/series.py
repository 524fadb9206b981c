"""The ingested exam: `Series` (one 3-D volume with its role) and `Exam` (all series of a folder)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nervemuscle.errors import UsageError
from nervemuscle.volume import Volume

#: Roles a series can be classified as (see :func:`nervemuscle.io.classify_series`).
ROLES = ("t1", "t2fs", "stir", "dixon_water", "dixon_fat", "dixon_in", "dixon_opp", "dwi", "localizer", "other")


def parse_role_overrides(values: list[str] | None) -> dict[str, str]:
    """``["5=t2fs", "t1_cor=t1"]`` -> ``{"5": "t2fs", "t1_cor": "t1"}``: a DICOM series number or a NIfTI file
    stem, then a role of :data:`ROLES`.

    Raises
    ------
    UsageError
        An entry without ``=``, an empty key or an unknown role (exit code 1).
    """
    out: dict[str, str] = {}
    for value in values or []:
        key, sep, role = value.partition("=")
        if not sep or not key.strip() or role.strip() not in ROLES:
            raise UsageError(f"--role {value!r}: expected SERIES=ROLE (SERIES a series number or a NIfTI file "
                             f"stem) with ROLE one of {', '.join(ROLES)}")
        out[key.strip()] = role.strip()
    return out


@dataclass
class Series:
    """One 3-D image series.

    Attributes
    ----------
    uid : str
        SeriesInstanceUID, with a suffix such as ``.te2`` when a DICOM series was split, or the NIfTI file stem.
    number : int or None
        SeriesNumber.
    description : str
        SeriesDescription (or NIfTI sidecar ``SeriesDescription`` / file stem).
    volume : Volume
        RAS+ affine; values after RescaleSlope/Intercept (float32 when scaled, else the stored integer type).
    role : str
        One of :data:`ROLES`.
    role_reason : str
        Why this role was chosen.
    n_files : int
        Files that contributed (1 for an enhanced multi-frame or NIfTI file).
    attributes : dict
        JSON-serialisable acquisition attributes; times in ms.
    warnings : list of str
        Non-fatal problems found while reading.
    """

    uid: str
    number: int | None
    description: str
    volume: Volume
    role: str
    role_reason: str
    n_files: int
    attributes: dict
    warnings: list[str] = field(default_factory=list)


@dataclass
class Exam:
    """All series found under one folder."""

    path: Path
    series: list[Series]
    n_ignored_files: int
    warnings: list[str] = field(default_factory=list)
    patient: dict = field(default_factory=dict)

    def by_role(self, role: str) -> list[Series]:
        """Series classified as ``role``, in series-number order."""
        return [s for s in self.series if s.role == role]
