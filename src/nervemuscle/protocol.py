"""The grading protocol: one YAML file of scales, reference values and thresholds."""
from __future__ import annotations

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
    """Default protocol, overridden key by key by the YAML file at ``path`` (if given)."""
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
    return _merge(protocol, override)
