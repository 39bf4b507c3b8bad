"""Where lrviz keeps things and how it runs, read from the environment.

Every setting has one place: here. Pages, the CLI, the workers and the executors ask this
module instead of reading environment variables themselves. A bad value raises
ValueError naming the variable and the value.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _env_number(name: str, default: str, *, whole: bool, minimum: float,
                above: bool = False) -> float | int:
    """``$name`` as a number >= ``minimum`` (> when ``above``), or ValueError naming it."""
    raw = os.environ.get(name, default)
    bound = f"{'>' if above else '>='} {minimum:g}"
    what = f"{name} must be a {'whole number' if whole else 'number'} {bound}. Received: {raw!r}"
    try:
        value = int(raw) if whole else float(raw)
    except ValueError:
        raise ValueError(what) from None
    if not (value > minimum if above else value >= minimum):  # also refuses NaN
        raise ValueError(what)
    return value


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
    return _env_number("LRVIZ_MAX_CONCURRENT", "1", whole=True, minimum=1)


def worker_idle_seconds() -> float:
    """How long an idle warm worker waits for work before exiting
    (``$LRVIZ_WORKER_IDLE_SECONDS``, default 30): short enough to free memory, long enough
    that the next Train finds TensorFlow already imported."""
    return _env_number("LRVIZ_WORKER_IDLE_SECONDS", "30", whole=False, minimum=0)


def ray_address() -> str | None:
    """``$LRVIZ_RAY_ADDRESS`` (``auto`` or ``ray://host:port``), or None for local runs."""
    return os.environ.get("LRVIZ_RAY_ADDRESS") or None


def ray_cpus_per_run() -> float:
    """CPUs Ray reserves for each task (``$LRVIZ_RAY_CPUS_PER_RUN``, default 1)."""
    return _env_number("LRVIZ_RAY_CPUS_PER_RUN", "1", whole=False, minimum=0, above=True)


def ray_retries() -> int:
    """How often Ray reruns a task whose worker died (``$LRVIZ_RAY_RETRIES``, default 0)."""
    return _env_number("LRVIZ_RAY_RETRIES", "0", whole=True, minimum=0)


# -- switches a person sets in the app -----------------------------------------------------
# Kept in <cache>/settings.json so that every worker (also warm ones started earlier) sees
# them at its next run; an environment variable, when set, wins over the app's switch.
APP_SWITCHES = ("neptune", "tensorboard")


def app_switches() -> dict[str, bool]:
    """The app's switches (``neptune``, ``tensorboard``); False when never set or unreadable."""
    import json

    try:
        data = json.loads((cache_dir() / "settings.json").read_text())
    except (OSError, ValueError):
        data = {}
    return {name: data.get(name) is True for name in APP_SWITCHES}


def set_app_switch(name: str, on: bool) -> None:
    """Turn an app switch on or off (written atomically: never a half-written file)."""
    import json

    if name not in APP_SWITCHES:
        raise ValueError(f"Argument `name` must be one of {', '.join(APP_SWITCHES)}. Received: name={name!r}")
    path = cache_dir() / "settings.json"
    data = {**app_switches(), name: bool(on)}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)
