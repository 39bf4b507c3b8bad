"""Small helpers the trackers share."""

from __future__ import annotations

import os


def env_flag(name: str) -> bool | None:
    """``1/true/yes/on`` -> True, ``0/false/no/off`` -> False, unset or other -> None."""
    raw = os.environ.get(name, "").strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    return None
