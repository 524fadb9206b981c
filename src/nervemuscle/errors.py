"""Exceptions with exit codes; messages name the file and the problem on one line."""
from __future__ import annotations

from pathlib import Path

#: Exit codes used by the command line (documented in README.md).
EXIT_OK = 0
EXIT_USAGE = 1
#: ``analyze-batch`` finished, but one or more exams failed (listed in ``failures.csv``).
EXIT_BATCH_FAILURES = 1
EXIT_BAD_INPUT = 2
EXIT_NOT_ASSESSABLE = 3
EXIT_OUTPUT = 4
EXIT_INTERNAL = 70


class NerveMuscleError(Exception):
    """Base class of expected failures; ``exit_code`` is what the CLI returns."""

    exit_code = EXIT_INTERNAL

    def __init__(self, message: str, path: str | Path | None = None):
        self.path = None if path is None else Path(path)
        self.message = message
        super().__init__(f"{self.path}: {message}" if self.path is not None else message)


class UsageError(NerveMuscleError):
    """A command-line argument is malformed or names something the input does not have."""

    exit_code = EXIT_USAGE


class BadInputError(NerveMuscleError):
    """The input files are missing, unreadable or inconsistent."""

    exit_code = EXIT_BAD_INPUT


class NotAssessableError(NerveMuscleError):
    """The exam was read but has no series suitable for the analysis."""

    exit_code = EXIT_NOT_ASSESSABLE


class OutputError(NerveMuscleError):
    """The output location cannot be written."""

    exit_code = EXIT_OUTPUT
