"""The grading protocol: one YAML file of scales, reference values and thresholds.

An override file may change only keys of the default protocol, with values of the same kind; grade thresholds
(``*_thresholds``) and ranges must be finite and strictly ascending, and every number positive. A misspelt key
or thresholds out of order would otherwise be silently ignored or grade every exam wrongly.
"""
from __future__ import annotations

import math
from copy import deepcopy
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from nervemuscle.errors import BadInputError

DEFAULT_PROTOCOL = "protocol_default.yaml"


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def default_protocol() -> dict[str, Any]:
    """The shipped default protocol (clinical reference section 8)."""
    text = resources.files("nervemuscle.data").joinpath(DEFAULT_PROTOCOL).read_text()
    return yaml.safe_load(text)


def load_protocol(path: str | Path | None = None) -> dict[str, Any]:
    """Default protocol, overridden key by key by the YAML file at ``path`` (if given).

    Raises
    ------
    BadInputError
        Missing or unreadable file, not a mapping, a key the default protocol does not have, a value of
        another kind, or thresholds/ranges not strictly ascending (exit code 2).
    """
    protocol = default_protocol()
    if path is None:
        return protocol
    path = Path(path)
    try:
        override = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise BadInputError("protocol file not found", path) from None
    except (OSError, yaml.YAMLError) as exc:
        raise BadInputError(f"unreadable protocol file ({exc.__class__.__name__})", path) from None
    if not isinstance(override, dict):
        raise BadInputError("protocol file must hold a YAML mapping", path)
    _check_override(override, protocol, "", path)
    return _merge(protocol, override)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_override(override: dict, default: dict, prefix: str, path: Path) -> None:
    """Refuse keys the default protocol does not have and values of another kind than the default's.

    Raises
    ------
    BadInputError
        Naming the protocol file and the dotted key.
    """
    for key, value in override.items():
        name = f"{prefix}{key}"
        if key not in default:
            raise BadInputError(f"unknown protocol key {name!r} (keys here: {', '.join(map(str, default))})", path)
        ref = default[key]
        if isinstance(ref, dict):
            if not isinstance(value, dict):
                raise BadInputError(f"protocol key {name!r} must be a mapping", path)
            _check_override(value, ref, f"{name}.", path)
        elif _is_number(ref) and not (_is_number(value) and value > 0):
            raise BadInputError(f"protocol key {name!r} must be a positive finite number, got {value!r}", path)
        elif isinstance(ref, list) and all(_is_number(v) for v in ref):
            if not (isinstance(value, list) and len(value) == len(ref) and all(_is_number(v) for v in value)):
                raise BadInputError(f"protocol key {name!r} must be a list of {len(ref)} finite numbers, "
                                    f"got {value!r}", path)
            if any(b <= a for a, b in zip(value, value[1:])):
                raise BadInputError(f"protocol key {name!r} must be strictly ascending, got {value!r}", path)
            if value[0] <= 0:
                raise BadInputError(f"protocol key {name!r} must be positive, got {value!r}", path)
        elif isinstance(ref, (str, list)) and not isinstance(value, type(ref)):
            raise BadInputError(f"protocol key {name!r} must be a {type(ref).__name__}, got {value!r}", path)
