"""Where lrviz keeps things, read from the environment.

Every setting has one place: here. Pages, the CLI and the workers ask this
module instead of reading environment variables themselves.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """The run cache folder: ``$LRVIZ_CACHE_DIR`` or ``<repo>/cache``."""
    path = Path(os.environ.get("LRVIZ_CACHE_DIR") or REPO_ROOT / "cache")
    path.mkdir(parents=True, exist_ok=True)
    return path


def db_path() -> Path:
    """The SQLite run cache: ``<cache_dir>/lrviz.db``."""
    return cache_dir() / "lrviz.db"


def max_concurrent_runs() -> int:
    """How many local training workers run at once (``$LRVIZ_MAX_CONCURRENT``, default 1)."""
    raw = os.environ.get("LRVIZ_MAX_CONCURRENT", "1")
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(
            f"LRVIZ_MAX_CONCURRENT must be a whole number of at least 1. Received: {raw!r}"
        ) from None
    if value < 1:
        raise ValueError(f"LRVIZ_MAX_CONCURRENT must be at least 1. Received: {value}")
    return value


def ray_address() -> str | None:
    """``$LRVIZ_RAY_ADDRESS`` (``auto`` or ``ray://host:port``), or None for local runs."""
    return os.environ.get("LRVIZ_RAY_ADDRESS") or None


def worker_idle_seconds() -> float:
    """How long an idle warm worker waits for work before exiting (``$LRVIZ_WORKER_IDLE_SECONDS``, default 30)."""
    raw = os.environ.get("LRVIZ_WORKER_IDLE_SECONDS", "30")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"LRVIZ_WORKER_IDLE_SECONDS must be a number of seconds. Received: {raw!r}") from None
    if not value >= 0:
        raise ValueError(f"LRVIZ_WORKER_IDLE_SECONDS must be at least 0. Received: {raw!r}")
    return value
