"""``findings.json``: assemble, validate against the shipped JSON Schema, write and read.

The document is deterministic: the same exam, protocol and software give byte-identical files
(no timestamps; floats rounded; keys in a fixed order).
"""
from __future__ import annotations

import hashlib
import json
import math
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np

from nervemuscle._version import __version__
from nervemuscle.errors import BadInputError
from nervemuscle.grading import summarize
from nervemuscle.outputs import write_text_atomic

SCHEMA_VERSION = 1
#: Decimal places kept for measured quantities (far below any measurement precision).
FLOAT_DECIMALS = 4


@lru_cache(maxsize=1)
def findings_schema() -> dict[str, Any]:
    """The JSON Schema of ``findings.json`` shipped in ``nervemuscle/schema``."""
    text = resources.files("nervemuscle.schema").joinpath("findings.schema.json").read_text()
    return json.loads(text)


def plain(value: Any) -> Any:
    """Convert numpy scalars/arrays, tuples and paths into JSON types; round floats; NaN -> None."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return None if not math.isfinite(value) else round(value, FLOAT_DECIMALS)
    if isinstance(value, Path):
        return str(value)
    return value


def protocol_sha256(protocol: dict[str, Any]) -> str:
    """SHA-256 of the protocol's canonical JSON (sorted keys), independent of YAML formatting."""
    canonical = json.dumps(plain(protocol), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def build_findings(
    *,
    exam_id: str,
    protocol: dict[str, Any],
    sequences: list[dict[str, Any]],
    nerves: list[dict[str, Any]],
    muscles: list[dict[str, Any]],
    not_assessable: list[dict[str, str]],
) -> dict[str, Any]:
    """Assemble the findings document of one exam; the summary follows ``grading.summarize``.

    Parameters
    ----------
    exam_id : str
        Name of the exam (its folder name).
    protocol : dict
        The grading protocol in force (``load_protocol``); its name, version and hash are recorded.
    sequences : list of dict
        ``{"series", "role", "used_for", "reason"}`` per series used.
    nerves, muscles : list of dict
        Items of the nerve and muscle analyses (schema ``nerves`` / ``muscles`` items).
    not_assessable : list of dict
        ``{"item", "reason"}`` for everything that could not be assessed.

    Returns
    -------
    dict
        Valid against :func:`findings_schema` (checked by :func:`validate_findings`).
    """
    nerves = sorted(plain(nerves), key=lambda n: (n["segment"], n["side"]))
    muscles = sorted(plain(muscles), key=lambda m: (m["name"], m["side"]))
    return {
        "schema_version": SCHEMA_VERSION,
        "software": {"name": "nervemuscle", "version": __version__},
        "exam_id": exam_id,
        "protocol": {
            "name": str(protocol.get("name", "unnamed")),
            "version": protocol.get("version", "unversioned"),
            "sha256": protocol_sha256(protocol),
        },
        "sequences": plain(sequences),
        "summary": plain(summarize(nerves, muscles)),
        "nerves": nerves,
        "muscles": muscles,
        "not_assessable": plain(not_assessable),
    }


@lru_cache(maxsize=1)
def findings_validator() -> jsonschema.protocols.Validator:
    """The schema's validator, built once per process (building it costs far more than validating)."""
    schema = findings_schema()
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    cls.check_schema(schema)
    return cls(schema, format_checker=None)


def validate_findings(findings: dict[str, Any], source: str | Path | None = None) -> None:
    """Raise :class:`BadInputError` naming the first schema violation (and ``source`` if given)."""
    validator = findings_validator()
    if validator.is_valid(findings):
        return
    error = jsonschema.exceptions.best_match(validator.iter_errors(findings))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(document)"
        raise BadInputError(f"findings do not match the schema at {where}: {error.message}", source)


def dumps_findings(findings: dict[str, Any]) -> str:
    """The canonical text of a findings document (indented, fixed key order, trailing newline)."""
    return json.dumps(findings, indent=2, ensure_ascii=False) + "\n"


def write_findings(findings: dict[str, Any], path: str | Path) -> Path:
    """Validate, then write ``findings.json`` atomically (temp file in the same folder + rename)."""
    path = Path(path)
    validate_findings(findings)
    write_text_atomic(path, dumps_findings(findings), error="cannot write findings")
    return path


def read_findings(path: str | Path) -> dict[str, Any]:
    """Read and validate a ``findings.json``."""
    path = Path(path)
    try:
        findings = json.loads(path.read_text())
    except FileNotFoundError:
        raise BadInputError("findings file not found", path) from None
    except (OSError, ValueError) as exc:
        raise BadInputError(f"unreadable findings ({exc.__class__.__name__})", path) from None
    validate_findings(findings, path)
    return findings
