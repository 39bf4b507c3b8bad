"""Small helpers the trackers share."""

from __future__ import annotations

import os
from typing import Any, Mapping


def env_flag(name: str) -> bool | None:
    """``1/true/yes/on`` -> True, ``0/false/no/off`` -> False, unset or other -> None."""
    raw = os.environ.get(name, "").strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    return None


def flatten_config(config: Any) -> dict[str, Any]:
    """A run config as flat ``a/b`` keys with Neptune-safe values (lists and None as text)."""
    data = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for key, sub in value.items():
                walk(f"{prefix}/{key}" if prefix else str(key), sub)
        elif isinstance(value, (bool, int, float, str)):
            flat[prefix] = value
        else:  # lists, tuples, None: trackers take scalars only
            flat[prefix] = str(list(value)) if isinstance(value, (list, tuple)) else str(value)

    walk("", data)
    return flat
